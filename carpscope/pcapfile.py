"""A streaming reader for pcap and pcapng written for exactness, not speed.

libpcap (through pcapy-ng) is the fast path; this reader serves where libpcap cannot: it
knows each record's byte offset and number, says precisely where and why a damaged file
stops, and reads pcapng sections whose interfaces have different link types. It reads in
bounded chunks: memory does not grow with the file.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO, Iterator

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
MAX_RECORD = 256 * 1024 * 1024


class CaptureFormatError(ValueError):
    """The file is not a capture carpscope can read (nothing was read)."""


@dataclass(slots=True)
class Record:
    number: int        # 1-based record number in the file
    offset: int        # byte offset of the record header
    length: int        # bytes the record occupies in the file
    linktype: int
    ts: float
    data: bytes
    orig_len: int
    little: bool = True  # the file's (pcapng: the section's) byte order


@dataclass(slots=True)
class Damage:
    number: int        # the record that could not be read
    offset: int
    reason: str


def sniff_format(head: bytes) -> str:
    """Name the format of a file from its first bytes, for clear errors."""
    if head[:4] in PCAP_MAGICS:
        return "pcap"
    if head[:4] == PCAPNG_SHB:
        return "pcapng"
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:3] == b"BZh":
        return "bzip2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    if not head:
        return "empty"
    if all(32 <= c < 127 or c in (9, 10, 13) for c in head[:64]):
        return "text"
    return "unknown"


def describe_non_capture(kind: str) -> str:
    return {
        "gzip": "a gzip-compressed file: decompress it first (gunzip -k FILE) or pipe it: zcat FILE | carpscope analyze -",
        "bzip2": "a bzip2-compressed file: decompress it first (bunzip2 -k FILE)",
        "xz": "an xz-compressed file: decompress it first (unxz -k FILE)",
        "zstd": "a zstd-compressed file: decompress it first (unzstd FILE)",
        "empty": "an empty file (0 bytes), not a capture",
        "text": "a text file, not a pcap or pcapng capture",
    }.get(kind, "not a pcap or pcapng capture (unknown file format)")


class _Buf:
    """Chunked reader that hands out exact byte ranges and knows the absolute offset."""

    def __init__(self, f: BinaryIO, chunk: int = 1 << 20):
        self.f, self.chunk = f, chunk
        self.buf, self.pos, self.base = b"", 0, 0

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def take(self, n: int) -> bytes:
        """Up to n bytes (fewer only at end of file)."""
        while len(self.buf) - self.pos < n:
            more = self.f.read(max(self.chunk, n - (len(self.buf) - self.pos)))
            if not more:
                break
            self.base += self.pos
            self.buf, self.pos = self.buf[self.pos:] + more, 0
        out = self.buf[self.pos:self.pos + n]
        self.pos += len(out)
        return out


def read_records(f: BinaryIO) -> Iterator[Record | Damage]:
    """Yield every record; the last item is a Damage when the file ends in the middle of one."""
    b = _Buf(f)
    head = b.take(4)
    kind = sniff_format(head)
    if kind == "pcap":
        yield from _pcap(b, head)
    elif kind == "pcapng":
        yield from _pcapng(b, head)
    else:
        raise CaptureFormatError(describe_non_capture(kind))


def _pcap(b: _Buf, magic: bytes):
    endian, res = PCAP_MAGICS[magic]
    rest = b.take(20)
    if len(rest) < 20:
        yield Damage(1, 0, f"truncated file header ({4 + len(rest)} of 24 bytes)")
        return
    _vmaj, _vmin, _tz, _sig, snaplen, linktype = struct.unpack(endian + "HHiIII", rest)
    linktype &= 0x0FFFFFFF
    hdr = struct.Struct(endian + "IIII")
    n = 0
    while True:
        n += 1
        off = b.offset
        h = b.take(16)
        if not h:
            return
        if len(h) < 16:
            yield Damage(n, off, f"truncated record header ({len(h)} of 16 bytes)")
            return
        sec, frac, incl, orig = hdr.unpack(h)
        if incl > MAX_RECORD or (snaplen and incl > max(snaplen, 262144)):
            yield Damage(n, off, f"bogus record length {incl} (snaplen {snaplen})")
            return
        data = b.take(incl)
        if len(data) < incl:
            yield Damage(n, off, f"truncated record: {incl} bytes announced, {len(data)} present")
            return
        yield Record(n, off, 16 + incl, linktype, sec + frac * res, data, orig, endian == "<")


def _pcapng(b: _Buf, first: bytes):
    endian = "<"
    ifaces: list[tuple[int, int]] = []     # (link type, timestamp units per second)
    n = 0
    pending = first
    while True:
        off = b.offset - len(pending)
        h = pending + b.take(8 - len(pending))
        pending = b""
        if not h:
            return
        if len(h) < 8:
            yield Damage(n + 1, off, f"truncated block header ({len(h)} of 8 bytes)")
            return
        btype = struct.unpack(endian + "I", h[:4])[0]
        if h[:4] == PCAPNG_SHB:
            bom = b.take(4)
            if len(bom) < 4:
                yield Damage(n + 1, off, "truncated section header")
                return
            endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">" if bom == b"\x1a\x2b\x3c\x4d" else ""
            if not endian:
                yield Damage(n + 1, off, "bad pcapng byte-order magic")
                return
            blen = struct.unpack(endian + "I", h[4:8])[0]
            if blen < 28 or blen % 4:
                yield Damage(n + 1, off, f"bad section header length {blen}")
                return
            body = bom + b.take(blen - 12)
            ifaces = []
        else:
            blen = struct.unpack(endian + "I", h[4:8])[0]
            if blen < 12 or blen % 4 or blen > MAX_RECORD:
                yield Damage(n + 1, off, f"bogus block length {blen}")
                return
            body = b.take(blen - 8)
        if len(body) < blen - 8:
            yield Damage(n + 1, off, f"truncated block: {blen} bytes announced, {len(body) + 8} present")
            return
        body = body[:-4]
        need = _MIN_BODY.get(btype, 0)
        if len(body) < need:
            yield Damage(n + 1, off, f"{_BLOCK_NAMES[btype]} block too short: {len(body)} bytes of "
                                     f"body, its fixed fields need {need}")
            return
        if btype == 1:  # interface description
            linktype, _res, _snap = struct.unpack_from(endian + "HHI", body)
            ifaces.append((linktype, _tsresol(body[8:], endian)))
        elif btype in (6, 2):  # enhanced / obsolete packet block
            if btype == 6:
                iface, hi, lo, cap, orig = struct.unpack_from(endian + "IIIII", body)
            else:
                iface, _drops, hi, lo, cap, orig = struct.unpack_from(endian + "HHIIII", body)
            n += 1
            if iface >= len(ifaces):
                yield Damage(n, off, f"packet on undeclared interface {iface}")
                return
            if 20 + cap > len(body):
                yield Damage(n, off, f"packet block too short for its captured length {cap}")
                return
            lt, per_s = ifaces[iface]
            yield Record(n, off, blen, lt, _seconds((hi << 32) | lo, per_s), body[20:20 + cap], orig,
                         endian == "<")
        elif btype == 3:  # simple packet block: interface 0, no timestamp
            n += 1
            if not ifaces:
                yield Damage(n, off, "simple packet block before any interface")
                return
            orig = struct.unpack_from(endian + "I", body)[0]
            yield Record(n, off, blen, ifaces[0][0], 0.0, body[4:4 + orig], orig, endian == "<")


# fixed fields before the options/packet data of each block type (a shorter body is damage)
_MIN_BODY = {1: 8, 2: 20, 3: 4, 6: 20}
_BLOCK_NAMES = {1: "interface description", 2: "packet", 3: "simple packet", 6: "enhanced packet"}


def _seconds(units: int, per_s: int) -> float:
    """A pcapng timestamp in seconds, the seconds taken modulo 2**32 as libpcap's callers see
    them (struct pcap_pkthdr as pcapy hands it over holds 32 bits): both capture paths agree,
    and a fuzzed 64-bit timestamp with if_tsresol 10^0 (years past 5e11) stays a date."""
    sec, frac = divmod(units, per_s)
    return (sec & 0xFFFFFFFF) + frac / per_s


def _tsresol(opts: bytes, endian: str) -> int:
    """Timestamp units per second of an interface (if_tsresol; 10**6 without it)."""
    i = 0
    while i + 4 <= len(opts):
        code, olen = struct.unpack_from(endian + "HH", opts, i)
        if code == 0:
            break
        if code == 9 and olen >= 1 and i + 4 < len(opts):
            v = opts[i + 4]
            return 1 << (v & 0x7F) if v & 0x80 else 10 ** v
        i += 4 + olen + (-olen % 4)
    return 10 ** 6
