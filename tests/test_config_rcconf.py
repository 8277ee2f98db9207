"""FreeBSD rc.conf / sysctl.conf / loader.conf reading: sh quoting, ifconfig forms, VLANs, errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from carpscope.config import ConfigError, inventory_from_configs
from carpscope.config.rcconf import host_from_assignments, lex_assignments, parse_sysctl_conf

FIX = Path(__file__).parent / "fixtures" / "configs"


def host(text: str, name: str = "h"):
    return host_from_assignments(lex_assignments(text, "rc.conf"), name, ("rc.conf",))


def members(hc):
    return {(d.protocol, d.id): d for d in hc.declared}


# -- the sh lexer ----------------------------------------------------------------------------------

def test_lexer_quoting_comments_and_continuations():
    text = (
        "# comment\n"
        "a=\"double $x\"   # trailing comment\n"
        "b='single $x' c=plain\n"
        "d=\"line one \\\n"
        "line two\"\n"
        "e=one\\\n"
        "two\n"
        "x=X; f=\"${x}-$x\"\n"
        "g=\"esc \\\" \\\\ \\$x\"\n"
        "h=a#b\n"
        "i=''\n"
    )
    got = {a.name: (a.value, a.line) for a in lex_assignments(text, "t")}
    assert got["a"] == ("double ", 2)
    assert got["b"] == ("single $x", 3)
    assert got["c"] == ("plain", 3)
    assert got["d"] == ("line one line two", 4)
    assert got["e"] == ("onetwo", 6)
    assert got["f"] == ("X-X", 8)
    assert got["g"] == ('esc " \\ $x', 9)
    assert got["h"] == ("a#b", 10)
    assert got["i"] == ("", 11)


@pytest.mark.parametrize("text, line, words", [
    ('a="1"\nexport b=2\n', 2, "shell command 'export'"),
    ('a="1"\n\nthis is not sh\n', 3, "not an assignment"),
    ('a="1\nb=2\n', 1, "unterminated double quote"),
    ("a='1\n", 1, "unterminated single quote"),
    ("a=`hostname`\n", 1, "command substitution"),
    ("ifconfig_em0=inet 10.0.0.1\n", 1, "quote a value"),
    ("a=1|b\n", 1, "shell operator"),
    ("a=1 b\n", 1, "unexpected text after the value of a"),
])
def test_lexer_errors_have_line(text, line, words):
    with pytest.raises(ConfigError) as ei:
        lex_assignments(text, "rc.conf")
    assert ei.value.line == line and ei.value.path == "rc.conf"
    assert words in ei.value.message
    assert str(ei.value).startswith(f"rc.conf:{line}: ")


def test_lexer_error_never_echoes_the_value():
    with pytest.raises(ConfigError) as ei:
        lex_assignments('ifconfig_em0_alias0="inet vhid 1 pass hunter2secret 10.0.0.1/32\n', "rc.conf")
    assert "hunter2secret" not in str(ei.value)


def test_sysctl_conf():
    got = parse_sysctl_conf("# x\nnet.inet.carp.preempt=1\nkern.ipc.somaxconn = 1024 # c\n\n", "s")
    assert [(a.name, a.value, a.line) for a in got] == [
        ("net.inet.carp.preempt", "1", 2), ("kern.ipc.somaxconn", "1024", 3)]
    with pytest.raises(ConfigError) as ei:
        parse_sysctl_conf("net.inet.carp.preempt\n", "s")
    assert ei.value.line == 1


# -- ifconfig forms ----------------------------------------------------------------------------------

def test_handbook_forms():
    hc = host((FIX / "handbook" / "hostc.rc.conf").read_text())
    assert hc.host.name == "hostc" and hc.host.fqdn == "hostc.example.org"
    assert hc.host.addresses == ("192.168.1.5/24",)
    m = members(hc)
    assert set(m) == {("carp", 1), ("carp", 2)}
    one = m[("carp", 1)]
    assert one.member.advskew == 100 and one.member.vips == ("192.168.1.50",)
    assert one.link.network == "192.168.1.0/24" and one.link.interface == "em0"
    assert one.member.where["advskew"].line == 3
    assert m[("carp", 2)].member.where["passphrase"].line == 4
    assert one.member.passphrase.reveal() == "testpass"
    assert "testpass" not in repr(one.member)


@pytest.mark.parametrize("value", [
    "inet vhid 1 pass x 192.168.1.50/32",                # no 'alias'
    "inet vhid 1 pass x alias 192.168.1.50/32",          # handbook
    "inet 192.168.1.50/32 vhid 1 pass x",                # address first
    "inet alias 192.168.1.50/32 vhid 1 pass x",
    "vhid 1 pass x 192.168.1.50/32",                     # no 'inet'
    "inet vhid 1 pass x 192.168.1.50 netmask 255.255.255.255",
])
def test_alias_variants(value):
    hc = host(f'ifconfig_em0="inet 192.168.1.3/24"\nifconfig_em0_alias0="{value}"\n')
    assert not hc.problems
    d = members(hc)[("carp", 1)]
    assert d.member.vips == ("192.168.1.50",)
    assert d.member.passphrase.reveal() == "x"


def test_ipv6_advbase_and_state():
    hc = host('ifconfig_em0="inet 10.0.0.2/24"\n'
              'ifconfig_em0_ipv6="inet6 2001:db8::2 prefixlen 64"\n'
              'ifconfig_em0_alias0="inet vhid 5 advbase 3 advskew 7 state master pass p 10.0.0.1/32"\n'
              'ifconfig_em0_alias1="inet6 vhid 5 advbase 3 advskew 7 pass p 2001:db8::1 prefixlen 64"\n')
    d = members(hc)[("carp", 5)]
    assert d.member.vips == ("10.0.0.1", "2001:db8::1")
    assert d.member.advbase == 3 and d.member.advskew == 7 and d.member.master
    assert "2001:db8::2/64" in hc.host.addresses


def test_aliases_variable_with_several_clauses():
    hc = host('ifconfig_em0="inet 10.0.0.2/24"\n'
              'ifconfig_em0_aliases="inet vhid 1 pass a 10.0.0.10/32 inet vhid 2 advskew 5 pass b 10.0.0.20/32 '
              'inet 10.0.0.99/24"\n')
    m = members(hc)
    assert m[("carp", 1)].member.vips == ("10.0.0.10",)
    assert m[("carp", 2)].member.advskew == 5
    assert "10.0.0.99/24" in hc.host.addresses


def test_aliases_without_inet_split_on_vhid():
    hc = host('ifconfig_em1="inet 192.168.1.2/24"\n'
              'ifconfig_em1_aliases="vhid 12 advskew 210 pass P 192.168.1.11/32 vhid 12 advskew 210 pass P 192.168.1.12/32"\n')
    d = members(hc)[("carp", 12)]
    assert d.member.vips == ("192.168.1.11", "192.168.1.12")


def test_vlans_numeric_and_named():
    hc = host('vlans_em0="30 vlan40"\ncreate_args_vlan40="vlan 40"\n'
              'ifconfig_em0_30="inet 10.30.0.2/24"\n'
              'ifconfig_em0_30_alias0="inet vhid 30 pass p 10.30.0.1/32"\n'
              'ifconfig_vlan40="inet 10.40.0.2/24"\n'
              'ifconfig_vlan40_alias0="inet vhid 40 pass p 10.40.0.1/32"\n')
    m = members(hc)
    assert m[("carp", 30)].link.interface == "em0.30" and m[("carp", 30)].link.vlan == 30
    assert m[("carp", 30)].link.parent == "em0"
    assert m[("carp", 40)].link.interface == "vlan40" and m[("carp", 40)].link.vlan == 40
    assert m[("carp", 40)].link.network == "10.40.0.0/24"


def test_vlan_without_address_falls_back_to_interface_and_tag():
    hc = host('vlans_em0="30"\nifconfig_em0_30="up"\n'
              'ifconfig_em0_30_alias0="inet vhid 3 pass p 10.30.0.1/32"\n')
    d = members(hc)[("carp", 3)]
    assert d.link.network is None and d.link.fallback_name() == "em0.30"


def test_sysctl_and_loader_settings_in_combined_file():
    hc = host('hostname="fw.example.net"\ncarp_load="YES"\n'
              'ifconfig_em0="inet 10.0.0.2/24"\nifconfig_em0_alias0="inet vhid 1 pass p 10.0.0.1/32"\n'
              'net.inet.carp.preempt=1\nnet.inet.carp.demotion=10\n')
    assert hc.host.preempt is True and hc.host.demotion == 10 and hc.host.carp_load is True
    assert hc.host.where["preempt"].line == 5
    assert any("rc.conf:2: carp_load is a /boot/loader.conf setting" in n for n in hc.notes)


def test_loader_conf_without_carp_is_noted(tmp_path):
    (tmp_path / "h.rc.conf").write_text('ifconfig_em0="inet 10.0.0.2/24"\n'
                                        'ifconfig_em0_alias0="inet vhid 1 pass p 10.0.0.1/32"\n')
    (tmp_path / "h.loader.conf").write_text('autoboot_delay="3"\n')
    inv = inventory_from_configs([tmp_path / "h.rc.conf", tmp_path / "h.loader.conf"])
    assert inv.host("h").carp_load is None
    assert any("does not load carp" in n for n in inv.notes)


def test_old_carp_interface_style_uses_vip_network():
    hc = host('cloned_interfaces="carp0"\nifconfig_fxp0="inet 192.168.1.3 netmask 255.255.255.0"\n'
              'ifconfig_carp0="vhid 1 pass testpass 192.168.1.50/24"\n')
    d = members(hc)[("carp", 1)]
    assert d.link.network == "192.168.1.0/24" and d.member.vips == ("192.168.1.50",)


def test_carpver3_is_vrrp3():
    hc = host('ifconfig_em0="inet 10.0.0.2/24"\n'
              'ifconfig_em0_alias0="inet vhid 7 carpver 3 vrrpprio 150 vrrpinterval 50 10.0.0.1/32"\n')
    d = members(hc)[("vrrp3", 7)]
    assert d.member.priority == 150 and d.member.advert_int == 0.5


# -- problems: reported with line, the rest still read ---------------------------------------------

@pytest.mark.parametrize("value, words", [
    ("inet vhid 1 advskew 300 pass p 10.0.0.1/32", "out of range 0-254"),
    ("inet vhid 0 pass p 10.0.0.1/32", "vhid must be"),
    ("inet vhid 1 pass p", "has no address"),
    ("inet vhid 1 testpass 10.0.0.1/32", "is 'pass' missing"),
    ("inet advskew 5 pass p 10.0.0.1/32", "without 'vhid"),
    ("inet vhid 1 pass 'two words' 10.0.0.1/32", "not an ifconfig keyword"),
    ("inet vhid 1 pass", "needs a value"),
])
def test_bad_carp_clauses(value, words):
    hc = host(f'a=1\nifconfig_em0="inet 10.0.0.2/24"\nifconfig_em0_alias0="{value}"\n')
    assert ("carp", 1) not in members(hc)
    assert len(hc.problems) == 1
    p = hc.problems[0]
    assert words in p.message and p.line == 3 and p.path == "rc.conf"
    assert "testpass" not in p.message and "two words" not in p.message


def test_alias_gap_is_reported_and_skipped():
    hc = host('ifconfig_em0="inet 10.0.0.2/24"\n'
              'ifconfig_em0_alias0="inet vhid 1 pass p 10.0.0.1/32"\n'
              'ifconfig_em0_alias2="inet vhid 2 pass p 10.0.0.3/32"\n')
    assert ("carp", 2) not in members(hc)
    assert hc.problems[0].line == 3 and "alias1 is missing" in hc.problems[0].message


def test_rc_and_sysctl_files_pair_by_name():
    inv = inventory_from_configs([FIX / "freebsd" / "fw1.rc.conf", FIX / "freebsd" / "fw1.sysctl.conf",
                                  FIX / "freebsd" / "fw1.loader.conf", FIX / "freebsd" / "fw2.rc.conf"])
    fw1, fw2 = inv.host("fw1"), inv.host("fw2")
    assert fw1.preempt is True and fw1.carp_load is True
    assert fw1.where["preempt"].path.endswith("fw1.sysctl.conf") and fw1.where["preempt"].line == 2
    assert fw2.preempt is True and fw2.where["preempt"].line == 14
    names = {g.name for g in inv.groups}
    assert names == {"carp-10@198.51.100.0/24", "carp-30@10.30.0.0/24", "carp-31@10.30.0.0/24",
                     "carp-40@10.40.0.0/24"}
    g10 = inv.group("carp-10@198.51.100.0/24")
    assert g10.member("fw2").vips == ("198.51.100.1", "2001:db8:10::1")
    assert g10.intended_primary() == "fw1"


def test_lone_sysctl_conf_without_a_host_is_an_error(tmp_path):
    (tmp_path / "a.rc.conf").write_text('hostname="a"\n')
    (tmp_path / "b.rc.conf").write_text('hostname="b"\n')
    (tmp_path / "c.sysctl.conf").write_text("net.inet.carp.preempt=1\n")
    with pytest.raises(ConfigError) as ei:
        inventory_from_configs([tmp_path / "a.rc.conf", tmp_path / "b.rc.conf", tmp_path / "c.sysctl.conf"])
    assert "which host" in ei.value.message


def test_host_directories(tmp_path):
    for h, skew in (("node1", 0), ("node2", 50)):
        (tmp_path / h / "etc").mkdir(parents=True)
        (tmp_path / h / "etc" / "rc.conf").write_text(
            f'ifconfig_em0="inet 10.1.0.{skew + 2}/24"\n'
            f'ifconfig_em0_alias0="inet vhid 9 advskew {skew} pass p 10.1.0.1/32"\n')
        (tmp_path / h / "etc" / "sysctl.conf").write_text("net.inet.carp.preempt=1\n")
    inv = inventory_from_configs(sorted(tmp_path.glob("*/etc/*.conf")))
    assert {h.name for h in inv.hosts} == {"node1", "node2"}
    assert all(h.preempt for h in inv.hosts)
    assert inv.groups[0].intended_primary() == "node1"


def test_segment_network_prefers_ipv4():
    hc = host('ifconfig_em0_ipv6="inet6 2001:db8::2 prefixlen 64"\nifconfig_em0="inet 10.0.0.2/24"\n'
              'ifconfig_em0_alias0="inet6 vhid 4 pass p 2001:db8::1 prefixlen 64"\n')
    assert members(hc)[("carp", 4)].link.network == "10.0.0.0/24"
    hc = host('ifconfig_em0="DHCP"\nifconfig_em0_ipv6="inet6 2001:db8::2 prefixlen 64"\n'
              'ifconfig_em0_alias0="inet6 vhid 4 pass p 2001:db8::1 prefixlen 64"\n')
    assert members(hc)[("carp", 4)].link.network == "2001:db8::/64"


# -- FreeBSD 14 carp(4): unicast peers (sbin/ifconfig/carp.c peer, peer6, mcast, mcast6) ----------

def test_unicast_peers_and_their_reset():
    hc = host('ifconfig_em0="inet 10.0.0.2/24"\n'
              'ifconfig_em0_alias0="inet vhid 4 peer 10.0.0.3 pass p 10.0.0.1/32"\n'
              'ifconfig_em0_ipv6="inet6 2001:db8::2 prefixlen 64"\n'
              'ifconfig_em0_alias1="inet6 vhid 4 peer6 2001:db8::3 pass p 2001:db8::1 prefixlen 64"\n'
              'ifconfig_em0_alias2="inet vhid 5 peer 10.0.0.3 mcast pass p 10.0.0.5/32"\n')
    m = members(hc)
    assert m[("carp", 4)].member.peers == ("10.0.0.3", "2001:db8::3")
    assert m[("carp", 4)].member.where["peers"].line == 2
    assert m[("carp", 5)].member.peers == ()          # mcast restores 224.0.0.18
    assert m[("carp", 4)].link.networks == ("10.0.0.0/24", "2001:db8::/64")


def test_peer_has_no_effect_with_carpver3_and_needs_its_family():
    hc = host('ifconfig_em0="inet 10.0.0.2/24"\n'
              'ifconfig_em0_alias0="inet vhid 7 carpver 3 peer 10.0.0.3 10.0.0.1/32"\n'
              'ifconfig_em0_alias1="inet vhid 8 peer 2001:db8::3 pass p 10.0.0.8/32"\n')
    assert members(hc)[("vrrp3", 7)].member.peers == ()
    assert any("'peer' has no effect with carpver 3" in n for n in hc.notes)
    assert [p.message for p in hc.problems] == ["ifconfig_em0_alias1: peer needs an IPv4 address (word 5)"]
