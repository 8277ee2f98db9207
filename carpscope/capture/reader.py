"""The capture reader: pcap and pcapng from any binary stream, read once, in order, exactly.

One reader serves every offline input — a regular file, a pipe, a FIFO, a process
substitution, standard input — so each is opened once and read once, front to back, in 1 MiB
reads. It numbers every record as Wireshark does (frame N is the N-th packet record of the
file), knows each record's byte offset, reads pcapng sections whose interfaces have different
link types and different byte orders, and when the data is damaged or ends in the middle of a
record it says which record, at which byte offset, and why — after handing over every record
before it.

Every length the file announces is checked against a sane maximum before anything is
allocated for it (``MAX_RECORD``, ``MAX_BLOCK``), and a record that does not arrive in one read
is gathered from pieces joined once, so reading any input, damaged or not, is linear in its
size and bounded in memory by one record plus one read.

``Reader.chunks`` is the fast path: per read it hands over the *relevant* records only (those
``wire.frame.relevant`` says the decoder can use; the others are counted and skipped without
being cut out of the buffer). ``read_records`` gives every record as a ``Record``.
"""
from __future__ import annotations

TYPE_CHECKING = False     # typing.TYPE_CHECKING without importing typing at run time (start-up)

from carpscope.wire.frame import relevant
from carpscope.wire.link import LINKTYPES

if TYPE_CHECKING:     # native 64-bit integers where mypyc compiles this module; plain ints otherwise
    from typing import BinaryIO, Callable, Final, Iterator
    from mypy_extensions import i64

# magic -> (little-endian, timestamp unit, record header bytes); a1b2cd34 is Alexey Kuznetzov's
# modified pcap (old Linux tcpdump; editcap -F modpcap), whose record header adds 8 bytes
# (interface index, protocol, packet type) that libpcap skips, as this reader does
PCAP_MAGICS: Final = {
    b"\xd4\xc3\xb2\xa1": (True, 1e-6, 16), b"\xa1\xb2\xc3\xd4": (False, 1e-6, 16),
    b"\x4d\x3c\xb2\xa1": (True, 1e-9, 16), b"\xa1\xb2\x3c\x4d": (False, 1e-9, 16),
    b"\x34\xcd\xb2\xa1": (True, 1e-6, 24), b"\xa1\xb2\xcd\x34": (False, 1e-6, 24),
}
PCAPNG_SHB: Final = b"\x0a\x0d\x0d\x0a"
CHUNK: Final = 1 << 20            # bytes per read
MAX_RECORD: Final = 1 << 24       # a pcap record or a packet's captured length (16 MiB)
MAX_BLOCK: Final = 1 << 24        # a pcapng block, section headers included (16 MiB)
MAX_INTERFACES: Final = 1 << 16   # interface descriptions in one pcapng section

_BLOCK_NAMES: Final = {1: "interface description", 2: "packet", 3: "simple packet", 6: "enhanced packet"}


class CaptureFormatError(ValueError):
    """The stream is not a capture carpscope can read (nothing was read)."""


class Record:
    __slots__ = ("number", "offset", "length", "linktype", "ts", "data", "orig_len", "little")

    number: int        # 1-based record number in the file (Wireshark's frame number)
    offset: int        # byte offset of the record header
    length: int        # bytes the record occupies in the file
    linktype: int
    ts: float
    data: bytes
    orig_len: int
    little: bool         # the file's (pcapng: the section's) byte order

    def __init__(self, number: int, offset: int, length: int, linktype: int, ts: float, data: bytes,
                 orig_len: int, little: bool = True) -> None:
        self.number = number
        self.offset = offset
        self.length = length
        self.linktype = linktype
        self.ts = ts
        self.data = data
        self.orig_len = orig_len
        self.little = little

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        mine = (self.number, self.offset, self.length, self.linktype, self.ts, self.data, self.orig_len,
                self.little)
        theirs = (other.number, other.offset, other.length, other.linktype, other.ts, other.data,
                  other.orig_len, other.little)
        return mine == theirs


class Damage:
    __slots__ = ("number", "offset", "reason")

    number: int        # the record that could not be read
    offset: int
    reason: str

    def __init__(self, number: int, offset: int, reason: str) -> None:
        self.number = number
        self.offset = offset
        self.reason = reason


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


# The byte readers take and give native 64-bit integers where compiled (a field is at most 32
# bits, an offset far below 2**63); a caller that shifts a result beyond 32 bits (a pcapng
# timestamp's high word) takes it as an ``int`` first.
def _u16(b: bytes, p: i64, little: bool) -> i64:
    b0: i64 = b[p]
    b1: i64 = b[p + 1]
    return (b0 | (b1 << 8)) if little else ((b0 << 8) | b1)


def _u32(b: bytes, p: i64, little: bool) -> i64:
    b0: i64 = b[p]
    b1: i64 = b[p + 1]
    b2: i64 = b[p + 2]
    b3: i64 = b[p + 3]
    if little:
        return b0 | (b1 << 8) | (b2 << 16) | (b3 << 24)
    return (b0 << 24) | (b1 << 16) | (b2 << 8) | b3


def _seconds(units: int, per_s: int, offset: int) -> float:
    """A pcapng timestamp in seconds (``offset``: the interface's if_tsoffset, added as libpcap
    and Wireshark add it), the seconds taken modulo 2**32 as libpcap's callers see them (a
    32-bit time_t field): a fuzzed 64-bit timestamp with if_tsresol 10^0 (years past 5e11)
    stays a date, and the same file read by libpcap (the test oracle) agrees."""
    sec, frac = divmod(units, per_s)
    return ((sec + offset) & 0xFFFFFFFF) + frac / per_s


def _min_body(btype: i64) -> i64:
    """The fixed fields before the options/packet data of a block type (a shorter body is damage)."""
    if btype == 6 or btype == 2:
        return 20
    return 8 if btype == 1 else 4 if btype == 3 else 0


def _ts_options(opts: bytes, little: bool) -> tuple[int, int]:
    """An interface's timestamp units per second (if_tsresol; 10**6 without it) and the seconds
    added to its timestamps (if_tsoffset, signed; 0 without it)."""
    per_s, offset = 10 ** 6, 0
    i = 0
    n = len(opts)
    while i + 4 <= n:
        code, olen = _u16(opts, i, little), _u16(opts, i + 2, little)
        if code == 0:
            break
        if code == 9 and olen >= 1 and i + 4 < n:
            v = opts[i + 4]
            per_s = 1 << (v & 0x7F) if v & 0x80 else 10 ** min(v, 30)
        elif code == 14 and olen == 8 and i + 12 <= n:
            offset = int.from_bytes(opts[i + 4:i + 12], "little" if little else "big", signed=True)
        i += 4 + olen + (-olen % 4)
    return per_s, offset


# a kept record: (number, ts, linktype, data, byte offset, record length)
Frame = tuple[int, float, int, bytes, int, int]


class Reader:
    """Reads one pcap/pcapng stream (any object with ``read(n)``; a raw, unbuffered file is
    best: reads return what is there, so frames stream out of a live pipe).

    ``start()`` reads the file header and raises ``CaptureFormatError`` when the stream is no
    capture. ``chunks()`` then yields, per read of the stream, the records kept (only those
    ``relevant`` to the decoder unless ``keep_all``) as ``Frame`` tuples. After the last chunk,
    ``records`` is the number of packet records read and ``damage`` says where and why reading
    stopped early (None when the stream ended cleanly).
    """

    def __init__(self, raw: BinaryIO, keep_all: bool = False,
                 bpf: Callable[[int, bytes, bool], bool] | None = None) -> None:
        self.raw = raw
        self.keep_all = keep_all
        # the filtered numbering (capture/filters.py): frame N is the N-th record that passes
        # the capture filter, and only those are handed over
        self.bpf = bpf
        self.numbered = 0
        self.buf = b""
        self.pos = 0
        self.base = 0               # stream offset of buf[0]
        self.eof = False
        self.records = 0
        self.damage: Damage | None = None
        self.kind = ""
        self.linktype = -1          # pcap: the file's; pcapng: the first interface's (-1: none yet)
        self.little = True
        self.nano = False
        self.head = 16              # pcap: bytes of a record header (24 in a modified pcap)
        self.snaplen = 0
        self.section_little = True  # pcapng: the byte order of the section being read
        # pcapng: the section's interfaces (link type, timestamp units per second, seconds added
        # to its timestamps, whether the link type is one the decoder reads: asked once per
        # interface, not per packet)
        self.ifaces: list[tuple[int, int, int, bool]] = []
        self.stop = False           # set from outside (a signal): end after the current chunk
        self.waiting = False        # inside a read of the stream (a pipe may block there)

    # -------------------------------------------------------------- the stream
    def _read(self, n: int) -> bytes:
        if self.eof:
            return b""
        self.waiting = True
        more = self.raw.read(n)
        self.waiting = False
        if not more:
            self.eof = True
            return b""
        return more

    def _need(self, n: int) -> bool:
        """At least ``n`` bytes from ``pos`` in ``buf``; False when the stream ends first
        (``buf`` then holds what there was). Pieces are joined once: linear in ``n``.

        With nothing left in ``buf`` this is a read of at least CHUNK. With a piece of a record
        left (the end of one read), only the missing bytes are read and joined to it: ``buf``
        then holds that record alone and the next read starts after it, so the data of a read
        is never copied again to put a record back together."""
        have = len(self.buf) - self.pos
        if have >= n:
            return True
        parts = [self.buf[self.pos:]] if have else []
        while have < n:
            more = self._read(n - have if have else max(CHUNK, n))
            if not more:
                break
            parts.append(more)
            have += len(more)
        self.base += self.pos
        self.buf = parts[0] if len(parts) == 1 else b"".join(parts)      # one read: not copied
        self.pos = 0
        return have >= n

    @property
    def offset(self) -> int:
        return self.base + self.pos

    # -------------------------------------------------------------- start
    def start(self) -> str:
        """Read the file header; returns "pcap" or "pcapng"."""
        self._need(64)
        head = self.buf[self.pos:self.pos + 64]
        kind = sniff_format(head)
        if kind not in ("pcap", "pcapng"):
            raise CaptureFormatError(describe_non_capture(kind))
        self.kind = kind
        if kind == "pcap":
            little, res, self.head = PCAP_MAGICS[head[:4]]
            self.little, self.nano = little, res < 1e-6
            if len(head) < 24:
                raise CaptureFormatError(f"truncated file header ({len(head)} of 24 bytes)")
            self.snaplen = _u32(head, 16, little)
            self.linktype = _u32(head, 20, little) & 0x0FFFFFFF
            self.pos += 24
        else:
            if len(head) < 12:
                raise CaptureFormatError(f"truncated section header ({len(head)} of at least 28 bytes)")
            bom = head[8:12]
            if bom not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
                raise CaptureFormatError("bad pcapng byte-order magic")
            little = bom == b"\x4d\x3c\x2b\x1a"
            blen = _u32(head, 4, little)
            if blen < 28 or blen % 4 or blen > MAX_BLOCK:
                raise CaptureFormatError(f"bad section header length {blen}")
            if not self._need(blen):
                raise CaptureFormatError(f"truncated section header ({len(self.buf) - self.pos} of {blen} bytes)")
            self.linktype = self._first_linktype()
        return kind

    def _first_linktype(self) -> int:
        """The link type of the first interface of a pcapng, when it comes before the first
        packet within what is already read (-1 otherwise); reads nothing more."""
        p, little, end = self.pos, self.little, len(self.buf)
        while p + 12 <= end:
            if self.buf[p:p + 4] == PCAPNG_SHB:
                little = self.buf[p + 8:p + 12] == b"\x4d\x3c\x2b\x1a"
            btype, blen = _u32(self.buf, p, little), _u32(self.buf, p + 4, little)
            if btype == 1:
                return _u16(self.buf, p + 8, little)
            if btype in (2, 3, 6) or blen < 12 or blen % 4:
                return -1
            p += blen
        return -1

    # -------------------------------------------------------------- records
    def chunks(self) -> Iterator[list[Frame]]:
        """The kept records, one list per read of the stream (see the class doc)."""
        if not self.kind:
            self.start()
        if self.kind == "pcap":
            yield from self._pcap()
        else:
            yield from self._pcapng()

    def _hurt(self, offset: int, reason: str) -> None:
        self.damage = Damage(self.records + 1, offset, reason)

    def _pcap(self) -> Iterator[list[Frame]]:
        while True:
            out: list[Frame] = []
            self._pcap_records(out)
            if out:
                yield out                     # hand over the whole records before reading on
            if self.damage is not None or self.stop:
                return
            # at pos: the end of the read, or a record it cut, whose missing bytes are read
            # and joined to it alone (its header first: its length is checked before
            # anything is read for it)
            left = len(self.buf) - self.pos
            hl = self.head
            incl = _u32(self.buf, self.pos + 8, self.little) if left >= hl else -1
            if not self._need(hl + incl if incl >= 0 else hl):
                left = len(self.buf) - self.pos
                if incl >= 0:
                    self._hurt(self.offset, f"truncated record: {incl} bytes announced, {left - hl} present")
                elif left:
                    self._hurt(self.offset, f"truncated record header ({left} of {hl} bytes)")
                return                        # else the clean end of the stream

    def _pcap_records(self, out: list[Frame]) -> None:
        """Walk the whole pcap records in ``buf`` from ``pos``, appending those kept to
        ``out``; stops at the end of ``buf``, at a record it does not hold whole (``pos`` is
        left there), or at a bogus length (``damage``). A plain function, not a generator:
        compiled, its locals are C variables (this is the per-record loop of every capture)."""
        buf = self.buf
        p: i64 = self.pos
        end: i64 = len(buf)
        base: i64 = self.base
        little, lt = self.little, self.linktype
        snaplen: i64 = self.snaplen
        res = 1e-9 if self.nano else 1e-6
        limit: i64 = min(max(snaplen, 262144), MAX_RECORD) if snaplen else MAX_RECORD
        cut: i64 = snaplen if snaplen else MAX_RECORD      # libpcap hands over at most snaplen bytes
        keep_all, bpf = self.keep_all, self.bpf
        decodable = lt in LINKTYPES
        records: i64 = self.records
        hl: i64 = self.head
        try:
            while p + hl <= end:
                incl = _u32(buf, p + 8, little)
                if incl > limit:
                    self.pos, self.records = p, records
                    self._hurt(self.offset, f"bogus record length {incl} (snaplen {snaplen})")
                    break
                q = p + hl + incl
                if q > end:
                    break
                records += 1
                stop = q if incl <= cut else p + hl + cut
                if bpf is not None:
                    keep = bpf(lt, buf[p + hl:stop], little)
                    if keep:
                        self.numbered += 1
                else:
                    keep = keep_all or (decodable and relevant(lt, buf, p + hl, stop))
                if keep:
                    sec: int = _u32(buf, p, little)
                    frac: int = _u32(buf, p + 4, little)
                    ts = sec + frac * res
                    n = self.numbered if bpf is not None else records
                    out.append((n, ts, lt, buf[p + hl:stop], base + p, hl + incl))
                p = q
        finally:
            self.pos, self.records = p, records

    def _keep(self, lt: int, decodable: bool, buf: bytes, start: i64, stop: i64, little: bool) -> int:
        """The number a pcapng packet is handed over with, 0 when it is not kept
        (``decodable``: ``lt`` is in LINKTYPES)."""
        if self.bpf is not None:
            if not decodable or not self.bpf(lt, buf[start:stop], little):
                return 0
            self.numbered += 1
            return self.numbered
        if self.keep_all or (decodable and relevant(lt, buf, start, stop)):
            return self.records
        return 0

    def _pcapng(self) -> Iterator[list[Frame]]:
        while True:
            out: list[Frame] = []
            want = self._pcapng_blocks(out)
            if out:
                yield out                     # hand over the whole blocks before reading on
            if not want or self.stop:
                return
            self._need(want)                  # at the end of the stream, the walk says why

    def _pcapng_blocks(self, out: list[Frame]) -> int:
        """Walk the whole pcapng blocks in ``buf`` from ``pos``, appending the packets kept to
        ``out``. Returns the bytes wanted at ``pos`` to go on (a block header, or the whole
        block it announces); 0 when reading ends there: damage (``damage`` says where and why),
        ``stop``, or the clean end of the stream. A plain function, not a generator: compiled,
        its locals are C variables, offsets and lengths native 64-bit integers (this is the
        per-block loop of every capture)."""
        buf, eof = self.buf, self.eof
        p: i64 = self.pos
        end: i64 = len(buf)
        base: i64 = self.base
        little, ifaces = self.section_little, self.ifaces
        blen: i64
        while not self.stop:                  # pos == p here: a block is taken whole or not at all
            off = base + p
            left = end - p
            if left < 8:
                if not eof:
                    return 8
                if left:
                    self._hurt(off, f"truncated block header ({left} of 8 bytes)")
                return 0
            btype = _u32(buf, p, little)
            if btype == 0x0A0D0D0A:           # a section header: the same in either byte order
                if left < 12:
                    if not eof:
                        return 12
                    self._hurt(off, "truncated section header")
                    return 0
                bom = buf[p + 8:p + 12]
                if bom not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
                    self._hurt(off, "bad pcapng byte-order magic")
                    return 0
                little = self.section_little = bom == b"\x4d\x3c\x2b\x1a"
                blen = _u32(buf, p + 4, little)
                if blen < 28 or blen % 4 or blen > MAX_BLOCK:
                    self._hurt(off, f"bad section header length {blen}")
                    return 0
                ifaces = self.ifaces = []
            else:
                blen = _u32(buf, p + 4, little)
                if blen < 12 or blen % 4 or blen > MAX_BLOCK:
                    self._hurt(off, f"bogus block length {blen}")
                    return 0
            if left < blen:
                if not eof:
                    return blen
                self._hurt(off, f"truncated block: {blen} bytes announced, {left} present")
                return 0
            body, bend = p + 8, p + blen - 4          # the body without the trailing length
            need = _min_body(btype)
            if bend - body < need:
                self._hurt(off, f"{_BLOCK_NAMES[btype]} block too short: {bend - body} bytes of "
                                f"body, its fixed fields need {need}")
                return 0
            p += blen
            self.pos = p
            if btype == 6 or btype == 2:  # enhanced / obsolete packet block
                if btype == 6:
                    iface = _u32(buf, body, little)
                else:
                    iface = _u16(buf, body, little)
                cap = _u32(buf, body + 12, little)
                if iface >= len(ifaces):
                    self._hurt(off, f"packet on undeclared interface {iface}")
                    return 0
                if body + 20 + cap > bend:
                    self._hurt(off, f"packet block too short for its captured length {cap}")
                    return 0
                self.records += 1
                lt, per_s, offset, decodable = ifaces[iface]
                n = self._keep(lt, decodable, buf, body + 20, body + 20 + cap, little)
                if n:
                    hi: int = _u32(buf, body + 4, little)      # shifted 32 bits up: an int, not i64
                    lo: int = _u32(buf, body + 8, little)
                    out.append((n, _seconds((hi << 32) | lo, per_s, offset), lt, buf[body + 20:body + 20 + cap],
                                off, blen))
            elif btype == 1:  # interface description
                if len(ifaces) >= MAX_INTERFACES:
                    self._hurt(off, f"more than {MAX_INTERFACES} interfaces in one section")
                    return 0
                lt = _u16(buf, body, little)
                per_s, offset = _ts_options(buf[body + 8:bend], little)
                ifaces.append((lt, per_s, offset, lt in LINKTYPES))
                if self.linktype < 0:
                    self.linktype = ifaces[-1][0]
            elif btype == 3:  # simple packet block: interface 0, no timestamp
                if not ifaces:
                    self._hurt(off, "simple packet block before any interface")
                    return 0
                self.records += 1
                orig = _u32(buf, body, little)
                lt, _, _, decodable = ifaces[0]
                stop = min(body + 4 + orig, bend)
                n = self._keep(lt, decodable, buf, body + 4, stop, little)
                if n:
                    out.append((n, 0.0, lt, buf[body + 4:stop], off, blen))
        return 0


def read_records(f: BinaryIO) -> Iterator[Record | Damage]:
    """Every record of a stream as a ``Record``; the last item is a ``Damage`` when the stream
    ends in the middle of one. Raises CaptureFormatError when the stream is no capture."""
    r = Reader(f, keep_all=True)
    try:
        r.start()
    except CaptureFormatError as e:
        text = str(e)
        if text.startswith(("truncated", "bad ")):
            yield Damage(1, 0, text)
            return
        raise
    little = r.little
    for chunk in r.chunks():
        for n, ts, lt, data, off, length in chunk:
            yield Record(n, off, length, lt, ts, data, len(data), little)
    if r.damage is not None:
        yield r.damage
