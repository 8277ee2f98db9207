"""carpscope on real speakers recorded during the test run (ucarp, keepalived in network
namespaces built by tests/harness): decoding, HMAC verification from passphrases and from
FreeBSD rc.conf files alone, split brain with its cause, a clean failover.

Needs root, ucarp, keepalived and tcpdump: skipped with the reason otherwise, a failure under CI=true.
Addresses and ids differ from the bundled captures on purpose.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness import Host, Keepalived, Lab, Ucarp, require_root

ROOT = Path(__file__).resolve().parents[1]
HANDBOOK = ROOT / "tests" / "fixtures" / "configs" / "handbook"

pytestmark = pytest.mark.live


@pytest.fixture
def live():
    require_root()


def analyze(pcap: Path, *args: str) -> dict:
    p = subprocess.run([sys.executable, "-m", "carpscope", "analyze", str(pcap), "--format", "json", *args],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert p.returncode in (0, 1), p.stderr
    assert "Traceback" not in p.stderr
    return json.loads(p.stdout)


def keyfile(tmp_path: Path, **keys: str) -> str:
    f = tmp_path / "keys"
    f.write_text("".join(f"{k}:{v}\n" for k, v in keys.items()))
    os.chmod(f, 0o600)
    return str(f)


def group(rep: dict, protocol: str, vhid: int) -> dict:
    (g,) = [g for g in rep["groups"] if g["protocol"] == protocol and g["vhid"] == vhid]
    return g


def speaker(g: dict, ip: str) -> dict:
    (s,) = [s for s in g["speakers"] if s["ip"] == ip]
    return s


def test_real_speakers_decode_exactly(live, tmp_path):
    """ucarp (CARP), keepalived VRRPv2 with PASS auth and VRRPv3 on one segment."""
    pcap = tmp_path / "mix.pcap"
    hosts = [Host("a", "10.61.7.11/24"), Host("b", "10.61.7.12/24"), Host("c", "10.61.7.13/24"),
             Host("d", "10.61.7.14/24")]
    with Lab(hosts) as lab:
        lab.start_capture(pcap)
        lab.start(Ucarp("a", 77, "mix-secret-77", "10.61.7.77", advbase=1, advskew=20))
        lab.wait_state("a", "carp:77", "MASTER", 10)
        lab.start(Ucarp("b", 77, "mix-secret-77", "10.61.7.77", advbase=1, advskew=120))
        lab.start(Keepalived("c", 88, 210, ("10.61.7.88/24",), version=2, auth_pass="vr88pw"))
        lab.start(Keepalived("d", 99, 140, ("10.61.7.99/24", "10.61.7.98/24"), version=3, advert_int=0.5))
        lab.wait_state("c", "vrrp:88", "MASTER", 10)
        lab.wait_state("d", "vrrp:99", "MASTER", 10)
        time.sleep(3)
        lab.stop_capture()
    rep = analyze(pcap, "--passphrase-file", keyfile(tmp_path, lab77="mix-secret-77"), "--vip", "77=10.61.7.77")
    assert rep["sources"][0]["malformed"] == 0
    carp = group(rep, "carp", 77)
    a = speaker(carp, "10.61.7.11")
    assert (a["advbase"], a["advskew"], a["mac"], a["ttl_min"]) == (1, 20, "00:00:5e:00:00:4d", 255)
    assert a["auth"]["status"] == "ok" and a["auth"]["key"] == "lab77" and a["auth"]["vips"] == ["10.61.7.77"]
    assert carp["masters_at_end"] == ["10.61.7.11"]
    v2 = group(rep, "vrrp2", 88)
    c = speaker(v2, "10.61.7.13")
    assert (c["priority"], c["interval_cs"], c["addresses"], c["auth"]["status"]) == (210, 100, ["10.61.7.88"], "cleartext")
    v3 = group(rep, "vrrp3", 99)
    d = speaker(v3, "10.61.7.14")
    assert (d["priority"], d["interval_cs"], d["addresses"]) == (140, 50, ["10.61.7.98", "10.61.7.99"])
    assert 0.45 < d["period"]["mean"] < 0.55
    rules = {f["rule"] for f in rep["findings"]}
    assert "vrrp-cleartext-auth" in rules
    assert not rules & {"malformed", "bad-checksum", "bad-ttl", "split-brain", "hmac-mismatch", "vhid-conflict"}
    # the password never leaves carpscope, and every advert line carries the checksum verdict
    p = subprocess.run([sys.executable, "-m", "carpscope", "analyze", str(pcap), "--format", "jsonl"],
                       capture_output=True, text=True, timeout=60)
    lines = [json.loads(x) for x in p.stdout.splitlines() if '"type": "advert"' in x]
    assert lines and all(x["checksum_ok"] for x in lines)
    assert {x["checksum_variant"] for x in lines if x["protocol"] == "vrrp3"} == {"pseudo"}
    assert "vr88pw" not in p.stdout + p.stderr


def test_real_keepalived_vrrp3_ipv6(live, tmp_path):
    pcap = tmp_path / "v6.pcap"
    hosts = [Host("a", None, ipv6=("fe80::61:a/64", "2001:db8:61::a/64")),
             Host("b", None, ipv6=("fe80::61:b/64", "2001:db8:61::b/64"))]
    with Lab(hosts, ipv6=True) as lab:
        lab.start_capture(pcap)
        lab.start(Keepalived("a", 61, 120, ("fe80::61/64", "2001:db8:61::61/64"), version=3, native_ipv6=True))
        lab.start(Keepalived("b", 61, 90, ("fe80::61/64", "2001:db8:61::61/64"), version=3, native_ipv6=True))
        lab.wait_state("a", "vrrp:61", "MASTER", 12)
        time.sleep(3)
        lab.stop_capture()
    rep = analyze(pcap)
    assert rep["sources"][0]["malformed"] == 0
    g = group(rep, "vrrp3", 61)
    assert g["family"] == 6 and g["masters_at_end"] == ["fe80::61:a"]
    s = speaker(g, "fe80::61:a")
    assert (s["priority"], s["interval_cs"], s["ttl_min"]) == (120, 100, 255)
    assert s["addresses"] == ["2001:db8:61::61", "fe80::61"]


def test_live_split_brain_passphrase(live, tmp_path):
    pcap = tmp_path / "sb.pcap"
    with Lab([Host("a", "10.62.0.2/24"), Host("b", "10.62.0.3/24")]) as lab:
        lab.start_capture(pcap)
        lab.start(Ucarp("a", 62, "left-key-62", "10.62.0.62"))
        lab.wait_state("a", "carp:62", "MASTER", 10)
        lab.start(Ucarp("b", 62, "right-key-62", "10.62.0.62", advskew=100))
        lab.wait_state("b", "carp:62", "MASTER", 10)
        time.sleep(5)
        lab.stop_capture()
    both = analyze(pcap, "--passphrase-file", keyfile(tmp_path, left="left-key-62", right="right-key-62"),
                   "--vip", "62=10.62.0.62")
    (sb,) = [f for f in both["findings"] if f["rule"] == "split-brain"]
    assert sb["cause"] == "passphrase" and set(sb["evidence"]["speakers"]) == {"10.62.0.2", "10.62.0.3"}
    assert "passphrase-mismatch" in {f["rule"] for f in both["findings"]}
    # knowing only one side's key: the other side's HMAC fails
    one = analyze(pcap, "--passphrase-file", keyfile(tmp_path, left="left-key-62"), "--vip", "62=10.62.0.62")
    (sb,) = [f for f in one["findings"] if f["rule"] == "split-brain"]
    assert sb["cause"] in ("passphrase", "auth")
    rules = {f["rule"]: f for f in one["findings"]}
    bad = rules.get("hmac-mismatch") or rules.get("passphrase-mismatch")
    assert bad is not None and "10.62.0.3" in json.dumps(bad["evidence"])
    assert speaker(group(one, "carp", 62), "10.62.0.3")["auth"]["status"] == "fail"


def test_live_clean_failover_is_not_split_brain(live, tmp_path):
    pcap = tmp_path / "fo.pcap"
    with Lab([Host("a", "10.63.0.2/24"), Host("b", "10.63.0.3/24")]) as lab:
        lab.start_capture(pcap)
        pa = lab.start(Ucarp("a", 63, "fo-key-63", "10.63.0.63"))
        lab.wait_state("a", "carp:63", "MASTER", 10)
        lab.start(Ucarp("b", 63, "fo-key-63", "10.63.0.63", advskew=80))
        time.sleep(3)
        since = lab.t()
        lab.stop(pa)
        lab.wait_state("b", "carp:63", "MASTER", 12, since=since)
        time.sleep(3)
        lab.stop_capture()
    rep = analyze(pcap, "--passphrase-file", keyfile(tmp_path, fo="fo-key-63"), "--vip", "63=10.63.0.63")
    g = group(rep, "carp", 63)
    assert [r["ip"] for r in g["masters"]][:2] == ["10.63.0.2", "10.63.0.3"]
    assert g["masters_at_end"] == ["10.63.0.3"]
    rules = {f["rule"] for f in rep["findings"]}
    assert not rules & {"split-brain", "hmac-mismatch", "passphrase-mismatch", "vip-set-mismatch"}


def _handbook_members():
    from carpscope.config import inventory_from_configs
    inv = inventory_from_configs(sorted(str(p) for p in HANDBOOK.glob("*.rc.conf")))
    addr = {h.name: h.addresses[0] for h in inv.hosts}
    for g in inv.groups:
        for m in g.members:
            yield m.host, addr[m.host], g.id, g.passphrase_of(m).reveal(), g.vips_of(m)[0], g.advskew_of(m)


def test_live_handbook_from_rc_conf(live, tmp_path):
    """ucarp runs with settings generated from the handbook's rc.conf files; analyze --rc-conf
    verifies every advert from the configs alone (no passphrase file, no --vip)."""
    pcap = tmp_path / "hb.pcap"
    members = list(_handbook_members())
    hosts = {h: a for h, a, *_ in members}
    with Lab([Host(h, a) for h, a in sorted(hosts.items())]) as lab:
        lab.start_capture(pcap)
        primaries = [m for m in members if m[5] == 0]
        for host, _a, vhid, pw, vip, skew in primaries:
            lab.start(Ucarp(host, vhid, pw, vip, advskew=skew))
        for host, _a, vhid, *_ in primaries:
            lab.wait_state(host, f"carp:{vhid}", "MASTER", 10)
        for host, _a, vhid, pw, vip, skew in members:
            if skew:
                lab.start(Ucarp(host, vhid, pw, vip, advskew=skew))
        time.sleep(3)
        lab.stop_capture()
    args = []
    for f in sorted(HANDBOOK.glob("*.rc.conf")):
        args += ["--rc-conf", str(f)]
    rep = analyze(pcap, *args, "--no-weak-check")
    statuses = {(g["vhid"], s["ip"]): s["auth"] for g in rep["groups"] for s in g["speakers"]}
    assert {k[0] for k in statuses} == {1, 2}
    assert all(a["status"] == "ok" and not a.get("inferred_vips") for a in statuses.values()), statuses
    rules = {f["rule"] for f in rep["findings"]}
    assert not rules & {"hmac-mismatch", "hmac-unchecked", "split-brain", "unexpected-master", "unknown-speaker",
                        "missing-group", "skew-order"}


def test_keepalived_configs_parse_back(tmp_path):
    """The keepalived.conf the harness generates reads back into the settings it came from."""
    from carpscope.config import inventory_from_configs
    specs = [Keepalived("a", 51, 200, ("10.64.0.51/24", "10.64.0.52/24"), version=2, auth_pass="kp51", advert_int=2),
             Keepalived("b", 51, 100, ("10.64.0.51/24", "10.64.0.52/24"), version=2, auth_pass="kp51", advert_int=2),
             Keepalived("c", 52, 150, ("10.64.0.60/24",), version=3, advert_int=0.5, preempt=False)]
    paths = []
    for s in specs:
        p = tmp_path / s.host / "keepalived.conf"
        p.parent.mkdir()
        p.write_text(s.config(iface="eth0", fifo="/run/ka.fifo"))
        paths.append(str(p))
    inv = inventory_from_configs(paths)
    for s in specs:
        ((g, m),) = inv.memberships(s.host)
        assert (g.protocol, g.id) == (f"vrrp{s.version}", s.vrid)
        assert g.priority_of(m) == s.priority and g.advert_int_of(m) == s.advert_int
        assert sorted(g.vips_of(m)) == sorted(v.split("/")[0] for v in s.vips)
        if s.auth_pass:
            assert g.passphrase_of(m).reveal() == s.auth_pass
        if not s.preempt:
            assert m.preempt is False          # nopreempt


# -- the OPNsense HA pair's config.xml (../shared/configs/external/opnsense), as real ucarp ------------

OPNSENSE = ROOT.parent / "shared" / "configs" / "external" / "opnsense"


def _opnsense_speakers(paths: list[Path]) -> list[dict]:
    """One ucarp per (node, VIP), translated from the configs: the node's own address on the VIP's
    interface, the vhid, advskew, advbase, passphrase and VIP the config.xml gives."""
    import ipaddress

    from carpscope.config import inventory_from_configs
    inv = inventory_from_configs([str(p) for p in paths])
    out = []
    for g in inv.groups:
        net = ipaddress.ip_network(inv.segment(g.segment).network)
        for m in g.members:
            (addr,) = [a for a in inv.host(m.host).addresses if ipaddress.ip_interface(a).ip in net]
            out.append({"host": m.host, "lab": f"n{len(out)}", "addr": addr, "vhid": g.id,
                        "pw": g.passphrase_of(m).reveal(), "vip": g.vips_of(m)[0],
                        "advskew": g.advskew_of(m), "advbase": g.advbase_of(m)})
    return out


def _run_opnsense_lab(tmp_path: Path, speakers: list[dict], stop_primary_of: int | None = None,
                      split_vhid: int | None = None) -> Path:
    pcap = tmp_path / "pair.pcap"
    with Lab([Host(s["lab"], s["addr"]) for s in speakers]) as lab:
        lab.start_capture(pcap)
        procs = {}
        first = [s for s in speakers if s["advskew"] == 0]
        for s in first:
            procs[s["lab"]] = lab.start(Ucarp(s["lab"], s["vhid"], s["pw"], s["vip"], advbase=s["advbase"],
                                              advskew=s["advskew"]))
        for s in first:
            lab.wait_state(s["lab"], f"carp:{s['vhid']}", "MASTER", 10)
        for s in speakers:
            if s["advskew"]:
                lab.start(Ucarp(s["lab"], s["vhid"], s["pw"], s["vip"], advbase=s["advbase"], advskew=s["advskew"]))
        if split_vhid is not None:          # the backup cannot verify the master: it takes over too
            (b,) = [s for s in speakers if s["vhid"] == split_vhid and s["advskew"]]
            lab.wait_state(b["lab"], f"carp:{split_vhid}", "MASTER", 12)
        time.sleep(3)
        if stop_primary_of is not None:
            (p,) = [s for s in first if s["vhid"] == stop_primary_of]
            (b,) = [s for s in speakers if s["vhid"] == stop_primary_of and s["advskew"]]
            since = lab.t()
            lab.stop(procs[p["lab"]])
            lab.wait_state(b["lab"], f"carp:{stop_primary_of}", "MASTER", 12, since=since)
            time.sleep(3)
        lab.stop_capture()
    return pcap


def test_live_opnsense_pair_from_config_xml(live, tmp_path):
    """ucarp runs the pair's VIPs; analyze --config of the two config.xml files verifies every
    advert (no passphrase file, no --vip, no bundled defaults) and names the firewalls. The LAN
    primary is stopped half way so that the secondary's adverts (its own key) are seen too."""
    if not OPNSENSE.is_dir():
        pytest.skip(f"{OPNSENSE} missing (../shared is not checked out here)")
    configs = [OPNSENSE / "Carp_example_master.xml", OPNSENSE / "Carp_example_backup.xml"]
    speakers = _opnsense_speakers(configs)
    assert sorted((s["vhid"], s["advskew"], s["vip"]) for s in speakers) == [
        (1, 0, "172.18.0.100"), (1, 100, "172.18.0.100"), (3, 0, "192.168.1.1"), (3, 100, "192.168.1.1")]
    pcap = _run_opnsense_lab(tmp_path, speakers, stop_primary_of=3)
    args = [a for c in configs for a in ("--config", str(c))]
    rep = analyze(pcap, *args, "--no-weak-check")
    seen = {(g["vhid"], s["ip"]): s for g in rep["groups"] for s in g["speakers"]}
    by_ip = {s["addr"].split("/")[0]: s for s in speakers}
    assert {k[1] for k in seen} == {"172.18.0.101", "192.168.1.10", "192.168.1.20"}
    for (vhid, ip), s in seen.items():
        assert s["auth"]["status"] == "ok" and not s["auth"].get("inferred_vips"), (vhid, ip, s["auth"])
        assert s["host"] == by_ip[ip]["host"]                  # host names in the report
        # a key from the configs (one passphrase for all four: the first label that holds it)
        assert s["auth"]["key"] in {f"{x['host']}:vhid{x['vhid']}" for x in speakers}
    assert seen[(3, "192.168.1.20")]["host"] == "OPNsense@Carp_example_backup"
    rules = {f["rule"]: f for f in rep["findings"]}
    assert not set(rules) & {"hmac-mismatch", "hmac-unchecked", "passphrase-mismatch", "vip-set-mismatch",
                             "split-brain", "unknown-speaker", "missing-group", "skew-order"}
    # the LAN primary was stopped: the secondary is master at the end, named in the finding
    um = rules["unexpected-master"]
    assert um["vhid"] == 3 and "OPNsense@Carp_example_backup" in um["message"]
    assert "OPNsense@Carp_example_master" in um["message"]
    # without --no-weak-check the how-to's passphrase is reported (never printed)
    weak = analyze(pcap, *args)
    assert "weak-passphrase" in {f["rule"] for f in weak["findings"]}
    assert "opnsense" not in json.dumps(weak["findings"]).replace(str(pcap), "").replace("OPNsense", "")


def test_live_opnsense_mutated_secondary_passphrase(live, tmp_path):
    """The secondary's LAN password changed in its config.xml (a copy): ucarp runs what each file
    says, the two LAN nodes reject each other and both become master; analyze --config of the
    two files says why (each side verifies under its own node's key)."""
    if not OPNSENSE.is_dir():
        pytest.skip(f"{OPNSENSE} missing (../shared is not checked out here)")
    master = OPNSENSE / "Carp_example_master.xml"
    backup = tmp_path / "Carp_example_backup.xml"
    text = (OPNSENSE / "Carp_example_backup.xml").read_text()
    lan = text.index("<interface>lan</interface>", text.index("<virtualip>"))
    backup.write_text(text[:lan] + text[lan:].replace("<password>opnsense</password>",
                                                      "<password>Mutated-Lan-Pw9</password>", 1))
    speakers = _opnsense_speakers([master, backup])
    assert {(s["vhid"], s["pw"]) for s in speakers} == {(1, "opnsense"), (3, "opnsense"), (3, "Mutated-Lan-Pw9")}
    pcap = _run_opnsense_lab(tmp_path, speakers, split_vhid=3)
    rep = analyze(pcap, "--config", str(master), "--config", str(backup), "--no-weak-check")
    lan_speakers = {s["ip"]: s for g in rep["groups"] if g["vhid"] == 3 for s in g["speakers"]}
    # each side verifies under its own file's key (the how-to's passphrase is shared by several labels)
    assert lan_speakers["192.168.1.10"]["auth"]["key"] in {"OPNsense@Carp_example_master:vhid1",
                                                           "OPNsense@Carp_example_master:vhid3",
                                                           "OPNsense@Carp_example_backup:vhid1"}
    assert lan_speakers["192.168.1.20"]["auth"]["key"] == "OPNsense@Carp_example_backup:vhid3"
    assert {s["host"] for s in lan_speakers.values()} == {"OPNsense@Carp_example_master",
                                                          "OPNsense@Carp_example_backup"}
    findings = [f for f in rep["findings"] if f["vhid"] == 3]
    (sb,) = [f for f in findings if f["rule"] == "split-brain"]
    assert sb["cause"] == "passphrase" and set(sb["evidence"]["speakers"]) == {"192.168.1.10", "192.168.1.20"}
    assert "passphrase-mismatch" in {f["rule"] for f in findings}
    # the WAN vhid is untouched: one master, verified
    assert not [f for f in rep["findings"] if f["vhid"] == 1 and f["severity"] == "error"]
    assert "Mutated-Lan-Pw9" not in json.dumps(rep) and "Mutated-Lan-Pw9" not in json.dumps(
        analyze(pcap, "--config", str(master), "--config", str(backup)))
