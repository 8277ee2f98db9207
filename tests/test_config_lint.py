"""Lint: the handbook hosts, one trigger and one non-trigger per rule, no passphrase in any output."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from carpscope.config import ConfigError
from carpscope.config.lint import LintResult, lint
from carpscope.model import Severity
from carpscope.rules import catalogue, lookup, page as rule_page

FIX = Path(__file__).parent / "fixtures" / "configs"
HANDBOOK = FIX / "handbook"
CONFIG_RULES = [slug for slug in catalogue() if slug.startswith("config-")]

# every passphrase used in this file; test_no_passphrase_in_any_output greps for them
SECRETS = ["testpass", "s3cr3t42", "webvip-pw", "wanpass2024", "vlan30pass", "Otherpass",
           "abcdefghijklmnopqrsTAIL-ONE", "abcdefghijklmnopqrsTAIL-TWO", "ucarp-too-long-password",
           "longkeepalivedpw", "inv-secret-value", "keepalived2", "mekmitasdigoat", "password1", "Testpass",
           "testpass2", "kp-uni-51", "kp-sync-1"]
RESULTS: list[LintResult] = []


def run(paths) -> LintResult:
    r = lint([str(p) for p in paths])
    RESULTS.append(r)
    return r


def rules(r: LintResult) -> list[str]:
    return [f.rule for f in r.findings]


def only(r: LintResult, slug: str):
    return [f for f in r.findings if f.rule == slug]


def handbook_copy(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for h in ("hosta", "hostb", "hostc"):
        out[h] = tmp_path / f"{h}.rc.conf"
        shutil.copy(HANDBOOK / f"{h}.rc.conf", out[h])
    return out


def edit(p: Path, old: str, new: str) -> None:
    text = p.read_text()
    assert old in text
    p.write_text(text.replace(old, new))


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def rc(tmp_path: Path, name: str, addr: str, *aliases: str, extra: str = "") -> Path:
    lines = [f'hostname="{name}.example.org"', f'ifconfig_em0="inet {addr}/24"']
    lines += [f'ifconfig_em0_alias{i}="{a}"' for i, a in enumerate(aliases)]
    return write(tmp_path, f"{name}.rc.conf", "\n".join(lines) + "\n" + extra)


# -- the handbook ---------------------------------------------------------------------------------

def test_handbook_has_no_error_and_reports_preempt_as_info():
    r = run(sorted(HANDBOOK.glob("*.rc.conf")))
    assert not r.errors
    assert all(f.severity != Severity.ERROR for f in r.findings)
    # the handbook's example passphrase is the first entry of the bundled list of defaults
    assert sorted(rules(r)) == ["config-preempt"] * 2 + ["config-weak-passphrase"] * 4
    weak = only(r, "config-weak-passphrase")
    assert [(Path(f.source).name, f.line, f.vhid, f.code, f.severity) for f in weak] == [
        ("hosta.rc.conf", 3, 1, "CS510", Severity.WARNING), ("hostb.rc.conf", 3, 2, "CS510", Severity.WARNING),
        ("hostc.rc.conf", 3, 1, "CS510", Severity.WARNING), ("hostc.rc.conf", 4, 2, "CS510", Severity.WARNING)]
    assert all("bundled list entry 1" in f.message and "testpass" not in f.message for f in weak)
    pre = only(r, "config-preempt")
    assert all(f.severity == Severity.INFO and f.code == "CS509" for f in pre)
    assert [(Path(f.source).name, f.line, f.vhid) for f in pre] == [("hosta.rc.conf", 3, 1), ("hostb.rc.conf", 3, 2)]
    assert "hostc" in pre[0].message and "192.168.1.50" in pre[0].message
    inv = r.inventory
    assert [g.intended_primary() for g in inv.groups] == ["hosta", "hostb"]


def test_handbook_changed_passphrase(tmp_path):
    p = handbook_copy(tmp_path)
    edit(p["hostc"], "inet vhid 1 advskew 100 pass testpass", "inet vhid 1 advskew 100 pass Otherpass")
    r = run(p.values())
    f = only(r, "config-pass-mismatch")
    assert len(f) == 1
    assert (f[0].source, f[0].line, f[0].vhid, f[0].severity) == (str(p["hostc"]), 3, 1, Severity.ERROR)
    assert "hostc:vhid1" in f[0].message and "hosta:vhid1" in f[0].message
    assert f[0].cause == "passphrase"


def test_handbook_changed_vip(tmp_path):
    p = handbook_copy(tmp_path)
    edit(p["hostc"], "alias 192.168.1.51/32", "alias 192.168.1.52/32")
    r = run(p.values())
    f = only(r, "config-vip-mismatch")
    assert len(f) == 1
    assert (f[0].source, f[0].line, f[0].vhid) == (str(p["hostc"]), 4, 2)
    assert "192.168.1.52" in f[0].message and "192.168.1.51" in f[0].message
    assert "config-vhid-reuse" not in rules(r)


def test_handbook_hostc_advskew_zero(tmp_path):
    p = handbook_copy(tmp_path)
    edit(p["hostc"], "inet vhid 1 advskew 100", "inet vhid 1 advskew 0")
    r = run(p.values())
    f = only(r, "config-skew-order")
    assert len(f) == 1
    assert (f[0].source, f[0].line, f[0].vhid) == (str(p["hostc"]), 3, 1)
    assert "hosta" in f[0].message and "hostc" in f[0].message
    # with a tie there is no intended primary any more, so no preempt note for vhid 1
    assert [x.vhid for x in only(r, "config-preempt")] == [2]


def test_handbook_with_preempt_on(tmp_path):
    p = handbook_copy(tmp_path)
    sysctl = [write(tmp_path, f"{h}.sysctl.conf", "net.inet.carp.preempt=1\n") for h in ("hosta", "hostb")]
    r = run([*p.values(), *sysctl])
    assert set(rules(r)) == {"config-weak-passphrase"}


# -- config-pass-mismatch ----------------------------------------------------------------------------

def test_pass_mismatch_not_for_passphrases_equal_in_19_characters(tmp_path):
    a = rc(tmp_path, "a", "10.0.0.2", "inet vhid 1 pass abcdefghijklmnopqrsTAIL-ONE 10.0.0.1/32")
    b = rc(tmp_path, "b", "10.0.0.3", "inet vhid 1 advskew 50 pass abcdefghijklmnopqrsTAIL-TWO 10.0.0.1/32")
    r = run([a, b])
    assert "config-pass-mismatch" not in rules(r)
    t = only(r, "config-pass-truncated")
    assert len(t) == 2
    assert all("differ only after character 19" in f.message and "same key" in f.message for f in t)
    assert t[0].evidence["same_key_after_truncation"] == ["b:vhid1"]


def test_pass_mismatch_when_one_host_has_none(tmp_path):
    a = rc(tmp_path, "a", "10.0.0.2", "inet vhid 1 pass testpass 10.0.0.1/32")
    b = rc(tmp_path, "b", "10.0.0.3", "inet vhid 1 advskew 50 10.0.0.1/32")
    r = run([a, b])
    assert [(Path(f.source).name, f.line) for f in only(r, "config-pass-mismatch")] == [("b.rc.conf", 3)]
    assert "no passphrase" in only(r, "config-pass-mismatch")[0].message
    assert [(Path(f.source).name, f.line) for f in only(r, "config-missing-pass")] == [("b.rc.conf", 3)]


def test_pass_mismatch_keepalived(tmp_path):
    lb1 = write(tmp_path, "lb1/keepalived.conf", (FIX / "keepalived" / "lb1" / "keepalived.conf").read_text()
                .replace("include conf.d/*.conf", ""))
    lb2 = write(tmp_path, "lb2/keepalived.conf", (FIX / "keepalived" / "lb2" / "keepalived.conf").read_text())
    r = run([lb1, lb2])
    assert "config-pass-mismatch" not in rules(r)
    edit(lb2, "auth_pass s3cr3t42", "auth_pass keepalived2")
    r = run([lb1, lb2])
    f = only(r, "config-pass-mismatch")
    assert [(f[0].source, f[0].line, f[0].protocol)] == [(str(lb2), 14, "vrrp2")]
    assert "lb2:vrid51" in f[0].message and "lb1:vrid51" in f[0].message


def test_pass_mismatch_against_the_inventory(tmp_path, monkeypatch):
    monkeypatch.setenv("CARPSCOPE_TEST_WEB_B", "inv-secret-value")
    r = run([FIX / "inventory" / "site.toml", *sorted(HANDBOOK.glob("*.rc.conf"))])
    # web-a's file holds testpass (no mismatch); web-b's variable holds something else
    f = only(r, "config-pass-mismatch")
    assert {(Path(x.source).name, x.line) for x in f} == {("hostb.rc.conf", 3), ("hostc.rc.conf", 4)}
    assert all("the inventory's passphrase 'web-b'" in x.message for x in f)


def test_unreadable_secret_is_a_note_not_an_error(monkeypatch, tmp_path):
    monkeypatch.delenv("CARPSCOPE_TEST_WEB_B", raising=False)
    r = run([FIX / "inventory" / "site.toml", *sorted(HANDBOOK.glob("*.rc.conf"))])
    assert "config-parse-error" not in rules(r) and "config-pass-mismatch" not in rules(r)
    note = [n for n in r.notes if "CARPSCOPE_TEST_WEB_B is not set" in n]
    assert len(note) == 1 and "site.toml:26" in note[0] and "not compared" in note[0]
    # a ucarp --passfile that lives on the real host
    u = write(tmp_path, "u.sh", "ucarp -i eth0 -s 10.0.0.9 -v 4 --passfile=/etc/ucarp/vhid4.pw -a 10.0.0.4\n")
    r = run([u])
    assert r.findings == [] and any("/etc/ucarp/vhid4.pw" in n for n in r.notes)


# -- config-vip-mismatch -----------------------------------------------------------------------------

def test_vip_mismatch_order_does_not_matter_but_sets_do(tmp_path):
    a = rc(tmp_path, "a", "10.0.0.2", "inet vhid 1 pass p1p1p1 10.0.0.1/32", "inet vhid 1 pass p1p1p1 10.0.0.5/32")
    b = rc(tmp_path, "b", "10.0.0.3", "inet vhid 1 advskew 9 pass p1p1p1 10.0.0.5/32",
           "inet vhid 1 advskew 9 pass p1p1p1 10.0.0.1/32")
    assert "config-vip-mismatch" not in rules(run([a, b]))
    edit(b, 'ifconfig_em0_alias1="inet vhid 1 advskew 9 pass p1p1p1 10.0.0.1/32"\n', "")
    r = run([a, b])
    f = only(r, "config-vip-mismatch")
    assert len(f) == 1 and "missing 10.0.0.1" in f[0].message and Path(f[0].source).name == "b.rc.conf"


# -- config-skew-order -------------------------------------------------------------------------------

def test_skew_order_explicit_primary_slower_than_backup(tmp_path):
    a = rc(tmp_path, "a", "10.0.0.2", "inet vhid 1 advskew 100 state master pass p1p1p1 10.0.0.1/32")
    b = rc(tmp_path, "b", "10.0.0.3", "inet vhid 1 advskew 10 pass p1p1p1 10.0.0.1/32")
    f = only(run([a, b]), "config-skew-order")
    assert len(f) == 1 and "wins the election" in f[0].message and Path(f[0].source).name == "b.rc.conf"


def test_skew_order_counts_advbase_clamp_and_demotion(tmp_path):
    # advbase dominates advskew: a has advbase 1 advskew 200, b advbase 2 advskew 0 -> a is faster
    a = rc(tmp_path, "a", "10.0.0.2", "inet vhid 1 advskew 200 pass p1p1p1 10.0.0.1/32")
    b = rc(tmp_path, "b", "10.0.0.3", "inet vhid 1 advbase 2 pass p1p1p1 10.0.0.1/32")
    assert "config-skew-order" not in rules(run([a, b]))
    # two backups at 245 and 250 both advertise 240: a tie
    c = rc(tmp_path, "c", "10.0.0.4", "inet vhid 1 advskew 245 pass p1p1p1 10.0.0.1/32")
    d = rc(tmp_path, "d", "10.0.0.5", "inet vhid 1 advskew 250 pass p1p1p1 10.0.0.1/32")
    e = rc(tmp_path, "e", "10.0.0.6", "inet vhid 1 pass p1p1p1 10.0.0.1/32")
    r = run([c, d, e])
    f = only(r, "config-skew-order")
    assert len(f) == 1 and "backups c and d" in f[0].message and "advertised as 240" in f[0].message
    assert len(only(r, "config-advskew-clamped")) == 2
    # demotion from sysctl.conf pushes the primary's advertised skew up to the backup's
    p = rc(tmp_path, "p", "10.0.0.7", "inet vhid 2 pass p1p1p1 10.0.1.1/32")
    q = rc(tmp_path, "q", "10.0.0.8", "inet vhid 2 advskew 100 pass p1p1p1 10.0.1.1/32")
    s = write(tmp_path, "p.sysctl.conf", "net.inet.carp.demotion=100\n")
    f = only(run([p, q, s]), "config-skew-order")
    assert len(f) == 1 and "demotion 100" in f[0].message


def test_skew_order_vrrp_equal_priority(tmp_path):
    lb1 = write(tmp_path, "lb1.conf", "vrrp_instance V {\n interface eth0\n virtual_router_id 7\n priority 100\n"
                                      " virtual_ipaddress {\n  10.9.0.1/24\n }\n}\n")
    lb2 = write(tmp_path, "lb2.conf", "vrrp_instance V {\n interface eth0\n virtual_router_id 7\n"
                                      " virtual_ipaddress {\n  10.9.0.1/24\n }\n}\n")
    f = only(run([lb1, lb2]), "config-skew-order")
    assert len(f) == 1 and "priority 100" in f[0].message and f[0].source == str(lb2) and f[0].line == 3
    edit(lb1, "priority 100", "priority 101")
    assert "config-skew-order" not in rules(run([lb1, lb2]))


# -- config-vhid-reuse -------------------------------------------------------------------------------

def test_vhid_reuse_carp_and_vrrp_on_one_segment(tmp_path):
    a = rc(tmp_path, "a", "10.0.0.2", "inet vhid 51 pass p1p1p1 10.0.0.1/32")
    k = write(tmp_path, "k1.conf", "vrrp_instance V {\n interface eth0\n virtual_router_id 51\n"
                                   " virtual_ipaddress {\n  10.0.0.200\n }\n}\n")
    r = run([a, k])
    f = only(r, "config-vhid-reuse")
    assert len(f) == 2 and all("CARP and VRRP" in x.message and "00:00:5e:00:01:33" in x.message for x in f)
    # one at each place; the keepalived host's segment was found through its VIP
    assert {(x.source, x.line) for x in f} == {(str(a), 3), (str(k), 3)}
    edit(k, "virtual_router_id 51", "virtual_router_id 52")
    assert "config-vhid-reuse" not in rules(run([a, k]))


def test_vhid_reuse_two_clusters_same_id(tmp_path):
    files = [rc(tmp_path, "a1", "10.0.0.2", "inet vhid 1 pass p1p1p1 10.0.0.100/32"),
             rc(tmp_path, "a2", "10.0.0.3", "inet vhid 1 advskew 100 pass p1p1p1 10.0.0.100/32"),
             rc(tmp_path, "b1", "10.0.0.4", "inet vhid 1 pass p2p2p2 10.0.0.200/32"),
             rc(tmp_path, "b2", "10.0.0.5", "inet vhid 1 advskew 100 pass p2p2p2 10.0.0.200/32")]
    r = run(files)
    assert rules(r).count("config-vhid-reuse") == 1
    # each cluster is checked on its own: no VIP or passphrase mismatch across them
    assert "config-vip-mismatch" not in rules(r) and "config-pass-mismatch" not in rules(r)


def test_vhid_reuse_vrrp_versions(tmp_path):
    k1 = write(tmp_path, "k1.conf", "vrrp_instance V {\n interface eth0\n virtual_router_id 9\n priority 150\n"
                                    " virtual_ipaddress {\n  10.5.0.1/24\n }\n}\n")
    k2 = write(tmp_path, "k2.conf", "global_defs {\n vrrp_version 3\n}\nvrrp_instance V {\n interface eth0\n"
                                    " virtual_router_id 9\n virtual_ipaddress {\n  10.5.0.1/24\n }\n}\n")
    f = only(run([k1, k2]), "config-vhid-reuse")
    assert len(f) == 2 and "VRRPv2 and VRRPv3" in f[0].message


# -- config-advskew-clamped --------------------------------------------------------------------------

@pytest.mark.parametrize("skew, fires", [(240, False), (241, True), (254, True)])
def test_advskew_clamped(tmp_path, skew, fires):
    a = rc(tmp_path, "a", "10.0.0.2", "inet vhid 1 pass p1p1p1 10.0.0.1/32")
    b = rc(tmp_path, "b", "10.0.0.3", f"inet vhid 1 advskew {skew} pass p1p1p1 10.0.0.1/32")
    f = only(run([a, b]), "config-advskew-clamped")
    assert bool(f) == fires
    if fires:
        assert f[0].source == str(b) and f[0].line == 3 and f[0].severity == Severity.WARNING


# -- config-pass-truncated ---------------------------------------------------------------------------

def test_pass_truncated_bsd_warning_ucarp_error(tmp_path):
    a = rc(tmp_path, "a", "10.0.0.2", "inet vhid 1 pass abcdefghijklmnopqrs 10.0.0.1/32")   # 19: fine
    r = run([a])
    assert "config-pass-truncated" not in rules(r)
    u = write(tmp_path, "u.sh", "ucarp -i eth0 -s 10.0.0.9 -v 4 -p ucarp-too-long-password -a 10.0.0.4\n")
    f = only(run([u]), "config-pass-truncated")
    assert len(f) == 1 and f[0].severity == Severity.ERROR and "refuses" in f[0].message and f[0].line == 1


def test_pass_truncated_keepalived_8(tmp_path):
    k = write(tmp_path, "k.conf", "vrrp_instance V {\n interface eth0\n virtual_router_id 9\n authentication {\n"
                                  "  auth_type PASS\n  auth_pass longkeepalivedpw\n }\n}\n")
    f = only(run([k]), "config-pass-truncated")
    assert len(f) == 1 and "first 8" in f[0].message and f[0].line == 6


# -- config-missing-pass -----------------------------------------------------------------------------

def test_missing_pass(tmp_path):
    a = rc(tmp_path, "a", "10.0.0.2", "inet vhid 1 10.0.0.1/32")
    b = rc(tmp_path, "b", "10.0.0.3", "inet vhid 1 advskew 10 10.0.0.1/32")
    r = run([a, b])
    assert len(only(r, "config-missing-pass")) == 2 and "config-pass-mismatch" not in rules(r)
    k = write(tmp_path, "k.conf", "vrrp_instance V {\n interface eth0\n virtual_router_id 9\n}\n")
    assert "config-missing-pass" not in rules(run([k]))      # VRRP without auth is normal
    u = write(tmp_path, "u.sh", "ucarp -i eth0 -s 10.0.0.9 -v 4 -a 10.0.0.4\n")
    f = only(run([u]), "config-missing-pass")
    assert len(f) == 1 and f[0].severity == Severity.ERROR


# -- config-preempt ----------------------------------------------------------------------------------

def test_preempt_ucarp_and_keepalived():
    r = run(sorted((FIX / "ucarp").iterdir()))           # web1, the primary, runs with --preempt
    assert r.findings == []
    r = run([FIX / "keepalived" / "lb1" / "keepalived.conf", FIX / "keepalived" / "lb2" / "keepalived.conf"])
    f = only(r, "config-preempt")
    assert len(f) == 1 and f[0].vhid == 20 and f[0].line == 9 and "nopreempt" in f[0].message
    assert f[0].source.endswith("conf.d/internal.conf")


def test_freebsd_fixtures_are_clean():
    fb = FIX / "freebsd"
    r = run([fb / "fw1.rc.conf", fb / "fw1.sysctl.conf", fb / "fw1.loader.conf", fb / "fw2.rc.conf"])
    assert r.findings == [] and r.errors == []


# -- config-weak-passphrase --------------------------------------------------------------------------

def test_weak_passphrase_bsd_keepalived_and_inventory(tmp_path, monkeypatch):
    a = rc(tmp_path, "a", "10.0.0.2", "inet vhid 1 pass mekmitasdigoat 10.0.0.1/32")
    b = rc(tmp_path, "b", "10.0.0.3", "inet vhid 1 advskew 50 pass mekmitasdigoat 10.0.0.1/32")
    f = only(run([a, b]), "config-weak-passphrase")
    assert [(Path(x.source).name, x.line, x.severity, x.code) for x in f] == [
        ("a.rc.conf", 3, Severity.WARNING, "CS510"), ("b.rc.conf", 3, Severity.WARNING, "CS510")]
    assert "bundled list entry 6" in f[0].message and f[0].evidence["key"] == "a:vhid1"
    # keepalived keeps 8 characters: password1 is sent as "password", a listed default
    k = write(tmp_path, "k.conf", "vrrp_instance V {\n interface eth0\n virtual_router_id 9\n authentication {\n"
                                  "  auth_type PASS\n  auth_pass password1\n }\n}\n")
    f = only(run([k]), "config-weak-passphrase")
    assert [(x.line, x.protocol) for x in f] == [(6, "vrrp2")] and "entry 2" in f[0].message
    # an inventory's own passphrase is checked at its line
    monkeypatch.setenv("CARPSCOPE_TEST_WEAK", "carp")
    inv = write(tmp_path, "site.toml", "[[group]]\nprotocol = 'carp'\nid = 1\nsegment = 's'\n"
                                       "passphrase_env = 'CARPSCOPE_TEST_WEAK'\n")
    f = only(run([inv]), "config-weak-passphrase")
    assert [(Path(x.source).name, x.line) for x in f] == [("site.toml", 5)]


def test_weak_passphrase_near_misses(tmp_path):
    for i, pw in enumerate(["Testpass", "testpass2", "testpassXXXXXXXXXXXXXXXXXXXX"]):
        a = rc(tmp_path, f"n{i}", "10.0.0.2", f"inet vhid 1 pass {pw} 10.0.0.1/32")
        assert "config-weak-passphrase" not in rules(run([a])), pw
    # no passphrase at all is config-missing-pass, not this rule
    assert rules(run([rc(tmp_path, "e", "10.0.0.2", "inet vhid 1 10.0.0.1/32")])) == ["config-missing-pass"]


# -- config-vip-outside-subnet -----------------------------------------------------------------------

def test_vip_outside_subnet(tmp_path):
    a = rc(tmp_path, "a", "10.0.0.2", "inet vhid 1 pass p1p1p1 10.0.1.1/32",
           "inet6 vhid 1 pass p1p1p1 2001:db8::1 prefixlen 64")
    f = only(run([a]), "config-vip-outside-subnet")
    # the IPv6 VIP is not judged: the interface has no IPv6 address in the rc.conf
    assert [(x.line, x.evidence["vip"], x.evidence["subnets"]) for x in f] == [(3, "10.0.1.1", ["10.0.0.0/24"])]
    assert f[0].severity == Severity.WARNING and f[0].code == "CS511"
    b = rc(tmp_path, "b", "10.0.0.2", "inet vhid 1 pass p1p1p1 10.0.0.1/32",
           extra='ifconfig_em0_ipv6="inet6 2001:db8::2 prefixlen 64"\n'
                 'ifconfig_em0_alias1="inet6 vhid 1 pass p1p1p1 2001:db8::1 prefixlen 64"\n')
    assert "config-vip-outside-subnet" not in rules(run([b]))
    # keepalived does not say which subnets eth0 has: not judged
    k = write(tmp_path, "k.conf", "vrrp_instance V {\n interface eth0\n virtual_router_id 9\n"
                                  " virtual_ipaddress {\n  172.31.0.1/24\n }\n}\n")
    assert "config-vip-outside-subnet" not in rules(run([k]))


# -- config-vip-conflict -----------------------------------------------------------------------------

def test_vip_conflict(tmp_path):
    a = rc(tmp_path, "a", "10.0.0.2", "inet vhid 3 pass p1p1p1 10.0.0.1/32")
    b = rc(tmp_path, "b", "10.0.0.3", "inet vhid 4 advskew 100 pass p1p1p1 10.0.0.1/32")
    f = only(run([a, b]), "config-vip-conflict")
    assert [(x.source, x.line, x.vhid, x.severity) for x in f] == [(str(b), 3, 4, Severity.ERROR)]
    assert "a has it in carp vhid 3" in f[0].message and f[0].cause == "vhid-conflict"
    edit(b, "vhid 4", "vhid 3")
    assert "config-vip-conflict" not in rules(run([a, b]))
    # the same id on one segment twice is config-vhid-reuse, not a second finding here
    k = write(tmp_path, "k.conf", "vrrp_instance V {\n interface eth0\n virtual_router_id 3\n"
                                  " virtual_ipaddress {\n  10.0.0.1/24\n }\n}\n")
    r = run([a, k])
    assert "config-vhid-reuse" in rules(r) and "config-vip-conflict" not in rules(r)


# -- config-unicast-peer -----------------------------------------------------------------------------

def ka(tmp_path, name, src, prio, peers=None, extra="", glob=""):
    uni = f" unicast_src_ip {src}\n unicast_peer {{\n" + "".join(f"  {p}\n" for p in peers) + " }\n" \
        if peers is not None else ""
    return write(tmp_path, f"{name}.conf", (f"global_defs {{\n{glob}}}\n" if glob else "") +
                 f"vrrp_instance V {{\n interface eth0\n virtual_router_id 51\n priority {prio}\n{uni}{extra}"
                 " authentication {\n  auth_type PASS\n  auth_pass kp-uni-51\n }\n"
                 " virtual_ipaddress {\n  10.0.0.100/24\n }\n}\n")


def test_unicast_peer_missing_and_mixed(tmp_path):
    good = [ka(tmp_path, "lb1", "10.0.0.1", 150, ["10.0.0.2"]), ka(tmp_path, "lb2", "10.0.0.2", 100, ["10.0.0.1"])]
    assert "config-unicast-peer" not in rules(run(good))
    wrong = ka(tmp_path, "lb1", "10.0.0.1", 150, ["10.0.0.9"])
    f = only(run([wrong, good[1]]), "config-unicast-peer")
    assert [(x.source, x.line, x.severity, x.code) for x in f] == [(str(wrong), 6, Severity.ERROR, "CS513")]
    assert "lb2 (10.0.0.2) is not among them" in f[0].message
    mixed = ka(tmp_path, "lb2", "10.0.0.2", 100, None)
    f = only(run([good[0], mixed]), "config-unicast-peer")
    assert len(f) == 1 and "uses multicast" in f[0].message and f[0].source == str(good[0])


def test_unicast_peer_with_ucarp_and_between_freebsd_members(tmp_path):
    """ucarp has no unicast mode and ignores adverts not sent to its multicast address (src/carp.c
    packethandler); FreeBSD does not compare the destination, so two FreeBSD members, one with a
    peer, hear each other."""
    fw1 = rc(tmp_path, "fw1", "10.0.0.7", "inet vhid 4 peer 10.0.0.9 pass uni-4-pass 10.0.0.4/32")
    fw2 = rc(tmp_path, "fw2", "10.0.0.9", "inet vhid 4 advskew 100 pass uni-4-pass 10.0.0.4/32")
    assert "config-unicast-peer" not in rules(run([fw1, fw2]))
    u = write(tmp_path, "u.sh", "ucarp -i em0 -s 10.0.0.9 -v 4 -p uni-4-pass -a 10.0.0.4 -k 100\n")
    f = only(run([fw1, u]), "config-unicast-peer")
    assert len(f) == 1 and f[0].source == str(fw1) and f[0].severity == Severity.ERROR
    assert "ucarp drops adverts of the other kind" in f[0].message
    assert "Ignoring different multicast ip" in f[0].message


def test_unicast_peer_ttl_window_and_source_check(tmp_path):
    lb1 = ka(tmp_path, "lb1", "10.0.0.1", 150, ["10.0.0.2"])
    lb2 = ka(tmp_path, "lb2", "10.0.0.2", 100, ["10.0.0.1 min_ttl 250 max_ttl 254"])
    f = only(run([lb1, lb2]), "config-unicast-peer")
    assert [(x.source, x.line) for x in f] == [(str(lb2), 6)] and "TTL 255 (keepalived default)" in f[0].message
    lb1 = ka(tmp_path, "lb1", "10.0.0.1", 150, ["10.0.0.2"], extra=" unicast_ttl 254\n")
    assert "config-unicast-peer" not in rules(run([lb1, lb2]))
    lb2 = ka(tmp_path, "lb2", "10.0.0.2", 100, ["10.0.0.1 min_ttl 255 max_ttl 250"])
    f = only(run([lb2]), "config-unicast-peer")
    assert len(f) == 1 and "discards all" in f[0].message
    # the source check: lb2 lists 10.0.0.7 only, but lb1's adverts come from 10.0.0.1
    lb2 = ka(tmp_path, "lb2", "10.0.0.2", 100, ["10.0.0.1", "10.0.0.7"], glob=" vrrp_check_unicast_src\n")
    assert "config-unicast-peer" not in rules(run([lb1, lb2]))
    lb3 = ka(tmp_path, "lb3", "10.0.0.3", 50, ["10.0.0.1", "10.0.0.2"])
    f = only(run([lb1, lb2, lb3]), "config-unicast-peer")
    assert {(Path(x.source).name, x.evidence.get("missing")) for x in f} == {("lb1.conf", "lb3"), ("lb2.conf", "lb3")}


# -- config-sync-group -------------------------------------------------------------------------------

def sync_host(tmp_path, name, p51, p52):
    return write(tmp_path, f"{name}.conf",
                 "vrrp_sync_group VG_1 {\n group {\n  VI_1\n  VI_2\n }\n}\n" +
                 "".join(f"vrrp_instance VI_{i} {{\n interface eth0\n virtual_router_id {vr}\n priority {p}\n"
                         f" authentication {{\n  auth_type PASS\n  auth_pass kp-sync-1\n }}\n"
                         f" virtual_ipaddress {{\n  10.0.0.{vr}/24\n }}\n}}\n"
                         for i, vr, p in ((1, 51, p51), (2, 52, p52))))


def test_sync_group(tmp_path):
    good = [sync_host(tmp_path, "lb1", 150, 150), sync_host(tmp_path, "lb2", 100, 100)]
    assert "config-sync-group" not in rules(run(good))
    bad = [sync_host(tmp_path, "lb1", 150, 100), sync_host(tmp_path, "lb2", 100, 150)]
    f = only(run(bad), "config-sync-group")
    assert [(Path(x.source).name, x.line, x.severity, x.code) for x in f] == [
        ("lb1.conf", 1, Severity.WARNING, "CS514"), ("lb2.conf", 1, Severity.WARNING, "CS514")]
    assert "VI_1 (vrrp2 VRID 51): lb1; VI_2 (vrrp2 VRID 52): lb2" in f[0].message
    # a sync group whose peer configuration is not given is not judged
    assert "config-sync-group" not in rules(run(bad[:1]))


# -- parse errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, text, line", [
    ("bad.rc.conf", 'hostname="x"\nexport FOO=1\n', 2),
    ("bad.rc.conf", 'ifconfig_em0="inet 10.0.0.2/24\n', 1),
    ("keepalived.conf", "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n", 1),
    ("inv.toml", "[[group]]\nprotocol = 'carp'\nid = 1\nsegment = 's'\nbogus = 1\n", 5),
    ("x.service", "[Service]\nExecStart=/usr/sbin/ucarp -i eth0 --frobnicate\n", 2),
    ("interfaces", "iface eth0 inet static\n address 10.0.0.2/24\n ucarp-vid 3\n ucarp-vip nope\n ucarp-password p\n", 3),
])
def test_parse_errors_are_findings_with_file_and_line(tmp_path, name, text, line):
    p = write(tmp_path, name, text)
    good = rc(tmp_path, "good", "10.0.0.2", "inet vhid 1 pass testpass 10.0.0.1/32")
    r = run([p, good])
    f = only(r, "config-parse-error")
    assert len(f) == 1 and (f[0].source, f[0].line) == (str(p), line)
    assert f[0].severity == Severity.ERROR and "\n" not in f[0].message and "Traceback" not in f[0].message
    assert len(r.errors) == 1 and isinstance(r.errors[0], ConfigError)
    assert r.inventory.host("good") is not None              # the rest is still read


def test_unreadable_and_unknown_files(tmp_path):
    r = run([tmp_path / "nope.rc.conf", write(tmp_path, "notes.txt", "hello world\n"), tmp_path])
    msgs = [f.message for f in only(r, "config-parse-error")]
    assert len(msgs) == 3
    assert any("cannot read" in m for m in msgs) and any("cannot tell what kind" in m for m in msgs)
    assert any("directory" in m for m in msgs)


# -- every rule covered, and no secret anywhere --------------------------------------------------------

def test_every_config_rule_has_a_doc_page():
    for slug in CONFIG_RULES:
        text = rule_page(lookup(slug))
        assert text is not None, slug
        for heading in ("What it detects", "Why it matters", "Example", "Likely causes", "How to fix",
                        "Exceptions", "References"):
            assert heading in text, (slug, heading)


def _outputs(r: LintResult) -> str:
    from carpscope.config import inventory_to_toml
    return "\n".join([json.dumps([f.to_json() for f in r.findings]), "\n".join(map(str, r.errors)),
                      "\n".join(map(repr, r.errors)), "\n".join(r.notes), repr(r.inventory),
                      inventory_to_toml(r.inventory)])


def test_no_passphrase_in_the_fixtures_output(monkeypatch):
    monkeypatch.setenv("CARPSCOPE_TEST_WEB_B", "inv-secret-value")
    r = run(sorted(p for p in FIX.rglob("*") if p.is_file() and p.suffix != ".md" and p.parent.name != "secrets"))
    assert len(r.inventory.groups) > 8
    text = _outputs(r)
    for s in SECRETS:
        assert s not in text, s


def test_zz_every_rule_was_triggered_and_no_passphrase_in_any_output():
    """Runs last in this file: greps every lint result the tests above produced."""
    for r in RESULTS:
        text = _outputs(r)
        for s in SECRETS:
            assert s not in text, s
    if len(RESULTS) < 30:
        pytest.skip("rule coverage is checked when the whole file runs")
    seen = {f.rule for r in RESULTS for f in r.findings}
    assert set(CONFIG_RULES) <= seen, set(CONFIG_RULES) - seen
