"""Repeats of an advertisement: copies of one frame, and a CARP counter and HMAC seen again.

Every advert is looked up here first; the one place that decides what a repeat is:

- **copy**: the same IP packet, byte for byte, again at the same capture point and VLANs
  within ``min(COPY_S, interval / 2)`` of the last time it was seen (the window slides, so a
  storm stays a storm). Causes: a switching loop or storm (many copies, at a rate far above the
  advertised one), a reflecting hypervisor or a mirror port seeing both directions (a few
  copies within milliseconds), or the capture itself: ``tcpdump -i any`` records one frame on
  every interface of the capturing host it crosses (Linux cooked v2 names the interface). A
  copy costs one dictionary lookup and is counted in bulk; no other stage sees it, so copies
  never multiply groups, adverts, split-brain evidence or periods.
- **reflection** (CARP): the same counter and HMAC from the same source within that window
  but not byte-identical (a device on the way changed the IP header): counted as a copy.
- **replay** (CARP): one source repeating an earlier counter and HMAC after other counters.
- **adoption** (CARP): the same counter and HMAC from *another* source. A ucarp master adopts
  the counter of every advert it verifies, so after a takeover or preemption, and during a
  lossy flap, two hosts send the same counter and, with one key and VIP set, the same HMAC.
  That is the protocol working, not a finding.

Memory is bounded: the packets of the last ``COPY_S`` to ``2 * COPY_S`` seconds per capture
point (``Recent``: two generations of at most ``MAX_CELLS``, for ``MAX_POINTS`` points) and
``RECENT`` recent (counter, HMAC) pairs per group, emptied when full (caches: what is forgotten
can only make a later copy or replay look new); the counts live on the tracker's Speaker,
bounded with the speakers.
"""
from __future__ import annotations

TYPE_CHECKING = False     # typing.TYPE_CHECKING without importing typing at run time (start-up)
if TYPE_CHECKING:
    from typing import Final

from carpscope.model import Advert, Finding, protocol_name
from carpscope.rules import ERROR, INFO, WARNING, declare
from carpscope.track import Group, Sighting, Speaker

COUNTER_REPLAY = declare("counter-replay", "CS404", WARNING,
                         "A CARP advertisement (counter and HMAC) replayed by its source", __name__)
ADVERT_COPIES = declare("advert-copies", "CS108", INFO,
                        "Adverts seen more than once: reflections, a mirror port, or the capture", __name__)
ADVERT_STORM = declare("advert-storm", "CS109", ERROR,
                       "Copies of adverts far faster than advertised: a switching loop or storm", __name__)

COPY_S: Final = 0.05        # a copy arrives within this of the previous sighting (and half the interval)
MAX_CELLS: Final = 4096     # packets of one generation (COPY_S) per capture point (a cache beyond that)
MAX_POINTS: Final = 1024    # capture points (with VLANs) whose recent packets are kept
RECENT: Final = 256         # (counter, HMAC) remembered per group (emptied when full)
SAMPLE: Final = 10
# a storm: one advert copied at least this many times (a mirror port or a reflection copies once
# or twice; a loop or storm again and again)
STORM_COPIES: Final = 10


class Cell:
    """The last sighting of one packet."""

    first: float
    last: float
    window: float
    ifindex: int
    speaker: Speaker
    count: int

    def __init__(self, last: float, window: float, ifindex: int, speaker: Speaker) -> None:
        self.first, self.last, self.window, self.ifindex, self.speaker, self.count = last, last, window, ifindex, speaker, 0


class Recent:
    """The packets seen at one capture point in the last ``COPY_S`` seconds at least: two
    generations, the current one begun at ``since`` and the one before. An insert ``COPY_S``
    or more after ``since`` (or as far before it: a clock stepped back), or into a full
    generation, drops the older one and begins a new one; a packet found in the older generation moves to
    the current. So a packet stays as long as a copy of it can still come (a copy is at most
    ``COPY_S`` after the last sighting), and the tables hold only what a copy can still match:
    a few entries per group, not thousands, which keeps every advert's lookups in cache."""

    cur: dict[bytes, Cell]
    old: dict[bytes, Cell]
    since: float

    def __init__(self) -> None:
        self.cur, self.old, self.since = {}, {}, float("-inf")

    def find(self, packet: bytes) -> Cell | None:
        cell = self.cur.get(packet)
        if cell is None:
            cell = self.old.get(packet)
            if cell is not None:
                self.cur[packet] = cell
        return cell

    def add(self, packet: bytes, cell: Cell, ts: float) -> None:
        cur = self.cur
        if abs(ts - self.since) >= COPY_S or len(cur) >= MAX_CELLS:
            old = self.old
            old.clear()
            self.old, self.cur, self.since = cur, old, ts
            cur = old
        cur[packet] = cell


class Repeats:
    """Recognises copies, reflections, replays and adoptions; the counts are kept on the
    tracker's Speaker of the advert (one record per speaker). Recent packets are kept per
    capture point (``cells_for``: the flows of one point share them, so a copy recorded on
    another interface of the capturing host is recognised), recent counters per group."""

    def __init__(self) -> None:
        self._points: dict[str, Recent] = {}
        self.copies = 0

    def cells_for(self, point: str) -> Recent:
        cells = self._points.get(point)
        if cells is None:
            if len(self._points) >= MAX_POINTS:
                self._points.clear()
            cells = self._points[point] = Recent()
        return cells

    def copy(self, a: Advert, cells: Recent) -> Cell | None:
        """The sighting ``a`` is a copy of, when it is one (counted here, nothing else to do);
        None for an advert the other stages must see (``seen`` records it after)."""
        cell = cells.find(a.packet)
        if cell is None or a.ts - cell.last >= cell.window or a.ts < cell.last:
            return None
        cell.last = a.ts
        cell.count += 1
        self.copies += 1
        sp = cell.speaker
        if a.ifindex != cell.ifindex:
            sp.capture_copies += 1
            if len(sp.copy_ifaces) < 16:
                sp.copy_ifaces.add(a.ifindex)
        else:
            sp.copies += 1
        if cell.count == 1:
            sp.copied += 1
        # the rate: copies per second of the advert copied most, over all its copies so far (a
        # peak over the first few copies would measure a sender's microsecond bursts instead)
        if cell.count > sp.max_copies:
            sp.max_copies = cell.count
            if a.ts > cell.first:
                sp.copy_rate = cell.count / (a.ts - cell.first)
        elif cell.count == sp.max_copies and a.ts > cell.first:
            rate = cell.count / (a.ts - cell.first)
            if rate > sp.copy_rate:
                sp.copy_rate = rate
        if not sp.copy_first:
            sp.copy_first = a.ts
        sp.copy_last = a.ts
        if len(sp.copy_frames) < SAMPLE:
            sp.copy_frames.append(a.frame)
        return cell

    def seen(self, a: Advert, g: Group, sp: Speaker, cells: Recent) -> bool:
        """Remember an advert of ``sp`` that is not a copy; for CARP, judge its counter and
        HMAC. False when it is a reflection (counted as a copy: the other stages must not see it)."""
        window = min(COPY_S, (a.interval_s or 1 / 256) / 2)
        cells.add(a.packet, Cell(a.ts, window, a.ifindex, sp), a.ts)
        counter, md = a.counter, a.md
        if counter is None or md is None:
            return True
        key = md                            # the HMAC covers the counter: it is the advert's identity
        recent = g.counters
        prev = recent.get(key)
        last_counter = sp.last_counter
        sp.last_counter = counter
        if prev is not None:
            pts, pframe = prev.ts, prev.frame
            if prev.src != a.src:
                sp.adopted += 1             # another source's counter: ucarp adoption
            elif a.ts - pts < window:
                sp.reflections += 1         # the same advert back, its IP header changed on the way
                if len(sp.copy_frames) < SAMPLE:
                    sp.copy_frames.append(a.frame)
                if not sp.copy_first:
                    sp.copy_first = a.ts
                sp.copy_last = a.ts
                return False
            elif last_counter != counter and not _adopted(counter, g, sp, pts, a.ts):
                sp.replays += 1             # an earlier advert again, after other counters
                if not sp.replay_first:
                    sp.replay_first, sp.replay_of = a.ts, pframe
                sp.replay_last = a.ts
                if len(sp.replay_frames) < SAMPLE:
                    sp.replay_frames.append(a.frame)
            # else: the same counter as its previous advert (a constant counter) is no replay
            prev.ts, prev.frame, prev.src = a.ts, a.frame, a.src
            return True
        if len(recent) >= RECENT:
            recent.clear()                  # a cache: what is forgotten can only miss a replay
        recent[key] = Sighting(a.ts, a.frame, a.src)
        return True


def _adopted(counter: bytes, g: Group, sp: Speaker, since: float, now: float) -> bool:
    """Can adoption explain ``sp`` sending again, at ``now``, a counter it sent at ``since``?
    FreeBSD, OpenBSD before 2015 and ucarp adopt the counter of every advert they verify and
    count on from it + 1 (docs/implementations.md (a)): a master that hears a second master
    restarts from the other's counter and so runs again through values it sent itself. So it
    is adoption when another speaker of the group advertised since ``since`` and its last
    counter lies at most as many steps below this one as ``sp`` could have sent adverts since."""
    value = int.from_bytes(counter, "big")
    steps = int((now - since) / (sp.interval or 1 / 256)) + 2
    for o in g.speakers.values():
        if o is not sp and o.last_counter and o.last >= since:
            if (value - int.from_bytes(o.last_counter, "big")) & 0xFFFFFFFFFFFFFFFF <= steps:
                return True
    return False


def repeat_findings(groups: list[Group]) -> list[Finding]:
    """Per group: one advert-storm or advert-copies finding for all its copied speakers, and a
    counter-replay finding per speaker that replayed."""
    out: list[Finding] = []
    for g in groups:
        sps = sorted(g.speakers.values(), key=lambda s: (s.first, s.ip))
        for sp in sps:
            if sp.replays:
                out.append(_replay_finding(g, sp))
        copied = [sp for sp in sps if sp.copies or sp.capture_copies or sp.reflections]
        if copied:
            out.append(_copies_finding(g, copied))
    return out


def _where(g: Group) -> dict:
    return {"protocol": g.protocol, "vhid": g.vhid, "segment": g.segment}


def _replay_finding(g: Group, sp: Speaker) -> Finding:
    return COUNTER_REPLAY.finding(
        f"CARP {g.vhid}: {sp.ip} sent {sp.replays} advert{'s' if sp.replays > 1 else ''} whose counter "
        f"and HMAC it had already sent (first at frame {sp.replay_of}), after other counters: a replayed "
        "advertisement (an attacker or a device re-sending old frames); receivers that keep the last "
        "counter reject it",
        first_seen=sp.replay_first, last_seen=sp.replay_last, packets=list(sp.replay_frames),
        evidence={"speaker": sp.ip, "kind": "replay", "count": sp.replays, "first": sp.replay_of},
        cause="replay", **_where(g))


def _factor(sp: Speaker) -> float:
    """How many times faster than advertised the copies came (their peak rate x the interval)."""
    return sp.copy_rate * sp.interval


def _copies_finding(g: Group, sps: list[Speaker]) -> Finding:
    name = f"{protocol_name(g.protocol)} {g.vhid}"
    per = [{"ip": sp.ip, "adverts": sp.adverts, "copies": sp.copies, "reflections": sp.reflections,
            "capture_copies": sp.capture_copies, "adverts_copied": sp.copied,
            "max_copies_per_advert": sp.max_copies, "rate_per_s": round(sp.copy_rate, 1),
            "factor": round(_factor(sp), 1), "advertised_per_s": round(1 / sp.interval, 3) if sp.interval else None,
            "interfaces": sorted(sp.copy_ifaces)} for sp in sps]
    net = sum(sp.copies + sp.reflections for sp in sps)
    capture = sum(sp.capture_copies for sp in sps)
    top = max(sps, key=lambda sp: (sp.max_copies, sp.copy_rate))
    ips = ", ".join(sp.ip for sp in sps)
    evidence: dict = {"speakers": [sp.ip for sp in sps], "copies": sum(sp.copies for sp in sps),
                      "reflections": sum(sp.reflections for sp in sps), "capture_copies": capture,
                      "max_copies_per_advert": top.max_copies, "rate_per_s": round(top.copy_rate, 1),
                      "factor": round(_factor(top), 1), "per_speaker": per}
    frames = sorted({f for sp in sps for f in sp.copy_frames})[:SAMPLE]
    where = dict(first_seen=min(sp.copy_first for sp in sps), last_seen=max(sp.copy_last for sp in sps),
                 packets=frames, **_where(g))
    if net and top.max_copies >= STORM_COPIES:
        return ADVERT_STORM.finding(
            f"{name}: adverts of {ips} arrive again and again: up to {top.max_copies:,} copies of one advert "
            f"({net:,} copies in all), {top.copy_rate:,.0f} copies/s, {_factor(top):,.0f} times the rate "
            f"{top.ip} advertises at: a switching loop or broadcast storm on this segment; every copy "
            "reaches the receivers and the loop floods the segment",
            evidence={**evidence, "kind": "storm"}, cause="storm", **where)
    if net:
        what = " and ".join(x for x in (f"{sum(sp.copies for sp in sps):,} byte-identical copies"
                                        if any(sp.copies for sp in sps) else "",
                                        f"{sum(sp.reflections for sp in sps):,} copies with a changed IP header"
                                        if any(sp.reflections for sp in sps) else "") if x)
        return ADVERT_COPIES.finding(
            f"{name}: adverts of {ips} are seen more than once ({what}, within milliseconds, at most "
            f"{top.max_copies} of one advert): a mirror port copying both directions, a reflecting "
            "hypervisor or vSwitch; each is counted once here",
            evidence={**evidence, "kind": "reflection"}, cause="reflection", **where)
    ifaces = sorted({i for sp in sps for i in sp.copy_ifaces})
    return ADVERT_COPIES.finding(
        f"{name}: adverts of {ips} were recorded on {len(ifaces) + 1} interfaces of the capturing host "
        f"({capture:,} copies: tcpdump -i any on a bridge records a frame on every port it crosses): "
        "each is analysed once, as one segment",
        evidence={**evidence, "kind": "capture", "interfaces": ifaces}, cause="capture", **where)
