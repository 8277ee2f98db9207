"""OpenBSD: hostname.carpN lines as netstart and ifconfig apply them, hosts made of their /etc
files, carpnodes/balancing, carppeer, preemption from sysctl.conf."""
from __future__ import annotations

from pathlib import Path

import pytest

from carpscope.config import detect_kind, inventory_from_configs
from carpscope.config.lint import lint
from carpscope.config.openbsd import host_key, parse_hostname_if

FIX = Path(__file__).parent / "fixtures" / "configs" / "openbsd"
SECRETS = ["obsd-wan-pw", "obsd-lb-pw", "obsd-uni-pw", "carp-pw-77"]


def files(*hosts: str) -> list[str]:
    return sorted(str(p) for h in hosts for p in (FIX / h / "etc").iterdir())


def write(tmp_path: Path, rel: str, text: str) -> Path:
    p = tmp_path / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_fixture_pair():
    inv = inventory_from_configs(files("obsd1", "obsd2"))
    assert [(h.name, h.fqdn, h.preempt, h.kind) for h in inv.hosts] == [
        ("obsd1", "obsd1.example.org", True, "openbsd"), ("obsd2", "obsd2.example.org", True, "openbsd")]
    assert inv.host("obsd1").addresses == ("192.0.2.11/24", "2001:db8:20::11/64", "10.50.0.11/24",
                                           "198.51.100.11/24")
    groups = {g.id: g for g in inv.groups}
    assert sorted(groups) == [20, 30, 51, 52]
    g20 = groups[20]
    # every non-link-local address of carp0 is in the vhid's set; carpdev's network names the segment
    assert g20.segment == "192.0.2.0/24" and g20.member("obsd1").vips == ("192.0.2.10", "2001:db8:20::10")
    assert [(m.host, m.advskew, m.implementation) for m in g20.members] == [("obsd1", 0, "openbsd"),
                                                                        ("obsd2", 100, "openbsd")]
    assert g20.member("obsd2").passphrase.reveal() == "obsd-wan-pw"
    assert g20.member("obsd2").where["passphrase"].line == 2
    # carpnodes: two vhids on one address, each node primary of one (active/active balancing)
    assert groups[51].intended_primary() == "obsd1" and groups[52].intended_primary() == "obsd2"
    assert groups[51].member("obsd1").vips == groups[52].member("obsd1").vips == ("10.50.0.10",)
    # unicast
    assert groups[30].member("obsd1").peers == ("198.51.100.12",)
    assert groups[30].member("obsd2").peers == ("198.51.100.11",)


def test_fixture_pair_lints_clean():
    r = lint(files("obsd1", "obsd2"))
    assert r.findings == [] and r.errors == []
    assert sum("balances (ip)" in n for n in r.notes) == 2
    text = repr(r.inventory) + "".join(r.notes)
    assert not any(s in text for s in SECRETS)


def test_kind_and_host_key_from_names(tmp_path):
    assert detect_kind(FIX / "obsd1" / "etc" / "hostname.carp0") == "hostname.if"
    assert detect_kind(FIX / "obsd1" / "etc" / "myname") == "myname"
    assert host_key(FIX / "obsd1" / "etc" / "hostname.carp0") == "obsd1"
    assert host_key(tmp_path / "gw7.hostname.carp3") == "gw7"
    assert host_key(tmp_path / "gw7-myname") == "gw7"


@pytest.mark.parametrize("line, vips, skew, problem", [
    ("inet 10.0.0.1 255.255.255.0 NONE vhid 5 pass carp-pw-77 advskew 20", ("10.0.0.1",), 20, None),
    ("inet 10.0.0.1 0xffffff00 10.0.0.255 vhid 5 carpdev em0 pass carp-pw-77", ("10.0.0.1",), None, None),
    ("inet alias 10.0.0.1 255.255.255.255 NONE vhid 5", ("10.0.0.1",), None, None),
    ("inet 10.0.0.1/24", ("10.0.0.1",), None, None),
    # netstart takes the words after the address by position: this is 'netmask vhid broadcast 5'
    ("inet 10.0.0.1/24 vhid 5 pass carp-pw-77", (), None, "as the netmask, and 'vhid' is not one"),
    ("inet 10.0.0.1 255.255.255.0 vhid 5", (), None, "as the broadcast address, and 'vhid' is not one"),
    ("inet6 2001:db8::1 64 vhid 5", ("2001:db8::1",), None, None),
    ("inet 2001:db8::1 64", (), None, "is not an IPv4 address"),
    ("inet 10.0.0.1 24 NONE vhid 5", (), None, "as the netmask, and '24' is not one"),
    ("vhid 300", (), None, "vhid must be a number 1-255"),
    ("advskew 255", (), None, "advskew must be a number 0-254"),
    ("carpnodes 1:0,2", (), None, "carpnodes must be vhid:advskew"),
    ("balancing round-robin", (), None, "balancing must be one of"),
    ("carppeer 2001:db8::2", (), None, "carppeer takes an IPv4 address"),
])
def test_hostname_if_lines(line, vips, skew, problem):
    cfg = parse_hostname_if("# a comment\n" + line + "\n", "/etc/hostname.carp0", "carp0")
    assert tuple(str(ia.ip) for ia, _ in cfg.addresses) == vips
    if skew is not None:
        assert cfg.vhids == [(5, skew)]
    if problem is None:
        assert cfg.problems == []
    else:
        assert len(cfg.problems) == 1 and problem in cfg.problems[0].message
        assert cfg.problems[0].line == 2 and "carp-pw-77" not in cfg.problems[0].message


def test_separate_lines_order_and_continuation():
    text = ("advskew 50\\\n vhid 9\npass carp-pw-77\ninet 10.9.0.1 255.255.255.0 NONE\n"
            "!echo configured $if\n-carppeer\nup\n")
    cfg = parse_hostname_if(text, "/etc/hostname.carp1", "carp1")
    assert cfg.vhids == [(9, 50)] and cfg.passphrase == "carp-pw-77" and cfg.peer is None
    assert cfg.where["vhid"].line == 1 and cfg.where["passphrase"].line == 3
    assert any("command line not interpreted" in n for n in cfg.notes)


def test_host_problems_and_notes(tmp_path):
    a = [write(tmp_path, "fw1/etc/hostname.em0", "inet 10.0.0.2 255.255.255.0 NONE\n"),
         write(tmp_path, "fw1/etc/hostname.carp0", "inet 10.0.0.1 255.255.255.0 NONE\n"),           # no vhid
         write(tmp_path, "fw1/etc/hostname.carp1", "vhid 3 pass carp-pw-77 lladdr 02:00:00:00:00:09\n"),  # no address
         write(tmp_path, "fw1/etc/hostname.carp2",
               "inet 10.0.0.5 255.255.255.0 NONE vhid 4 pass carp-pw-77 lladdr 02:00:00:00:00:04\n"),
         write(tmp_path, "fw1/etc/hostname.em1", "inet 10.7.0.2 255.255.255.0 NONE vhid 8\n")]       # not carpN
    r = lint([str(p) for p in a])
    msgs = sorted((Path(f.source).name, f.line, f.message) for f in r.findings if f.rule == "config-parse-error")
    assert [m[:2] for m in msgs] == [("hostname.carp0", 1), ("hostname.carp1", 1), ("hostname.em1", 1)]
    assert "does not run" in msgs[0][2] and "has no address" in msgs[1][2] and "not carpN" in msgs[2][2]
    # without carpdev the parent is the interface holding the VIP's subnet (em0)
    (g,) = r.inventory.groups
    assert g.id == 4 and g.segment == "10.0.0.0/24" and g.members[0].interface == "carp2"
    assert any("own lladdr" in n and "HMAC" in n for n in r.notes)


def test_openbsd_is_not_capped_at_240_and_preempt_default_is_off(tmp_path):
    a = [write(tmp_path, "o1/etc/hostname.carp0", "inet 10.4.0.1 255.255.255.0 NONE vhid 1 pass carp-pw-77\n"),
         write(tmp_path, "o1/etc/hostname.em0", "inet 10.4.0.2 255.255.255.0 NONE\n"),
         write(tmp_path, "o2/etc/hostname.carp0",
               "inet 10.4.0.1 255.255.255.0 NONE vhid 1 advskew 250 pass carp-pw-77\n"),
         write(tmp_path, "o2/etc/hostname.em0", "inet 10.4.0.3 255.255.255.0 NONE\n"),
         write(tmp_path, "o3/etc/hostname.carp0",
               "inet 10.4.0.1 255.255.255.0 NONE vhid 1 advskew 245 pass carp-pw-77\n"),
         write(tmp_path, "o3/etc/hostname.em0", "inet 10.4.0.4 255.255.255.0 NONE\n")]
    r = lint([str(p) for p in a])
    # FreeBSD would advertise both backups as 240 (a tie): OpenBSD sends 250 and 245 as they are
    assert {f.rule for f in r.findings} == {"config-preempt"}
    (f,) = r.findings
    assert "net.inet.carp.preempt" in f.message and Path(f.source).parent.parent.name == "o1"
    s = write(tmp_path, "o1/etc/sysctl.conf", "net.inet.carp.preempt=1 # on\n")
    assert lint([str(p) for p in a] + [str(s)]).findings == []


def test_myname_names_the_host_and_lone_files_join_it(tmp_path):
    a = [write(tmp_path, "x/hostname.carp0", "inet 10.4.0.1 255.255.255.0 NONE vhid 1 pass carp-pw-77\n"),
         write(tmp_path, "x/myname", "# the name\nbastion.example.com\n")]
    inv = inventory_from_configs([str(p) for p in a])
    assert (inv.hosts[0].name, inv.hosts[0].fqdn) == ("bastion", "bastion.example.com")


# -- hostile input in bulk -------------------------------------------------------------------------

import os  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from carpscope.config import ConfigError  # noqa: E402
from carpscope.config.openbsd import host_from_files  # noqa: E402

WORDS = ["inet", "inet6", "alias", "vhid", "advskew", "advbase", "pass", "carpdev", "carppeer", "-carppeer",
         "carpnodes", "balancing", "state", "lladdr", "up", "!cmd", "#", "NONE", "10.0.0.1", "10.0.0.1/24",
         "255.255.255.0", "0xffffff00", "2001:db8::1", "fe80::1%carp0", "64", "1", "255", "300", "1:0,2:100",
         "ip", "master", "em0", "\\", "dhcp", "autoconf", "x"]


@settings(max_examples=int(os.environ.get("CARPSCOPE_PROPERTY_EXAMPLES", "200")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join), max_size=8),
       junk=st.text(max_size=30))
def test_generated_hostname_if_gives_config_errors_only(lines, junk):
    text = "\n".join(lines) + "\n" + junk
    cfgs = [parse_hostname_if(text, "/x/etc/hostname.carp0", "carp0"),
            parse_hostname_if(text, "/x/etc/hostname.em0", "em0")]
    hc = host_from_files("x", cfgs, None, [], ("/x/etc/hostname.carp0", "/x/etc/hostname.em0"))
    assert all(isinstance(p, ConfigError) and "\n" not in p.message for p in hc.problems)
    for d in hc.declared:
        assert d.member.vips and 1 <= d.id <= 255
