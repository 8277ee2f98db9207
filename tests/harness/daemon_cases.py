"""Real-daemon behaviours carpscope must read right (issue 14), as recordable cases.

Each case runs real ucarp 1.5.2 / keepalived 2.2.7 speakers in the lab, on addresses, VHIDs and
timings of its own (none of the bundled captures'), and states:

* ``require``: what the recording must show for the case to be meaningful (the daemons did
  the thing: a dual-master window, a counter sent by two hosts, a priority-0 advert...). A run
  that does not show it is recorded again (record_daemons.py), never silently accepted;
* ``expect``: what carpscope must report on it: findings present / absent, no error at all
  (the near misses), the split brain's speakers and cause (its windows come from the daemons'
  own state changes, see truth.py), each group once (``tcpdump -i any``), a storm finding.

The behaviours relied on are in docs/implementations.md, with the source each was read from.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from . import impair
from .netns import Host, Lab, LabError
from .speakers import Keepalived, Ucarp

WAIT = 9.0   # ucarp's first advert comes 3-4 s after start (libpcap 1 s timeout); keepalived 3-4 s

KA_NET = [Host("ra", "172.31.14.11/24"), Host("rb", "172.31.14.12/24")]
UC_NET = [Host("fa", "10.61.4.2/24"), Host("fb", "10.61.4.3/24")]
RA, RB, FA, FB = "172.31.14.11", "172.31.14.12", "10.61.4.2", "10.61.4.3"


@dataclass
class Case:
    name: str
    description: str
    hosts: list[Host]
    run: Callable[[Lab], dict | None]
    expect: dict
    require: Callable[[dict], list[str]] = lambda truth: []
    keys: dict[str, str] = field(default_factory=dict)       # label -> passphrase (keys file)
    vips: dict[int, list[str]] = field(default_factory=dict)  # --vip given to carpscope
    interface: str | None = None                              # capture interface; None: the bridge
    max_bytes: int = 100_000
    attempts: int = 3                                         # runs to get a recording that serves


def _wait_master(lab: Lab, spec, since: float | None = None, timeout: float = WAIT) -> None:
    lab.wait_state(spec.host, spec.ident, "MASTER", timeout, since=since)


# ---------------------------------------------------------------------------- truth helpers

def _dual(truth: dict, ident: str) -> list[dict]:
    return truth["daemons"]["dual_master"].get(ident, [])


def _src(truth: dict, ident: str, ip: str) -> dict:
    return truth["wire"]["adverts"].get(ident, {}).get(ip, {})


def _need(cond: bool, msg: str) -> list[str]:
    return [] if cond else [msg]


# ---------------------------------------------------------------------------- keepalived

_V114 = dict(vrid=114, vips=("172.31.14.114/24",))


def _version_mix(lab: Lab) -> None:
    a2 = Keepalived("ra", priority=150, version=2, **_V114)
    b3 = Keepalived("rb", priority=100, version=3, **_V114)
    pa = lab.start(a2)
    time.sleep(1)
    lab.start(b3)
    _wait_master(lab, a2)
    _wait_master(lab, b3, timeout=12)
    time.sleep(5)
    since = time.time()
    lab.stop(pa)                  # ra resigns (priority 0), comes back 2 s later
    time.sleep(2)
    lab.start(a2)
    _wait_master(lab, a2, since=since)
    time.sleep(4)


KA_VERSION_MIX = Case(
    name="ka-version-mix",
    description="keepalived VRRPv2 (ra 172.31.14.11, priority 150) and VRRPv3 (rb .12, priority "
                "100) on VRID 114, VIP 172.31.14.114, advert_int 1. Each logs 'wrong version' for "
                "the other's adverts and both are MASTER. ra is stopped (SIGTERM: priority-0 advert) "
                "and restarted 2 s later; rb, VRRPv3, holds the VIP throughout.",
    hosts=KA_NET, run=_version_mix,
    require=lambda t: (_need(sum(w["seconds"] for w in _dual(t, "vrrp:114")) >= 5, "no 5 s of dual master")
                       + _need(bool(_src(t, "vrrp:114", RA).get("priority_zero_s")), "no priority-0 from ra")),
    expect={"findings_present": ["split-brain", "vrrp-version-mix"],
            "findings_absent": ["master-gap", "skew-tie"],
            "split_brain": {"id": "vrrp:114", "speakers": [RA, RB], "cause": "version"},
            "notes": "Across versions is still one VRID and one VIP: the v2 and the v3 master both "
                     "answer for 172.31.14.114 (both send gratuitous ARPs). While ra was away the v3 "
                     "master held the VIP, so the v2 side's silence is no outage."},
)

_V77 = dict(vrid=77, vips=("172.31.14.77/24",), version=2)


def _interval_mismatch(lab: Lab) -> None:
    a = Keepalived("ra", priority=150, advert_int=1, **_V77)
    b = Keepalived("rb", priority=100, advert_int=2, **_V77)
    pa = lab.start(a)
    _wait_master(lab, a)
    pb = lab.start(b)
    _wait_master(lab, b, timeout=14)   # master down 3 x 2 s + skew: discarded adverts do not reset it
    time.sleep(7)
    lab.stop_together([pa, pb])        # both resign: priority 0 from each


KA_INTERVAL_MISMATCH = Case(
    name="ka-interval-mismatch",
    description="keepalived VRRPv2 VRID 77, VIP 172.31.14.77: ra (.11) priority 150 advert_int 1, "
                "rb (.12) priority 100 advert_int 2. Each drops the other's adverts ('advertisement "
                "interval mismatch'), so rb becomes MASTER too; then ra's adverts, every second, "
                "re-arm rb's 2 s advert timer on every receipt, so rb is an almost silent master "
                "(its first advert, its gratuitous ARPs, and the priority-0 advert when both stop).",
    hosts=KA_NET, run=_interval_mismatch,
    require=lambda t: (_need(sum(w["seconds"] for w in _dual(t, "vrrp:77")) >= 5, "no 5 s of dual master")
                       + _need(0 < _src(t, "vrrp:77", RB).get("adverts", 0) <= 4,
                               f"rb sent {_src(t, 'vrrp:77', RB).get('adverts')} adverts, not 1-4")
                       + _need(bool(_src(t, "vrrp:77", RB).get("priority_zero_s")), "no priority-0 from rb")
                       + _need(len(t["wire"]["garps"].get("172.31.14.77", {}).get("macs", [])) == 2,
                               "gratuitous ARPs for the VIP not from both hosts")),
    expect={"findings_present": ["split-brain", "advbase-mismatch"],
            "findings_absent": ["skew-tie"],
            "split_brain": {"id": "vrrp:77", "speakers": [RA, RB], "cause": "advbase"},
            "notes": "rb's few adverts are all the wire has of its mastership, with its gratuitous "
                     "ARPs for the VIP and its priority-0 resignation at the end."},
)

_V55 = dict(vrid=55, vips=("172.31.14.55/24",), version=2)


def _auth_split(lab: Lab) -> None:
    a = Keepalived("ra", priority=200, auth_pass="alpha55", label="ra-pass", **_V55)
    b = Keepalived("rb", priority=100, auth_pass="bravo55", label="rb-pass", **_V55)
    procs = [lab.start(a), lab.start(b)]
    _wait_master(lab, a)
    _wait_master(lab, b)
    time.sleep(5)
    lab.stop_together(procs)


KA_AUTH_SPLIT = Case(
    name="ka-auth-split",
    description="keepalived VRRPv2 VRID 55, VIP 172.31.14.55, auth_type PASS with different "
                "passwords: ra (.11) priority 200, rb (.12) priority 100. Each logs 'received an "
                "invalid passwd!' and both are MASTER; then both are stopped at once and each "
                "sends its priority-0 resignation.",
    hosts=KA_NET, run=_auth_split,
    require=lambda t: (_need(sum(w["seconds"] for w in _dual(t, "vrrp:55")) >= 4, "no 4 s of dual master")
                       + _need(all(_src(t, "vrrp:55", ip).get("priority_zero_s") for ip in (RA, RB)),
                               "not both resigned with priority 0")),
    expect={"findings_present": ["vrrp-auth-mismatch"],
            "findings_absent": ["skew-tie", "priority-owner-conflict"],
            "notes": "Both priority-0 adverts end the two runs; they are no tie of priorities. The "
                     "split brain itself is not asserted here: with equal intervals, whether rb's "
                     "adverts are starved (keepalived re-arms a master's advert timer on every "
                     "packet of its VRID, also a discarded one) depends on a sub-millisecond phase "
                     "(rb sent 1 advert in one run, 2 in another, plus its priority 0). "
                     "ka-interval-mismatch is the deterministic case of a starved second master."},
)

_V25 = dict(vrid=25, vips=("172.31.14.25/24",), version=3)


def _owner_pair(lab: Lab) -> None:
    a = Keepalived("ra", priority=255, state="MASTER", **_V25)
    b = Keepalived("rb", priority=255, state="MASTER", **_V25)
    procs = dict(zip(("ra", "rb"), lab.start_together(a, b)))
    deadline = time.monotonic() + WAIT
    while True:      # whoever hears the other's 255 drops to 254 and yields; one master remains
        last = {e.get("host"): e.get("state") for e in lab.events()}
        elected = [h for h, st in last.items() if st == "MASTER"]
        if len(last) == 2 and len(elected) == 1:
            break
        if time.monotonic() > deadline:
            raise LabError(f"no single master: {last}")
        time.sleep(0.1)
    time.sleep(4)
    lab.stop(procs[elected[0]])   # the master resigns (priority 0), the other takes over
    time.sleep(4)


KA_OWNER_PAIR = Case(
    name="ka-owner-pair",
    description="keepalived VRRPv3 VRID 25, VIP 172.31.14.25: ra (.11) and rb (.12) both priority "
                "255 with 'state MASTER' (both configured as the address owner), started together. "
                "Both advertise 255 at once; whichever hears the other's advert logs "
                "'CONFIGURATION ERROR: local instance and a remote instance are both configured as "
                "address owner ... reducing local priority', drops to 254 and yields (if both do, "
                "one is elected again at 254). The remaining master is then stopped (priority 0) "
                "and the other takes over.",
    hosts=KA_NET, run=_owner_pair,
    require=lambda t: (_need(all(any(p.get("priority") == 255 for p in _src(t, "vrrp:25", ip).get("params", []))
                                 for ip in (RA, RB)), "not both advertised priority 255")
                       + _need(any(_src(t, "vrrp:25", ip).get("priority_zero_s") for ip in (RA, RB)),
                               "no priority-0 resignation")),
    expect={"findings_present": ["priority-owner-conflict"],
            "findings_absent": ["skew-tie", "split-brain"],
            "notes": "Both claimed ownership (255) on the wire; the priority-0 advert that ends a "
                     "master's run does not withdraw an earlier claim."},
)

_V90 = dict(vrid=90, vips=("172.31.14.90/24",), version=3)


def _clean_failover(lab: Lab) -> None:
    a = Keepalived("ra", priority=200, **_V90)
    b = Keepalived("rb", priority=100, **_V90)
    pa = lab.start(a)
    _wait_master(lab, a)
    lab.start(b)
    time.sleep(3)
    since = time.time()
    lab.stop(pa)                 # priority 0: rb takes over after its skew time (~0.6 s)
    _wait_master(lab, b, since=since, timeout=4)
    time.sleep(3)
    since = time.time()
    lab.start(a)                 # preempts back
    _wait_master(lab, a, since=since)
    time.sleep(3)


KA_CLEAN_FAILOVER = Case(
    name="ka-clean-failover",
    description="keepalived VRRPv3 VRID 90, VIP 172.31.14.90: ra (.11) priority 200 MASTER, rb "
                "(.12) priority 100 BACKUP. ra is stopped (SIGTERM: one priority-0 advert), rb "
                "takes over after its skew time, ra returns and preempts. An ordinary failover.",
    hosts=KA_NET, run=_clean_failover,
    require=lambda t: (_need(bool(_src(t, "vrrp:90", RA).get("priority_zero_s")), "no priority-0 from ra")
                       + _need(not _dual(t, "vrrp:90") or max(w["seconds"] for w in _dual(t, "vrrp:90")) < 1.5,
                               "a dual master of 1.5 s or more")),
    expect={"no_error": True,
            "findings_absent": ["skew-tie", "split-brain", "master-gap", "priority-owner-conflict"],
            "notes": "Near miss: the resignation is no priority of ra's and no tie."},
)

# ---------------------------------------------------------------------------- ucarp

_U61 = dict(vhid=61, passphrase="takeover61", vip="10.61.4.61", label="site61")


def _takeover(lab: Lab) -> None:
    a, b = Ucarp("fa", advskew=0, **_U61), Ucarp("fb", advskew=100, **_U61)
    pa = lab.start(a)
    _wait_master(lab, a)
    lab.start(b)
    time.sleep(3)
    since = time.time()
    lab.stop(pa)
    _wait_master(lab, b, since=since)
    time.sleep(3)


UC_TAKEOVER = Case(
    name="ucarp-takeover",
    description="ucarp vhid 61, VIP 10.61.4.61 (key 'site61'): fa (10.61.4.2, advskew 0) MASTER, "
                "fb (.3, advskew 100) BACKUP, copying fa's counter from every advert it verifies. "
                "fa is stopped (SIGTERM, no bow-out: ucarp sends none); fb takes over and goes on "
                "from the last counter it heard.",
    hosts=UC_NET, run=_takeover, keys={"site61": "takeover61"}, vips={61: ["10.61.4.61"]},
    require=lambda t: _need(_src(t, "carp:61", FB).get("adverts", 0) >= 2, "fb did not advertise"),
    expect={"no_error": True, "findings_absent": ["counter-replay", "split-brain"],
            "notes": "Near miss: a takeover is no replay."},
)

_U62 = dict(vhid=62, passphrase="preempt62", vip="10.61.4.62", label="site62", preempt=True)


def _preempt(lab: Lab) -> None:
    """Two rounds of stop / takeover / return and preempt: whether both hosts send the same
    counter in a round depends on which reads the other's advert first (ucarp reads its socket
    up to a second late), so two rounds make a recording that shows it much likelier."""
    a, b = Ucarp("fa", advskew=0, **_U62), Ucarp("fb", advskew=100, **_U62)
    pa = lab.start(a)
    _wait_master(lab, a)
    lab.start(b)
    time.sleep(3)
    for _ in range(2):
        since = time.time()
        lab.stop(pa)
        _wait_master(lab, b, since=since)
        time.sleep(2)
        since = time.time()
        pa = lab.start(a)
        _wait_master(lab, a, since=since)
        time.sleep(4)


UC_PREEMPT = Case(
    name="ucarp-preempt",
    description="ucarp vhid 62, VIP 10.61.4.62 (key 'site62'), both with -P: fa (10.61.4.2, advskew "
                "0) MASTER, fb (.3, advskew 100). fa is stopped, fb takes over, fa returns and "
                "preempts: it adopts fb's counter N from the advert it verifies and sends N+1, as fb "
                "does at its next timer; the same counter and HMAC come from both hosts.",
    hosts=UC_NET, run=_preempt, keys={"site62": "preempt62"}, vips={62: ["10.61.4.62"]},
    # adoption always shows as a counter continued from the other host's + 1; the same counter
    # from both hosts only when fb's extra advert as it yields crosses fa's timer (ucarp reads
    # its socket up to a second late: in about half the rounds). The saved recording has both.
    require=lambda t: _need(t["wire"]["carp_counters"]["repeats"]["other_source"] >= 1
                            or t["wire"]["carp_counters"].get("continued", 0) >= 2,
                            "no adoption visible (no counter continued from the other host's)"),
    expect={"no_error": True, "findings_absent": ["counter-replay"],
            "notes": "Near miss: an ordinary preempting failover. The brief dual master (ucarp reads "
                     "packets up to 1 s late) is a handover, not an error."},
)

_U63 = dict(vhid=63, passphrase="lossy63", vip="10.61.4.63", label="site63")
LOSS_PERCENT = 70


def _lossy(lab: Lab) -> None:
    a, b = Ucarp("fa", advskew=0, **_U63), Ucarp("fb", advskew=100, **_U63)
    lab.start(a)
    _wait_master(lab, a)
    lab.start(b)
    time.sleep(2)
    impair.drop_adverts(lab, "fa", LOSS_PERCENT)
    time.sleep(36)


UC_LOSSY = Case(
    name="ucarp-lossy",
    description=f"ucarp vhid 63, VIP 10.61.4.63 (key 'site63'): fa (10.61.4.2, advskew 0) MASTER, fb "
                f"(.3, advskew 100). nftables on the switch drops {LOSS_PERCENT} % of fa's adverts "
                f"(random) towards fb; fb's reach fa. fb misses three in a row, becomes MASTER "
                f"from the counter it last heard (one fa already sent), and steps down at the next "
                f"fa advert that gets through: a flapping pair with dual-master windows.",
    hosts=UC_NET, run=_lossy, keys={"site63": "lossy63"}, vips={63: ["10.61.4.63"]},
    attempts=8,                 # random loss: a 4 s dual-master window is not in every recording
    require=lambda t: (_need(any(w["seconds"] >= 4 for w in _dual(t, "carp:63")), "no dual master of 4 s")
                       + _need(t["wire"]["carp_counters"]["repeats"]["other_source"] >= 1,
                               "no counter sent by both hosts")),
    expect={"findings_present": ["split-brain"], "findings_absent": ["counter-replay"],
            "split_brain": {"id": "carp:63", "speakers": [FA, FB], "cause": "one-way"},
            "notes": "The capture is taken on the bridge device, so it holds every advert fa sent, "
                     "also those fb never received."},
)

_U33 = dict(vhid=33, passphrase="race33-key", label="race33")


def _garp_race(lab: Lab) -> None:
    a = Ucarp("fa", vip="10.61.4.33", **_U33)
    b = Ucarp("fb", vip="10.61.4.34", **_U33)
    lab.start_together(a, b)
    _wait_master(lab, a)
    _wait_master(lab, b)
    time.sleep(5)


UC_GARP_RACE = Case(
    name="ucarp-garp-race",
    description="ucarp vhid 33, key 'race33' on both: fa (10.61.4.2) with VIP 10.61.4.33, fb (.3) "
                "with VIP 10.61.4.34, both advskew 0, started at the same instant. The VIP is inside "
                "the HMAC, so each drops the other's adverts (Bad digest); both become MASTER within "
                "a millisecond and each sends a gratuitous ARP for its VIP from its own NIC MAC. "
                "carpscope is given the passphrase but not the VIPs: it must infer them from the ARPs.",
    hosts=UC_NET, run=_garp_race, keys={"race33": "race33-key"},
    attempts=6,                 # the two ARPs within 2 ms is a race: a loaded machine misses it more often
    require=lambda t: (_need(sum(w["seconds"] for w in _dual(t, "carp:33")) >= 4, "no 4 s of dual master")
                       + _need(_garp_gap_ms(t, "10.61.4.33", "10.61.4.34") <= 2.0,
                               "the two masters' first ARPs are not within 2 ms")),
    expect={"findings_present": ["split-brain", "vip-set-mismatch"],
            "findings_absent": ["hmac-mismatch", "passphrase-mismatch"],
            "split_brain": {"id": "carp:33", "speakers": [FA, FB], "cause": "vip-set"},
            "message_not": ["no passphrase known"],
            "notes": "The passphrase is given; what is missing is the VIP set, learnt from the ARPs."},
)


def _garp_gap_ms(truth: dict, ip_a: str, ip_b: str) -> float:
    """Gap between the first gratuitous ARP for ip_a and the first for ip_b."""
    g = truth["wire"]["garps"]
    if ip_a not in g or ip_b not in g:
        return float("inf")
    return abs(g[ip_a]["first"][0]["t_s"] - g[ip_b]["first"][0]["t_s"]) * 1000


_U64 = dict(vhid=64, passphrase="storm64", vip="10.61.4.64", label="site64")
STORM = dict(copies=300, spacing=0.0001, adverts=3)


def _storm(lab: Lab) -> dict:
    a, b = Ucarp("fa", advskew=0, **_U64), Ucarp("fb", advskew=100, **_U64)
    lab.start(a)
    _wait_master(lab, a)
    lab.start(b)
    time.sleep(2)
    rep = impair.replicate(lab, "fa", **STORM)
    time.sleep(STORM["adverts"] + 2)
    return {"replicator": rep.records()}


UC_STORM = Case(
    name="ucarp-storm",
    description=f"ucarp vhid 64, VIP 10.61.4.64 (key 'site64'): fa (10.61.4.2) MASTER, fb (.3) "
                f"BACKUP. Three of fa's adverts are each copied {STORM['copies']} times, "
                f"{STORM['spacing'] * 1000:g} ms apart, into another port of the switch (a switching "
                f"loop: 10,000 copies a second of a 1 s advert).",
    hosts=UC_NET, run=_storm, keys={"site64": "storm64"}, vips={64: ["10.61.4.64"]},
    require=lambda t: _need(t["wire"]["copies"]["extra_frames"] >= 600, "fewer than 600 copies recorded"),
    expect={"storm": {"id": "carp:64", "src": FA}, "findings_absent": ["split-brain"],
            "notes": "The finding must give the copies' rate and the factor over the advert interval."},
)

_U66 = dict(vhid=66, vip="10.61.4.66")


def _any_split(lab: Lab) -> None:
    a = Ucarp("fa", passphrase="north66", label="north", **_U66)
    b = Ucarp("fb", passphrase="south66", label="south", advskew=100, **_U66)
    lab.start(a)
    lab.start(b)
    _wait_master(lab, a)
    _wait_master(lab, b)
    time.sleep(5)


UC_ANY = Case(
    name="ucarp-any-interface",
    description="ucarp vhid 66, VIP 10.61.4.66: fa (10.61.4.2, key 'north') and fb (.3, key "
                "'south', advskew 100): a split brain, recorded with 'tcpdump -i any' in the switch "
                "namespace (Linux cooked v2): every frame is recorded once per interface it crosses "
                "(the sender's port, the bridge, the other port).",
    hosts=UC_NET, run=_any_split, keys={"north": "north66", "south": "south66"}, vips={66: ["10.61.4.66"]},
    interface="any",
    require=lambda t: _need(t["wire"]["interfaces"].get("copies_per_advert") == [3],
                            f"copies per advert {t['wire']['interfaces'].get('copies_per_advert')}, not [3]"),
    expect={"findings_present": ["split-brain", "passphrase-mismatch"], "groups_once": True,
            "split_brain": {"id": "carp:66", "speakers": [FA, FB], "cause": "passphrase"},
            "notes": "One segment, one group, one finding of each kind."},
)

CASES: dict[str, Case] = {c.name: c for c in [
    KA_VERSION_MIX, KA_INTERVAL_MISMATCH, KA_AUTH_SPLIT, KA_OWNER_PAIR, KA_CLEAN_FAILOVER,
    UC_TAKEOVER, UC_PREEMPT, UC_LOSSY, UC_GARP_RACE, UC_STORM, UC_ANY]}
