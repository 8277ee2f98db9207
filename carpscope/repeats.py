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

Memory is bounded: ``MAX_CELLS`` recent packets per capture point (``MAX_POINTS`` of them) and
``RECENT`` recent (counter, HMAC) pairs per group, each emptied when full (caches: what is
forgotten can only make a later copy or replay look new); the counts live on the tracker's
Speaker, bounded with the speakers.
"""
from __future__ import annotations

from typing import Final

from carpscope.model import Advert, Finding, protocol_name
from carpscope.rules import ERROR, INFO, WARNING, declare
from carpscope.track import Group, Speaker

COUNTER_REPLAY = declare("counter-replay", "CS404", WARNING,
                         "A CARP advertisement (counter and HMAC) replayed by its source", __name__)
ADVERT_COPIES = declare("advert-copies", "CS108", INFO,
                        "Adverts seen more than once: reflections, a mirror port, or the capture", __name__)
ADVERT_STORM = declare("advert-storm", "CS109", ERROR,
                       "Copies of adverts far faster than advertised: a switching loop or storm", __name__)

COPY_S: Final = 0.05        # a copy arrives within this of the previous sighting (and half the interval)
MAX_CELLS: Final = 4096     # recent packets remembered per capture point (emptied when full: a cache)
MAX_POINTS: Final = 1024    # capture points (with VLANs) whose recent packets are kept
RECENT: Final = 256         # (counter, HMAC) remembered per group (emptied when full)
SAMPLE: Final = 10
# a storm: at least this many frames per advert sent, or one advert copied this many times
STORM_FACTOR: Final = 10.0
STORM_COPIES: Final = 10


class Cell:
    """The last sighting of one packet."""

    last: float
    window: float
    ifindex: int
    speaker: Speaker
    count: int

    def __init__(self, last: float, window: float, ifindex: int, speaker: Speaker) -> None:
        self.last, self.window, self.ifindex, self.speaker, self.count = last, window, ifindex, speaker, 0


class Repeats:
    """Recognises copies, reflections, replays and adoptions; the counts are kept on the
    tracker's Speaker of the advert (one record per speaker). Recent packets are kept per
    capture point (``cells_for``: the flows of one point share them, so a copy recorded on
    another interface of the capturing host is recognised), recent counters per group."""

    def __init__(self) -> None:
        self._points: dict[str, dict[bytes, Cell]] = {}
        self.copies = 0

    def cells_for(self, point: str) -> dict[bytes, Cell]:
        cells = self._points.get(point)
        if cells is None:
            if len(self._points) >= MAX_POINTS:
                self._points.clear()
            cells = self._points[point] = {}
        return cells

    def copy(self, a: Advert, cells: dict[bytes, Cell]) -> bool:
        """True when ``a`` is a copy of a packet seen just before (counted here, nothing else
        to do); False for an advert the other stages must see (``seen`` records it after)."""
        cell = cells.get(a.packet)
        if cell is None or a.ts - cell.last >= cell.window or a.ts < cell.last:
            return False
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
        if cell.count > sp.max_copies:
            sp.max_copies = cell.count
        if not sp.copy_first:
            sp.copy_first = a.ts
        sp.copy_last = a.ts
        if len(sp.copy_frames) < SAMPLE:
            sp.copy_frames.append(a.frame)
        return True

    def seen(self, a: Advert, g: Group, sp: Speaker, cells: dict[bytes, Cell]) -> bool:
        """Remember an advert of ``sp`` that is not a copy; for CARP, judge its counter and
        HMAC. False when it is a reflection (counted as a copy: the other stages must not see it)."""
        window = min(COPY_S, (a.interval_s or 1 / 256) / 2)
        if len(cells) >= MAX_CELLS:
            cells.clear()
        cells[a.packet] = Cell(a.ts, window, a.ifindex, sp)
        counter, md = a.counter, a.md
        if counter is None or md is None:
            return True
        key = md                            # the HMAC covers the counter: it is the advert's identity
        recent = g.counters
        prev = recent.get(key)
        last_counter = sp.last_counter
        sp.last_counter = counter
        if prev is not None:
            pts, pframe, psrc = prev
            if psrc != a.src:
                sp.adopted += 1             # another source's counter: ucarp adoption
            elif a.ts - pts < window:
                sp.reflections += 1         # the same advert back, its IP header changed on the way
                if len(sp.copy_frames) < SAMPLE:
                    sp.copy_frames.append(a.frame)
                if not sp.copy_first:
                    sp.copy_first = a.ts
                sp.copy_last = a.ts
                return False
            elif last_counter != counter:
                sp.replays += 1             # an earlier advert again, after other counters
                if not sp.replay_first:
                    sp.replay_first, sp.replay_of = a.ts, pframe
                sp.replay_last = a.ts
                if len(sp.replay_frames) < SAMPLE:
                    sp.replay_frames.append(a.frame)
            # else: the same counter as its previous advert (a constant counter) is no replay
        elif len(recent) >= RECENT:
            recent.clear()                  # a cache: what is forgotten can only miss a replay
        recent[key] = (a.ts, a.frame, a.src)
        return True


def repeat_findings(groups: list[Group]) -> list[Finding]:
    out: list[Finding] = []
    for g in groups:
        for sp in sorted(g.speakers.values(), key=lambda s: (s.first, s.ip)):
            if sp.replays:
                out.append(_replay_finding(g, sp))
            if sp.copies or sp.capture_copies or sp.reflections:
                out.append(_copies_finding(g, sp))
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


def _copies_finding(g: Group, sp: Speaker) -> Finding:
    name = f"{protocol_name(g.protocol)} {g.vhid}"
    net = sp.copies + sp.reflections
    adverts = max(sp.adverts, 1)
    span = max(sp.copy_last - sp.copy_first, 0.0)
    # frames of this speaker per advert it sent, and copies per second while they came
    factor = (adverts + net) / adverts
    rate = net / span if span > 0 else float(net)
    per_s = 1 / sp.interval if sp.interval else 0.0
    evidence: dict = {"speaker": sp.ip, "adverts": sp.adverts, "copies": sp.copies,
                      "reflections": sp.reflections, "capture_copies": sp.capture_copies,
                      "adverts_copied": sp.copied, "max_copies_per_advert": sp.max_copies,
                      "factor": round(factor, 1), "copies_per_second": round(rate, 1),
                      "advertised_per_second": round(per_s, 3)}
    if sp.copy_ifaces:
        evidence["interfaces"] = sorted(sp.copy_ifaces)
    where = dict(first_seen=sp.copy_first, last_seen=sp.copy_last, packets=list(sp.copy_frames), **_where(g))
    if net and (factor >= STORM_FACTOR or sp.max_copies >= STORM_COPIES):
        return ADVERT_STORM.finding(
            f"{name}: {sp.ip}'s adverts arrive {factor:,.0f} times each ({net:,} copies of {sp.adverts:,} "
            f"adverts, up to {sp.max_copies:,} copies of one, {rate:,.0f} copies/s where it advertises "
            f"{per_s:g}/s): a switching loop or broadcast storm on this segment; every copy "
            "re-arms the receivers' timers and the loop floods the segment",
            evidence={**evidence, "kind": "storm"}, cause="storm", **where)
    if net:
        what = (f"{sp.copies:,} byte-identical copies" if sp.copies else "") + \
               (" and " if sp.copies and sp.reflections else "") + \
               (f"{sp.reflections:,} copies with a changed IP header" if sp.reflections else "")
        return ADVERT_COPIES.finding(
            f"{name}: {sp.ip}'s adverts are seen more than once ({what} of {sp.adverts:,} adverts, within "
            "milliseconds): a mirror port copying both directions, a reflecting hypervisor or vSwitch; "
            "counted once here",
            evidence={**evidence, "kind": "reflection"}, cause="reflection", **where)
    return ADVERT_COPIES.finding(
        f"{name}: {sp.ip}'s adverts were recorded on {len(sp.copy_ifaces) + 1} interfaces of the capturing "
        f"host ({sp.capture_copies:,} copies, e.g. tcpdump -i any on a bridge): each is analysed once, "
        "on the interface where it was first seen",
        evidence={**evidence, "kind": "capture"}, cause="capture", **where)
