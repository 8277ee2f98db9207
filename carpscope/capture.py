"""Capture sources: files (pcap, pcapng), standard input and live interfaces.

The fast path is libpcap through pcapy-ng: a BPF filter keeps protocol-112 frames (IPv4, IPv6
through extension headers, VLAN and QinQ tagged where the link type allows) plus ARP and IPv6
neighbour advertisements (which reveal virtual addresses), so the rest of a large capture is
skipped in C, and ``next_batch`` hands many frames to Python per call.

Frame numbers: with the filter, frame N is the N-th frame *that matched the filter* (what
``tcpdump -r FILE -w OUT FILTER`` would write, so Wireshark shows the same number on OUT).
``all_frames=True`` disables the filter and numbers every frame as Wireshark does on the
original file, at the price of handing every frame to Python.

When libpcap stops on a damaged file, or cannot read it (a pcapng whose interfaces have
different link types), the exact reader in pcapfile.py takes over from the same frame with
the same filter (compiled once and applied per frame), so no frame read before the damage is
lost and the report can say at which record and byte offset reading stopped. Standard input
cannot be re-read, so it always goes through the exact reader (BPF still applied in C).
"""
from __future__ import annotations

import os
import queue
import socket
import stat
import struct
import sys
import threading
from typing import Iterator

import pcapy

try:                        # large-chunk pcap reading with libpcap's filter program (C, optional)
    from carpscope import _pcapread
except ImportError:
    _pcapread = None
from carpscope.model import SourceInfo
from carpscope.pcapfile import (CaptureFormatError, Damage, describe_non_capture, read_records,
                                sniff_format)
from carpscope.wire.link import check_linktype, linktype_name

_P112 = "ip proto 112 or ip6 protochain 112"
_HINTS = "arp or (icmp6 and ip6[40] == 136)"
FILTERS = (
    f"{_P112} or {_HINTS} or (vlan and ({_P112} or arp or (vlan and ({_P112} or arp))))",
    f"{_P112} or {_HINTS}",
    _P112,
)
# libpcap has no "vlan" for Linux cooked captures, yet it re-inserts the 802.1Q tag of frames
# seen on a trunk (tcpdump -i any): match one tag by offset (protocol field 0x8100/0x88a8, then
# TCI, inner ethertype, IP header), or tagged adverts would be filtered out
_SLL_VLAN = ("((link[{p}:2] = 0x8100 or link[{p}:2] = 0x88a8) and ((link[{t}:2] = 0x0800 and link[{ip} + 9] = 112)"
             " or (link[{t}:2] = 0x86dd and link[{ip} + 6] = 112) or link[{t}:2] = 0x0806))")
LINK_FILTERS = {
    113: _SLL_VLAN.format(p=14, t=18, ip=20),   # LINUX_SLL: protocol at 14, header 16 bytes
    276: _SLL_VLAN.format(p=0, t=22, ip=24),    # LINUX_SLL2: protocol at 0, header 20 bytes
}
BATCH = 2048
FIRST_BATCH = 256   # read before the read-ahead thread starts: analysed without overlap, so small
READ_AHEAD = 2      # batches libpcap may read ahead of the analysis (bounds memory)
SNAPLEN = 262144


def filter_texts(linktype: int) -> list[str]:
    """Candidate filters for a link type, widest first."""
    extra = LINK_FILTERS.get(linktype)
    return ([f"{t} or {extra}" for t in FILTERS] if extra else []) + list(FILTERS)


class CaptureError(Exception):
    """A source that cannot be read at all: one clear line for the user (exit status 2)."""


# link types whose filter program libpcap compiles the same for a savefile and for
# pcapy.compile: not NULL and LOOP, whose address-family word libpcap reads per savefile
CHUNKED_LINKTYPES = {1, 12, 14, 101, 107, 113, 228, 229, 276}
# classic pcap magic as the bytes read -> (file is little-endian, nanoseconds)
_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": (True, False), b"\xa1\xb2\xc3\xd4": (False, False),
    b"\x4d\x3c\xb2\xa1": (True, True), b"\xa1\xb2\x3c\x4d": (False, True),
}

# pcap/pcapng files store LINKTYPE_ values; pcapy.compile wants the DLT_ value libpcap uses
# for it on this system (they differ for raw IP: LINKTYPE_RAW 101 is DLT_RAW 12 on Linux)
_LINKTYPE_TO_DLT = {101: 12}
# link types whose libpcap filter would miss adverts: Frame Relay filters assume RFC 2427
# (Q.922 + 0x03 + NLPID) and drop Cisco-encapsulated frames, so every frame goes to Python
NO_BPF = {107}


def compile_filter(linktype: int):
    """The widest filter libpcap accepts for this link type, as (text, BPFProgram)."""
    last = None
    dlt = _LINKTYPE_TO_DLT.get(linktype, linktype)
    for text in filter_texts(dlt):
        try:
            return text, pcapy.compile(dlt, SNAPLEN, text, 1, 0)
        except pcapy.PcapError as e:
            last = e
    raise CaptureError(f"cannot build a capture filter for link type {linktype_name(linktype)}: {last}")


def _set_filter(pc, linktype: int) -> str:
    for text in filter_texts(linktype):
        try:
            pc.setfilter(text)
            return text
        except pcapy.PcapError:
            continue
    raise CaptureError(f"cannot set a capture filter for link type {linktype_name(linktype)}")


def _explain_open_error(path: str, err: Exception) -> str:
    if path != "-":
        if not os.path.exists(path):
            return f"{path}: no such file"
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            return f"{path}: is a directory, not a capture file"
        if not os.access(path, os.R_OK):
            return f"{path}: permission denied"
        try:
            with open(path, "rb") as f:
                kind = sniff_format(f.read(64))
        except OSError as e:
            return f"{path}: {e.strerror}"
        if kind not in ("pcap", "pcapng"):
            return f"{path}: {describe_non_capture(kind)}"
    msg = str(err).strip() or "unreadable capture"
    return f"{path}: {msg}"


class FileSource:
    """A pcap/pcapng file, or ``-`` for standard input."""

    def __init__(self, path: str, all_frames: bool = False):
        self.path = path
        self.name = "stdin" if path == "-" else path
        self.all_frames = all_frames
        self.info = SourceInfo(self.name)
        self.filter: str | None = None
        self.numbering = "all" if all_frames else "filtered"
        self._pc = None
        self._fallback_reason = None
        self.on_batch = None            # called with the bytes read so far (progress display)
        self._stream = None
        self._file = None               # the file _pcapread reads, when it does
        if path == "-":
            self._open_stdin()
            return
        try:
            self._pc = pcapy.open_offline(path)
        except pcapy.PcapError as e:
            if not self._exact_can_start(path):
                raise CaptureError(_explain_open_error(path, e)) from None
            self._fallback_reason = str(e).strip()
        except OSError as e:
            raise CaptureError(f"{path}: {e.strerror}") from None
        if self._pc is not None:
            self.linktype = self._pc.datalink()
            self.info.linktype = linktype_name(self.linktype)
            try:
                check_linktype(self.linktype)
            except ValueError as e:
                raise CaptureError(f"{self.name}: {e}") from None
            if self.linktype in NO_BPF:
                self.all_frames, self.numbering = True, "all"
            elif not all_frames:
                self.filter = _set_filter(self._pc, self.linktype)
            self._chunked_reader()

    def _chunked_reader(self) -> None:
        """For a classic pcap file, _pcapread reads instead of libpcap: 1 MB reads where
        libpcap's stdio takes 4 KB, the same compiled filter program. A record it is not sure of
        stops it and the exact reader goes on from that frame, as when libpcap stops."""
        if _pcapread is None or os.environ.get("CARPSCOPE_LIBPCAP_READ") or self.linktype not in CHUNKED_LINKTYPES:
            return
        try:
            f = open(self.path, "rb", buffering=0)
        except OSError:
            return
        head = f.read(24)
        magic = head[:4]
        if len(head) < 24 or magic not in _PCAP_MAGIC:
            f.close()
            return
        little, nsec = _PCAP_MAGIC[magic]
        swapped = little != (sys.byteorder == "little")
        snaplen = struct.unpack("<I" if little else ">I", head[16:20])[0]
        program = []
        if self.filter is not None:
            dlt = _LINKTYPE_TO_DLT.get(self.linktype, self.linktype)
            program = pcapy.compile(dlt, SNAPLEN, self.filter, 1, 0).get_bpf()
        self._file = f
        self._pc = _pcapread.Reader(f.fileno(), swapped, nsec, snaplen, program)

    def _open_stdin(self) -> None:
        """Standard input is read by the exact reader: a pipe cannot be re-read after libpcap
        stops on damage (libpcap also drops the frames of the batch it was reading), and only
        the exact reader knows record numbers and byte offsets. The BPF filter still runs in C,
        per frame. The link type is checked up front, as for files."""
        stream = _Prefixed(sys.stdin.buffer)
        head = stream.peek(64)
        kind = sniff_format(head)
        if kind == "gzip":
            raise CaptureError("stdin: gzip-compressed data: decompress it on the way in (zcat FILE | carpscope analyze -)")
        if kind not in ("pcap", "pcapng"):
            raise CaptureError(f"stdin: {describe_non_capture(kind)}")
        self._check_start(stream, kind)
        self._stream = stream

    def _check_start(self, stream: _Prefixed, kind: str) -> None:
        """What the exact reader needs before the first record: a whole file header (pcap) or
        section header (pcapng), else nothing can be read (an error, exit 2, as when libpcap
        cannot open a file); and a link type carpscope decodes (for pcapng: the first
        interface's)."""
        bad = _file_header_damage(stream, kind)
        if bad:
            raise CaptureError(f"{self.name}: {bad}")
        lt = _first_linktype(stream, kind)
        if lt is not None:
            self.linktype = lt
            self.info.linktype = linktype_name(lt)
            try:
                check_linktype(lt)
            except ValueError as e:
                raise CaptureError(f"{self.name}: {e}") from None
            if lt in NO_BPF:
                self.all_frames, self.numbering = True, "all"

    def _exact_can_start(self, path: str) -> bool:
        """libpcap refused to open a file: the exact reader takes it from the start when it is a
        pcap/pcapng whose file header is whole (a pcapng whose interfaces have different link
        types, a block libpcap will not read before the first packet...): what can be read is
        read and the report says where reading stopped. Raises CaptureError for a damaged file
        header or an unsupported link type; False when the file is no capture at all."""
        try:
            with open(path, "rb") as f:
                stream = _Prefixed(f)
                kind = sniff_format(stream.peek(64))
                if kind not in ("pcap", "pcapng"):
                    return False
                self._check_start(stream, kind)
        except OSError:
            return False
        return True

    def frames(self) -> Iterator[tuple[int, int, float, bytes]]:
        """Yield (linktype, frame number, timestamp, bytes)."""
        for lt, n0, buf, meta in self.chunks():
            if buf is None:
                yield lt, n0 + 1, meta[0], meta[1]
                continue
            mv = memoryview(meta).cast("I")
            for i in range(len(mv) // 4):
                ts, data = batch_frame(buf, mv, i)
                yield lt, n0 + i + 1, ts, data

    def chunks(self) -> Iterator[tuple]:
        """The frames as read: (linktype, n0, buf, meta) for a batch of libpcap, whose i-th frame
        is number n0 + i + 1, at seconds + microseconds * 1e-6, bytes buf[offset:offset + length]
        with (seconds, microseconds, offset, length) the i-th four native uint32 of meta; and
        (linktype, n - 1, None, (timestamp, bytes)) for a frame of the exact reader."""
        if self._pc is None:
            for lt, n, ts, data in self._exact(0, self._fallback_reason):
                yield lt, n - 1, None, (ts, data)
            return
        lt, info = self.linktype, self.info
        n = 0
        for buf, meta in _read_ahead(self._pc):
            if meta is None:      # libpcap stopped on an error: buf is its message (None: _pcapread)
                info.packets = n
                for lt2, n2, ts, data in self._exact(n, buf):
                    yield lt2, n2 - 1, None, (ts, data)
                return
            if self.on_batch is not None:
                self.on_batch(self.position())
            yield lt, n, buf, meta
            n += len(meta) // 16
        info.packets = n

    def position(self) -> int | None:
        """Bytes of the file read so far (libpcap's file offset), None where unknown."""
        if self._pc is None or self.path == "-":
            return None
        try:
            return os.lseek(self._pc.getfd(), 0, os.SEEK_CUR)
        except (OSError, pcapy.PcapError):
            return None

    def size(self) -> int | None:
        if self.path == "-":
            return None
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def _exact(self, skip: int, why: str | None) -> Iterator[tuple[int, int, float, bytes]]:
        """Continue with the exact reader after ``skip`` matched frames (see module doc)."""
        info = self.info
        numbering = Numbering(self.all_frames)
        try:
            with (open(self.path, "rb") if self._stream is None else self._stream) as f:
                for rec in read_records(f):
                    if isinstance(rec, Damage):
                        info.error = f"reading stopped at record {rec.number} (byte offset {rec.offset}): {rec.reason}"
                        info.stopped_frame, info.stopped_offset = rec.number, rec.offset
                        break
                    if info.linktype is None:
                        info.linktype = linktype_name(rec.linktype)
                    n = numbering.number(rec)
                    if numbering.filter:
                        self.filter = numbering.filter
                    if n is None or n <= skip:
                        continue
                    yield rec.linktype, n, rec.ts, rec.data
                else:
                    if why and skip:
                        info.error = f"libpcap stopped after frame {skip}: {why}"
        except CaptureFormatError as e:
            raise CaptureError(f"{self.name}: {e}") from None
        except OSError as e:
            raise CaptureError(f"{self.name}: {e.strerror}") from None
        info.packets = numbering.n


def batch_frame(buf: bytes, mv: memoryview, i: int) -> tuple[float, bytes]:
    """(timestamp, bytes) of the i-th frame of a batch as chunks() gives it (``mv``: its meta
    cast to uint32). The one place this is computed in Python; _steady.c does the same."""
    j = 4 * i
    off = mv[j + 2]
    return mv[j] + mv[j + 1] * 1e-6, buf[off:off + mv[j + 3]]


class Numbering:
    """Frame numbers as the capture reader gives them, for records of the exact reader.

    With the filter (``all_frames`` false) the n-th record that passes the capture filter of its
    link type is frame n; without it every record counts, also those on interfaces of a link
    type carpscope cannot decode (Wireshark numbers them too). One place for this rule: the
    reader's fallback and the SARIF byte regions both use it.
    """

    _UNSET = object()

    def __init__(self, all_frames: bool):
        self.all_frames = all_frames
        self.filter: str | None = None
        self.n = 0
        self._programs: dict[int, object] = {}

    def _program(self, lt: int):
        """False: not decodable (skipped); None: no filter (every frame); else the BPFProgram."""
        prog = self._programs.get(lt, self._UNSET)
        if prog is self._UNSET:
            try:
                check_linktype(lt)
            except ValueError:
                prog = False
            else:
                prog = None
                if not self.all_frames and lt not in NO_BPF:
                    try:
                        self.filter, prog = compile_filter(lt)
                    except CaptureError:
                        prog = None
            self._programs[lt] = prog
        return prog

    def number(self, rec) -> int | None:
        """The frame number of ``rec``, or None when the reader does not deliver it."""
        prog = self._program(rec.linktype)
        if prog is False:
            if self.all_frames:
                self.n += 1
            return None
        if prog is not None and not prog.filter(_as_compiled(rec) if rec.linktype in _AF_LINKTYPES else rec.data):
            return None
        self.n += 1
        return self.n


_STOP = _pcapread.Stop if _pcapread is not None else ()


# DLT_NULL / DLT_LOOP: a 32-bit address family, then IP. libpcap compiles "ip" / "ip6" for a
# savefile as AF 2 / any BSD AF_INET6 (24, 28, 30), read in the file's byte order (LOOP: network
# order); pcapy.compile, with no file, as this host's AF_INET / AF_INET6 (2 / 10 on Linux) in
# host order (LOOP: network order). The exact reader filters a copy whose family word is
# rewritten to what the compiled program expects, so it passes the frames libpcap passes.
_AF_LINKTYPES = {0, 108}
_AF_AS_COMPILED = {2: socket.AF_INET, 24: socket.AF_INET6, 28: socket.AF_INET6, 30: socket.AF_INET6}


def _as_compiled(rec) -> bytes:
    data = rec.data
    if len(data) < 4:
        return data
    order = "big" if rec.linktype == 108 or not rec.little else "little"
    af = _AF_AS_COMPILED.get(int.from_bytes(data[:4], order), 0xFFFFFFFF)
    word = af.to_bytes(4, "big" if rec.linktype == 108 else sys.byteorder)
    return word + data[4:]


def _read_ahead(pc) -> Iterator[tuple]:
    """libpcap's batches; from the second on, read by another thread while the caller analyses.

    ``next_batch`` reads the file and runs the BPF filter in C without the GIL, so on a large
    capture reading (all of tcpdump's time) and analysis overlap instead of adding up. Yields
    (bytes, meta) per batch; (message, None) when libpcap reports an error, then stops.

    The first batch (a small one) is read here, and the thread starts only once the caller asks
    for the next one: a capture of one batch never starts it, and sources waiting in a
    timestamp merge hold one small batch each. At most READ_AHEAD batches wait beyond the one
    being analysed; the thread ends when the caller stops iterating.
    """
    try:
        buf, meta = pc.next_batch(FIRST_BATCH)
    except pcapy.PcapError as e:
        yield str(e).strip(), None
        return
    except _STOP:           # _pcapread is not sure of a record: the exact reader goes on
        yield None, None
        return
    if not meta:
        return
    yield buf, meta
    del buf, meta
    q: queue.Queue = queue.Queue(READ_AHEAD)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        try:
            while not stop.is_set():
                try:
                    batch = pc.next_batch(BATCH)
                except pcapy.PcapError as e:
                    put((str(e).strip(), None))
                    break
                except _STOP:
                    put((None, None))
                    break
                if not batch[1]:
                    break
                if not put(batch):
                    return
        except BaseException as e:          # handed to the caller, raised there
            put((e, False))
            return
        put(None)

    thread = threading.Thread(target=reader, name="carpscope-pcap-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is None:
                return
            if item[1] is False:
                raise item[0]
            yield item
    finally:
        # the thread sees this after its current batch (a batch of a file with few matches
        # can take long: do not hold up an interrupted caller for more than a moment)
        stop.set()
        thread.join(timeout=1.0)


class _Prefixed:
    """A binary stream that can look ahead (``peek``) without consuming, for standard input.
    Reads return what is available (``read1``), so adverts stream out of a live pipe."""

    def __init__(self, f):
        self.f, self.head = f, b""

    def _more(self, n: int) -> bool:
        chunk = self.f.read1(n) if hasattr(self.f, "read1") else self.f.read(n)
        self.head += chunk
        return bool(chunk)

    def peek(self, n: int) -> bytes:
        while len(self.head) < n and self._more(n - len(self.head)):
            pass
        return self.head[:n]

    def read(self, n: int = -1) -> bytes:
        if self.head:
            out = self.head if n is None or n < 0 else self.head[:n]
            self.head = self.head[len(out):]
            return out
        if n is None or n < 0:
            return self.f.read()
        return self.f.read1(n) if hasattr(self.f, "read1") else self.f.read(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _file_header_damage(stream: _Prefixed, kind: str) -> str | None:
    """Why the file header (pcap) or first section header (pcapng) cannot be read, or None."""
    if kind == "pcap":
        n = len(stream.peek(24))
        return f"truncated file header ({n} of 24 bytes)" if n < 24 else None
    head = stream.peek(28)
    if len(head) < 12:
        return f"truncated section header ({len(head)} of at least 28 bytes)"
    bom = head[8:12]
    if bom not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
        return "bad pcapng byte-order magic"
    blen = struct.unpack(("<" if bom == b"\x4d\x3c\x2b\x1a" else ">") + "I", head[4:8])[0]
    if blen < 28 or blen % 4:
        return f"bad section header length {blen}"
    if blen > (1 << 20):
        return None          # the exact reader says so at the block (it reads in bounded chunks)
    n = len(stream.peek(blen))
    return f"truncated section header ({n} of {blen} bytes)" if n < blen else None


def _first_linktype(stream: _Prefixed, kind: str) -> int | None:
    """The link type of a pcap header, or of the first pcapng interface (None if not found
    before the first packet or within 1 MiB)."""
    if kind == "pcap":
        head = stream.peek(24)
        if len(head) < 24:
            return None
        endian = "<" if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        return struct.unpack(endian + "I", head[20:24])[0] & 0x0FFFFFFF
    off, endian = 0, "<"
    while off < (1 << 20):
        h = stream.peek(off + 12)
        if len(h) < off + 12:
            return None
        if h[off:off + 4] == b"\x0a\x0d\x0d\x0a":
            endian = "<" if h[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
        btype, blen = struct.unpack_from(endian + "II", h, off)
        if btype == 1:
            return struct.unpack_from(endian + "H", h, off + 8)[0]
        if btype in (2, 3, 6) or blen < 12 or blen % 4:
            return None
        off += blen
    return None


def open_source(path: str, all_frames: bool = False) -> FileSource:
    if path != "-" and os.path.isdir(path):
        raise CaptureError(f"{path}: is a directory, not a capture file")
    if path == "-" and sys.stdin.isatty():
        raise CaptureError("standard input is a terminal: pipe a capture into it (… | carpscope analyze -)")
    return FileSource(path, all_frames)
