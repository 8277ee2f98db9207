"""keepalived.conf: instances, includes, comments, block forms and errors with file:line."""
from __future__ import annotations

from pathlib import Path

import pytest

from carpscope.config import ConfigError, detect_kind, inventory_from_configs
from carpscope.config.keepalived import host_from_keepalived

FIX = Path(__file__).parent / "fixtures" / "configs" / "keepalived"


def test_realistic_pair_with_include():
    inv = inventory_from_configs([FIX / "lb1" / "keepalived.conf", FIX / "lb2" / "keepalived.conf"])
    assert {h.name for h in inv.hosts} == {"lb1", "lb2"}
    g = inv.find_group("192.168.10.0/24", "vrrp2", 51)
    assert g is not None and g.intended_primary() == "lb1"
    lb1 = g.member("lb1")
    assert lb1.priority == 150 and lb1.advert_int == 1.0 and lb1.master
    assert lb1.vips == ("192.168.10.100", "192.168.10.101")
    assert lb1.auth_type == "PASS" and lb1.passphrase.label == "lb1:vrid51"
    assert lb1.where["passphrase"].line == 25 and lb1.where["member"].line == 20
    # the included instance keeps the included file and its line
    gi = inv.find_group("10.20.0.0/24", "vrrp2", 20)
    inc = gi.member("lb1")
    assert inc.where["member"].path.endswith("conf.d/internal.conf") and inc.where["member"].line == 6
    assert inc.preempt is False and inc.where["preempt"].line == 9
    assert inc.source == "10.20.0.2" and inc.peers == ("10.20.0.3",)
    assert inc.advert_int == 2.0 and inc.interface == "eth1.20"
    assert "10.20.0.2" in inv.host("lb1").addresses


def write(tmp_path: Path, text: str, name: str = "keepalived.conf") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_versions_comments_and_brace_forms(tmp_path):
    p = write(tmp_path, """
global_defs { vrrp_version 3 }   # one-line block
vrrp_instance A { interface eth0 ; virtual_router_id 1 }
vrrp_instance D { virtual_router_id 4
  interface eth0 }
vrrp_instance B {
  interface eth0    ! bang comment
  virtual_router_id 2
  version 2
  virtual_ipaddress {
    "10.0.0.5/24" dev eth0 label eth0:1
  }
}
vrrp_instance C {
  interface eth0
  virtual_router_id 3
  virtual_ipaddress {
    fd00::5/64
  }
}
vrrp_script chk { script "/bin/true # not a comment" }
""")
    hc = host_from_keepalived(str(p), "lb")
    got = {(d.protocol, d.id) for d in hc.declared}
    # keepalived reads one statement per line: in A, 'virtual_router_id' is an argument of 'interface'
    assert got == {("vrrp3", 4), ("vrrp2", 2), ("vrrp3", 3)}
    assert [p.line for p in hc.problems] == [3] and "no virtual_router_id" in hc.problems[0].message
    b = next(d for d in hc.declared if d.id == 2)
    assert b.member.vips == ("10.0.0.5",) and b.link.network == "10.0.0.0/24"


def test_nopreempt_cleared_with_state_master(tmp_path):
    p = write(tmp_path, "vrrp_instance X {\n state MASTER\n nopreempt\n interface eth0\n virtual_router_id 9\n}\n")
    hc = host_from_keepalived(str(p), "lb")
    assert hc.declared[0].member.preempt is None
    assert any("clears nopreempt" in n for n in hc.notes)


def test_router_id_names_a_generic_file(tmp_path):
    p = write(tmp_path, "global_defs {\n router_id edge7\n}\nvrrp_instance X {\n interface eth0\n virtual_router_id 9\n}\n")
    assert host_from_keepalived(str(p), "keepalived").host.name == "edge7"


@pytest.mark.parametrize("text, line, words", [
    ("vrrp_instance X {\n interface eth0\n", 1, "never closed"),
    ("vrrp_instance X {\n interface eth0\n}\n}\n", 4, "without a matching"),
    ("vrrp_instance X {\n interface eth0\n virtual_router_id 300\n}\n", 3, "virtual_router_id must be"),
    ("vrrp_instance X {\n interface eth0\n virtual_router_id 1\n priority high\n}\n", 4, "priority must be"),
    ("vrrp_instance X {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  10.0.0.300\n }\n}\n", 5,
     "not an IP address"),
    ("vrrp_instance X {\n interface eth0\n virtual_router_id 1\n authentication {\n  auth_type MD5\n }\n}\n", 5,
     "auth_type must be"),
    ("vrrp_instance X {\n interface eth0\n}\n", 1, "no virtual_router_id"),
    ("vrrp_instance X {\n virtual_router_id 4\n state maybe\n}\n", 3, "state must be"),
    ('vrrp_instance X {\n script "unterminated\n}\n', 2, "unterminated"),
    ("include missing.conf\n", 1, "does not exist"),
])
def test_errors_with_file_and_line(tmp_path, text, line, words):
    p = write(tmp_path, text)
    problems: list[ConfigError] = []
    inventory_from_configs([p], problems)
    assert len(problems) == 1, problems
    e = problems[0]
    assert words in e.message and e.line == line and e.path == str(p)


def test_error_inside_an_included_file_points_there(tmp_path):
    (tmp_path / "inc").mkdir()
    write(tmp_path / "inc", "vrrp_instance Y {\n interface eth0\n virtual_router_id x\n}\n", "y.conf")
    p = write(tmp_path, "# main\ninclude inc/*.conf\n")
    with pytest.raises(ConfigError) as ei:
        inventory_from_configs([p])
    assert ei.value.path == str(tmp_path / "inc" / "y.conf") and ei.value.line == 3


def test_include_loop_and_empty_glob(tmp_path):
    write(tmp_path, "include a.conf\n", "a.conf")
    with pytest.raises(ConfigError) as ei:
        host_from_keepalived(str(tmp_path / "a.conf"), "x")
    assert "loop" in ei.value.message
    p = write(tmp_path, "include nothing/*.conf\nvrrp_instance X {\n interface e\n virtual_router_id 1\n}\n", "b.conf")
    assert host_from_keepalived(str(p), "x").declared


def test_auth_pass_never_in_errors(tmp_path):
    p = write(tmp_path, "vrrp_instance X {\n interface eth0\n virtual_router_id 1\n authentication {\n"
                        "  auth_type PASS\n  auth_pass Zq9secretZ\n }\n priority nope\n}\n")
    with pytest.raises(ConfigError) as ei:
        inventory_from_configs([p])
    assert "Zq9secretZ" not in str(ei.value)


def test_detect_kind():
    assert detect_kind(FIX / "lb1" / "conf.d" / "internal.conf") == "keepalived"
    assert detect_kind(FIX / "lb2" / "keepalived.conf") == "keepalived"


def test_an_included_file_given_too_is_not_a_host_of_its_own():
    inv = inventory_from_configs([FIX / "lb1" / "keepalived.conf", FIX / "lb1" / "conf.d" / "internal.conf",
                                  FIX / "lb2" / "keepalived.conf"])
    assert {h.name for h in inv.hosts} == {"lb1", "lb2"}
    assert inv.host("lb1").files[1].endswith("internal.conf")


# -- unicast: min_ttl/max_ttl, unicast_ttl, check_unicast_src; vrrp_sync_group ------------------------

UNICAST = """global_defs {
  vrrp_check_unicast_src
}
vrrp_instance VI_1 {
  interface eth0
  virtual_router_id 51
  unicast_src_ip 10.0.0.1
  unicast_ttl 250
  unicast_peer {
    10.0.0.2 min_ttl 250 max_ttl 255
    10.0.0.3
  }
  virtual_ipaddress {
    10.0.0.100/24
  }
}
vrrp_instance VI_2 {
  interface eth0
  virtual_router_id 52
  virtual_ipaddress {
    10.0.0.101/24
  }
}
vrrp_sync_group VG_1 {
  group {
    VI_1
    VI_2 VI_9
  }
}
vrrp_sync_group VG_2 {
  group {
    VI_1
  }
}
"""


def test_unicast_peer_options_and_sync_groups(tmp_path):
    hc = host_from_keepalived(str(write(tmp_path, UNICAST)), "lb1")
    d = {x.id: x for x in hc.declared}
    assert d[51].member.peers == ("10.0.0.2", "10.0.0.3") and d[51].member.where["peers"].line == 9
    assert d[51].accept_ttl == {"10.0.0.2": (250, 255)} and d[51].send_ttl == 250 and d[51].check_source
    assert d[51].instance == "VI_1" and d[52].send_ttl is None and not d[52].check_source
    assert [(s.name, s.instances, s.origin.line) for s in hc.sync_groups] == [("VG_1", ["VI_1", "VI_2"], 24)]
    assert sorted((p.line, p.message) for p in hc.problems) == [
        (27, "vrrp_sync_group VG_1: virtual router VI_9 doesn't exist - ignored"),
        (32, "vrrp_sync_group VG_2: VI_1 is already in sync group VG_1 (an instance can be in one only) - ignored")]


@pytest.mark.parametrize("entry, message", [
    ("10.0.0.2 min_ttl", "min_ttl is missing a value"),
    ("10.0.0.2 ttl 5", "unknown option 'ttl'"),
    ("10.0.0.2 max_ttl 300", "max_ttl must be a number 0-255"),
    ("10.0.0.2\n    10.0.0.2", "listed twice"),
])
def test_unicast_peer_errors(tmp_path, entry, message):
    p = write(tmp_path, "vrrp_instance V {\n interface eth0\n virtual_router_id 3\n unicast_peer {\n    "
              + entry + "\n }\n}\n")
    with pytest.raises(ConfigError) as e:
        inventory_from_configs([p])
    assert message in e.value.message and e.value.line in (5, 6)
