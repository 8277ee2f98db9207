"""The engine: every frame of every source takes this one path, and each stage decides once.

    frame -> decode (wire/) -> repeats (copies are counted and stop here) -> packet rules
          -> VIP inference -> HMAC (auth/) -> tracking (track.py) -> auth accounting
          -> report (findings of every rule, at the end or on a live snapshot)

The same ``Engine`` serves ``analyze`` (files, stdin) and ``sniff`` (live): sources hand it
chunks of frames (capture/); ``finish`` (or ``snapshot`` while live) returns the ``Report``.
The engine and its stages are plain typed Python, compiled to C by mypyc when the package is
built with a compiler and run as they are otherwise: one implementation either way. Nothing
here prints.
"""
from __future__ import annotations

import gc
import heapq
TYPE_CHECKING = False     # typing.TYPE_CHECKING without importing typing at run time (start-up)
if TYPE_CHECKING:
    from typing import Callable, Iterator

from carpscope.auth.results import PENDING, AuthResult
from carpscope.auth.verify import Verifier
from carpscope.auth.vipinfer import VipInference
from carpscope.capture.reader import Frame
from carpscope.model import CARP, AddressHint, Advert, Finding, Malformed, SourceInfo
from carpscope.repeats import Recent, Repeats, repeat_findings
from carpscope.rules import WARNING, declare
from carpscope.rules.auth import auth_findings, tally
from carpscope.rules.group import group_findings, limit_findings
from carpscope.rules.packet import PacketRules
from carpscope.rules.splitbrain import split_brain_findings
from carpscope.track import Group, Speaker, Tracker
from carpscope.wire.frame import Decoder, Flow

CAPTURE_TRUNCATED = declare("capture-truncated", "CS102", WARNING,
                            "Capture file damaged or cut short: reading stopped early", __name__)

DEFER_MAX = 16      # adverts per speaker held back while its VIP set is only inferred

if TYPE_CHECKING:
    OnAdvert = Callable[[Advert, Group, Speaker, AuthResult | None], None]


class Report:
    __slots__ = ("sources", "groups", "findings", "numbering", "filters", "numberings", "interrupted")

    sources: list[SourceInfo]
    groups: list[Group]
    findings: list[Finding]
    numbering: str                       # "all" (Wireshark's), "filtered", or "mixed" (see sources)
    filters: dict
    numberings: dict
    interrupted: str | None              # the signal that stopped reading early, if one did

    def __init__(self, sources: list[SourceInfo], groups: list[Group], findings: list[Finding],
                 numbering: str = "all", filters: dict | None = None, numberings: dict | None = None,
                 interrupted: str | None = None) -> None:
        self.sources = sources
        self.groups = groups
        self.findings = findings
        self.numbering = numbering
        self.filters = {} if filters is None else filters
        self.numberings = {} if numberings is None else numberings
        self.interrupted = interrupted


class FlowState:
    """The engine's record of one flow (wire.frame.Flow): the group and speaker its last advert
    went to (checked against each advert's protocol and VHID) and the recent packets of its
    capture point (repeats.py). A known flow's advert then costs one lookup, not one per stage."""

    protocol: str
    vhid: int
    group: Group | None
    speaker: Speaker | None
    cells: Recent

    def __init__(self, cells: Recent) -> None:
        self.protocol, self.vhid, self.group, self.speaker, self.cells = "", -1, None, None, cells


class _Keyed:
    """A source's frames for a timestamp merge: (ts, source index, frame)."""

    def __init__(self, i: int, src: object) -> None:
        self.i, self.src = i, src

    def __iter__(self) -> Iterator[tuple[float, int, Frame]]:
        i = self.i
        for chunk in self.src.chunks():      # type: ignore[attr-defined]
            for f in chunk:
                yield f[1], i, f


class Engine:
    def __init__(self, verifier: Verifier | None = None, vipinfer: VipInference | None = None,
                 intent: object = None, on_event: Callable[[dict], None] | None = None,
                 on_advert: OnAdvert | None = None) -> None:
        self.tracker = Tracker(on_event)
        self.repeats = Repeats()
        self.packet_rules = PacketRules()
        self.verifier = verifier
        self.vipinfer = vipinfer
        self.intent = intent
        self.on_advert = on_advert
        self.sources: list[SourceInfo] = []
        self.extra: list[Finding] = []
        self.numberings: dict[str, str] = {}
        self.filters: dict = {}
        self.interrupted: str | None = None
        self._deferred: dict[tuple, list[Advert]] = {}
        self._decoders: dict[tuple[str, str | None], Decoder] = {}

    def decoder(self, name: str, point: str | None = None) -> Decoder:
        """The decoder of a source (one per source: its flows are its own)."""
        key = (name, point)
        d = self._decoders.get(key)
        if d is None:
            d = self._decoders[key] = Decoder(name, point)
        return d

    # ---------------------------------------------------------------- input
    def feed_source(self, src: object, point: str | None = None) -> None:
        self.feed_sources([src], point)

    def feed_sources(self, srcs: list, point: str | None = None) -> None:
        """Analyse sources; several are read in timestamp order (a streaming merge: one frame per
        source in memory). ``point`` names one capture point for all of them (rotated files of
        one tcpdump run), so their adverts form one segment; by default each file is its own."""
        for src in srcs:
            self.sources.append(src.info)
            self.numberings[src.name] = src.numbering
        # nothing the analysis allocates is ever garbage in a cycle worth collecting while it
        # runs; the collector's passes over millions of young records cost a tenth of the time
        enabled = gc.isenabled()
        gc.disable()
        try:
            if len(srcs) == 1:
                src = srcs[0]
                name, info = src.name, src.info
                for chunk in src.chunks():
                    self.chunk(chunk, name, info, point)
            else:
                decoders = [self.decoder(s.name, point) for s in srcs]
                infos = [s.info for s in srcs]
                for _ts, i, f in heapq.merge(*(_Keyed(i, s) for i, s in enumerate(srcs)),
                                             key=lambda e: (e[0], e[1])):
                    self._frame(decoders[i], f[2], f[0], f[1], f[3], infos[i])
        finally:
            if enabled:
                gc.enable()
            for src in srcs:
                self._source_done(src)

    def chunk(self, frames: list[Frame], name: str, info: SourceInfo, point: str | None = None) -> None:
        """Analyse a chunk of frames of one source (capture/reader.Frame tuples)."""
        dec = self.decoder(name, point)
        for n, ts, lt, data, _off, _len in frames:
            self._frame(dec, lt, n, ts, data, info)

    def frame(self, lt: int, n: int, ts: float, data: bytes, name: str, info: SourceInfo,
              point: str | None = None) -> int:
        """One frame of source ``name``; returns 1 for an advert, 2 malformed, 0 otherwise."""
        return self._frame(self.decoder(name, point), lt, n, ts, data, info)

    def _frame(self, dec: Decoder, lt: int, n: int, ts: float, data: bytes, info: SourceInfo) -> int:
        """The one path of a frame."""
        rec = dec.decode(lt, data, n, ts)
        if rec is None:
            return 0
        kind = self.record(rec)
        if kind == 1:
            info.adverts += 1
        elif kind == 2:
            info.malformed += 1
        return kind

    def _source_done(self, src: object) -> None:
        info, name = src.info, src.name        # type: ignore[attr-defined]
        if getattr(src, "filter", None):
            self.filters[name] = src.filter    # type: ignore[attr-defined]
        if info.error:
            self.extra.append(CAPTURE_TRUNCATED.finding(
                f"{name}: {info.error}; everything before it was analysed",
                source=name, segment=name, packets=[info.stopped_frame] if info.stopped_frame else [],
                evidence={"record": info.stopped_frame, "offset": info.stopped_offset, "frames_read": info.packets}))

    def record(self, rec: Advert | Malformed | AddressHint) -> int:
        """Feed one decoded record; returns 1 for an advert, 2 malformed, 0 otherwise."""
        if isinstance(rec, Advert):
            self.advert(rec)
            return 1
        if isinstance(rec, Malformed):
            self.packet_rules.malformed(rec)
            return 2
        if self.vipinfer is not None:
            self.vipinfer.add_hint(rec)
        return 0

    def _state(self, a: Advert) -> FlowState:
        fl = a.flow
        if isinstance(fl, Flow):
            st = fl.state
            if isinstance(st, FlowState):
                return st
            st = FlowState(self.repeats.cells_for(a.point))
            fl.state = st
            return st
        return FlowState(self.repeats.cells_for(a.point))     # an advert built by hand

    def advert(self, a: Advert) -> None:
        """One advert through every stage, each deciding once (see the module doc)."""
        st = self._state(a)
        copied = self.repeats.copy(a, st.cells)
        if copied is not None:
            fl = a.flow
            if copied.ifindex != a.ifindex and isinstance(fl, Flow):
                fl.decoder.bridge(copied.ifindex, a.ifindex)   # -i any: one bridge, one segment
            return
        g, sp = st.group, st.speaker
        if g is None or sp is None or st.vhid != a.vhid or st.protocol != a.protocol:
            got = self.tracker.lookup(a)
            if got is None:
                return
            g, sp = got
            st.group, st.speaker, st.protocol, st.vhid = g, sp, a.protocol, a.vhid
        if not self.repeats.seen(a, g, sp, st.cells):
            return
        self.packet_rules.advert(a)
        result = None
        if self.vipinfer is not None:
            self.vipinfer.add_advert(a)   # before verifying: a VIP set just inferred applies at once
        if a.protocol == CARP and self.verifier is not None:
            result = self.verifier.verify(a, sp)
        self.tracker.advert(a, g, sp)
        if result is not None and result.status == "fail" and self._vips_only_inferred(a):
            # the VIP set may not be inferred yet (the GARP comes with or after the first
            # adverts): judge these adverts again once it is, instead of calling them bad
            key = (a.segment, a.src, a.eth_src, a.vhid)
            buf = self._deferred.setdefault(key, [])
            if len(buf) < DEFER_MAX:
                buf.append(a)
                self._notify(a, g, sp, PENDING)
                return
        tally(sp, a, result)
        if result is not None and result.status == "ok" and self._deferred:
            key = (a.segment, a.src, a.eth_src, a.vhid)
            if key in self._deferred:
                self._flush(key, sp)
        self._notify(a, g, sp, result)

    def _notify(self, a: Advert, g: Group, sp: Speaker, result: AuthResult | None) -> None:
        if self.on_advert is not None:
            self.on_advert(a, g, sp, result)

    def _vips_only_inferred(self, a: Advert) -> bool:
        if self.verifier is None:
            return False
        entries = self.verifier.keyring.vip_entries(a.vhid, a.segment)
        return all(e.origin == "inferred" for e in entries)

    def _flush(self, key: tuple, sp: Speaker | None = None) -> None:
        """Verify deferred adverts again with what is known now, and count them for good."""
        if self.verifier is None:
            return
        for a in self._deferred.pop(key, ()):
            s = sp
            if s is None:
                g = self.tracker.group_of(a)
                s = g.speakers.get((a.src, a.eth_src or "")) if g is not None else None
            if s is not None:
                tally(s, a, self.verifier.verify(a, s))

    # ---------------------------------------------------------------- output
    def finish(self) -> Report:
        """End of input: close every run and compute the final findings."""
        self.tracker.finish()
        return self.snapshot()

    def snapshot(self) -> Report:
        """The report as of now, without closing anything (live dashboards call this each second)."""
        for key in list(self._deferred):
            self._flush(key)
        groups = sorted(self.tracker.groups.values(), key=lambda g: (g.segment, g.vhid, g.protocol, g.family))
        findings = list(self.extra)
        findings += self.packet_rules.findings()
        findings += repeat_findings(groups)
        findings += group_findings(groups)
        for g in groups:
            findings += split_brain_findings(g)
        findings += auth_findings(groups)
        if self.intent is not None:
            findings += self.intent.findings(groups)    # type: ignore[attr-defined]
        findings += limit_findings(self.tracker)
        findings.sort(key=lambda f: (-f.severity.rank, f.segment or "", f.vhid or 0, f.code, f.first_seen or 0))
        kinds = set(self.numberings.values()) or {"all"}
        numbering = kinds.pop() if len(kinds) == 1 else "mixed"
        return Report(self.sources, groups, findings, numbering, self.filters, dict(self.numberings),
                      self.interrupted)
