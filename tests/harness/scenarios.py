"""The bundled scenarios: hosts, speakers, the actions taken, and the ground truth expected.

Each scenario's `run` drives a Lab whose capture is already running; `expect` states what the
capture must show (checked against the recording by record.py before anything is written).
Findings assume analysis with the scenario's .keys file and its VIPs (see the sidecar's
`analyze` block).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from .netns import Host, Lab
from .speakers import Keepalived, Ucarp

MASTER_WAIT = 9.0   # ucarp sends its first advert 3-4 s after start (libpcap 1 s timeout)

# rule slugs (carpscope.rules.catalogue())
WIRE_CLEAN = ["bad-ttl", "bad-checksum", "malformed"]
AUTH_CLEAN = ["hmac-mismatch", "passphrase-mismatch", "vip-set-mismatch", "hmac-unchecked"]


@dataclass
class Scenario:
    name: str
    description: str
    hosts: list[Host]
    run: Callable[[Lab], None]
    expect: dict
    keys: dict[str, str] = field(default_factory=dict)   # label -> passphrase
    final_window: float = 2.5       # seconds before the capture stop that define "final masters"
    must_advertise: dict[str, list[str]] = field(default_factory=dict)  # seen at any time
    ttl_by_source: dict[str, int] = field(default_factory=dict)         # default 255


def _sleep(s: float) -> None:
    time.sleep(s)


def _start_all(lab: Lab, *specs) -> None:
    for s in specs:
        lab.start(s)


# ---------------------------------------------------------------------------- handbook

HB_NET = "192.168.1.0/24"
HB_HOSTS = [Host("hosta", "192.168.1.3/24", mac="02:00:00:00:01:03"),
            Host("hostb", "192.168.1.4/24", mac="02:00:00:00:01:04"),
            Host("hostc", "192.168.1.5/24", mac="02:00:00:00:01:05")]


def _handbook(lab: Lab) -> None:
    pw = "testpass"
    _start_all(lab, Ucarp("hosta", 1, pw, "192.168.1.50", label="handbook"),
               Ucarp("hostb", 2, pw, "192.168.1.51", label="handbook"))
    lab.wait_state("hosta", "carp:1", "MASTER", MASTER_WAIT)
    lab.wait_state("hostb", "carp:2", "MASTER", MASTER_WAIT)
    # the backup comes up once the primaries advertise (as after a normal boot), so ucarp's
    # late packet delivery cannot make it advertise at start-up
    _start_all(lab, Ucarp("hostc", 1, pw, "192.168.1.50", advskew=100, label="handbook"),
               Ucarp("hostc", 2, pw, "192.168.1.51", advskew=100, label="handbook"))
    _sleep(6)


HANDBOOK = Scenario(
    name="handbook",
    description="FreeBSD handbook CARP example with ucarp (one process per vhid): hosta 192.168.1.3 "
                "vhid 1 VIP .50 advskew 0, hostb .4 vhid 2 VIP .51 advskew 0, hostc .5 backs up "
                "both with advskew 100; the handbook's password (key 'handbook'), advbase 1. hostc starts once both "
                "primaries are MASTER and stays a silent BACKUP.",
    hosts=HB_HOSTS, run=_handbook, keys={"handbook": "testpass"},
    expect={"masters": {"carp:1": ["192.168.1.3"], "carp:2": ["192.168.1.4"]}, "split_brain": False,
            "findings_present": [],
            "findings_absent": ["split-brain", "vhid-conflict", "skew-tie", "advbase-mismatch",
                                *AUTH_CLEAN, *WIRE_CLEAN]},
)

# ---------------------------------------------------------------------------- failover

FW_NET = "10.20.30.0/24"
FW_HOSTS = [Host("fw1", "10.20.30.2/24"), Host("fw2", "10.20.30.3/24")]


def _failover_run(fw1: Ucarp, fw2: Ucarp, restart: Ucarp, wait_back: bool) -> Callable[[Lab], None]:
    def run(lab: Lab) -> None:
        p1 = lab.start(fw1)
        lab.wait_state("fw1", fw1.ident, "MASTER", MASTER_WAIT)
        lab.start(fw2)
        _sleep(3)
        since = time.time()
        lab.stop(p1)
        lab.wait_state("fw2", fw2.ident, "MASTER", MASTER_WAIT, since=since)
        _sleep(1.5)
        since = time.time()
        lab.start(restart)
        if wait_back:
            lab.wait_state("fw1", fw1.ident, "MASTER", 6, since=since)
            _sleep(3)
        else:
            _sleep(4.5)
    return run


_F7 = dict(vhid=7, passphrase="fw7-Secret", vip="10.20.30.1", label="fw7")
_FO1, _FO2 = Ucarp("fw1", advskew=0, **_F7), Ucarp("fw2", advskew=50, **_F7)
FAILOVER = Scenario(
    name="failover",
    description="ucarp vhid 7 on 10.20.30.0/24, VIP 10.20.30.1: fw1 (.2, advskew 0) is MASTER, fw2 "
                "(.3, advskew 50) BACKUP. fw1's ucarp is stopped (SIGTERM) mid-run; fw2 takes over "
                "after about 3*advbase + 50/256 s (ucarp: 1-2 s later). fw1 is restarted WITHOUT "
                "preempt and stays a silent BACKUP: the final master is fw2.",
    hosts=FW_HOSTS, run=_failover_run(_FO1, _FO2, _FO1, wait_back=False), keys={"fw7": "fw7-Secret"},
    expect={"masters": {"carp:7": ["10.20.30.3"]}, "split_brain": False,
            "findings_present": [],
            "findings_absent": ["split-brain", "vhid-conflict", "skew-tie", *AUTH_CLEAN, *WIRE_CLEAN],
            "notes": "The gap between fw1's last advert and fw2's first is ucarp's real takeover "
                     "time (about 4-5 s, above the nominal master-down interval 3.195 s)."},
    must_advertise={"carp:7": ["10.20.30.2", "10.20.30.3"]},
)

_F42 = dict(vhid=42, passphrase="Vhid42-preempt", vip="10.20.30.254", label="fw42", preempt=True)
_FP1, _FP2 = Ucarp("fw1", advskew=0, **_F42), Ucarp("fw2", advskew=100, **_F42)
FAILOVER_PREEMPT = Scenario(
    name="failover-preempt",
    description="ucarp vhid 42 on 10.20.30.0/24, VIP 10.20.30.254, both with preempt: fw1 (.2, "
                "advskew 0) MASTER, fw2 (.3, advskew 100) BACKUP. fw1's ucarp is stopped mid-run, "
                "fw2 takes over, fw1 is restarted (preempt) and takes the VIP back on fw2's next "
                "advert; fw2 steps down within about 1 s. Final master fw1.",
    hosts=FW_HOSTS, run=_failover_run(_FP1, _FP2, _FP1, wait_back=True), keys={"fw42": "Vhid42-preempt"},
    expect={"masters": {"carp:42": ["10.20.30.2"]}, "split_brain": False,
            "findings_present": [],
            "findings_absent": ["vhid-conflict", "skew-tie", *AUTH_CLEAN, *WIRE_CLEAN],
            "notes": "Right after fw1's preempting restart both speakers advertise for up to about "
                     "1-2 s (ucarp reads packets up to 1 s late): a transient overlap, not a split "
                     "brain; split-brain is therefore not listed as absent."},
    must_advertise={"carp:42": ["10.20.30.2", "10.20.30.3"]},
)

# ---------------------------------------------------------------------------- auth mismatches


def _pair_both_master(a: Ucarp, b: Ucarp, *, before: Callable[[Lab], None] | None = None):
    def run(lab: Lab) -> None:
        if before:
            before(lab)
        _start_all(lab, a, b)
        lab.wait_state(a.host, a.ident, "MASTER", MASTER_WAIT)
        lab.wait_state(b.host, b.ident, "MASTER", MASTER_WAIT)
        _sleep(5)
    return run


PASSPHRASE_MISMATCH = Scenario(
    name="passphrase-mismatch",
    description="ucarp vhid 42 on 10.20.30.0/24, same VIP 10.20.30.254, different passphrases: fw1 "
                "(.2, advskew 0) with key 'site-a', fw2 (.3, advskew 100) with key 'site-b'. Each "
                "drops the other's adverts (Bad digest) and both are MASTER: split brain.",
    hosts=FW_HOSTS,
    run=_pair_both_master(Ucarp("fw1", 42, "alpha-42-key", "10.20.30.254", label="site-a"),
                          Ucarp("fw2", 42, "bravo-42-key", "10.20.30.254", advskew=100, label="site-b")),
    keys={"site-a": "alpha-42-key", "site-b": "bravo-42-key"},
    expect={"masters": {"carp:42": ["10.20.30.2", "10.20.30.3"]}, "split_brain": True,
            "findings_present": ["split-brain", "passphrase-mismatch"],
            "findings_absent": ["vip-set-mismatch", "hmac-mismatch", "hmac-unchecked", "vhid-conflict",
                                *WIRE_CLEAN],
            "notes": "With both keys given each speaker verifies, under a different key."},
)

VIP_MISMATCH = Scenario(
    name="vip-mismatch",
    description="ucarp vhid 5 on 192.168.1.0/24, same passphrase, different VIPs: hosta (.3, advskew 0) "
                "VIP 192.168.1.55, hostb (.4, advskew 100) VIP 192.168.1.56. The VIP is part of "
                "ucarp's HMAC, so each drops the other's adverts: both MASTER, split brain.",
    hosts=HB_HOSTS[:2],
    run=_pair_both_master(Ucarp("hosta", 5, "vip5-shared", "192.168.1.55", label="vip5"),
                          Ucarp("hostb", 5, "vip5-shared", "192.168.1.56", advskew=100, label="vip5")),
    keys={"vip5": "vip5-shared"},
    expect={"masters": {"carp:5": ["192.168.1.3", "192.168.1.4"]}, "split_brain": True,
            "findings_present": ["split-brain", "vip-set-mismatch"],
            "findings_absent": ["passphrase-mismatch", "vhid-conflict", *WIRE_CLEAN],
            "notes": "hosta's adverts verify with VIP set [192.168.1.55], hostb's with "
                     "[192.168.1.56], both under key 'vip5'."},
)

# ---------------------------------------------------------------------------- equal skew


def _equal_skew(lab: Lab) -> None:
    _start_all(lab, Ucarp("fw1", 7, "tie7-pass", "10.20.30.1", advskew=10, label="tie7"),
               Ucarp("fw2", 7, "tie7-pass", "10.20.30.1", advskew=10, label="tie7"))
    lab.wait_state("fw1", "carp:7", "MASTER", MASTER_WAIT)
    _sleep(6)


EQUAL_SKEW = Scenario(
    name="equal-skew",
    description="ucarp vhid 7 on 10.20.30.0/24, both speakers advbase 1 advskew 10, same passphrase "
                "and VIP, started together. Both time out and advertise; ucarp breaks the tie on the "
                "source address and fw2 (.3) steps down on fw1's (.2) advert. Final master fw1.",
    hosts=FW_HOSTS, run=_equal_skew, keys={"tie7": "tie7-pass"},
    expect={"masters": {"carp:7": ["10.20.30.2"]}, "split_brain": False,
            "findings_present": ["skew-tie"],
            "findings_absent": ["vhid-conflict", *AUTH_CLEAN, *WIRE_CLEAN],
            "notes": "Both advertise identical advbase/advskew at start (a short dual-master window "
                     "until the tie-break), then only fw1."},
    must_advertise={"carp:7": ["10.20.30.2", "10.20.30.3"]},
)

# ---------------------------------------------------------------------------- vhid collision


def _collision(lab: Lab) -> None:
    _start_all(lab, Keepalived("hosta", 1, priority=100, vips=("192.168.1.50/24",), version=2,
                               use_vmac=True),
               Ucarp("hostb", 1, "testpass", "192.168.1.51", label="ucarp1"))
    lab.wait_state("hosta", "vrrp:1", "MASTER", MASTER_WAIT)
    lab.wait_state("hostb", "carp:1", "MASTER", MASTER_WAIT)
    _sleep(6)


VHID_COLLISION = Scenario(
    name="vhid-collision",
    description="keepalived VRRPv2 VRID 1 (hosta .3, priority 100, use_vmac, VIP 192.168.1.50, no "
                "auth) and ucarp CARP vhid 1 (hostb .4, VIP .51) on one segment: both protocol 112 "
                "to 224.0.0.18 with first byte 0x21. Neither accepts the other's packets, each is "
                "MASTER of its own '1'.",
    hosts=HB_HOSTS[:2], run=_collision, keys={"ucarp1": "testpass"}, final_window=6.0,
    expect={"masters": {"vrrp:1": ["192.168.1.3"], "carp:1": ["192.168.1.4"]}, "split_brain": False,
            "findings_present": ["vhid-conflict"],
            "findings_absent": ["bad-ttl", "bad-checksum", "hmac-mismatch", "passphrase-mismatch"],
            "notes": "keepalived 2.2.7 re-arms its advert timer on every packet with its VRID, even "
                     "the CARP ones it rejects, so the VRRP master advertises less often than once a "
                     "second (every 1.5-5 s). "
                     "split_brain is false per protocol:id; a tool may still report the id clash "
                     "through split-brain with cause vhid-conflict, so split-brain is not listed."},
)

# ---------------------------------------------------------------------------- ttl


def _ttl_before(lab: Lab) -> None:
    lab.set_ttl("hostb", 254)


TTL = Scenario(
    name="ttl",
    description="ucarp vhid 1 on 192.168.1.0/24, VIP .50: hostb (.4, advskew 0) is the preferred "
                "master, hosta (.3) advskew 100. Every protocol-112 packet from hostb gets TTL 254 on "
                "its switch port (nftables netdev ingress). hosta drops them (Bad TTL) and becomes "
                "MASTER too: split brain.",
    hosts=HB_HOSTS[:2],
    run=_pair_both_master(Ucarp("hosta", 1, "ttl-test-pw", "192.168.1.50", advskew=100, label="ttl1"),
                          Ucarp("hostb", 1, "ttl-test-pw", "192.168.1.50", label="ttl1"),
                          before=_ttl_before),
    keys={"ttl1": "ttl-test-pw"},
    expect={"masters": {"carp:1": ["192.168.1.3", "192.168.1.4"]}, "split_brain": True,
            "findings_present": ["bad-ttl", "split-brain"],
            "findings_absent": ["bad-checksum", "malformed", *AUTH_CLEAN]},
    ttl_by_source={"192.168.1.4": 254},
)

# ---------------------------------------------------------------------------- keepalived


def _ka_pair(lo: Keepalived, hi: Keepalived) -> Callable[[Lab], None]:
    def run(lab: Lab) -> None:
        _start_all(lab, lo, hi)
        lab.wait_state(hi.host, hi.ident, "MASTER", MASTER_WAIT)
        _sleep(6)
    return run


VRRP_CLEAN = ["split-brain", "vhid-conflict", "vrrp-version-mix", "vrrp-address-mismatch",
              "vrrp-auth-mismatch", "priority-owner-conflict", *WIRE_CLEAN]

KA_VRRP2 = Scenario(
    name="keepalived-vrrp2",
    description="keepalived VRRPv2 VRID 51 on 10.20.30.0/24, VIP 10.20.30.51, advert_int 1, "
                "auth_type PASS (label 'vr2'): r1 (.2) priority 100, r2 (.3) priority 200. r2 is "
                "MASTER after about 3 s; r1 stays a silent BACKUP.",
    hosts=[Host("r1", "10.20.30.2/24"), Host("r2", "10.20.30.3/24")],
    run=_ka_pair(Keepalived("r1", 51, 100, ("10.20.30.51/24",), auth_pass="vr2pass", label="vr2"),
                 Keepalived("r2", 51, 200, ("10.20.30.51/24",), auth_pass="vr2pass", label="vr2")),
    keys={"vr2": "vr2pass"},
    expect={"masters": {"vrrp:51": ["10.20.30.3"]}, "split_brain": False,
            "findings_present": ["vrrp-cleartext-auth"], "findings_absent": VRRP_CLEAN},
)

KA_VRRP3 = Scenario(
    name="keepalived-vrrp3",
    description="keepalived VRRPv3 (IPv4) VRID 1 on 192.168.1.0/24, VIP 192.168.1.50, advert_int "
                "0.5 s (50 centiseconds), no auth: hosta (.3) priority 100, hostb (.4) priority 150. "
                "hostb is MASTER.",
    hosts=HB_HOSTS[:2],
    run=_ka_pair(Keepalived("hosta", 1, 100, ("192.168.1.50/24",), advert_int=0.5, version=3),
                 Keepalived("hostb", 1, 150, ("192.168.1.50/24",), advert_int=0.5, version=3)),
    expect={"masters": {"vrrp:1": ["192.168.1.4"]}, "split_brain": False, "findings_present": [],
            "findings_absent": [*VRRP_CLEAN, "vrrp3-legacy-checksum", "vrrp-cleartext-auth"]},
)

V6_HOSTS = [Host("r1", ipv6=("fe80::2/64", "2001:db8:30::2/64"), mac="02:00:00:30:00:02"),
            Host("r2", ipv6=("fe80::3/64", "2001:db8:30::3/64"), mac="02:00:00:30:00:03")]
_V6 = dict(vrid=12, vips=("fe80::12/64", "2001:db8:30::12/64"), version=3, native_ipv6=True)
KA_VRRP3_V6 = Scenario(
    name="keepalived-vrrp3-ipv6",
    description="keepalived VRRPv3 over IPv6, VRID 12 on 2001:db8:30::/64, VIPs fe80::12 (link-local "
                "first) and 2001:db8:30::12, advert_int 1: r1 (fe80::2) priority 100, r2 (fe80::3) "
                "priority 150. Adverts go from the link-local source to ff02::12, hop limit 255. "
                "r2 is MASTER.",
    hosts=V6_HOSTS,
    run=_ka_pair(Keepalived("r1", priority=100, **_V6), Keepalived("r2", priority=150, **_V6)),
    expect={"masters": {"vrrp:12": ["fe80::3"]}, "split_brain": False, "findings_present": [],
            "findings_absent": [*VRRP_CLEAN, "vrrp3-legacy-checksum", "vrrp-cleartext-auth"]},
)

SCENARIOS: dict[str, Scenario] = {s.name: s for s in [
    HANDBOOK, FAILOVER, FAILOVER_PREEMPT, PASSPHRASE_MISMATCH, VIP_MISMATCH, EQUAL_SKEW,
    VHID_COLLISION, TTL, KA_VRRP2, KA_VRRP3, KA_VRRP3_V6]}

__all__ = ["Scenario", "SCENARIOS"]
