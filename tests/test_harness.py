"""Tests of the live harness itself (tests/harness) and of the bundled recordings it made.

Live tests need root, ip, ucarp, keepalived and tcpdump: they skip with the reason otherwise,
and fail instead under CI=true.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

try:
    from tests.harness import Host, Keepalived, Lab, LabError, Ucarp, lab_namespaces, require_root
    from tests.harness import netns as netns_mod
    from tests.harness.pcapread import read_adverts, ucarp_hmac_ok
    from tests.harness.scenarios import SCENARIOS
except ImportError:          # pytest's rootdir-less import mode puts tests/ itself on sys.path
    from harness import Host, Keepalived, Lab, LabError, Ucarp, lab_namespaces, require_root
    from harness import netns as netns_mod
    from harness.pcapread import read_adverts, ucarp_hmac_ok
    from harness.scenarios import SCENARIOS

from carpscope.rules import catalogue

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
SIDECARS = sorted(CAPTURES.glob("*.json"))


@pytest.fixture
def live():
    require_root()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _assert_gone(lab: Lab, pids: list[int]) -> None:
    assert not [n for n in lab_namespaces() if n.startswith(lab.prefix)], "namespaces left"
    assert not [p for p in pids if _alive(p)], "processes left"


# ---------------------------------------------------------------------------- no root needed


def test_require_root_skips_when_not_root(monkeypatch):
    monkeypatch.setattr(netns_mod.os, "geteuid", lambda: 1000)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs root"):
        require_root()


def test_require_root_fails_under_ci(monkeypatch):
    monkeypatch.setattr(netns_mod.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_root()


def test_require_root_reports_missing_tools(monkeypatch):
    monkeypatch.setattr(netns_mod, "tool", lambda name: None if name == "ucarp" else "/bin/true")
    monkeypatch.setattr(netns_mod.os, "geteuid", lambda: 0)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="missing ucarp"):
        require_root()


def test_each_lab_gets_its_own_prefix():
    a, b = Lab([Host("a", "10.9.0.2/24")]), Lab([Host("a", "10.9.0.2/24")])
    assert a.prefix != b.prefix and a.prefix.startswith(f"cst{os.getpid()}-")
    assert a.switch_netns != b.switch_netns and a.netns("a").startswith(a.prefix)
    assert a.macs["a"] == "02:00:0a:09:00:02"


def test_speaker_settings_are_checked():
    with pytest.raises(ValueError):
        Ucarp("a", 7, "x" * 20, "10.0.0.1")           # ucarp refuses 20 characters
    with pytest.raises(ValueError):
        Keepalived("a", 1, vips=("fe80::1/64",), version=2)
    conf = Keepalived("a", 51, 200, ("10.0.0.51/24",), auth_pass="pw", version=2).config(
        iface="eth0", fifo="/n.fifo")
    assert "virtual_router_id 51" in conf and "auth_pass pw" in conf and "10.0.0.51/24 dev eth0" in conf
    assert "pw" not in json.dumps(Keepalived("a", 51, auth_pass="pw", label="k").describe(
        src_ip="10.0.0.2", host_mac="02:00:00:00:00:02"))


def test_keepalived_changes_are_read_from_its_fifo_in_order(tmp_path):
    """keepalived's notify FIFO gives its changes in the order it made them (its notify scripts
    race: an owner that hears another owner goes MASTER then BACKUP within a millisecond, and
    the scripts' lines once landed the other way round, leaving 'MASTER' as its last state)."""
    events = tmp_path / "events.log"
    events.touch()
    fifos = netns_mod._NotifyFifos(events)
    fifos.add(tmp_path / "rb.fifo", "rb", 25)
    fifos.add(tmp_path / "ra.fifo", "ra", 7)
    fd = os.open(tmp_path / "rb.fifo", os.O_WRONLY | os.O_NONBLOCK)   # as keepalived: never blocks
    try:
        os.write(fd, b'INSTANCE "VI_25" MASTER 255\nINSTANCE "VI_25" BACKUP 254\nINSTANCE "VI_25" MAS')
        os.write(fd, b'TER 254\nGROUP "G1" MASTER 0\n')
    finally:
        os.close(fd)                      # written just before the writer exits: still read
    fd = os.open(tmp_path / "ra.fifo", os.O_WRONLY | os.O_NONBLOCK)
    os.write(fd, b'INSTANCE "VI_7" STOP 100\n')
    os.close(fd)
    fifos.close()
    lab = Lab([Host("x", ipv4="10.9.0.2/24")], workdir=tmp_path)
    got = [(e["host"], e["id"], e["state"], e["priority"]) for e in lab.events()]
    assert [e for e in got if e[0] == "rb"] == [
        ("rb", "vrrp:25", "MASTER", "255"), ("rb", "vrrp:25", "BACKUP", "254"),
        ("rb", "vrrp:25", "MASTER", "254")]          # the GROUP line is no instance's change
    assert [e for e in got if e[0] == "ra"] == [("ra", "vrrp:7", "STOP", "100")]
    assert lab.state("rb", "vrrp:25") == "MASTER" and lab.state("ra", "vrrp:7") == "STOP"
    assert all(abs(e["epoch"] - time.time()) < 60 for e in lab.events())


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_expectations_are_consistent(name):
    exp = SCENARIOS[name].expect
    assert set(exp) >= {"masters", "split_brain", "findings_present", "findings_absent"}
    assert all(re.fullmatch(r"(carp|vrrp):\d+", k) for k in exp["masters"])
    assert exp["split_brain"] == any(len(v) > 1 for v in exp["masters"].values())
    slugs = exp["findings_present"] + exp["findings_absent"]
    assert not set(exp["findings_present"]) & set(exp["findings_absent"])
    assert set(slugs) <= set(catalogue()), set(slugs) - set(catalogue())


@pytest.mark.skipif(not SIDECARS, reason="no bundled captures")
@pytest.mark.parametrize("sidecar", SIDECARS, ids=lambda p: p.stem)
def test_bundled_capture_matches_its_sidecar(sidecar):
    side = json.loads(sidecar.read_text())
    pcap = CAPTURES / side["pcap"]
    assert side["origin"].startswith("harness:") and side["scenario"] == sidecar.stem
    assert pcap.stat().st_size == side["capture"]["bytes"] < 100_000
    adverts = read_adverts(pcap)
    counts: dict = {}
    for a in adverts:
        counts[(a.ident, a.src)] = counts.get((a.ident, a.src), 0) + 1
    for ident, g in side["observed"]["groups"].items():
        for src, sp in g["speakers"].items():
            assert counts.get((ident, src)) == sp["adverts"], (ident, src)
    keys = {}
    if side["keys_file"]:
        for line in (CAPTURES / side["keys_file"]).read_text().splitlines():
            label, _, pw = line.partition(":")
            keys[label] = pw
    text = sidecar.read_text()
    assert not [pw for pw in keys.values() if pw in text], "a passphrase leaked into the sidecar"
    labels = {i["passphrase_label"] for i in side["instances"] if "passphrase_label" in i}
    assert labels == set(keys)
    for inst in side["instances"]:
        if inst["impl"] == "ucarp":
            own = [a for a in adverts if a.src == inst["src_ip"] and a.ident == f"carp:{inst['vhid']}"]
            assert all(ucarp_hmac_ok(a, keys[inst["passphrase_label"]], inst["vips"][0]) for a in own)


# ---------------------------------------------------------------------------- live


@pytest.mark.live
def test_lab_builds_and_tears_down(live):
    lab = Lab([Host("a", "10.77.0.2/24"), Host("b", "10.77.0.3/24")])
    with lab:
        names = set(lab_namespaces())
        assert {lab.switch_netns, lab.netns("a"), lab.netns("b")} <= names
        links = lab.exec_in_switch(["ip", "-o", "link", "show", "master", lab.bridge]).stdout
        assert "p-a@" in links and "p-b@" in links
        addr = lab.run_in("a", ["ip", "-o", "addr", "show", "dev", "eth0"]).stdout
        assert "10.77.0.2/24" in addr and "inet6" not in addr
        pids = [lab.spawn_in("a", ["sleep", "60"], "sleeper").pid,
                lab.spawn_in_switch(["sleep", "60"], "sleeper").pid]
        workdir = lab.workdir
    _assert_gone(lab, pids)
    assert not workdir.exists()


@pytest.mark.live
def test_teardown_on_exception(live):
    lab = Lab([Host("a", "10.77.1.2/24")])
    with pytest.raises(KeyboardInterrupt):
        with lab:
            pid = lab.start_ucarp(Ucarp("a", 9, "interrupt", "10.77.1.1")).pid
            raise KeyboardInterrupt
    _assert_gone(lab, [pid])


@pytest.mark.live
def test_ucarp_pair_capture_has_carp_frames(live, tmp_path):
    pcap = tmp_path / "pair.pcap"
    lab = Lab([Host("a", "10.77.2.2/24"), Host("b", "10.77.2.3/24")])
    with lab:
        lab.start_capture(pcap)
        spec = Ucarp("a", 23, "pair-pass", "10.77.2.1")
        pids = [lab.start(spec).pid, lab.start(Ucarp("b", 23, "pair-pass", "10.77.2.1", advskew=100)).pid]
        lab.wait_state("a", "carp:23", "MASTER", 9)
        # a sniffer inside the switch namespace sees the adverts too
        seen = lab.exec_in_switch(["tcpdump", "-i", lab.bridge, "-n", "-c", "1", "ip proto 112"], timeout=5)
        assert "10.77.2.2 > 224.0.0.18" in seen.stdout
        time.sleep(1)
        lab.stop_capture()
        state_b = lab.state("b", "carp:23")
    _assert_gone(lab, pids)
    assert state_b == "BACKUP"
    adverts = read_adverts(pcap)
    assert len(adverts) >= 2
    assert {a.src for a in adverts} == {"10.77.2.2"}
    for a in adverts:
        assert (a.kind, a.vhid, a.ttl, a.src_mac, a.dst) == ("carp", 23, 255, "00:00:5e:00:00:17", "224.0.0.18")
        assert a.checksum_ok and ucarp_hmac_ok(a, "pair-pass", "10.77.2.1")
    listed = subprocess.run(["tcpdump", "-n", "-r", str(pcap), "ip proto 112"], capture_output=True,
                            text=True, timeout=10).stdout.splitlines()
    assert len(listed) == len(adverts)


@pytest.mark.live
def test_ttl_rewrite_and_mid_run_stop(live, tmp_path):
    pcap = tmp_path / "ttl.pcap"
    with Lab([Host("a", "10.77.3.2/24")]) as lab:
        lab.set_ttl("a", 254)
        lab.start_capture(pcap)
        proc = lab.start(Ucarp("a", 3, "ttl-pass", "10.77.3.1"))
        lab.wait_state("a", "carp:3", "MASTER", 9)
        time.sleep(0.5)
        lab.stop(proc)
        assert not proc.alive()
        lab.stop_capture()
        actions = [a["action"] for a in lab.timeline]
    assert actions == ["ttl", "capture_start", "start", "stop", "capture_stop"]
    adverts = read_adverts(pcap)
    assert adverts and {a.ttl for a in adverts} == {254} and all(a.checksum_ok for a in adverts)


@pytest.mark.live
def test_keepalived_pair_and_child_cleanup(live, tmp_path):
    pcap = tmp_path / "vrrp.pcap"
    lab = Lab([Host("a", "10.77.4.2/24"), Host("b", "10.77.4.3/24")])
    with lab:
        lab.start_capture(pcap)
        procs = [lab.start(Keepalived("a", 77, 100, ("10.77.4.1/24",), version=3)),
                 lab.start(Keepalived("b", 77, 200, ("10.77.4.1/24",), version=3))]
        lab.wait_state("b", "vrrp:77", "MASTER", 9)
        time.sleep(1.2)
        lab.stop_capture()
        children = [lab._child_pid(p) for p in procs]
        assert all(children)
    _assert_gone(lab, [p.pid for p in procs] + children)
    adverts = read_adverts(pcap)
    assert adverts and {(a.kind, a.vhid, a.src, a.priority, a.ttl) for a in adverts} == {
        ("vrrp3", 77, "10.77.4.3", 200, 255)}


@pytest.mark.live
def test_record_script_writes_a_checked_recording(live, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(CAPTURES.parent))
    res = subprocess.run([sys.executable, "-m", "tests.harness.record", "keepalived-vrrp3", "--out",
                          str(tmp_path), "--attempts", "1"], capture_output=True, text=True,
                         timeout=38, cwd=CAPTURES.parent, env=env)
    assert res.returncode == 0, res.stderr
    side = json.loads((tmp_path / "keepalived-vrrp3.json").read_text())
    assert side["observed"]["groups"]["vrrp:1"]["final_advertisers"] == ["192.168.1.4"]
    assert (tmp_path / "keepalived-vrrp3.pcap").exists()


def test_lab_refuses_a_wrong_prefix():
    with pytest.raises(ValueError):
        Lab([Host("a", "10.9.0.2/24")], prefix="other-")
    with pytest.raises(ValueError):
        Host("hostname-too-long", "10.9.0.2/24")
    with pytest.raises(KeyError):
        Lab([Host("a", "10.9.0.2/24")]).netns("nope")
    assert issubclass(LabError, RuntimeError)
