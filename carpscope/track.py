"""Following each group over time: speakers, their runs as master, overlaps, gaps.

A group is (segment, protocol, address family, VHID/VRID). Backups are silent in both CARP
and VRRP, so a speaker that advertises is acting as master: a *run* is a stretch of adverts
from one speaker without a pause longer than its master-down interval (the protocol's own
rule for when the others take over). Two runs of one group at once are two masters.

Memory is bounded by groups x speakers (each capped), never by packets: per speaker only
counters, last values and a bounded list of closed runs are kept. The tracker works the same
offline and live: it calls ``on_event`` as things happen (new speaker, master change,
split brain begins/ends, gap).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from carpscope.model import CARP, Advert

MAX_SPEAKERS = 64          # per group
MAX_GROUPS = 4096
MAX_RUNS = 256             # kept per group for the timeline (oldest dropped, counted)
MAX_EPISODES = 64
DUPLICATE_S = 0.05         # a speaker's advert again within this (and half its interval): a copy
SAMPLE = 10                # packet numbers kept as evidence per item

# Two masters at once are normal for about one interval during a takeover (the old master
# sends until it hears the new one; ucarp reads its socket up to 1 s late). Split brain is
# called when both have sent at least this many adverts within the overlap...
SPLIT_MIN_ADVERTS = 3
# ...and the overlap lasted at least this many of the longer advertisement interval.
SPLIT_MIN_INTERVALS = 1.5


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


@dataclass(slots=True)
class Speaker:
    ip: str
    mac: str | None
    adverts: int = 0
    first: float = 0.0
    last: float = 0.0
    advbase: int | None = None
    advskew: int | None = None
    demote: int | None = None
    priority: int | None = None
    interval_cs: int | None = None
    ttl_min: int = 255
    timings: set = field(default_factory=set)      # distinct (advbase, advskew) / (prio, interval)
    addresses: set = field(default_factory=set)    # VRRP address lists seen (tuples), bounded
    md: float = 3.0
    interval: float = 1.0
    # observed period between consecutive adverts of one run
    p_n: int = 0
    p_sum: float = 0.0
    p_sq: float = 0.0
    p_min: float | None = None
    p_max: float | None = None
    run_start: float | None = None
    run_first_frame: int = 0
    run_adverts: int = 0
    last_frame: int = 0
    frames: list = field(default_factory=list)     # first SAMPLE packet numbers
    auth: dict = field(default_factory=dict)       # status -> count
    auth_key: str | None = None
    auth_vips: tuple = ()
    auth_flavour: str | None = None
    auth_inferred: bool = False
    auth_weak: bool = False
    auth_diagnosis: dict | None = None             # why nothing verified (kind, text, ...)
    vrrp_auth: tuple | None = None                 # VRRPv2 (auth type, fingerprint of the data)
    steady: object = None                          # steady.py's template for the advert just seen

    def auth_status(self) -> str:
        """ok / fail / unchecked for CARP (the majority over its adverts), none for VRRP."""
        ok, fail = self.auth.get("ok", 0), self.auth.get("fail", 0)
        if ok or fail:
            return "ok" if ok >= fail else "fail"
        return "unchecked" if self.auth.get("unchecked") else "none"

    @property
    def label(self) -> str:
        return self.ip if not self.mac else f"{self.ip} ({self.mac})"

    def active(self, t: float) -> bool:
        return self.run_start is not None and t - self.last <= self.md * 1.1

    def period_stats(self) -> dict | None:
        if not self.p_n:
            return None
        mean = self.p_sum / self.p_n
        var = max(self.p_sq / self.p_n - mean * mean, 0.0)
        return {"mean": round(mean, 4), "jitter": round(var ** 0.5, 4),
                "min": round(self.p_min, 4), "max": round(self.p_max, 4), "n": self.p_n}


@dataclass(slots=True)
class Run:
    ip: str
    mac: str | None
    start: float
    end: float
    adverts: int
    first_frame: int
    last_frame: int


@dataclass(slots=True)
class Episode:
    """Two speakers advertising at once for longer than a takeover allows."""
    a: str
    b: str
    start: float
    end: float
    adverts: dict
    frames: list


@dataclass(slots=True)
class _Pair:
    start: float
    counts: dict
    frames: list
    episode: Episode | None = None


class Group:
    def __init__(self, key: tuple, on_event: Callable[[dict], None] | None):
        self.key = key
        self.segment, self.protocol, self.family, self.vhid = key
        self.speakers: dict[tuple, Speaker] = {}
        self.runs: list[Run] = []
        self.runs_dropped = 0
        self.episodes: list[Episode] = []
        self.changes: list[tuple] = []     # (ts, from_ip|None, to_ip, kind)
        self.n_changes = 0
        self.gaps: list[tuple] = []        # (from_ts, to_ts, seconds, previous master ip, next ip)
        self.speakers_capped = 0
        self.master: Speaker | None = None
        self.n_open = 0                    # speakers with an open run
        self._pairs: dict[tuple, _Pair] = {}
        self._emit = on_event

    def _event(self, etype: str, ts: float, **kw) -> None:
        if self._emit:
            self._emit({"type": etype, "ts": ts, "segment": self.segment, "protocol": self.protocol,
                        "family": self.family, "vhid": self.vhid, **kw})

    def speaker(self, a: Advert) -> Speaker | None:
        key = (a.src, a.eth_src)
        sp = self.speakers.get(key)
        if sp is None:
            if len(self.speakers) >= MAX_SPEAKERS:
                self.speakers_capped += 1
                return None
            sp = self.speakers[key] = Speaker(a.src, a.eth_src, first=a.ts)
            self._event("speaker", a.ts, ip=a.src, mac=a.eth_src)
        return sp

    def advert(self, a: Advert, sp: Speaker) -> None:
        t = a.ts
        sp.steady = None
        sp.adverts += 1
        if len(sp.frames) < SAMPLE:
            sp.frames.append(a.frame)
        if a.protocol == CARP:
            sp.advbase, sp.advskew, sp.demote = a.advbase, a.advskew, a.demote
            timing = (a.advbase, a.advskew)
        else:
            sp.priority, sp.interval_cs = a.priority, a.interval_cs
            timing = (a.priority, a.interval_cs)
            if len(sp.addresses) < 8:
                sp.addresses.add(a.addresses)
        if len(sp.timings) < 16:
            sp.timings.add(timing)
        if a.ttl < sp.ttl_min:
            sp.ttl_min = a.ttl
        sp.md = master_down(a)
        sp.interval = a.interval_s or 1 / 256
        # close runs of others that went silent, before judging overlaps
        for o in self.speakers.values():
            if o is not sp and o.run_start is not None and not o.active(t):
                self._close_run(o)
        if sp.run_start is not None and not sp.active(t):
            self._close_run(sp)
        if sp.run_start is not None and t - sp.last < min(DUPLICATE_S, sp.interval / 2):
            # the same speaker again before its next advert could be due: a copy (a mirror
            # port seeing ingress and egress, a reflecting switch or vSwitch) or a burst; it
            # must not count as more adverts towards a split brain or skew the period
            sp.last_frame = a.frame
            return
        if sp.run_start is None:
            self._open_run(sp, a)
        else:
            dt = t - sp.last
            sp.p_n += 1
            sp.p_sum += dt
            sp.p_sq += dt * dt
            sp.p_min = dt if sp.p_min is None or dt < sp.p_min else sp.p_min
            sp.p_max = dt if sp.p_max is None or dt > sp.p_max else sp.p_max
        sp.run_adverts += 1
        sp.last = t
        sp.last_frame = a.frame
        self._overlaps(sp, t, a.frame)

    def _open_run(self, sp: Speaker, a: Advert) -> None:
        t = a.ts
        sp.run_start, sp.run_adverts, sp.run_first_frame = t, 0, a.frame
        self.n_open += 1
        prev = self.master
        if prev is sp or (prev is None and self.runs and self.runs[-1].ip == sp.ip
                          and not any(o.run_start is not None for o in self.speakers.values() if o is not sp)):
            # the same master again after a pause (lost adverts, a starved sender): no change,
            # but a pause longer than a takeover needs is still a gap
            if prev is None:
                self._record_gap(sp, t)
                self.master = sp
            return
        if prev is None:
            kind = "initial" if not self.runs else "after-gap"
            self._record_gap(sp, t)
        else:
            kind = "takeover" if prev.run_start is not None else "after-gap"
        self.master = sp
        self.n_changes += 1
        if len(self.changes) < MAX_RUNS:
            self.changes.append((t, prev.ip if prev else None, sp.ip, kind, a.frame))
        self._event("master", t, ip=sp.ip, mac=sp.mac, previous=prev.ip if prev else None, kind=kind)

    def _record_gap(self, sp: Speaker, t: float) -> None:
        if not self.runs:
            return
        last_end = max(r.end for r in self.runs[-4:])
        gap = t - last_end
        prev_ip = self.runs[-1].ip
        if len(self.gaps) < MAX_EPISODES:
            self.gaps.append((last_end, t, gap, prev_ip, sp.ip))
        self._event("gap", t, seconds=round(gap, 3), previous=prev_ip, master=sp.ip)

    def _close_run(self, sp: Speaker, final: bool = False) -> None:
        run = Run(sp.ip, sp.mac, sp.run_start, sp.last, sp.run_adverts, sp.run_first_frame, sp.last_frame)
        if len(self.runs) >= MAX_RUNS:
            self.runs.pop(0)
            self.runs_dropped += 1
        self.runs.append(run)
        sp.run_start = None
        self.n_open -= 1
        me = (sp.ip, sp.mac)
        for key in [k for k in self._pairs if me in k]:
            self._end_pair(key, self._pairs.pop(key))
        if self.master is sp and not final:
            others = [o for o in self.speakers.values() if o.run_start is not None]
            self.master = max(others, key=lambda o: o.run_start) if others else None
            if self.master is not None:
                self._event("master", sp.last, ip=self.master.ip, mac=self.master.mac,
                            previous=sp.ip, kind="remaining")
            else:
                self._event("silent", sp.last, ip=sp.ip)

    def _overlaps(self, sp: Speaker, t: float, frame: int) -> None:
        me = (sp.ip, sp.mac)
        for o in self.speakers.values():
            if o is sp or o.run_start is None:
                continue
            other = (o.ip, o.mac)
            key = (me, other) if me < other else (other, me)
            pair = self._pairs.get(key)
            if pair is None:
                pair = self._pairs[key] = _Pair(max(sp.run_start, o.run_start), {me: 0, other: 0}, [])
            pair.counts[me] += 1
            if len(pair.frames) < SAMPLE:
                pair.frames.append(frame)
            if pair.episode is None:
                longest = max(sp.interval, o.interval)
                if (min(pair.counts.values()) >= SPLIT_MIN_ADVERTS
                        and t - pair.start >= SPLIT_MIN_INTERVALS * longest):
                    ep = Episode(key[0][0], key[1][0], pair.start, t, {}, pair.frames)
                    pair.episode = ep
                    self._event("split-brain", t, speakers=[key[0][0], key[1][0]], since=pair.start)
            if pair.episode is not None:
                pair.episode.end = t

    def _end_pair(self, key, pair: _Pair) -> None:
        ep = pair.episode
        if ep is None:
            return
        ep.adverts = {k[0]: v for k, v in pair.counts.items()}
        if len(self.episodes) < MAX_EPISODES:
            self.episodes.append(ep)
        self._event("split-brain-end", ep.end, speakers=[ep.a, ep.b], seconds=round(ep.end - ep.start, 3))

    def close(self, now: float | None = None) -> None:
        """Close every run (end of capture), or only those silent at ``now`` (live ticks)."""
        for sp in self.speakers.values():
            if sp.run_start is not None and (now is None or not sp.active(now)):
                self._close_run(sp, final=now is None)

    def all_episodes(self) -> list[Episode]:
        """Closed split-brain episodes plus those still going on (for live reporting)."""
        ongoing = [p.episode for p in self._pairs.values() if p.episode is not None]
        for p in self._pairs.values():
            if p.episode is not None:
                p.episode.adverts = {k[0]: v for k, v in p.counts.items()}
        return self.episodes + ongoing

    def open_runs(self) -> list[Speaker]:
        return [s for s in self.speakers.values() if s.run_start is not None]

    def timeline(self) -> list[Run]:
        runs = list(self.runs)
        for s in self.open_runs():
            runs.append(Run(s.ip, s.mac, s.run_start, s.last, s.run_adverts, s.run_first_frame, s.last_frame))
        return sorted(runs, key=lambda r: (r.start, r.ip))


class Tracker:
    def __init__(self, on_event: Callable[[dict], None] | None = None):
        self.groups: dict[tuple, Group] = {}
        self.on_event = on_event
        self.groups_capped = 0

    def advert(self, a: Advert) -> tuple[Group, Speaker] | None:
        key = (a.segment, a.protocol, a.family, a.vhid)
        g = self.groups.get(key)
        if g is None:
            if len(self.groups) >= MAX_GROUPS:
                self.groups_capped += 1
                return None
            g = self.groups[key] = Group(key, self.on_event)
        sp = g.speaker(a)
        if sp is None:
            return None
        g.advert(a, sp)
        return g, sp

    def tick(self, now: float) -> None:
        for g in self.groups.values():
            g.close(now)

    def finish(self) -> None:
        for g in self.groups.values():
            g.close()
