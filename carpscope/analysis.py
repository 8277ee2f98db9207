"""The pipeline: frames -> decode -> verify -> track -> rules -> a Report.

One ``Analysis`` serves ``analyze`` (files, stdin) and ``sniff`` (live): feed it sources or
records, call ``finish``. Nothing here prints.
"""
from __future__ import annotations

import hashlib
import heapq
from operator import itemgetter
from dataclasses import dataclass, field
from typing import Callable

from carpscope.model import CARP, AddressHint, Advert, Finding, Malformed, SourceInfo
from carpscope.capture import batch_frame
from carpscope.rules import WARNING, declare
from carpscope.rules.group import SPEAKER_LIMIT, group_findings
from carpscope.rules.packet import PacketRules
from carpscope.rules.splitbrain import split_brain_findings
from carpscope.steady import Steady, engine as steady_engine
from carpscope.track import Group, Tracker
from carpscope.wire.frame import decode_frame, ip_offset as rec_ip_offset

CAPTURE_TRUNCATED = declare("capture-truncated", "CS102", WARNING,
                            "Capture file damaged or cut short: reading stopped early", __name__)

DEFER_MAX = 16      # adverts per speaker held back while its VIP set is only inferred


def _keyed(i: int, src):
    """A source's frames as (ts, source index, linktype, number, bytes), for a timestamp merge."""
    for lt, n, ts, data in src.frames():
        yield ts, i, lt, n, data


@dataclass
class Report:
    sources: list[SourceInfo]
    groups: list[Group]
    findings: list[Finding]
    numbering: str = "filtered"          # "filtered", "all", or "mixed" (see sources)
    filters: dict = field(default_factory=dict)
    numberings: dict = field(default_factory=dict)
    hosts: dict = field(default_factory=dict)   # speaker address -> host name, from --config/--inventory


class Analysis:
    def __init__(self, verifier=None, vipinfer=None, auth_rules=None, intent=None,
                 on_event: Callable[[dict], None] | None = None, on_advert: Callable | None = None,
                 steady: str | None = None):
        self.tracker = Tracker(on_event)
        self.packet_rules = PacketRules()
        self.verifier = verifier
        self.vipinfer = vipinfer
        self.auth_rules = auth_rules
        self.intent = intent
        self.on_advert = on_advert
        self.sources: list[SourceInfo] = []
        self.extra: list[Finding] = []
        self.numberings: dict[str, str] = {}      # per source: "filtered" or "all" (see capture.py)
        self.filters: dict = {}
        self._deferred: dict[tuple, list[Advert]] = {}
        # steady: None ($CARPSCOPE_STEADY, else the compiled fold when built), "c", "python", "off"
        mode = steady_engine(steady)
        self.steady = Steady(self, mode) if mode else None
        self._steady_got = None

    # ---------------------------------------------------------------- input
    def feed_source(self, src, point: str | None = None) -> None:
        self.feed_sources([src], point)

    def feed_sources(self, srcs: list, point: str | None = None) -> None:
        """Analyse sources; several are read in timestamp order (a streaming merge: one frame per
        source in memory). ``point`` names one capture point for all of them (rotated files of
        one tcpdump run), so their adverts form one segment; by default each file is its own."""
        for src in srcs:
            self.sources.append(src.info)
            self.numberings[src.name] = getattr(src, "numbering", None) or "filtered"
        steady = self.steady if self.on_advert is None else None
        tables = [steady.table(src.info) if steady else None for src in srcs]
        if len(srcs) == 1:
            src, table = srcs[0], tables[0]
            if table is None:
                for lt, n, ts, data in src.frames():
                    self._frame(lt, n, ts, data, src, point, None)
            else:
                self._feed_chunks(src, point, table)
        else:
            streams = [_keyed(i, s) for i, s in enumerate(srcs)]
            for ts, i, lt, n, data in heapq.merge(*streams, key=itemgetter(0, 1)):
                table = tables[i]
                if table is None or not steady.find_fold(table, lt, n, ts, data):
                    self._frame(lt, n, ts, data, srcs[i], point, table)
        for src in srcs:
            self._source_done(src)

    def _feed_chunks(self, src, point, table) -> None:
        """One source through the steady fold: libpcap's batches go to ``fold_batch``, which
        stops at each frame that is not a repeat; that frame takes the full pipeline."""
        steady, frame = self.steady, self._frame
        find_fold, fold_batch = steady.find_fold, steady.fold_batch
        for lt, n0, buf, meta in src.chunks():
            if buf is None:
                ts, data = meta
                if not find_fold(table, lt, n0 + 1, ts, data):
                    frame(lt, n0 + 1, ts, data, src, point, table)
                continue
            count = len(meta) // 16
            mv = memoryview(meta).cast("I")
            i = 0
            while i < count:
                i = fold_batch(table, lt, buf, meta, i, n0)
                if i < count:
                    ts, data = batch_frame(buf, mv, i)
                    frame(lt, n0 + i + 1, ts, data, src, point, table)
                    i += 1

    def _frame(self, lt, n, ts, data, src, point, table) -> None:
        """The full pipeline for one frame; a steady advert leaves a template in ``table``."""
        rec = decode_frame(lt, data, n, ts, src.name)
        if rec is None:
            return
        if point:
            rec.segment = point + rec.segment[len(src.name):]
        kind = self.record(rec)
        if kind == 1:
            src.info.adverts += 1
            if table is not None and self._steady_got is not None:
                self.steady.learn(table, lt, data, rec, rec_ip_offset(lt, data), self._steady_got)
        elif kind == 2:
            src.info.malformed += 1

    def _source_done(self, src) -> None:
        info, name = src.info, src.name
        if src.filter:
            self.filters[name] = src.filter
        if info.error:
            self.extra.append(CAPTURE_TRUNCATED.finding(
                f"{name}: {info.error}; everything before it was analysed",
                source=name, segment=name, packets=[info.stopped_frame] if info.stopped_frame else [],
                evidence={"record": info.stopped_frame, "offset": info.stopped_offset, "frames_read": info.packets}))

    def record(self, rec) -> int:
        """Feed one decoded record; returns 1 for an advert, 2 malformed, 0 otherwise."""
        if type(rec) is Advert:
            self.advert(rec)
            return 1
        if type(rec) is Malformed:
            self.packet_rules.malformed(rec)
            return 2
        if type(rec) is AddressHint and self.vipinfer is not None:
            self.vipinfer.add_hint(rec)
        return 0

    def advert(self, a: Advert) -> None:
        self._steady_got = None
        clean = self.packet_rules.advert(a)
        result = None
        if self.vipinfer is not None:
            self.vipinfer.add_advert(a)   # before verifying: a VIP set just inferred applies at once
        if a.protocol == CARP and self.verifier is not None:
            result = self.verifier.verify(a)
        got = self.tracker.advert(a)
        if got is None:
            return
        g, sp = got
        if result is not None:
            key = (a.segment, a.src, a.eth_src, a.vhid)
            if result.status == "fail" and self._vips_only_inferred(a):
                # the VIP set may not be inferred yet (the GARP comes with or after the first
                # adverts): judge these adverts again once it is, instead of calling them bad
                buf = self._deferred.setdefault(key, [])
                if len(buf) < DEFER_MAX:
                    buf.append(a)
                    self._notify(a, g, sp, result)
                    return
            self._apply_auth(a, sp, result)
            if result.status == "ok" and key in self._deferred:
                self._flush(key, sp)
        elif a.protocol == CARP:
            sp.auth["unchecked"] = sp.auth.get("unchecked", 0) + 1
        if a.protocol == "vrrp2":
            fp = hashlib.sha256(a.auth_data or b"").hexdigest()[:12] if a.auth_type else None
            sp.vrrp_auth = (a.auth_type, fp)
        if self.auth_rules is not None and result is None:
            self.auth_rules.add(a, None)
        self._notify(a, g, sp, result)
        if clean:
            self._steady_got = (g, sp, result)

    def _notify(self, a, g, sp, result) -> None:
        if self.on_advert is not None:
            self.on_advert(a, g, sp, result)

    def _vips_only_inferred(self, a: Advert) -> bool:
        entries = self.verifier.keyring.vip_entries(a.vhid, a.segment)
        return all(e.origin == "inferred" for e in entries)

    def _apply_auth(self, a: Advert, sp, result) -> None:
        st = result.status
        sp.auth[st] = sp.auth.get(st, 0) + 1
        if st == "ok":
            sp.auth_key, sp.auth_vips, sp.auth_flavour = result.key, tuple(result.vips), result.flavour
            sp.auth_inferred, sp.auth_weak = result.inferred_vips, result.weak
        elif st == "fail" and result.diagnosis is not None:
            sp.auth_diagnosis = result.diagnosis.to_json()
        if self.auth_rules is not None:
            self.auth_rules.add(a, result)

    def _flush(self, key, sp=None) -> None:
        """Verify deferred adverts again with what is known now, and count them for good."""
        for a in self._deferred.pop(key, ()):
            g = self.tracker.groups.get((a.segment, a.protocol, a.family, a.vhid))
            s = sp or (g.speakers.get((a.src, a.eth_src)) if g else None)
            if s is not None:
                self._apply_auth(a, s, self.verifier.verify(a))

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
        findings += group_findings(groups)
        for g in groups:
            findings += split_brain_findings(g)
        if self.auth_rules is not None:
            findings += self.auth_rules.findings()
        if self.intent is not None:
            findings += self.intent.findings(groups)
        if self.tracker.groups_capped:
            findings.append(SPEAKER_LIMIT.finding(f"more than {len(groups)} groups: "
                                    f"{self.tracker.groups_capped} adverts of further groups not tracked",
                                    evidence={"dropped_adverts": self.tracker.groups_capped}))
        findings.sort(key=lambda f: (-f.severity.rank, f.segment or "", f.vhid or 0, f.code, f.first_seen or 0))
        kinds = set(self.numberings.values()) or {"filtered"}
        numbering = kinds.pop() if len(kinds) == 1 else "mixed"
        hosts = {}
        if self.intent is not None:
            hosts = {s.ip: h for g in groups for s in g.speakers.values() if (h := self.intent.host_of(s.ip))}
        return Report(self.sources, groups, findings, numbering, self.filters, dict(self.numberings), hosts)
