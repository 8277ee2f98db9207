"""Spike: a reduced per-advert engine (decode, packet rules, HMAC, copies, tracking) in plain
typed Python, compiled as is by mypyc, or by Cython with eng.pxd beside it."""
from __future__ import annotations

import hashlib
from socket import AF_INET, inet_ntop

DUP_S = 0.05


class Advert:
    __slots__ = ("frame", "ts", "segment", "protocol", "family", "src", "dst", "ttl", "vhid",
                 "version", "type", "checksum", "checksum_ok", "eth_src", "advbase", "advskew",
                 "authlen", "demote", "counter", "md", "ipkey")

    def __init__(self, frame: int, ts: float, segment: str, src: str, dst: str, ttl: int,
                 eth_src: str, p: bytes, ipkey: bytes) -> None:
        self.frame = frame
        self.ts = ts
        self.segment = segment
        self.protocol = "carp"
        self.family = 4
        self.src = src
        self.dst = dst
        self.ttl = ttl
        self.version = p[0] >> 4
        self.type = p[0] & 15
        self.vhid = p[1]
        self.advskew = p[2]
        self.authlen = p[3]
        self.demote = p[4]
        self.advbase = p[5]
        self.checksum = (p[6] << 8) | p[7]
        self.counter = p[8:16]
        self.md = p[16:36]
        self.checksum_ok = int.from_bytes(p, "big") % 0xFFFF == 0
        self.eth_src = eth_src
        self.ipkey = ipkey


_ADDRS: dict[bytes, str] = {}
_MACS: dict[bytes, str] = {}


def ntop(b: bytes) -> str:
    t = _ADDRS.get(b)
    if t is None:
        t = _ADDRS[b] = inet_ntop(AF_INET, b)
    return t


def mac(b: bytes) -> str:
    t = _MACS.get(b)
    if t is None:
        t = _MACS[b] = b.hex(":")
    return t


def decode(data: bytes, frame: int, ts: float, source: str) -> Advert | None:
    n = len(data)
    if n < 14:
        return None
    off = 12
    et = (data[12] << 8) | data[13]
    seg = source
    while et == 0x8100 or et == 0x88A8:
        if n < off + 6:
            return None
        seg = source + "/vlan" + str(((data[off + 2] << 8) | data[off + 3]) & 0xFFF)
        et = (data[off + 4] << 8) | data[off + 5]
        off += 4
    off += 2
    if et != 0x0800 or n < off + 20 or data[off + 9] != 112:
        return None
    ihl = (data[off] & 15) * 4
    total = (data[off + 2] << 8) | data[off + 3]
    end = off + total
    if end > n or total < ihl + 36:
        return None
    p = data[off + ihl:end]
    return Advert(frame, ts, seg, ntop(data[off + 12:off + 16]), ntop(data[off + 16:off + 20]),
                  data[off + 8], mac(data[6:12]), p, data[off:end])


class Fold:
    __slots__ = ("count", "first", "last", "frames")

    def __init__(self, ts: float) -> None:
        self.count = 0
        self.first = ts
        self.last = ts
        self.frames: list[int] = []


class PacketRules:
    def __init__(self) -> None:
        self.folds: dict[tuple, Fold] = {}
        self.recent: dict[bytes, tuple] = {}
        self.counters: dict[tuple, bytes] = {}
        self.hits = 0

    def hit(self, key: tuple, ts: float, frame: int) -> None:
        self.hits += 1
        f = self.folds.get(key)
        if f is None:
            f = self.folds[key] = Fold(ts)
        f.count += 1
        f.last = ts
        if len(f.frames) < 10:
            f.frames.append(frame)

    def advert(self, a: Advert) -> bool:
        before = self.hits
        spk = (a.segment, a.vhid, a.src)
        if not a.checksum_ok:
            self.hit(("bad-checksum",) + spk, a.ts, a.frame)
        if a.ttl != 255:
            self.hit(("bad-ttl", a.ttl) + spk, a.ts, a.frame)
        if a.type != 1:
            self.hit(("type", a.type) + spk, a.ts, a.frame)
        if a.authlen != 7:
            self.hit(("authlen", a.authlen) + spk, a.ts, a.frame)
        if a.advskew == 240 or a.demote > 0:
            self.hit(("demoted",) + spk, a.ts, a.frame)
        key = a.counter + a.md
        prev = self.recent.get(key)
        self.counters[spk] = a.counter
        if prev is not None:
            self.hit(("replay",) + spk, a.ts, a.frame)
        else:
            if len(self.recent) >= 8192:
                self.recent.clear()
            self.recent[key] = (a.ts, a.frame, a.src)
        return self.hits == before


class Ctx:
    __slots__ = ("inner", "outer", "label")

    def __init__(self, key: bytes, prefix: bytes, label: str) -> None:
        block = key.ljust(64, b"\0")
        self.inner = hashlib.sha1(bytes(b ^ 0x36 for b in block) + prefix)
        self.outer = hashlib.sha1(bytes(b ^ 0x5C for b in block))
        self.label = label

    def matches(self, counter: bytes, md: bytes) -> bool:
        i = self.inner.copy()
        i.update(counter)
        o = self.outer.copy()
        o.update(i.digest())
        return o.digest() == md


class Verifier:
    def __init__(self, keys: dict[str, bytes], vips: dict[int, list[bytes]]) -> None:
        self.ctxs: dict[int, list[Ctx]] = {}
        for vhid, addrs in vips.items():
            prefix = b"\x02\x01" + bytes((vhid,)) + b"".join(sorted(addrs))
            self.ctxs[vhid] = [Ctx(k, prefix, label) for label, k in keys.items()]
        self.good: dict[tuple, Ctx] = {}

    def verify(self, a: Advert) -> str:
        spk = (a.segment, a.src, a.vhid)
        g = self.good.get(spk)
        if g is not None and g.matches(a.counter, a.md):
            return g.label
        for c in self.ctxs.get(a.vhid, []):
            if c.matches(a.counter, a.md):
                self.good[spk] = c
                return c.label
        return ""


class Speaker:
    __slots__ = ("ip", "mac", "adverts", "copies", "first", "last", "advbase", "advskew", "md",
                 "interval", "p_n", "p_sum", "p_min", "p_max", "run_start", "run_adverts",
                 "run_first", "last_frame", "frames", "ok", "fail", "key")

    def __init__(self, ip: str, mac: str, ts: float) -> None:
        self.ip = ip
        self.mac = mac
        self.adverts = 0
        self.copies = 0
        self.first = ts
        self.last = ts
        self.advbase = 0
        self.advskew = 0
        self.md = 3.0
        self.interval = 1.0
        self.p_n = 0
        self.p_sum = 0.0
        self.p_min = 1e9
        self.p_max = 0.0
        self.run_start = -1.0
        self.run_adverts = 0
        self.run_first = 0
        self.last_frame = 0
        self.frames: list[int] = []
        self.ok = 0
        self.fail = 0
        self.key = ""


class Group:
    def __init__(self, key: tuple) -> None:
        self.key = key
        self.speakers: dict[tuple, Speaker] = {}
        self.master: Speaker | None = None
        self.n_changes = 0
        self.changes: list[tuple] = []
        self.runs: list[tuple] = []
        self.n_runs = 0
        self.pairs: dict[tuple, list] = {}
        self.episodes = 0

    def advert(self, a: Advert, sp: Speaker) -> None:
        t = a.ts
        sp.adverts += 1
        if len(sp.frames) < 10:
            sp.frames.append(a.frame)
        sp.advbase = a.advbase
        sp.advskew = a.advskew
        sp.interval = a.advbase + a.advskew / 256.0
        sp.md = 3 * a.advbase + a.advskew / 256.0
        for o in self.speakers.values():
            if o is not sp and o.run_start >= 0 and t - o.last > o.md * 1.1:
                self.close(o)
        if sp.run_start >= 0 and t - sp.last > sp.md * 1.1:
            self.close(sp)
        if sp.run_start >= 0 and t - sp.last < DUP_S:
            sp.copies += 1
            return
        if sp.run_start < 0:
            sp.run_start = t
            sp.run_adverts = 0
            sp.run_first = a.frame
            prev = self.master
            if prev is not sp:
                self.master = sp
                self.n_changes += 1
                if len(self.changes) < 256:
                    self.changes.append((t, prev.ip if prev is not None else None, sp.ip, a.frame))
        else:
            dt = t - sp.last
            sp.p_n += 1
            sp.p_sum += dt
            if dt < sp.p_min:
                sp.p_min = dt
            if dt > sp.p_max:
                sp.p_max = dt
        sp.run_adverts += 1
        sp.last = t
        sp.last_frame = a.frame
        for o in self.speakers.values():
            if o is not sp and o.run_start >= 0:
                k = (sp.ip, o.ip) if sp.ip < o.ip else (o.ip, sp.ip)
                pair = self.pairs.get(k)
                if pair is None:
                    pair = self.pairs[k] = [max(sp.run_start, o.run_start), 0]
                pair[1] += 1
                if pair[1] >= 6 and t - pair[0] > 1.5 * sp.interval:
                    self.episodes += 1

    def close(self, sp: Speaker) -> None:
        self.n_runs += 1
        if len(self.runs) < 256:
            self.runs.append((sp.ip, sp.run_start, sp.last, sp.run_adverts))
        sp.run_start = -1.0
        for k in [k for k in self.pairs if sp.ip in k]:
            del self.pairs[k]
        if self.master is sp:
            self.master = None


class Copy:
    __slots__ = ("ts", "sp", "window")

    def __init__(self, ts: float, sp: Speaker, window: float) -> None:
        self.ts = ts
        self.sp = sp
        self.window = window


class Engine:
    def __init__(self, verifier: Verifier) -> None:
        self.groups: dict[tuple, Group] = {}
        self.rules = PacketRules()
        self.verifier = verifier
        self.copies: dict[bytes, Copy] = {}
        self.adverts = 0
        self.copied = 0

    def frame(self, data: bytes, frame: int, ts: float, source: str) -> None:
        a = decode(data, frame, ts, source)
        if a is None:
            return
        self.adverts += 1
        c = self.copies.get(a.ipkey)
        if c is not None and ts - c.ts < c.window:
            c.ts = ts
            c.sp.copies += 1
            self.copied += 1
            return
        self.rules.advert(a)
        label = self.verifier.verify(a)
        key = (a.segment, a.protocol, a.family, a.vhid)
        g = self.groups.get(key)
        if g is None:
            g = self.groups[key] = Group(key)
        sk = (a.src, a.eth_src)
        sp = g.speakers.get(sk)
        if sp is None:
            sp = g.speakers[sk] = Speaker(a.src, a.eth_src, ts)
        if label:
            sp.ok += 1
            sp.key = label
        else:
            sp.fail += 1
        g.advert(a, sp)
        if len(self.copies) >= 4096:
            self.copies.clear()
        self.copies[a.ipkey] = Copy(ts, sp, min(DUP_S, sp.interval / 2))

    def batch(self, frames: list, source: str) -> None:
        for n, ts, data in frames:
            self.frame(data, n, ts, source)
