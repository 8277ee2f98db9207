"""The steady state: a speaker sending the same advert again and again, folded in one step.

Between two adverts of a healthy master only a few bytes change: the IPv4 identification and
header checksum, and for CARP the checksum, counter and HMAC. Yet the full pipeline (decode,
packet rules, VIP inference, HMAC verification, tracking, auth findings) costs about 11 us per
advert in CPython, which makes a dense capture as slow to analyse as tshark is to decode it.

After the pipeline has handled an advert that changed nothing (no rule fired, the HMAC
verified or could not be checked, the speaker is the only master of its group) a *template*
keeps the frame's constant bytes, what the pipeline concluded, and each stage's state object
for that speaker. A later frame that equals the template outside the changing bytes is folded
here, when and only when every stage would have done exactly this fold:

| stage (module)                | the fold applies only while                                | fold |
|-------------------------------|------------------------------------------------------------|------|
| decode (wire/)                | same link type and bytes but IP id/checksum and CARP checksum, counter, HMAC; the CARP checksum verifies | - |
| packet rules (rules/packet)   | counter+HMAC not in the replay memory; the speaker's counter still remembered | replay memory, last counter |
| VIP inference (vipinfer)      | no hint to pair, resolve or trim (adj_until < t < due); same source as the group's last advert, no pause | the group's last-advert cell |
| HMAC (auth.Verifier)          | keyring unchanged since the template; its context verifies the counter and HMAC | - |
| tracking (track)              | the speaker's last advert was this template; it is the only open run; active, not a copy | counts, period statistics |
| auth findings (auth), analysis | nothing deferred                                           | counts, samples |

The template is the speaker's last advert (``Speaker.steady``), so every value the pipeline
sets from an advert's fields is already what this advert would set. Anything else goes
through the full pipeline, which may leave a new template. Per stage the fold is the part of
its per-advert method that runs in that state, inlined here (one call per advert instead of
seven); ``tests/test_steady.py`` runs captures and adversarial sequences both ways and
requires identical reports.
"""
from __future__ import annotations

import os

from carpscope.capture import batch_frame
from carpscope.model import CARP, VRRP2
from carpscope.rules import packet
from carpscope.track import DUPLICATE_S, SAMPLE

try:                        # the compiled transcription of Table.find + Steady.fold (_steady.c)
    from carpscope import _steady
except ImportError:         # no C compiler when installed: the Python fold below runs
    _steady = None
ENV = "CARPSCOPE_STEADY"    # off | python | c | auto (the default): a switch to rule the fold out
ENGINES = ("off", "python", "c", "auto")


def engine(choice: str | None = None) -> str | None:
    """The fold to use: "c", "python" or None (off), from ``choice`` or $CARPSCOPE_STEADY."""
    choice = (choice or os.environ.get(ENV) or "auto").lower()
    if choice not in ENGINES:
        raise ValueError(f"${ENV} must be one of {', '.join(ENGINES)}, not {choice!r}")
    if choice == "auto":
        return "c" if _steady is not None else "python"
    if choice == "c" and _steady is None:
        raise ValueError(f"${ENV}=c but the compiled fold (carpscope._steady) is not built")
    return None if choice == "off" else choice


MAX_TEMPLATES = 4096       # per source; the table starts over when full (it is only a cache)
MAX_LAYOUTS = 8            # frame layouts tried per frame length
_AUTH_SAMPLE = 10          # auth.AuthFindings sample size

# what AuthFindings.add counts for the template's result
NOTHING, OK, UNCHECKED, VRRP2_AUTH = 0, 1, 2, 3


class Template:
    __slots__ = ("lt", "carp", "p", "src", "info", "kr", "gen", "inner", "outer", "gid", "recent",
                 "cseen", "vi", "vcell", "vgap", "g", "sp", "active", "dup", "tauth", "asp",
                 "akind", "okkey", "vkey", "vsample", "hstate", "table", "c")

    def pack(self, deferred: dict, table) -> None:
        """The fields as one tuple, in the order _steady.c reads them (its enum T_...)."""
        self.c = (self.lt, self.carp, self.p, self.src, self.info, self.kr, self.gen, self.hstate,
                  self.gid, self.recent, self.cseen, self.vi, self.vcell, self.vgap,
                  self.g, self.sp, self.active, self.dup, self.tauth, self.asp, self.akind,
                  self.okkey, self.vkey, self.vsample, deferred, table, packet.RECENT, SAMPLE,
                  _AUTH_SAMPLE)


class Table:
    """One source's templates: frame length -> layouts (cuts), masked frame bytes -> Template."""

    __slots__ = ("layouts", "templates", "info", "folded")

    def __init__(self, info):
        self.layouts: dict[int, list[tuple]] = {}
        self.templates: dict[bytes, Template] = {}
        self.info = info
        self.folded = 0             # frames folded (the rest went through the pipeline)

    def find(self, lt: int, data: bytes) -> Template | None:
        cuts = self.layouts.get(len(data))
        if cuts is None:
            return None
        for c0, c1, c2, c3, c4, c5 in cuts:
            t = self.templates.get(data[:c0] + data[c1:c2] + data[c3:c4] + data[c5:])
            if t is not None:
                return t if t.lt == lt else None
        return None


def cuts_of(data: bytes, ip: int, family: int, p: int, carp: bool) -> tuple:
    """(c0..c5): the masked frame is data[:c0] + data[c1:c2] + data[c3:c4] + data[c5:].

    Masked: IPv4 identification (ip+4, 2 bytes) and header checksum (ip+10, 2 bytes); CARP
    checksum, counter and HMAC (payload bytes 6-35). Everything else, the link header and any
    padding after the IP packet included, must be equal.
    """
    n = len(data)
    if family == 4:
        c0, c1, c2, c3 = ip + 4, ip + 6, ip + 10, ip + 12
    else:
        c0 = c1 = c2 = c3 = ip
    c4, c5 = (p + 6, p + 36) if carp else (n, n)
    return c0, c1, c2, c3, c4, c5


class Steady:
    """Learns templates from the pipeline's verdicts and folds the frames that repeat them."""

    def __init__(self, analysis, engine: str):
        self.analysis = analysis
        self.tables: list[Table] = []
        self.engine = engine
        if engine == "c":
            self.find_fold = _steady.find_fold
            self.fold_batch = _steady.fold_batch

    def table(self, info) -> Table:
        t = Table(info)
        self.tables.append(t)
        return t

    @property
    def folded(self) -> int:
        return sum(t.folded for t in self.tables)

    def learn(self, table: Table, lt: int, data: bytes, a, ip: int, got) -> None:
        """Keep a template for advert ``a`` (just handled by the pipeline, which returned
        ``got`` = (group, speaker, auth result) because nothing fired), when every stage's
        state for it can be held."""
        an = self.analysis
        g, sp, result = got
        carp = a.protocol == CARP
        if sp.run_start is None or (carp and (a.payload_len != 36 or not a.checksum_ok)):
            return
        t = Template()
        t.lt, t.carp, t.src, t.info = lt, carp, a.src, table.info
        t.gid = t.recent = t.cseen = None
        t.vgap = 0.0
        if a.family == 4:
            end = ip + ((data[ip + 2] << 8) | data[ip + 3])
        else:
            end = ip + 40 + ((data[ip + 4] << 8) | data[ip + 5])
        t.p = p = end - a.payload_len
        # HMAC: the context that verified it, or the cached "unchecked" verdict
        ver = an.verifier
        t.kr = t.gen = t.inner = t.outer = t.hstate = None
        t.tauth = None
        if carp:
            if ver is None:
                t.tauth = "unchecked"
            elif result.status == "ok":
                ctx = ver._good.get((a.segment, a.src, a.eth_src, a.vhid))
                if ctx is None or ctx.result is not result:
                    return
                t.inner, t.outer, t.tauth = ctx._inner, ctx._outer, "ok"
                if self.engine == "c":
                    t.hstate = _steady.hmac_state(ctx.key._raw, ctx.prefix)
            elif result.status == "unchecked":
                t.tauth = "unchecked"
            else:
                return
            if ver is not None:
                t.kr, t.gen = ver.keyring, ver.keyring.generation
            rules = an.packet_rules
            t.gid = rules.group_id(a.segment, a.vhid)
            t.recent = rules._recent
            t.cseen = rules.counter_cell((a.segment, a.protocol, a.vhid, a.src))
            if t.cseen is None:
                return
        # VIP inference: the group's (last source, last time) cell
        vi = t.vi = an.vipinfer
        t.vcell = None
        if vi is not None:
            t.vcell = vi._masters.get(a.segment, {}).get((a.protocol, a.vhid))
            if t.vcell is None:
                return
            t.vgap = vi.change_gap(a.interval_s)
        # tracking
        t.g, t.sp = g, sp
        t.active = sp.md * 1.1
        t.dup = min(DUPLICATE_S, sp.interval / 2)
        # auth findings
        t.asp, t.akind, t.okkey, t.vkey, t.vsample = None, NOTHING, None, None, False
        rules = an.auth_rules
        if rules is not None:
            t.asp = rules.speaker(a)
            if t.asp is None:
                return
            if carp and result is not None:
                if result.status == "ok":
                    t.akind = OK
                    k = (result.key, tuple(result.vips), result.flavour, result.weak_index)
                    t.okkey = k if k in t.asp.ok_by else None
                else:
                    t.akind = UNCHECKED
            elif a.protocol == VRRP2 and a.auth_type is not None:
                from carpscope.auth import _fingerprint
                k = (a.auth_type, _fingerprint(a.auth_data) if a.auth_type == 1 else b"")
                t.akind = VRRP2_AUTH
                t.vkey = k if k in t.asp.auth else None
                t.vsample = a.auth_type == 1
        cuts = cuts_of(data, ip, a.family, p, carp)
        c0, c1, c2, c3, c4, c5 = cuts
        if len(table.templates) >= MAX_TEMPLATES:
            table.templates.clear()
            table.layouts.clear()
        known = table.layouts.setdefault(len(data), [])
        if cuts not in known:
            if len(known) >= MAX_LAYOUTS:
                return
            known.append(cuts)
        t.table = table
        t.pack(an._deferred, table)
        table.templates[data[:c0] + data[c1:c2] + data[c3:c4] + data[c5:]] = t
        sp.steady = t

    def find_fold(self, table: Table, lt: int, n: int, ts: float, data: bytes) -> bool:
        """True when frame ``n`` was a repeat of a template of ``table`` and is folded."""
        t = table.find(lt, data)
        return t is not None and self.fold(t, n, ts, data)

    def fold_batch(self, table: Table, lt: int, buf: bytes, meta, i: int, n0: int) -> int:
        """Fold the frames of a libpcap batch from the i-th on; returns the index of the first
        one that is not a repeat (len when all were). Frame i is number n0 + i + 1, its time
        what capture.FileSource.frames() gives it."""
        mv = memoryview(meta).cast("I")
        count = len(mv) // 4
        find_fold = self.find_fold
        while i < count:
            ts, data = batch_frame(buf, mv, i)
            if len(data) != mv[4 * i + 3] or not find_fold(table, lt, n0 + i + 1, ts, data):
                return i        # (a frame past the end of buf: the pipeline sees it cut short)
            i += 1
        return i

    def fold(self, t: Template, n: int, ts: float, data: bytes) -> bool:
        """Fold frame ``n`` into the stages' state if it is a pure repeat of ``t``; False
        (nothing changed) when the full pipeline must look at it."""
        sp = t.sp
        if sp.steady is not t or t.g.n_open != 1 or sp.run_start is None:
            return False
        dt = ts - sp.last
        if dt > t.active or dt < t.dup or self.analysis._deferred:
            return False
        vi = t.vi
        if vi is not None:
            if ts >= vi.due:
                vi._advance(ts)         # what add_advert does first (idempotent for one ts)
            vc = t.vcell
            if ts <= vi.adj_until or vc[0] != t.src or ts - vc[1] > t.vgap:
                return False
        if t.carp:
            p = t.p
            pl = data[p:p + 36]
            if int.from_bytes(pl, "big") % 0xFFFF:
                return False            # checksum does not verify (wire.checksum.verifies)
            if t.kr is not None and t.kr.generation != t.gen:
                return False
            counter = pl[8:16]
            if t.inner is not None:
                i = t.inner.copy()
                i.update(counter)
                o = t.outer.copy()
                o.update(i.digest())
                if o.digest() != pl[16:]:
                    return False
            rk = t.gid + pl[8:]
            recent = t.recent
            cell = t.cseen
            if rk in recent or not cell[1]:
                return False
            # every check passed: from here on, fold
            cell[0] = counter
            if len(recent) >= packet.RECENT:
                recent.popitem(last=False)
            recent[rk] = (ts, n, t.src)
        if vi is not None:
            if ts > vi._now:
                vi._now = ts
            vc[1] = ts
        # track.Group.advert for the only open run
        sp.adverts += 1
        if len(sp.frames) < SAMPLE:
            sp.frames.append(n)
        sp.p_n += 1
        sp.p_sum += dt
        sp.p_sq += dt * dt
        if sp.p_min is None or dt < sp.p_min:
            sp.p_min = dt
        if sp.p_max is None or dt > sp.p_max:
            sp.p_max = dt
        sp.run_adverts += 1
        sp.last = ts
        sp.last_frame = n
        if t.tauth is not None:
            sp.auth[t.tauth] += 1
        # auth.AuthFindings.add
        asp = t.asp
        if asp is not None:
            asp.adverts += 1
            if ts > asp.last_seen:
                asp.last_seen = ts
            if ts < asp.first_seen:
                asp.first_seen = ts
            if len(asp.frames) < _AUTH_SAMPLE:
                asp.frames.append(n)
            kind = t.akind
            if kind == OK:
                asp.ok += 1
                if t.okkey is not None:
                    asp.ok_by[t.okkey] += 1
            elif kind == UNCHECKED:
                asp.unchecked += 1
            elif kind == VRRP2_AUTH:
                if t.vkey is not None:
                    asp.auth[t.vkey] += 1
                if t.vsample and len(asp.auth_frames) < _AUTH_SAMPLE:
                    asp.auth_frames.append(n)
        t.info.adverts += 1
        t.table.folded += 1
        return True


if _steady is not None:
    from carpscope.auth import _Speaker as _AuthSpeaker
    from carpscope.model import SourceInfo
    from carpscope.track import Speaker
    _steady.configure(Speaker, _AuthSpeaker, SourceInfo, Table)
