"""pfSense / OPNsense config.xml: the real OPNsense HA pair (../shared/configs/external/opnsense,
used as it is), a pfSense pair written for the tests, and hostile files (encrypted backups,
entity bombs, broken or incomplete XML)."""
from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

from carpscope import synth
from carpscope.config import ConfigError, inventory_from_configs, inventory_to_toml, parse_inventory
from carpscope.config.lint import lint
from carpscope.config.configxml import effective_password, host_from_configxml
from conftest import REPO, SHARED, run_cli, stderr_messages

OPN = SHARED / "configs" / "external" / "opnsense"
MASTER, BACKUP = OPN / "Carp_example_master.xml", OPN / "Carp_example_backup.xml"
PF = REPO / "tests" / "fixtures" / "configs" / "pfsense"
SECRETS = ["Pf Sense's k3y", "PfSense\\'sk3y", "v6-wan-k3y-0a", "lan30-k3y-0a", "xmlrpc-sync-pw-77"]


@pytest.fixture(scope="module")
def pair() -> tuple[Path, Path]:
    if not MASTER.is_file() or not BACKUP.is_file():
        pytest.skip(f"the OPNsense pair is not available ({OPN} missing: ../shared is not checked out here)")
    return MASTER, BACKUP


def copy_pair(pair, tmp_path: Path) -> tuple[Path, Path]:
    out = []
    for p in pair:
        q = tmp_path / p.name
        shutil.copy(p, q)
        q.chmod(0o644)
        out.append(q)
    return out[0], out[1]


def line_of(path: Path, needle: str, after: int = 0) -> int:
    """1-based line of the first occurrence of ``needle`` at or after line ``after``."""
    for no, text in enumerate(path.read_text().splitlines(), 1):
        if no >= after and needle in text:
            return no
    raise AssertionError(f"{needle!r} not in {path}")


def edit(path: Path, old: str, new: str, after_line: int = 0) -> int:
    """Replace the first ``old`` at or after a line; returns the line it was on."""
    lines = path.read_text().splitlines(keepends=True)
    for i, text in enumerate(lines):
        if i + 1 >= after_line and old in text:
            lines[i] = text.replace(old, new, 1)
            path.write_text("".join(lines))
            return i + 1
    raise AssertionError(f"{old!r} not in {path}")


def write_pcap(path: Path, frames) -> None:
    with open(path, "wb") as fh:
        w = synth.PcapWriter(fh)
        for ts, data in frames:
            w.write(ts, data)


def only(r, slug):
    return [f for f in r.findings if f.rule == slug]


def no_secret(r, *secrets: str) -> None:
    text = json.dumps([[f.message, f.evidence] for f in r.findings]) + "\n".join(
        n for n in r.notes) + "\n".join(e.message for e in r.errors)
    text += inventory_to_toml(r.inventory) + repr(r.inventory)
    # file paths and the host kind name the product, which is also the how-to's passphrase
    text = re.sub(r"kind='\w+'", "", re.sub(r"/[^\s\"',)]*\.xml", "<path>", text))
    for s in secrets:
        assert s not in text, s


# -- the real OPNsense pair ----------------------------------------------------------------------

def test_opnsense_pair_is_read_as_opnsense_applies_it(pair):
    m = host_from_configxml(str(MASTER), "x")
    assert (m.host.name, m.host.fqdn, m.host.kind, m.host.preempt) == ("OPNsense", "OPNsense.localdomain",
                                                                        "opnsense", True)
    assert m.host.addresses == ("172.18.0.101/24", "192.168.1.10/24", "10.0.0.1/24")
    assert not m.problems
    got = {(d.id, d.link.interface, d.link.network, d.member.vips, d.member.advskew, d.member.advbase)
           for d in m.declared}
    assert got == {(1, "em1", "172.18.0.0/24", ("172.18.0.100",), 0, 1),
                   (3, "em0", "192.168.1.0/24", ("192.168.1.1",), 0, 1)}
    for d in m.declared:
        assert d.member.passphrase.reveal() == "opnsense" and d.member.implementation == "freebsd"
        w = d.member.where
        assert w["member"].line == line_of(MASTER, "<vip>", w["member"].line)
        assert w["passphrase"].line == line_of(MASTER, "<password>opnsense", w["member"].line)
        assert w["vips"].line == line_of(MASTER, "<subnet>", w["member"].line)
        assert w["advskew"].line == line_of(MASTER, "<advskew>", w["member"].line)
    assert [(a, what) for a, _, what in m.ha_peers] == [("10.0.0.2", "pfsync peer"),
                                                        ("10.0.0.2", "configuration sync target")]
    b = host_from_configxml(str(BACKUP), "x")
    assert {d.member.advskew for d in b.declared} == {100}
    assert [a for a, _, _ in b.ha_peers] == ["10.0.0.1"]


def test_opnsense_pair_lints_clean_but_for_the_default_passphrase(pair):
    r = lint([str(MASTER), str(BACKUP)])
    assert not r.errors
    assert {f.rule for f in r.findings} == {"config-weak-passphrase"}
    f = r.findings
    assert {(Path(x.source).name, x.line, x.vhid) for x in f} == {
        ("Carp_example_master.xml", 672, 1), ("Carp_example_master.xml", 684, 3),
        ("Carp_example_backup.xml", 673, 1), ("Carp_example_backup.xml", 685, 3)}
    assert all("bundled list entry 7" in x.message and "opnsense" not in x.message.lower().replace(
        "opnsense@carp", "") for x in f)
    # both files name their host OPNsense: each is told apart by its file, whatever the order
    hosts = sorted(h.name for h in r.inventory.hosts)
    assert hosts == ["OPNsense@Carp_example_backup", "OPNsense@Carp_example_master"]
    assert [g.intended_primary() for g in r.inventory.groups] == ["OPNsense@Carp_example_master"] * 2
    assert sorted(h.name for h in lint([str(BACKUP), str(MASTER)]).inventory.hosts) == hosts
    no_secret(r, "opnsense")


@pytest.mark.parametrize("mutation", ["password", "vip", "vhid", "advskew"])
def test_opnsense_pair_mutated_secondary_is_caught_at_the_line(pair, tmp_path, mutation):
    master, backup = copy_pair(pair, tmp_path)
    lan = line_of(backup, "<interface>lan</interface>", line_of(backup, "<virtualip>"))
    if mutation == "password":
        line = edit(backup, "<password>opnsense</password>", "<password>0ther-Secret-9</password>", lan)
        rule = "config-pass-mismatch"
    elif mutation == "vip":
        line = edit(backup, "<subnet>192.168.1.1</subnet>", "<subnet>192.168.1.2</subnet>", lan)
        rule = "config-vip-mismatch"
    elif mutation == "vhid":
        line = edit(backup, "<vhid>3</vhid>", "<vhid>4</vhid>", lan)
        rule = "config-vip-conflict"
    else:
        line = edit(backup, "<advskew>100</advskew>", "<advskew>0</advskew>", lan)
        rule = "config-skew-order"
    r = lint([str(master), str(backup)])
    found = only(r, rule)
    assert [(x.source, x.line) for x in found] == [(str(backup), line)], [f.to_json() for f in r.findings]
    assert {f.rule for f in r.findings} == {rule, "config-weak-passphrase"}
    if mutation == "vhid":
        assert "192.168.1.1" in found[0].message and "vhid 4" in found[0].message and "vhid 3" in found[0].message
    no_secret(r, "opnsense", "0ther-Secret-9")


def test_opnsense_inventory_round_trip(pair, tmp_path):
    inv = inventory_from_configs([str(MASTER), str(BACKUP)])
    text = inventory_to_toml(inv)
    assert "opnsense\"" not in text and 'passphrase_label = "OPNsense@Carp_example_master:vhid1"' in text
    back = parse_inventory(text, str(tmp_path / "site.toml"))
    assert [(g.protocol, g.id, g.segment) for g in back.groups] == [("carp", 1, "172.18.0.0/24"),
                                                                   ("carp", 3, "192.168.1.0/24")]
    assert back.host("OPNsense@Carp_example_master").preempt is True


# -- a pfSense pair (written for the tests) ------------------------------------------------------

def test_pfsense_pair():
    a = host_from_configxml(str(PF / "fw-a.xml"), "x")
    assert (a.host.name, a.host.fqdn, a.host.kind) == ("fw-a", "fw-a.example.net", "pfsense")
    by = {d.id: d for d in a.declared}
    assert sorted(by) == [10, 11, 30]
    # the IP alias on _vip<uniqid> is part of vhid 10; the Proxy ARP VIP is not CARP
    assert by[10].member.vips == ("203.0.113.1", "203.0.113.3")
    assert by[11].member.vips == ("2001:db8:100::1",) and by[11].link.network == "203.0.113.0/29"
    assert (by[30].link.interface, by[30].link.parent, by[30].link.vlan) == ("igb1.30", "igb1", 30)
    assert by[10].link.networks == ("203.0.113.0/29", "2001:db8:100::/64")
    # pfSense removes the space and escapes the quote before ifconfig sees the password
    assert by[10].member.passphrase.reveal() == "PfSense\\'sk3y"
    assert any("removes spaces" in n and ":55:" in n for n in a.notes)
    r = lint([str(PF / "fw-a.xml"), str(PF / "fw-b.xml")])
    assert r.findings == [] and r.errors == []
    no_secret(r, *SECRETS)


def test_effective_password_is_php_addslashes_without_spaces():
    assert effective_password("a b'c\"d\\e") == "ab\\'c\\\"d\\\\e"
    assert effective_password("plain") == "plain"


# -- the forms of stacked IP aliases, unicast, maintenance mode, disabled interfaces --------------

CONF = """<?xml version="1.0"?>
<{root}>
  <system><hostname>{host}</hostname><domain>lab</domain></system>
  <interfaces>
    <lan><enable>1</enable><if>vtnet1</if><ipaddr>{addr}</ipaddr><subnet>24</subnet></lan>
    <opt2><if>vtnet2</if><ipaddr>10.2.0.{last}</ipaddr><subnet>24</subnet></opt2>
  </interfaces>
  <virtualip>
{vips}
  </virtualip>
{extra}
</{root}>
"""


def conf(tmp_path: Path, name: str, vips: str, *, root="opnsense", host="h1", addr="10.1.0.2",
         extra="") -> Path:
    p = tmp_path / name
    p.write_text(CONF.format(root=root, host=host, addr=addr, last=addr.rsplit(".", 1)[1], vips=vips,
                             extra=extra))
    return p


CARP = ("<vip><mode>carp</mode><interface>{iface}</interface><vhid>{vhid}</vhid><advskew>{skew}</advskew>"
        "<advbase>1</advbase><password>pw-{vhid}-x9</password><subnet_bits>24</subnet_bits>"
        "<subnet>{vip}</subnet>{more}</vip>")


def carp(vip="10.1.0.1", vhid=5, skew=0, iface="lan", more=""):
    return CARP.format(iface=iface, vhid=vhid, skew=skew, vip=vip, more=more)


def test_stacked_aliases_all_three_forms(tmp_path):
    vips = "\n".join([
        carp(more="<uniqid>abc123</uniqid>"),
        "<vip><mode>ipalias</mode><interface>_vipabc123</interface><subnet>10.1.0.11</subnet><subnet_bits>24</subnet_bits></vip>",
        "<vip><mode>ipalias</mode><interface>lan_vip5</interface><subnet>10.1.0.12</subnet><subnet_bits>24</subnet_bits></vip>",
        "<vip><mode>ipalias</mode><interface>lan</interface><vhid>5</vhid><subnet>10.1.0.13</subnet><subnet_bits>24</subnet_bits></vip>",
        '<vip uuid="0b8f2c5e-1111-4222-8333-944455566677"><mode>carp</mode><interface>lan</interface><vhid>6</vhid>'
        "<advskew>0</advskew><password>pw-6-x9</password><subnet_bits>24</subnet_bits><subnet>10.1.0.20</subnet></vip>",
        "<vip><mode>ipalias</mode><interface>_vip0b8f2c5e-1111-4222-8333-944455566677</interface>"
        "<subnet>10.1.0.21</subnet><subnet_bits>24</subnet_bits></vip>",
        "<vip><mode>ipalias</mode><interface>lan</interface><subnet>192.168.77.1</subnet><subnet_bits>24</subnet_bits></vip>",
    ])
    hc = host_from_configxml(str(conf(tmp_path, "h1.xml", vips)), "x")
    assert not hc.problems
    by = {d.id: d.member for d in hc.declared}
    assert by[5].vips == ("10.1.0.1", "10.1.0.11", "10.1.0.12", "10.1.0.13")
    assert by[6].vips == ("10.1.0.20", "10.1.0.21")
    # a plain IP alias is an address of the node and a subnet of its interface
    assert "192.168.77.1/24" in hc.host.addresses
    assert hc.declared[0].link.networks == ("10.1.0.0/24", "192.168.77.0/24")


def test_unicast_peer_maintenance_mode_and_disabled_interface(tmp_path):
    vips = "\n".join([carp(more="<peer>10.1.0.3</peer><peer6></peer6>"),
                      carp(vip="10.2.0.1", vhid=7, iface="opt2"),
                      carp(vip="10.1.0.30", vhid=8, more="<peer>224.0.0.18</peer>")])
    hc = host_from_configxml(str(conf(tmp_path, "h1.xml", vips, root="pfsense",
                                      extra="<virtualip_carp_maintenancemode></virtualip_carp_maintenancemode>")), "x")
    by = {d.id: d.member for d in hc.declared}
    assert sorted(by) == [5, 8]                       # opt2 has no <enable>: vhid 7 is not configured
    assert by[5].peers == ("10.1.0.3",) and by[8].peers == ()
    assert by[5].advskew == 254                       # pfSense maintenance mode
    assert any("not configured" in n and "opt2" in n for n in hc.notes)
    assert any("maintenance mode" in n for n in hc.notes)
    # OPNsense: <hasync><disablepreempt> turns preemption off (rc.syshook.d/start/90-carp)
    p1 = conf(tmp_path, "p1.xml", carp(), extra="<hasync><disablepreempt>1</disablepreempt></hasync>")
    p2 = conf(tmp_path, "p2.xml", carp(skew=100), host="h2", addr="10.1.0.3")
    r = lint([str(p1), str(p2)])
    assert r.inventory.host("h1").preempt is False
    f = only(r, "config-preempt")
    assert [(x.source, x.line) for x in f] == [(str(p1), line_of(p1, "<hasync>"))]
    assert "clear 'Disable preempt' on h1" in f[0].message


@pytest.mark.parametrize("vips, message, needle", [
    (carp().replace("<vhid>5</vhid>", ""), "has no <vhid>", "<vip>"),
    (carp().replace("<vhid>5</vhid>", "<vhid>300</vhid>"), "<vhid> must be a number 1-255", "<vhid>300"),
    (carp().replace("<advskew>0</advskew>", "<advskew>abc</advskew>"), "<advskew> must be", "<advskew>abc"),
    (carp(iface="opt9"), "interface 'opt9' is not in <interfaces>", "<interface>opt9"),
    (carp().replace("<subnet>10.1.0.1</subnet>", "<subnet>dhcp</subnet>"), "<subnet> is not an IP address",
     "<subnet>dhcp"),
    (carp() + "<vip><mode>ipalias</mode><interface>_vipnope</interface><subnet>10.1.0.9</subnet></vip>",
     "stacked on '_vipnope', which is not a CARP VIP", "_vipnope"),
])
def test_missing_or_bad_elements_are_errors_at_their_line(tmp_path, vips, message, needle):
    p = conf(tmp_path, "h1.xml", vips)
    r = lint([str(p)])
    f = only(r, "config-parse-error")
    assert len(f) == 1 and message in f[0].message, [x.message for x in f]
    assert (f[0].source, f[0].line) == (str(p), line_of(p, needle))
    assert r.inventory.host("h1") is not None              # the rest of the file is still read


def test_no_carp_vip_is_a_note(tmp_path):
    r = lint([str(conf(tmp_path, "h1.xml", ""))])
    assert r.findings == [] and any("no CARP virtual IP" in n for n in r.notes)


# -- hostile files --------------------------------------------------------------------------------

PF_ENCRYPTED = "---- BEGIN config.xml ----\n" + "U2FsdGVkX1" + "A" * 54 + "\n" + "B" * 40 + "\n---- END config.xml ----\n"
OPN_ENCRYPTED = ("---- BEGIN config.xml ----\nVersion: OPNsense 24.7.4\nCipher: AES-256-CBC\nPBKDF2: 100000\n"
                 "Hash: SHA512\n\nU2FsdGVkX1" + "C" * 60 + "\n---- END config.xml ----\n")
BOMB = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
        + "".join(f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n' for i in range(1, 10))
        + ']>\n<opnsense><system><hostname>&lol9;</hostname></system></opnsense>\n')
EXTERNAL = ('<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n'
            "<pfsense><system><hostname>&e;</hostname></system></pfsense>\n")


@pytest.mark.parametrize("name, text, message, line", [
    ("fw-backup.xml", PF_ENCRYPTED, "encrypted pfSense/OPNsense configuration backup", 1),
    ("config-opn.xml", OPN_ENCRYPTED, "encrypted OPNsense configuration backup (AES-256-CBC)", 1),
    ("bomb.xml", BOMB, "document type declaration", 2),
    ("ext.xml", EXTERNAL, "document type declaration", 2),
    ("cut.xml", '<?xml version="1.0"?>\n<pfsense>\n <virtualip>\n  <vip>\n', "not well-formed XML", 5),
    ("other.xml", '<?xml version="1.0"?>\n<config><a/></config>\n', "root element is <config>", 2),
    ("deep.xml", "<opnsense>" + "<a>" * 100 + "</a>" * 100 + "</opnsense>", "nested deeper than", 1),
    ("empty.xml", "", "not well-formed XML", 1),
])
def test_hostile_files_give_one_clear_error(tmp_path, name, text, message, line):
    p = tmp_path / name
    p.write_text(text)
    t0 = time.monotonic()
    r = lint([str(p)])
    assert time.monotonic() - t0 < 5
    f = only(r, "config-parse-error")
    assert len(f) == 1 and message in f[0].message, f[0].message if f else r.findings
    assert (f[0].source, f[0].line) == (str(p), line)
    assert "lol" not in f[0].message and "root:" not in f[0].message
    with pytest.raises(ConfigError):
        inventory_from_configs([str(p)])


def test_encrypted_backup_without_xml_name_is_recognised(tmp_path):
    p = tmp_path / "fw1-backup.bin"
    p.write_text(OPN_ENCRYPTED)
    f = only(lint([str(p)]), "config-parse-error")
    assert len(f) == 1 and "encrypted OPNsense" in f[0].message


def test_too_large_file_is_refused_without_reading_it_all(tmp_path):
    p = tmp_path / "huge.xml"
    with open(p, "wb") as fh:
        fh.write(b"<opnsense>")
        fh.seek((32 << 20) + 10)
        fh.write(b"</opnsense>")
    f = only(lint([str(p)]), "config-parse-error")
    assert len(f) == 1 and "larger than 32 MiB" in f[0].message


@pytest.mark.parametrize("command", ["lint", "inventory", "analyze"])
def test_cli_encrypted_backup_is_one_line_exit_2(tmp_path, command):
    p = tmp_path / "config.xml"
    p.write_text(OPN_ENCRYPTED)
    if command == "analyze":
        cap = tmp_path / "a.pcap"
        write_pcap(cap, [(1.0, synth.carp_frame("10.1.0.2", 5, passphrase="x", vips=["10.1.0.1"]))])
        rc, out, err = run_cli("analyze", cap, "--config", p, "--format", "json")
    else:
        rc, out, err = run_cli(command, p)
    if command == "lint":
        assert rc == 1 and "encrypted OPNsense configuration backup" in out
        return
    msgs = stderr_messages(err)
    assert rc == 2 and len(msgs) == 1 and "encrypted OPNsense configuration backup" in msgs[0], err
    assert "Traceback" not in err


# -- analyze --config: keys, VIP sets and host names from the two config.xml --------------------------

def test_analyze_with_the_pair_configs_verifies_and_names_hosts(pair, tmp_path):
    """Adverts signed as the pair's kernels would sign them (the live test runs real ucarp)."""
    cap = tmp_path / "pair.pcap"
    t = 1_700_000_000.0
    frames = [(t + 0.5, synth.carp_frame("192.168.1.20", 3, advskew=100, counter=99, passphrase="opnsense",
                                         vips=["192.168.1.1"]))]
    for i in range(4):
        frames.append((t + i, synth.carp_frame("172.18.0.101", 1, counter=i + 1, passphrase="opnsense",
                                               vips=["172.18.0.100"])))
        frames.append((t + i + 0.1, synth.carp_frame("192.168.1.10", 3, counter=i + 9, passphrase="opnsense",
                                                     vips=["192.168.1.1"])))
    write_pcap(cap, sorted(frames))
    rc, out, err = run_cli("analyze", cap, "--config", MASTER, "--config", BACKUP, "--format", "json",
                           "--no-weak-check")
    assert rc in (0, 1), err
    rep = json.loads(out)
    speakers = {s["ip"]: s for g in rep["groups"] for s in g["speakers"]}
    assert {ip: s["auth"]["status"] for ip, s in speakers.items()} == {
        "172.18.0.101": "ok", "192.168.1.10": "ok", "192.168.1.20": "ok"}
    assert {ip: s["host"] for ip, s in speakers.items()} == {
        "172.18.0.101": "OPNsense@Carp_example_master", "192.168.1.10": "OPNsense@Carp_example_master",
        "192.168.1.20": "OPNsense@Carp_example_backup"}
    # the well-known passphrase is recognised by analyze too, as the key the configs gave
    weak = [f for f in rep["findings"] if f["rule"] == "weak-passphrase"]
    assert weak and "opnsense" not in out.replace("OPNsense", "")
    rc, text, _ = run_cli("analyze", cap, "--config", MASTER, "--config", BACKUP, "--color", "never")
    assert "172.18.0.101 (OPNsense@Carp_exa" in text      # the table may cut the name short


# -- hostile input in bulk: only ConfigError, never anything else -------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

TAGS = ["vip", "mode", "interface", "vhid", "advskew", "advbase", "password", "subnet", "subnet_bits",
        "uniqid", "peer", "interfaces", "lan", "wan", "if", "ipaddr", "enable", "virtualip", "hasync",
        "pfsyncpeerip", "system", "hostname", "vlans", "vlan", "tag", "vlanif", "sysctl", "item"]
WORDS = ["carp", "ipalias", "lan", "wan", "_vipabc", "lan_vip5", "5", "300", "-1", "10.1.0.1", "::1",
         "fe80::1%em0", "24", "129", "em0", "em0.30", "", " ", "&amp;", "<![CDATA[x y'z]]>", "1", "0"]


@st.composite
def xml_tree(draw, depth=0):
    tag = draw(st.sampled_from(TAGS))
    if depth > 3 or draw(st.booleans()):
        return f"<{tag}>{draw(st.sampled_from(WORDS))}</{tag}>"
    kids = draw(st.lists(xml_tree(depth=depth + 1), max_size=4))
    return f"<{tag}>{''.join(kids)}</{tag}>"


PROP = settings(max_examples=int(__import__("os").environ.get("CARPSCOPE_PROPERTY_EXAMPLES", "150")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROP
@given(root=st.sampled_from(["opnsense", "pfsense"]), body=st.lists(xml_tree(), max_size=6),
       tail=st.binary(max_size=40))
def test_generated_config_xml_gives_config_errors_only(tmp_path, root, body, tail):
    p = tmp_path / "gen.xml"
    p.write_bytes(f"<{root}>{''.join(body)}</{root}>".encode() + tail)
    try:
        hc = host_from_configxml(str(p), "gen")
    except ConfigError as exc:
        assert "\n" not in exc.message
        return
    assert all(isinstance(x, ConfigError) for x in hc.problems)
    lint([str(p)])                      # merge and every check on whatever was read


def test_ha_peer_notes(pair):
    """The <hasync> peer of each firewall is checked against the hosts given with it."""
    both = lint([str(PF / "fw-a.xml"), str(PF / "fw-b.xml")])
    assert not [n for n in both.notes if "pfsync peer" in n or "sync target" in n]
    alone = lint([str(PF / "fw-a.xml")])
    assert not [n for n in alone.notes if "pfsync peer" in n]          # its peer is simply not given
    mixed = lint([str(PF / "fw-a.xml"), str(MASTER)])
    notes = [n for n in mixed.notes if "is not an address of any host given" in n]
    assert any("fw-a's pfsync peer 172.16.0.2" in n and "fw-a.xml:" in n for n in notes)
    assert any("OPNsense's pfsync peer 10.0.0.2" in n for n in notes)
