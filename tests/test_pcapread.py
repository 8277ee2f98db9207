"""The capture reader (carpscope/capture/reader.py) against libpcap (pcapy-ng), the oracle.

Every offline input is read by carpscope's own reader, compiled or as Python. It must hand over
the same records libpcap does — same times and bytes (records longer than the snapshot length cut
as libpcap cuts them), Wireshark's frame numbers by default — and with the filtered numbering
exactly the frames libpcap's own filter passes, numbered as ``tcpdump -r F -w OUT FILTER`` would.
And what it skips as irrelevant (``wire.frame.relevant``) must be frames the decoder has no use
for: never an advert, a malformed protocol-112 frame or an address hint.
"""
from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
from pathlib import Path

import pcapy
import pytest

from carpscope import synth
from carpscope.capture import open_source
from carpscope.capture.filters import NO_BPF, compile_filter
from carpscope.capture.reader import Damage, Reader, read_records
from carpscope.wire.frame import decode_frame

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted(p for pat in ("captures/*.pcap", "captures/public/*.pcap", "tests/data/*.pcap",
                             "tests/data/*.pcapng", "../shared/captures/external/*/*.pcap")
               for p in ROOT.glob(pat))


def libpcap_records(path: Path, bpf: bool = False, strict: bool = False) -> list[tuple[float, bytes]]:
    """(time, bytes) of every record libpcap hands over (through its capture filter if asked)."""
    pc = pcapy.open_offline(str(path))
    if bpf:
        pc.setfilter(compile_filter(pc.datalink())[0])
    out = []
    while True:
        try:
            hdr, data = pc.next()
        except pcapy.PcapError:
            if strict:
                raise
            break
        if hdr is None:
            break
        sec, usec = hdr.getts()
        out.append((round(sec + usec * 1e-6, 6), bytes(data)))
    return out


def ours(path: Path, keep_all: bool = False) -> list[tuple[int, float, bytes]]:
    with open(path, "rb", buffering=0) as f:
        r = Reader(f, keep_all=keep_all)
        return [(n, round(ts, 6), data) for chunk in r.chunks() for n, ts, _lt, data, _o, _l in chunk]


def _libpcap_reads(path: Path) -> bool:
    """libpcap reads the whole file (not so a pcapng whose interfaces differ in link type, or a
    damaged file: there tshark is the oracle, test_tshark_diff.py)."""
    try:
        libpcap_records(path, strict=True)
    except pcapy.PcapError:
        return False
    return True


def _file_linktype(path: Path) -> int:
    with open(path, "rb", buffering=0) as f:
        r = Reader(f)
        r.start()
        return r.linktype


# libpcap rewrites the TLV heads of an NFLOG file written by a host of the other byte order into
# its own (its swap_nflog_header); the reader hands over the file's bytes, link.py reads either
@pytest.mark.parametrize("path", [p for p in FILES if _libpcap_reads(p) and p.name != "nflog_be.pcap"],
                         ids=lambda p: p.name)
def test_every_record_as_libpcap_reads_it(path):
    theirs = libpcap_records(path)
    mine = ours(path, keep_all=True)
    assert [(ts, d) for _, ts, d in mine] == theirs
    assert [n for n, _, _ in mine] == list(range(1, len(mine) + 1))     # Wireshark's numbering


# Not the fuzzed tcpdump files (libpcap's filter sees their records with the header's wire length,
# pcapy's with the captured one), nor Frame Relay, pflog and NFLOG (no filter: every frame is
# kept, see filters.NO_BPF)
@pytest.mark.parametrize("path", [p for p in FILES if _libpcap_reads(p) and "external" not in str(p)
                                  and _file_linktype(p) not in NO_BPF], ids=lambda p: p.name)
def test_filtered_numbering_passes_what_libpcap_passes(path):
    src = open_source(str(path), numbering="filtered")
    mine = [(round(ts, 6), d) for chunk in src.chunks() for _n, ts, _lt, d, _o, _l in chunk]
    numbers = []
    src = open_source(str(path), numbering="filtered")
    for chunk in src.chunks():
        numbers += [n for n, *_ in chunk]
    assert mine == libpcap_records(path, bpf=True)
    assert numbers == list(range(1, len(numbers) + 1))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_what_is_skipped_has_nothing_for_the_decoder(path):
    """The frames the reader does not hand over decode to nothing; the ones it does keep their
    record numbers."""
    everything = ours(path, keep_all=True)
    kept = {n for n, _, _ in ours(path)}
    with open(path, "rb") as f:
        lts = {r.number: r.linktype for r in read_records(f) if not isinstance(r, Damage)}
    for n, ts, data in everything:
        if n not in kept:
            try:
                rec = decode_frame(lts[n], data, n, ts, "x")
            except ValueError:          # a link type carpscope does not decode
                continue
            assert rec is None, (path.name, n, rec)


def _write(path: Path, frames, *, big_endian=False, nanosecond=False, snaplen=262144, truncate=0):
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    e = ">" if big_endian else "<"
    out = bytearray(struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, 1))
    for i, data in enumerate(frames):
        frac = (123456789 + i) if nanosecond else (123456 + i)
        out += struct.pack(e + "IIII", 1_700_000_000 + i, frac, len(data), len(data) + 4) + data
    path.write_bytes(bytes(out[:len(out) - truncate] if truncate else out))
    return path


def _traffic():
    frames = []
    for i in range(40):
        frames.append(synth.carp_frame("10.0.0.1", 3, counter=i, passphrase="x", vips=["10.0.0.9"]))
        frames.append(synth.other_frame(100 + i))
        frames.append(synth.carp_frame("10.0.0.1", 4, counter=i, vlans=(10,)))
        frames.append(synth.vrrp_frame("2001:db8::1", 5, 100, ["fe80::1"], version=3))
        frames.append(synth.garp_frame("00:00:5e:00:01:03", "10.0.0.9"))
    return frames


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("nanosecond", [False, True])
def test_byte_orders_and_nanoseconds(tmp_path, big_endian, nanosecond):
    path = _write(tmp_path / "x.pcap", _traffic(), big_endian=big_endian, nanosecond=nanosecond)
    mine, theirs = ours(path, keep_all=True), libpcap_records(path)
    assert [d for _, _, d in mine] == [d for _, d in theirs]
    # libpcap hands nanosecond times over in microseconds (truncated); the reader keeps them
    assert all(0 <= ts - t < 1.5e-6 for (_, ts, _), (t, _) in zip(mine, theirs))
    kept = ours(path)
    assert len(kept) == 160 and [n % 5 for n, _, _ in kept[:4]] == [1, 3, 4, 0]


@pytest.mark.parametrize("cut", [1, 10, 17, 30])
def test_truncated_file_keeps_every_frame_before_the_damage(tmp_path, cut):
    path = _write(tmp_path / "t.pcap", _traffic(), truncate=cut)
    theirs = libpcap_records(path)
    with open(path, "rb", buffering=0) as f:
        r = Reader(f, keep_all=True)
        mine = [(round(ts, 6), d) for chunk in r.chunks() for _n, ts, _lt, d, _o, _l in chunk]
    assert mine == theirs[:len(mine)] and len(mine) == 199
    assert r.damage is not None and r.damage.number == 200


def test_records_over_the_snapshot_length_are_cut_as_libpcap_does(tmp_path):
    path = _write(tmp_path / "s.pcap", _traffic(), snaplen=80)    # most frames are longer
    assert [(ts, d) for _, ts, d in ours(path, keep_all=True)] == libpcap_records(path)
    # file and standard input agree (one reader for both)
    env = dict(os.environ, NO_COLOR="1")
    outs = []
    for args, stdin in ((["analyze", str(path)], None), (["analyze", "-"], path)):
        with open(stdin or os.devnull, "rb") as f:
            p = subprocess.run([sys.executable, "-m", "carpscope", *args, "--format", "json", "-q"], stdin=f,
                               capture_output=True, cwd=ROOT, timeout=60, env=env)
        assert p.returncode in (0, 1), p.stderr
        import json
        doc = json.loads(p.stdout)
        outs.append((doc["sources"][0]["adverts"], doc["sources"][0]["malformed"]))
    assert outs[0] == outs[1]


def test_a_chunk_never_holds_more_than_a_read(tmp_path):
    """Memory is bounded by one read, not by the file: chunks follow the 1 MiB reads."""
    frames = [synth.carp_frame("10.0.0.1", 3, counter=i) for i in range(40000)]   # ~3.4 MB
    path = _write(tmp_path / "big.pcap", frames)
    with open(path, "rb", buffering=0) as f:
        sizes = [len(c) for c in Reader(f).chunks()]
    assert sum(sizes) == 40000 and max(sizes) < 1.1 * (1 << 20) / 86


class Trickle(io.RawIOBase):
    """A pipe that hands over at most k bytes per read."""

    def __init__(self, data: bytes, k: int):
        self.data, self.k, self.pos = data, k, 0

    def readable(self):
        return True

    def read(self, n=-1):
        out = self.data[self.pos:self.pos + min(self.k, n if n >= 0 else self.k)]
        self.pos += len(out)
        return out


@pytest.mark.parametrize("k", [1, 7, 100, 65536])
def test_any_read_size_gives_the_same_records(k):
    data = (ROOT / "captures" / "failover.pcap").read_bytes()
    whole = [(r.number, r.offset, r.data) for r in read_records(io.BytesIO(data))]
    pieces = [(r.number, r.offset, r.data) for r in read_records(Trickle(data, k))]
    assert pieces == whole


class Cut(io.RawIOBase):
    """A pipe whose reads end at the given offsets of the stream (and never cross one)."""

    def __init__(self, data: bytes, cuts: list[int]):
        self.data, self.cuts, self.pos = data, sorted(cuts), 0

    def readable(self):
        return True

    def read(self, n=-1):
        stop = min([c for c in self.cuts if c > self.pos] + [len(self.data)])
        out = self.data[self.pos:min(stop, self.pos + (n if n >= 0 else len(self.data)))]
        self.pos += len(out)
        return out


@pytest.mark.parametrize("k", range(1, 16))
def test_a_section_header_cut_by_a_read_is_read_whole(k):
    """A second pcapng section whose header a pipe's read cuts k bytes in (the byte-order magic
    is at 8-11): every record of both sections, as from one read."""
    sections = []
    for lt in (1, 113):
        b = io.BytesIO()
        w = synth.PcapngWriter(b)
        w.add_interface(lt)
        for i in range(3):
            w.write(1_700_000_000 + i, synth.other_frame(100 + i))
        sections.append(b.getvalue())
    data = b"".join(sections)
    whole = [(r.number, r.offset, r.linktype, r.data) for r in read_records(io.BytesIO(data))]
    cut = [(r.number, r.offset, r.linktype, r.data) for r in read_records(Cut(data, [len(sections[0]) + k]))]
    assert len(whole) == 6 and cut == whole
