"""Following each group over time: speakers, their runs as master, overlaps, gaps.

A group is an election domain: (segment, CARP or VRRP, address family, VHID/VRID). VRRPv2
and VRRPv3 speakers of one VRID are one group (they answer for the same addresses and the
same virtual MAC; that they ignore each other's adverts is a finding, not two groups).
Backups are silent in both CARP and VRRP, so a speaker that advertises is acting as master:
a *run* is a stretch of adverts from one speaker without a pause longer than its
master-down interval (the protocol's own rule for when the others take over), ended early
by a resignation (VRRP priority 0, CARP advbase = advskew = 255). A resignation ends a run;
it is never taken as the speaker's priority or timing.

Two runs of one group at once are two masters. Their *window* runs from the later run's
first advert to the earlier of the two runs' last adverts (or resignations): the wire shows
a master starting to the packet, but a master that goes quiet only by its silence. A window
longer than a takeover (``SPLIT_MIN_INTERVALS`` of the longer interval) is a split brain.

Memory is bounded by groups x speakers, never by packets, changes or pairs: per speaker only
counters and last values; per group a bounded sample of runs, changes, gaps and split-brain
episodes with the count of the rest, and at most ``MAX_PAIRS`` pairs of simultaneous masters
followed at a time; in all at most ``MAX_GROUPS`` groups and ``MAX_SPEAKERS_TOTAL`` speakers
(a group is only created for a speaker that can be tracked). Each cap counts what it dropped
(``Group.speakers_capped``, ``Group.pairs_capped``, ``Tracker.groups_capped``,
``Tracker.speakers_capped``) for the speaker-limit finding; the budget these caps give is in
docs/performance.md ("Memory budget").
The tracker works the same offline and live: it calls ``on_event`` as things happen (new
speaker, master change, split brain begins/ends, gap).
"""
from __future__ import annotations

TYPE_CHECKING = False     # typing.TYPE_CHECKING without importing typing at run time (start-up)
if TYPE_CHECKING:
    from typing import Callable, Final

from carpscope.auth.hmac import HmacContext
from carpscope.auth.results import AuthResult, Diagnosis
from carpscope.model import CARP, Advert, protocol_name

MAX_SPEAKERS: Final = 64          # per group
MAX_SPEAKERS_TOTAL: Final = 8192  # in all groups: two per group at MAX_GROUPS, or 128 full groups
MAX_GROUPS: Final = 4096
MAX_RUNS: Final = 64              # closed runs kept per group for the timeline (the latest)
MAX_CHANGES: Final = 64           # mastership changes kept per group (the first, then counted)
MAX_EPISODES: Final = 64
MAX_PAIRS: Final = 16             # pairs of simultaneous masters followed per group
FLAP_WINDOW: Final = 60.0         # seconds over which mastership changes are counted ...
FLAP_SATURATE: Final = 1024       # ... up to this many (a denser storm of changes reads as this)
DUPLICATE_S: Final = 0.05         # a speaker's advert again within this (and half its interval): a copy
SAMPLE: Final = 10                # packet numbers kept as evidence per item

# Two masters at once are normal for about one interval during a takeover (the old master
# sends until it hears the new one, ucarp one more advert when it yields, and ucarp reads its
# socket up to 1 s late). Split brain is called when a window lasts at least this many of
# the longer advertisement interval.
SPLIT_MIN_INTERVALS: Final = 1.5

_NEVER: Final = float("inf")

Event = dict
# a mastership change: (ts, previous master's ip or None, new master's ip, kind, frame)
Change = tuple[float, "str | None", str, str, int]
if TYPE_CHECKING:
    OnEvent = Callable[[dict], None]


def kind_of(protocol: str) -> str:
    """The election a protocol takes part in: "carp", or "vrrp" for both VRRP versions."""
    return "carp" if protocol == CARP else "vrrp"


def resigns(a: Advert) -> bool:
    """A master giving up: VRRP priority 0 (RFC 5798 §6.4.3, keepalived on stop), CARP
    advbase = advskew = 255 (OpenBSD's bow-out on ``ifconfig carpN down``)."""
    if a.protocol == CARP:
        return a.advbase == 255 and a.advskew == 255
    return a.priority == 0


def _deaf(x: Speaker, y: Speaker) -> bool:
    """Does the wire show that two VRRP speakers reject each other's adverts? Another version
    (keepalived: "wrong version"), another VRRPv2 interval (RFC 3768 §7.1) or authentication,
    another address list (keepalived: "ip address associated with VRID not present in MASTER
    advert")."""
    if x.protocol != y.protocol:
        return True
    if x.protocol == "vrrp2" and (x.interval_cs != y.interval_cs or x.vrrp_auth != y.vrrp_auth):
        return True
    return bool(x.addresses) and bool(y.addresses) and \
        {a for al in x.addresses for a in al} != {a for al in y.addresses for a in al}


def master_down(a: Advert) -> float:
    """Seconds of silence after which backups of this speaker take over (per its own values)."""
    if a.protocol == CARP:
        return 3 * (a.advbase or 0) + (a.advskew or 0) / 256.0 or 3 / 256.0
    interval = (a.interval_cs or 100) / 100.0
    prio = a.priority if a.priority is not None else 100
    if a.protocol == "vrrp2":
        skew = (256 - prio) / 256.0
    else:
        skew = (256 - prio) * interval / 256.0
    return 3 * interval + skew


class Speaker:
    __slots__ = ("ip", "mac", "protocol", "adverts", "first", "last", "advbase", "advskew", "demote",
                 "priority", "interval_cs", "ttl_min", "held", "resigned", "resigned_last", "timings",
                 "addresses", "md", "interval", "p_ref", "p_n", "p_sum", "p_sq", "p_min", "p_max",
                 "run_start", "run_first_frame", "run_adverts", "last_frame", "frames", "auth_ok",
                 "auth_fail", "auth_unchecked_n", "auth_key", "auth_key_id", "auth_vips", "auth_flavour",
                 "auth_inferred", "auth_weak", "auth_ok_by", "auth_result", "auth_result_cell",
                 "auth_diagnosis", "auth_unchecked", "auth_unchecked_kind", "fail_frames", "auth_first_ok",
                 "auth_last_fail", "hmac", "hmac_generation", "hmac_result", "vrrp_auth", "vrrp_variants",
                 "vrrp_frames", "copies", "capture_copies", "reflections", "copied", "max_copies",
                 "copy_rate", "copy_first", "copy_last", "copy_ifaces", "copy_frames", "last_counter",
                 "replays", "replay_first", "replay_last", "replay_frames", "replay_of", "adopted")

    ip: str
    mac: str | None
    protocol: str                                  # of its first advert (carp, vrrp2, vrrp3)
    adverts: int
    first: float
    last: float
    advbase: int | None
    advskew: int | None
    demote: int | None
    priority: int | None
    interval_cs: int | None
    ttl_min: int
    held: float                                    # presumed master until then though silent (VRRP, starved)
    resigned: int                                  # resignations (priority 0 / bow-out) ...
    resigned_last: float                           # ... and the time of the last one
    timings: set                                   # distinct (advbase, advskew) / (prio, interval)
    addresses: set                                 # VRRP address lists seen (tuples), bounded
    md: float
    interval: float
    # observed period between consecutive adverts of one run
    p_ref: float                                   # the last advert counted in the period
    p_n: int
    p_sum: float
    p_sq: float
    p_min: float | None
    p_max: float | None
    run_start: float | None
    run_first_frame: int
    run_adverts: int
    last_frame: int
    frames: list                                   # first SAMPLE packet numbers
    # authentication (engine.py counts, rules/auth.py judges): CARP HMAC verdicts...
    auth_ok: int                                   # adverts by verdict
    auth_fail: int
    auth_unchecked_n: int
    auth_key: str | None                           # ... the last key, VIP set, flavour that verified
    auth_key_id: str | None                        # ... that key's identity (one per secret)
    auth_vips: tuple
    auth_flavour: str | None
    auth_inferred: bool
    auth_weak: bool
    auth_ok_by: dict                               # (key, vips, flavour, weak index) -> count, bounded
    auth_result: AuthResult | None                 # the last ok verdict, and its count cell in auth_ok_by
    auth_result_cell: list
    auth_diagnosis: Diagnosis | None               # why nothing verified
    auth_unchecked: str | None                     # why it could not be checked ...
    auth_unchecked_kind: str | None                # ... "no-keys" or "unknown-vips"
    fail_frames: list
    auth_first_ok: float                           # time of the first advert that verified ...
    auth_last_fail: float                          # ... and of the last that did not
    hmac: HmacContext | None                       # the HMAC context that verified its last advert
    hmac_generation: int                           # ... for this keyring generation
    hmac_result: AuthResult | None                 # ... and its verdict for this speaker (its key label)
    # ... VRRPv2 authentication: the last (type, fingerprint), each seen, cleartext frames
    vrrp_auth: tuple | None
    vrrp_variants: dict
    vrrp_frames: list
    # repeats (repeats.py): copies of its adverts, replays and adoptions of its counters
    copies: int                                    # byte-identical, on the capture point
    capture_copies: int                            # recorded again on another interface (-i any)
    reflections: int                               # same counter and HMAC, IP header changed
    copied: int                                    # adverts that had at least one copy
    max_copies: int                                # most copies of one advert
    copy_rate: float                               # copies per second after an advert, at the most
    copy_first: float
    copy_last: float
    copy_ifaces: set
    copy_frames: list
    last_counter: bytes
    replays: int
    replay_first: float
    replay_last: float
    replay_frames: list
    replay_of: int                                 # frame of the first advert replayed
    adopted: int                                   # counters another source sent first (ucarp)

    def __init__(self, ip: str, mac: str | None, protocol: str = "", first: float = 0.0) -> None:
        """A speaker as first heard (``first``: the time of its first advert), every count empty."""
        self.ip = ip
        self.mac = mac
        self.protocol = protocol
        self.adverts = 0
        self.first = first
        self.last = 0.0
        self.advbase = None
        self.advskew = None
        self.demote = None
        self.priority = None
        self.interval_cs = None
        self.ttl_min = 255
        self.held = 0.0
        self.resigned = 0
        self.resigned_last = 0.0
        self.timings = set()
        self.addresses = set()
        self.md = 3.0
        self.interval = 1.0
        self.p_ref = 0.0
        self.p_n = 0
        self.p_sum = 0.0
        self.p_sq = 0.0
        self.p_min = None
        self.p_max = None
        self.run_start = None
        self.run_first_frame = 0
        self.run_adverts = 0
        self.last_frame = 0
        self.frames = []
        self.auth_ok = 0
        self.auth_fail = 0
        self.auth_unchecked_n = 0
        self.auth_key = None
        self.auth_key_id = None
        self.auth_vips = ()
        self.auth_flavour = None
        self.auth_inferred = False
        self.auth_weak = False
        self.auth_ok_by = {}
        self.auth_result = None
        self.auth_result_cell = []
        self.auth_diagnosis = None
        self.auth_unchecked = None
        self.auth_unchecked_kind = None
        self.fail_frames = []
        self.auth_first_ok = 0.0
        self.auth_last_fail = 0.0
        self.hmac = None
        self.hmac_generation = -1
        self.hmac_result = None
        self.vrrp_auth = None
        self.vrrp_variants = {}
        self.vrrp_frames = []
        self.copies = 0
        self.capture_copies = 0
        self.reflections = 0
        self.copied = 0
        self.max_copies = 0
        self.copy_rate = 0.0
        self.copy_first = 0.0
        self.copy_last = 0.0
        self.copy_ifaces = set()
        self.copy_frames = []
        self.last_counter = b""
        self.replays = 0
        self.replay_first = 0.0
        self.replay_last = 0.0
        self.replay_frames = []
        self.replay_of = 0
        self.adopted = 0

    @property
    def auth(self) -> dict[str, int]:
        """Adverts by HMAC verdict (the counts that are not zero)."""
        return {k: v for k, v in (("ok", self.auth_ok), ("fail", self.auth_fail),
                                  ("unchecked", self.auth_unchecked_n)) if v}

    def auth_status(self) -> str:
        """ok / fail / unchecked for CARP (the majority over its adverts), none for VRRP."""
        ok, fail = self.auth_ok, self.auth_fail
        if ok or fail:
            return "ok" if ok >= fail else "fail"
        return "unchecked" if self.auth_unchecked_n else "none"

    @property
    def label(self) -> str:
        return self.ip if not self.mac else f"{self.ip} ({self.mac})"

    @property
    def key(self) -> tuple[str, str]:
        """The speaker's identity in its group (a missing MAC, raw IP captures, is "")."""
        return self.ip, self.mac or ""

    def active(self, t: float) -> bool:
        return self.run_start is not None and t - self.until() <= self.md * 1.1

    def until(self) -> float:
        """Up to when its current run is known to last: its last advert, or later while it is
        held (a keepalived master starved by another master's adverts: see ``Group._hold``)."""
        return self.last if self.held <= self.last else self.held

    def still(self, end: float) -> bool:
        """Still advertising at ``end`` (the end of a capture): its next advert was not yet
        overdue (masters send on a timer: a tenth of an interval and 0.1 s of slack for ticks
        and scheduling), and it had not resigned."""
        return end - self.until() <= 1.1 * self.interval + 0.1 and not (self.resigned and self.resigned_last >= self.last)

    def period_stats(self) -> dict | None:
        if not self.p_n or self.p_min is None or self.p_max is None:
            return None
        mean = self.p_sum / self.p_n
        var = max(self.p_sq / self.p_n - mean * mean, 0.0)
        return {"mean": round(mean, 4), "jitter": round(var ** 0.5, 4),
                "min": round(self.p_min, 4), "max": round(self.p_max, 4), "n": self.p_n}


class Run:
    """One speaker's stretch as master (a plain class: one is built per run, many in a flap)."""

    ip: str
    mac: str | None
    start: float
    end: float
    adverts: int
    first_frame: int
    last_frame: int
    resigned: bool

    def __init__(self, ip: str, mac: str | None, start: float, end: float, adverts: int,
                 first_frame: int, last_frame: int, resigned: bool = False) -> None:
        self.ip, self.mac, self.start, self.end = ip, mac, start, end
        self.adverts, self.first_frame, self.last_frame = adverts, first_frame, last_frame
        self.resigned = resigned

    def __repr__(self) -> str:
        return f"Run({self.ip}, {self.start}..{self.end}, {self.adverts} adverts)"


class Episode:
    """A split-brain window: two speakers advertising as master at once for longer than a
    takeover allows. ``ongoing``: both were still master when the capture ended."""

    __slots__ = ("a", "b", "start", "end", "adverts", "frames", "ongoing")

    a: str
    b: str
    start: float
    end: float
    adverts: dict
    frames: list
    ongoing: bool

    def __init__(self, a: str, b: str, start: float, end: float, adverts: dict, frames: list,
                 ongoing: bool = False) -> None:
        self.a = a
        self.b = b
        self.start = start
        self.end = end
        self.adverts = adverts
        self.frames = frames
        self.ongoing = ongoing


class _Overlap:
    """Two runs of one group open at once (from the later start): followed until the window
    can no longer grow (both runs ended, or the open one has passed the other's end)."""

    a: Speaker
    b: Speaker
    start: float
    end_a: float | None          # a run's end once it has ended (None while it is open)
    end_b: float | None
    final: int                   # runs ended by the end of the capture (not by the speaker)
    n_a: int                     # adverts each sent while both runs were open
    n_b: int
    frames: list[int]
    episode: Episode | None

    def __init__(self, a: Speaker, b: Speaker, start: float) -> None:
        self.a, self.b, self.start = a, b, start
        self.end_a = self.end_b = None
        self.final = 0
        self.n_a = self.n_b = 0
        self.frames = []
        self.episode = None

    def counts(self) -> dict[str, int]:
        """Adverts by speaker address (one entry when both have one address)."""
        d = {self.a.ip: 0}
        d[self.b.ip] = 0
        d[self.a.ip] += self.n_a
        d[self.b.ip] += self.n_b
        return d

    def end(self) -> float:
        ea = self.end_a if self.end_a is not None else self.a.until()
        eb = self.end_b if self.end_b is not None else self.b.until()
        return ea if ea < eb else eb

    def settled(self) -> bool:
        ea, eb = self.end_a, self.end_b
        if ea is not None and eb is not None:
            return True
        if ea is not None:
            return self.b.until() >= ea
        if eb is not None:
            return self.a.until() >= eb
        return False


class Sighting:
    """When and where an advert (its counter and HMAC) was seen last: what repeats.py keeps of
    a group's recent adverts. Typed and small: a group keeps up to a few hundred."""

    ts: float
    frame: int
    src: str

    def __init__(self, ts: float, frame: int, src: str) -> None:
        self.ts, self.frame, self.src = ts, frame, src


class Group:
    def __init__(self, key: tuple[str, str, int, int], tracker: Tracker, protocol: str) -> None:
        self.key = key
        self.segment, self.kind, self.family, self.vhid = key
        self.protocol = protocol           # of the first speaker; ``protocols``: all seen
        self.protocols: list[str] = [protocol]
        self.tracker = tracker
        self.speakers: dict[tuple[str, str], Speaker] = {}
        self.runs: list[Run] = []          # the latest MAX_RUNS closed runs: a ring once full ...
        self.runs_next = 0                 # ... whose oldest (the next to be replaced) is here
        self.runs_dropped = 0
        self.last_run: Run | None = None
        self.episodes: list[Episode] = []
        self.episodes_dropped = 0
        self.changes: list[Change] = []    # the first MAX_CHANGES
        self.n_changes = 0
        self.recent_changes: list[Change] = []     # changes within FLAP_WINDOW of the last, from ...
        self.recent_head = 0                       # ... this index on
        self.flap_best: list[Change] = []  # the densest FLAP_WINDOW seen (changes, at most FLAP_SATURATE)
        self.flap_best_n = 0
        self.gaps: list[tuple] = []        # (from_ts, to_ts, seconds, previous master ip, next ip)
        self.gaps_dropped = 0
        self.speakers_capped = 0
        self.pairs_capped = 0
        self.master: Speaker | None = None
        self.last_master: Speaker | None = None   # the master as of the last advert
        self.counters: dict[bytes, Sighting] = {}   # recent (counter, HMAC), by HMAC: repeats.py
        self.n_open = 0                    # speakers with an open run ...
        self.expiry = _NEVER               # ... and no earlier than this may one have gone silent
        self._overlaps: list[_Overlap] = []

    @property
    def name(self) -> str:
        """How messages name the group: "CARP 5", "VRRPv3 7", "VRRP 7" (both versions)."""
        if len(self.protocols) > 1:
            return f"VRRP {self.vhid}"
        return f"{protocol_name(self.protocol)} {self.vhid}"

    def _event(self, etype: str, ts: float, **kw: object) -> None:
        emit = self.tracker.on_event
        if emit is not None:
            emit({"type": etype, "ts": ts, "segment": self.segment, "protocol": self.protocol,
                  "family": self.family, "vhid": self.vhid, **kw})

    def speaker(self, a: Advert) -> Speaker | None:
        key = (a.src, a.eth_src or "")
        sp = self.speakers.get(key)
        if sp is None:
            tr = self.tracker
            if len(self.speakers) >= MAX_SPEAKERS:
                self.speakers_capped += 1
                return None
            if tr.n_speakers >= MAX_SPEAKERS_TOTAL:
                tr.speakers_capped += 1
                return None
            tr.n_speakers += 1
            sp = self.speakers[key] = Speaker(a.src, a.eth_src, a.protocol, first=a.ts)
            if a.protocol not in self.protocols:
                self.protocols.append(a.protocol)
            self._event("speaker", a.ts, ip=a.src, mac=a.eth_src)
        return sp

    def advert(self, a: Advert, sp: Speaker) -> None:
        t = a.ts
        sp.adverts += 1
        if len(sp.frames) < SAMPLE:
            sp.frames.append(a.frame)
        if a.ttl < sp.ttl_min:
            sp.ttl_min = a.ttl
        # close runs of others that went silent, before judging overlaps (only once the
        # earliest an open run could have expired has passed: a lower bound, made exact here)
        if self.n_open and t > self.expiry:
            soonest = _NEVER
            for o in self.speakers.values():      # closing a run adds or removes no speaker
                if o.run_start is not None:
                    if o is not sp and not o.active(t):
                        self._close_run(o)
                    else:
                        e = o.until() + o.md * 1.1
                        if e < soonest:
                            soonest = e
            self.expiry = soonest
        if sp.run_start is not None and not sp.active(t):
            self._close_run(sp)
        if resigns(a):
            self._resign(sp, a)
            return
        if a.protocol == CARP:
            if a.advbase != sp.advbase or a.advskew != sp.advskew or not sp.timings:
                if len(sp.timings) < 16:
                    sp.timings.add((a.advbase, a.advskew))
            sp.advbase, sp.advskew, sp.demote = a.advbase, a.advskew, a.demote
        else:
            if a.priority != sp.priority or a.interval_cs != sp.interval_cs or not sp.timings:
                if len(sp.timings) < 16:
                    sp.timings.add((a.priority, a.interval_cs))
            sp.priority, sp.interval_cs = a.priority, a.interval_cs
            if len(sp.addresses) < 8 and a.addresses not in sp.addresses:
                sp.addresses.add(a.addresses)
        sp.md = master_down(a)
        sp.interval = a.interval_s or 1 / 256
        if sp.run_start is not None and t - sp.p_ref < min(DUPLICATE_S, sp.interval / 2):
            # the same speaker again before its next advert could be due (copies are counted
            # before this, repeats.py): a burst, such as ucarp's extra advert when it yields;
            # it shows the speaker was still master, but is no period and no advert more
            sp.last = t
            sp.last_frame = a.frame
            if self._overlaps:
                self._measure(sp, t, a.frame, False)
            return
        if sp.run_start is None:
            self._open_run(sp, a)
        else:
            dt = t - sp.p_ref
            sp.p_n += 1
            sp.p_sum += dt
            sp.p_sq += dt * dt
            if sp.p_min is None or dt < sp.p_min:
                sp.p_min = dt
            if sp.p_max is None or dt > sp.p_max:
                sp.p_max = dt
        sp.run_adverts += 1
        sp.last = sp.p_ref = t
        sp.last_frame = a.frame
        if self._overlaps:
            if sp.protocol != CARP:
                self._hold(sp, t)
            self._measure(sp, t, a.frame)

    def _hold(self, y: Speaker, t: float) -> None:
        """keepalived re-arms a master's advert timer on every packet of its VRID, accepted or
        not (docs/implementations.md (c)): a master whose adverts the other master rejects, and
        that rejects the other's, may fall silent while the other advertises at least as often
        as it would. So a VRRP speaker X that claimed mastership (its first advert) while ``y``
        was master is held master while ``y`` goes on advertising, past a takeover, *when the
        wire shows why neither accepts the other's adverts* (``_deaf``: another VRRP version,
        another VRRPv2 interval or authentication, another address list). Without such a
        reason X's silence proves nothing: it may have yielded (keepalived's state MASTER
        starts with one advert; a tracking script lowers a priority without a word)."""
        for ov in self._overlaps:
            x = ov.b if ov.a is y else ov.a if ov.b is y else None
            if x is None or x.run_start is None or x.protocol == CARP or x.last >= t:
                continue
            if y.run_start is None or x.run_start <= y.run_start or y.interval > x.interval * 1.05:
                continue
            if t >= x.run_start + SPLIT_MIN_INTERVALS * y.interval and _deaf(x, y):
                x.held = t

    def _resign(self, sp: Speaker, a: Advert) -> None:
        """A resignation: the speaker's run (if it had one) ends here."""
        t = a.ts
        sp.resigned += 1
        sp.resigned_last = t
        sp.last = t
        sp.last_frame = a.frame
        self._event("resigned", t, ip=sp.ip, mac=sp.mac)
        if sp.run_start is not None:
            self._close_run(sp, resigned=True)
        if self._overlaps:
            self._measure(sp, t, a.frame)

    def _open_run(self, sp: Speaker, a: Advert) -> None:
        t = a.ts
        sp.run_start, sp.run_adverts, sp.run_first_frame = t, 0, a.frame
        sp.held = 0.0
        self.n_open += 1
        e = t + sp.md * 1.1
        if e < self.expiry:
            self.expiry = e
        if self.n_open > 1:
            for o in self.speakers.values():
                if o is not sp and o.run_start is not None:
                    if len(self._overlaps) >= MAX_PAIRS:
                        self.pairs_capped += 1
                    else:
                        self._overlaps.append(_Overlap(o, sp, t))
        prev = self.master
        last = self.last_run
        if prev is sp or (prev is None and last is not None and last.ip == sp.ip and self.n_open == 1):
            # the same master again after a pause (lost adverts, a starved sender): no change,
            # but a pause longer than a takeover needs is still a gap
            if prev is None:
                self._record_gap(sp, t)
                self.master = sp
            return
        if prev is None:
            kind = "initial" if last is None else "after-gap"
            self._record_gap(sp, t)
        else:
            kind = "takeover" if prev.run_start is not None else "after-gap"
        self.master = sp
        self._change((t, prev.ip if prev else None, sp.ip, kind, a.frame))
        if self.tracker.on_event is not None:
            self._event("master", t, ip=sp.ip, mac=sp.mac, previous=prev.ip if prev else None, kind=kind)

    def _change(self, change: Change) -> None:
        self.n_changes += 1
        if len(self.changes) < MAX_CHANGES:
            self.changes.append(change)
        if change[3] == "initial":
            return
        # the changes of the last FLAP_WINDOW: a list from ``recent_head`` on (a queue that is
        # compacted now and then, cheaper per change than a deque's generic calls)
        recent = self.recent_changes
        recent.append(change)
        ts = change[0]
        head = self.recent_head
        end = len(recent)
        while head < end and ts - recent[head][0] > FLAP_WINDOW:
            head += 1
        if end - head > FLAP_SATURATE:
            head += 1
        if head > 256 and head * 2 > end:
            del recent[:head]
            end -= head
            head = 0
        self.recent_head = head
        n = end - head
        if n > self.flap_best_n:
            # a denser window than any before: keep its first 20 changes and its last
            self.flap_best_n = n
            self.flap_best = recent[head:head + min(n, 20)] + ([change] if n > 20 else [])

    def _record_gap(self, sp: Speaker, t: float) -> None:
        last = self.last_run
        if last is None:
            return
        runs = self.runs
        n = len(runs)
        after = self.runs_next if n == MAX_RUNS else n      # one past the latest run
        last_end = last.end
        for j in range(1, min(4, n) + 1):                   # the latest four
            e = runs[(after - j) % MAX_RUNS].end
            if e > last_end:
                last_end = e
        gap = t - last_end
        if len(self.gaps) < MAX_EPISODES:
            self.gaps.append((last_end, t, gap, last.ip, sp.ip))
        else:
            self.gaps_dropped += 1
        if self.tracker.on_event is not None:
            self._event("gap", t, seconds=round(gap, 3), previous=last.ip, master=sp.ip)

    def _close_run(self, sp: Speaker, final: bool = False, resigned: bool = False) -> None:
        end = sp.until()
        start = sp.run_start if sp.run_start is not None else end
        run = Run(sp.ip, sp.mac, start, end, sp.run_adverts, sp.run_first_frame, sp.last_frame, resigned)
        runs = self.runs
        if len(runs) == MAX_RUNS:
            self.runs_dropped += 1
            runs[self.runs_next] = run
            self.runs_next = (self.runs_next + 1) % MAX_RUNS
        else:
            runs.append(run)
        self.last_run = run
        sp.run_start = None
        self.n_open -= 1
        if self._overlaps:
            settled = False
            for ov in self._overlaps:
                if ov.a is sp and ov.end_a is None:
                    ov.end_a = end
                elif ov.b is sp and ov.end_b is None:
                    ov.end_b = end
                else:
                    continue
                if final:
                    ov.final += 1
                settled = settled or ov.settled()
            if settled and not final:
                self._settle()
        if self.master is sp and not final:
            # the remaining master: of the runs still open, the latest to begin
            nxt: Speaker | None = None
            if self.n_open:
                for o in self.speakers.values():
                    if o.run_start is not None and (nxt is None or o.run_start > (nxt.run_start or 0.0)):
                        nxt = o
            self.master = nxt
            if self.tracker.on_event is None:
                pass
            elif self.master is not None:
                self._event("master", sp.last, ip=self.master.ip, mac=self.master.mac,
                            previous=sp.ip, kind="remaining")
            else:
                self._event("silent", sp.last, ip=sp.ip)

    def _measure(self, sp: Speaker, t: float, frame: int, count: bool = True) -> None:
        """Count an advert of ``sp`` towards its overlaps and grow their windows; a window
        longer than a takeover is a split brain."""
        settled = False
        for ov in self._overlaps:
            if ov.a is sp:
                if ov.end_a is None and count:
                    ov.n_a += 1
            elif ov.b is sp:
                if ov.end_b is None and count:
                    ov.n_b += 1
            else:
                continue
            if len(ov.frames) < SAMPLE:
                ov.frames.append(frame)
            self._window(ov, t)
            settled = settled or ov.settled()
        if settled:
            self._settle()

    def _window(self, ov: _Overlap, t: float) -> None:
        end = ov.end()
        ep = ov.episode
        if ep is not None:
            ep.end = end
        elif end - ov.start >= SPLIT_MIN_INTERVALS * max(ov.a.interval, ov.b.interval):
            ov.episode = Episode(ov.a.ip, ov.b.ip, ov.start, end, ov.counts(), ov.frames)
            self._event("split-brain", t, speakers=[ov.a.ip, ov.b.ip], since=ov.start)

    def _settle(self, final: bool = False) -> None:
        """Record the windows that can no longer grow (all of them at the end of the capture:
        a window is *ongoing* when both were still advertising as the capture ended)."""
        keep = []
        end = max(s.last for s in self.speakers.values()) if final else 0.0
        for ov in self._overlaps:
            if not (final or ov.settled()):
                keep.append(ov)
                continue
            self._window(ov, ov.end())
            ep = ov.episode
            if ep is None:
                continue
            ep.adverts = ov.counts()
            ep.ongoing = final and ov.final == 2 and ov.a.still(end) and ov.b.still(end)
            if ep.ongoing:
                ep.end = end            # both were master to the end of the capture
            if len(self.episodes) < MAX_EPISODES:
                self.episodes.append(ep)
            else:
                self.episodes_dropped += 1
            if not ep.ongoing:
                self._event("split-brain-end", ep.end, speakers=[ep.a, ep.b], seconds=round(ep.end - ep.start, 3))
        self._overlaps = keep

    def close(self, now: float | None = None) -> None:
        """Close every run (end of capture), or only those silent at ``now`` (live ticks)."""
        if self.n_open:
            for sp in list(self.speakers.values()):
                if sp.run_start is not None and (now is None or not sp.active(now)):
                    self._close_run(sp, final=now is None)
        if now is None and self._overlaps:
            self._settle(final=True)

    def all_episodes(self) -> list[Episode]:
        """Recorded split-brain windows plus those still growing (for live reporting)."""
        ongoing = []
        for ov in self._overlaps:
            ep = ov.episode
            if ep is not None:
                ep.adverts = ov.counts()
                ep.ongoing = ov.end_a is None and ov.end_b is None
                ongoing.append(ep)
        return self.episodes + ongoing

    def open_runs(self) -> list[Speaker]:
        return [s for s in self.speakers.values() if s.run_start is not None]

    def timeline(self) -> list[Run]:
        k = self.runs_next
        runs = self.runs[k:] + self.runs[:k]           # oldest first
        for s in self.open_runs():
            runs.append(Run(s.ip, s.mac, s.run_start or s.last, s.until(), s.run_adverts, s.run_first_frame,
                            s.last_frame))
        return sorted(runs, key=lambda r: (r.start, r.ip))

    def flap_window(self) -> list[Change]:
        """The densest FLAP_WINDOW of mastership changes (not counting the first master): up
        to 20 of them and the last; ``flap_best_n`` is how many there were."""
        return self.flap_best


class Tracker:
    def __init__(self, on_event: OnEvent | None = None) -> None:
        self.groups: dict[tuple[str, str, int, int], Group] = {}
        self.on_event = on_event
        self.groups_capped = 0      # adverts of groups beyond MAX_GROUPS
        self.speakers_capped = 0    # adverts of speakers beyond MAX_SPEAKERS_TOTAL
        self.n_speakers = 0

    def group_of(self, a: Advert) -> Group | None:
        """The group an advert belongs to, if it is tracked."""
        return self.groups.get((a.segment, kind_of(a.protocol), a.family, a.vhid))

    def lookup(self, a: Advert) -> tuple[Group, Speaker] | None:
        """The group and speaker of an advert (new ones are created; None beyond the caps)."""
        key = (a.segment, kind_of(a.protocol), a.family, a.vhid)
        g = self.groups.get(key)
        if g is None:
            if len(self.groups) >= MAX_GROUPS:
                self.groups_capped += 1
                return None
            if self.n_speakers >= MAX_SPEAKERS_TOTAL:     # no group without a speaker
                self.speakers_capped += 1
                return None
            g = self.groups[key] = Group(key, self, a.protocol)
        sp = g.speaker(a)
        if sp is None:
            return None
        return g, sp

    def advert(self, a: Advert, g: Group, sp: Speaker) -> None:
        """Count an advert of ``sp`` (its runs, mastership, overlaps)."""
        g.advert(a, sp)
        g.last_master = g.master

    def tick(self, now: float) -> None:
        for g in self.groups.values():
            g.close(now)

    def finish(self) -> None:
        for g in self.groups.values():
            g.close()
