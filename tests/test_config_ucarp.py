"""ucarp command lines, systemd units, shell scripts and ifupdown stanzas."""
from __future__ import annotations

from pathlib import Path

import pytest

from carpscope.config import ConfigError, detect_kind, inventory_from_configs
from carpscope.config.inventory import Origin
from carpscope.config.ucarp import find_interfaces_ucarp, find_ucarp_commands, parse_ucarp_argv

FIX = Path(__file__).parent / "fixtures" / "configs" / "ucarp"
O = Origin("cmd", 1)


@pytest.mark.parametrize("argv", [
    "ucarp --interface=eth0 --srcip=10.0.0.2 --vhid=3 --pass=pw --addr=10.0.0.1 --advbase=2 --advskew=7 --preempt",
    "/usr/sbin/ucarp --interface eth0 --srcip 10.0.0.2 --vhid 3 --pass pw --addr 10.0.0.1 --advbase 2 --advskew 7 -P",
    "ucarp -i eth0 -s 10.0.0.2 -v 3 -p pw -a 10.0.0.1 -b 2 -k 7 -P",
    "ucarp -ieth0 -s10.0.0.2 -v3 -ppw -a10.0.0.1 -b2 -k7 -BzP",
    "ucarp --int=eth0 --src=10.0.0.2 --vh=3 --pass=pw --addr=10.0.0.1 --advb=2 --advs=7 --pre",
])
def test_option_spellings(argv):
    r = parse_ucarp_argv(argv.split(), O)
    assert (r.interface, r.srcip, r.vhid, r.passphrase, r.addr, r.advbase, r.advskew, r.preempt) == (
        "eth0", "10.0.0.2", 3, "pw", "10.0.0.1", 2, 7, True)


def test_passfile_and_defaults():
    r = parse_ucarp_argv("ucarp -i eth0 -s 10.0.0.2 -v 3 -o /etc/ucarp/pw -a 10.0.0.1".split(), O)
    assert r.passfile == "/etc/ucarp/pw" and r.passphrase is None and not r.preempt and r.advskew is None


@pytest.mark.parametrize("argv, words", [
    ("ucarp -i eth0 -s 10.0.0.2 -v 3 -p pw -a 10.0.0.1 --bogus", "unknown ucarp option '--bogus'"),
    ("ucarp -i eth0 -s 10.0.0.2 -v 3 -p pw -a 10.0.0.1 --ad=1", "ambiguous"),
    ("ucarp -i eth0 -s 10.0.0.2 -v 300 -p pw -a 10.0.0.1", "--vhid must be"),
    ("ucarp -i eth0 -s 10.0.0.2 -v 3 -p pw", "needs --addr"),
    ("ucarp -i eth0 -s nothost -v 3 -p pw -a 10.0.0.1", "not an IP address"),
    ("ucarp -i eth0 -s 10.0.0.2 -v 3 -p pw -a 10.0.0.1 -X", "unknown ucarp option '-X'"),
    ("ucarp -i eth0 -s 10.0.0.2 -v 3 -p pw -a 10.0.0.1 stray", "unexpected word"),
    ("ucarp -i eth0 -s 10.0.0.2 -v 3 -a 10.0.0.1 -p", "needs a value"),
])
def test_bad_command_lines(argv, words):
    with pytest.raises(ConfigError) as ei:
        parse_ucarp_argv(argv.split(), O)
    assert words in ei.value.message and ei.value.line == 1


def test_systemd_unit_with_continuation_and_environment():
    runs = find_ucarp_commands((FIX / "web1.service").read_text(), "web1.service")
    assert len(runs) == 1
    r = runs[0]
    assert r.origin.line == 8 and r.addr == "10.0.0.100" and r.preempt and r.advskew == 0
    assert r.passphrase == "webvip-pw"


def test_pass_from_an_unset_variable_becomes_an_env_reference(tmp_path):
    p = tmp_path / "x.service"
    p.write_text("[Service]\nExecStart=/usr/sbin/ucarp -i eth0 -s 10.0.0.2 -v 3 -p ${UCARP_PASS} -a 10.0.0.1\n")
    inv = inventory_from_configs([p])
    s = inv.groups[0].members[0].passphrase
    assert s.kind == "env" and s.env == "UCARP_PASS"


def test_interfaces_stanza():
    runs, addrs, problems = find_interfaces_ucarp((FIX / "web3.interfaces").read_text(), "interfaces")
    assert not problems and len(runs) == 1
    r = runs[0]
    assert (r.interface, r.srcip, r.vhid, r.addr, r.advskew, r.advbase) == ("eth0", "10.0.0.13", 3, "10.0.0.100", 100, 1)
    assert not r.preempt and not r.master and r.network == "10.0.0.0/24"
    assert r.where["advskew"].line == 13 and r.where["passphrase"].line == 12
    assert "10.0.0.13/24" in addrs


def test_interfaces_master_yes_means_preempt():
    text = "iface eth0 inet static\n  address 10.0.0.5/24\n  ucarp-vid 4\n  ucarp-vip 10.0.0.4\n" \
           "  ucarp-password pw\n  ucarp-master yes\n"
    runs, _, problems = find_interfaces_ucarp(text, "interfaces")
    assert not problems and runs[0].preempt and runs[0].master


def test_interfaces_errors():
    runs, _, problems = find_interfaces_ucarp("  address 10.0.0.1\n", "interfaces")
    assert problems[0].line == 1 and "outside an iface stanza" in problems[0].message
    runs, _, problems = find_interfaces_ucarp(
        "iface eth0 inet static\n address 10.0.0.5/24\n ucarp-vid 999\n ucarp-vip 10.0.0.4\n ucarp-password p\n", "i")
    assert problems[0].line == 3 and "--vhid" in problems[0].message


def test_three_ucarp_hosts_form_one_group():
    inv = inventory_from_configs(sorted(FIX.iterdir()))
    assert {h.name for h in inv.hosts} == {"web1", "web2", "web3"}
    assert len(inv.groups) == 1
    g = inv.groups[0]
    assert g.segment == "10.0.0.0/24"      # from web3's address, shared by all three
    assert [m.host for m in g.members] == ["web1", "web2", "web3"]
    assert g.intended_primary() == "web1"
    assert all(m.implementation == "ucarp" for m in g.members)


def test_detect_kind():
    assert detect_kind(FIX / "web1.service") == "ucarp"
    assert detect_kind(FIX / "web2.sh") == "ucarp"
    assert detect_kind(FIX / "web3.interfaces") == "interfaces"
