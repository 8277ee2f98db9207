"""The inventory model and its TOML form: load, write, round trip, secrets, errors with lines."""
from __future__ import annotations

import os
import shutil
import tomllib
from pathlib import Path

import pytest

from carpscope.config import (
    ConfigError, Secret, bsd_key, inventory_from_configs, inventory_to_toml, load_inventory,
)

FIX = Path(__file__).parent / "fixtures" / "configs"
SITE = FIX / "inventory" / "site.toml"


def test_load_site_inventory():
    inv = load_inventory(SITE)
    assert [s.name for s in inv.segments] == ["lan"]
    lan = inv.segment("lan")
    assert (lan.interface, lan.network) == ("em0", "192.168.1.0/24")
    a, b = inv.group("web-a"), inv.group("web-b")
    assert (a.protocol, a.id, a.segment, a.vips, a.primary) == ("carp", 1, "lan", ("192.168.1.50",), "hosta")
    assert a.passphrase.label == "web" and a.passphrase.kind == "file"
    assert a.passphrase.reveal() == "testpass"            # first line, newline stripped
    assert b.passphrase.kind == "env" and b.intended_primary() == "hostb"   # derived: lowest advskew
    assert [m.host for m in a.members] == ["hosta", "hostc"]
    assert a.member("hostc").advskew == 100
    assert inv.host("hosta").preempt is True
    # line numbers of values
    assert a.where["vips"].line == 14 and a.member("hostc").where["advskew"].line == 51
    assert inv.group("web-b").member("hostc").where["advskew"].line == 55
    assert inv.host("hostb").where["host"].line == 38


def test_round_trip_gives_the_same_model(tmp_path):
    inv = load_inventory(SITE)
    text = inventory_to_toml(inv)
    (tmp_path / "secrets").mkdir()
    shutil.copy(FIX / "inventory" / "secrets" / "web.pass", tmp_path / "secrets")
    out = tmp_path / "again.toml"
    out.write_text(text)
    again = load_inventory(out)
    assert again == inv
    assert inventory_to_toml(again) == text
    assert "testpass" not in text
    tomllib.loads(text)


def test_round_trip_of_every_field(tmp_path):
    p = tmp_path / "full.toml"
    p.write_text('''
version = 1
allow_inline_secret = true
[[segment]]
name = "dmz \\"east\\""
vlan = 30
interface = "em1"
[[group]]
name = "g"
protocol = "vrrp2"
id = 200
segment = "dmz \\"east\\""
vips = ["10.0.0.1/24", "fd00::1"]
advert_int = 0.5
passphrase = "inline-secret"
[[group]]
protocol = "carp"
id = 7
segment = "dmz \\"east\\""
advbase = 3
[[host]]
name = "r1"
fqdn = "r1.example"
addresses = ["10.0.0.2/24"]
demotion = -5
carp_load = true
preempt = false
[[host.member]]
group = "g"
priority = 254
advert_int = 1
preempt = true
vips = ["10.0.0.1"]
auth_type = "ah"
interface = "eth0"
source = "10.0.0.2"
peers = ["10.0.0.3"]
master = true
passphrase_env = "R1_PASS"
passphrase_label = "r1 key"
[[host.member]]
group = "carp-7@dmz \\"east\\""
advskew = 20
passphrase_file = "/nonexistent/pw"
''')
    inv = load_inventory(p)
    g = inv.group("g")
    assert g.vips == ("10.0.0.1", "fd00::1") and g.passphrase.kind == "value"
    m = g.member("r1")
    assert (m.auth_type, m.peers, m.master, m.passphrase.label) == ("AH", ("10.0.0.3",), True, "r1 key")
    text = inventory_to_toml(inv)
    assert "inline-secret" not in text
    assert 'passphrase_env = "CARPSCOPE_PASS_G"' in text       # inline value -> placeholder
    again = load_inventory(_write(tmp_path, "again.toml", text))
    # everything survives except that the inline secret became a reference
    assert again.group("g").passphrase.env == "CARPSCOPE_PASS_G"
    again.group("g").passphrase = inv.group("g").passphrase
    assert again == inv


def _write(d: Path, name: str, text: str) -> Path:
    (d / name).write_text(text)
    return d / name


def test_configs_to_toml_keeps_secrets_out(tmp_path):
    inv = inventory_from_configs(sorted((FIX / "handbook").glob("*.rc.conf")))
    text = inventory_to_toml(inv)
    assert "testpass" not in text
    assert 'passphrase_env = "CARPSCOPE_PASS_HOSTC_VHID1"' in text
    again = load_inventory(_write(tmp_path, "inv.toml", text))
    assert [g.name for g in again.groups] == [g.name for g in inv.groups]
    assert again.group("carp-1@192.168.1.0/24").member("hostc").advskew == 100
    os.environ["CARPSCOPE_PASS_HOSTC_VHID1"] = "testpass"
    try:
        assert again.group("carp-1@192.168.1.0/24").member("hostc").passphrase.reveal() == "testpass"
    finally:
        del os.environ["CARPSCOPE_PASS_HOSTC_VHID1"]


def test_secret_never_shows_itself():
    s = Secret("hosta:vhid1", value="hunter2hunter2")
    assert "hunter2" not in repr(s) and "hunter2" not in str(s) and "hunter2" not in f"{s}"
    assert repr(s) == "Secret('hosta:vhid1', from a configuration)"
    with pytest.raises(TypeError):
        import pickle
        pickle.dumps(s)
    assert s == Secret("hosta:vhid1", value="hunter2hunter2") and s != Secret("hosta:vhid1", value="x")


def test_bsd_key_truncates_to_19():
    assert bsd_key("pass123") == b"pass123" + bytes(13)
    assert bsd_key(None) == bytes(20)
    long_a, long_b = "a" * 19 + "X", "a" * 19 + "YYYY"
    assert bsd_key(long_a) == bsd_key(long_b) == b"a" * 19 + b"\0"


def test_unreadable_secret_is_a_located_error(tmp_path):
    p = _write(tmp_path, "i.toml", '[[group]]\nprotocol = "carp"\nid = 1\nsegment = "s"\n'
                                   'passphrase_file = "missing.pass"\n')
    s = load_inventory(p).groups[0].passphrase
    assert not s.available()
    with pytest.raises(ConfigError) as ei:
        s.reveal()
    assert ei.value.line == 5 and "missing.pass" in ei.value.message


@pytest.mark.parametrize("text, line, words", [
    ('[[group]]\nprotocol = "carp"\nid = 1\nsegment = "s"\npassphrase = "x"\n', 5, "inline 'passphrase' refused"),
    ('[[group]]\nprotocol = "carp"\nid = 1\nsegment = "s"\npassphrase_file = "a"\npassphrase_env = "B"\n', 6,
     "only one of"),
    ('[[group]]\nprotocol = "hsrp"\nid = 1\nsegment = "s"\n', 2, "expected one of"),
    ('[[group]]\nprotocol = "carp"\nid = 256\nsegment = "s"\n', 3, "out of range"),
    ('[[group]]\nprotocol = "carp"\nid = 1\nsegment = "s"\nvips = ["10.0.0.999"]\n', 5, "not an IP address"),
    ('[[group]]\nprotocol = "carp"\nid = 1\nsegment = "s"\ncolour = "red"\n', 5, "unknown key 'colour'"),
    ('[[group]]\nprotocol = "carp"\nid = 1\n', 1, "needs 'segment'"),
    ('[[segment]]\nname = "a"\n[[group]]\nprotocol = "carp"\nid = 1\nsegment = "b"\n', 6, "not defined"),
    ('[[host]]\nname = "h"\n[[host.member]]\ngroup = "nope"\n', 4, "not defined"),
    ('[[group]]\nprotocol = "carp"\nid = 1\nsegment = "s"\nprimary = "x"\n', 5, "not a member"),
    ('[[host]]\nname = "h"\n\n[[host]]\nname = "h"\n', 5, "defined twice"),
    ('[[host]]\nname = "h"\npreempt = "yes"\n', 3, "true or false"),
    ('[[host]]\nname = "h"\n[[host.member]]\ngroup = "g"\nadvskew = 5\n', 4, "not defined"),
    ('version = 2\n', 1, "not supported"),
    ('[[group]\nprotocol = "carp"\n', 1, "invalid TOML"),
    ('a = "unterminated\n', 1, "invalid TOML"),
    ('[group]\nprotocol = "carp"\n', 1, "array of tables"),
])
def test_errors_with_line(tmp_path, text, line, words):
    p = _write(tmp_path, "bad.toml", text)
    with pytest.raises(ConfigError) as ei:
        load_inventory(p)
    e = ei.value
    assert words in e.message, e.message
    assert (e.path, e.line) == (str(p), line), str(e)
    assert "Traceback" not in str(e)


def test_intended_primary_rules():
    inv = load_inventory(SITE)
    g = inv.group("web-b")
    assert g.intended_primary() == "hostb"
    g.member("hostb").advskew = 100
    assert g.intended_primary() is None                  # a tie: nobody
    g.member("hostc").master = True
    assert g.intended_primary() == "hostc"               # the host's own config says master
    g.primary = "hostb"
    assert g.intended_primary() == "hostb"               # explicit wins


def test_inventory_from_a_mix_of_every_kind(tmp_path):
    """pfSense config.xml, OpenBSD hostname.if files, FreeBSD rc.conf, keepalived.conf and ucarp
    in one call: one inventory, written as TOML without a passphrase, read back as the same groups."""
    import subprocess
    import sys

    paths = [FIX / "pfsense" / "fw-a.xml", FIX / "pfsense" / "fw-b.xml",
             *sorted((FIX / "openbsd" / "obsd1" / "etc").iterdir()),
             FIX / "handbook" / "hosta.rc.conf", FIX / "handbook" / "hostc.rc.conf",
             FIX / "keepalived" / "lb1" / "keepalived.conf", FIX / "ucarp" / "web2.sh"]
    p = subprocess.run([sys.executable, "-m", "carpscope", "inventory", *map(str, paths)],
                       capture_output=True, text=True, timeout=60, cwd=FIX.parents[2])
    assert p.returncode == 0, p.stderr
    doc = tomllib.loads(p.stdout)
    kinds = {h["name"] for h in doc["host"]}
    assert {"fw-a", "fw-b", "obsd1", "hosta", "hostc", "lb1", "web2"} <= kinds
    ids = {(g["protocol"], g["id"]) for g in doc["group"]}
    assert {("carp", 10), ("carp", 11), ("carp", 30), ("carp", 20), ("carp", 51), ("carp", 52), ("carp", 1),
            ("vrrp2", 51), ("vrrp2", 20), ("carp", 3)} <= ids
    for secret in ("Pf Sense's k3y", "PfSense\\'sk3y", "obsd-wan-pw", "testpass", "s3cr3t42", "webvip-pw",
                   "xmlrpc-sync-pw-77"):
        assert secret not in p.stdout + p.stderr
    site = tmp_path / "site.toml"
    site.write_text(p.stdout)
    back = load_inventory(site)
    assert {(g.protocol, g.id) for g in back.groups} == ids
    fwa = [m for g in back.groups for m in g.members if m.host == "fw-a"]
    assert {m.passphrase.env for m in fwa} == {"CARPSCOPE_PASS_FW_A_VHID10", "CARPSCOPE_PASS_FW_A_VHID11",
                                               "CARPSCOPE_PASS_FW_A_VHID30"}
