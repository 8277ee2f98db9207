"""carpscope/_pcapread.c reads classic pcap files in 1 MB chunks and runs libpcap's compiled
filter itself: it must hand over exactly the frames libpcap (pcapy-ng) does — same numbers,
times and bytes — and its BPF interpreter must agree with libpcap's bpf_filter()."""
from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
from pathlib import Path

import pcapy
import pytest
from hypothesis import given, settings, strategies as st

from carpscope import capture, synth

ROOT = Path(__file__).resolve().parents[1]
BUILT = capture._pcapread is not None
needs_reader = pytest.mark.skipif(not BUILT, reason="carpscope._pcapread is not built here")

FILES = sorted(p for pat in ("captures/*.pcap", "captures/public/*.pcap", "tests/data/*.pcap",
                             "../shared/captures/external/*/*.pcap") for p in ROOT.glob(pat))
_DIGEST = ("import sys, hashlib\nfrom carpscope.capture import open_source\n"
           "s = open_source(sys.argv[1]); h = hashlib.sha1(); n = 0\n"
           "for lt, k, ts, d in s.frames():\n    h.update(repr((lt, k, ts)).encode() + d); n += 1\n"
           "print(type(s._pc).__module__, n, h.hexdigest(), s.info.packets, s.info.error)")


def frames_digest(path: Path, libpcap: bool) -> list[str]:
    env = dict(os.environ)
    env.pop("CARPSCOPE_LIBPCAP_READ", None)
    if libpcap:
        env["CARPSCOPE_LIBPCAP_READ"] = "1"
    p = subprocess.run([sys.executable, "-c", _DIGEST, str(path)], capture_output=True, text=True,
                       env=env, cwd=ROOT, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


def test_ci_builds_the_reader():
    if os.environ.get("CI"):
        assert BUILT


@needs_reader
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_same_frames_as_libpcap(path):
    ours, theirs = frames_digest(path, False), frames_digest(path, True)
    assert ours[1:] == theirs[1:]
    linktype = capture.FileSource(str(path)).linktype
    if linktype in capture.CHUNKED_LINKTYPES:
        assert ours[0] == "carpscope._pcapread"      # it really read this one


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


@needs_reader
@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("nanosecond", [False, True])
def test_byte_orders_and_nanoseconds(tmp_path, big_endian, nanosecond):
    path = _write(tmp_path / "x.pcap", _traffic(), big_endian=big_endian, nanosecond=nanosecond)
    ours, theirs = frames_digest(path, False), frames_digest(path, True)
    assert ours[0] == "carpscope._pcapread" and ours[1:] == theirs[1:] and ours[1] == "160"


@needs_reader
@pytest.mark.parametrize("cut", [1, 10, 17, 30])
def test_truncated_file_keeps_every_frame_before_the_damage(tmp_path, cut):
    path = _write(tmp_path / "t.pcap", _traffic(), truncate=cut)
    ours, theirs = frames_digest(path, False), frames_digest(path, True)
    assert ours[1:4] == theirs[1:4]                 # frames, digest, records read
    assert "reading stopped at record 200" in " ".join(ours[4:])


@needs_reader
def test_records_over_the_snapshot_length_are_cut_as_libpcap_does(tmp_path):
    path = _write(tmp_path / "s.pcap", _traffic(), snaplen=80)    # most frames are longer
    ours, theirs = frames_digest(path, False), frames_digest(path, True)
    assert ours[0] == "carpscope._pcapread" and ours[1:] == theirs[1:]


PROGRAMS = {lt: capture.compile_filter(lt)[1] for lt in (1, 101, 113, 276)}


@needs_reader
@settings(max_examples=400, deadline=None)
@given(lt=st.sampled_from(sorted(PROGRAMS)), data=st.binary(max_size=120),
       head=st.sampled_from([b"", b"\x08\x00", b"\x86\xdd", b"\x81\x00", b"\x08\x06", b"\x88\xa8"]),
       pos=st.integers(0, 24), proto=st.sampled_from([112, 0, 43, 44, 51, 60, 58, 6]))
def test_bpf_interpreter_agrees_with_libpcap(lt, data, head, pos, proto):
    """Random frames biased towards the filter's branches: ethertypes, VLAN tags, IPv6
    extension header chains (ip6 protochain jumps backwards)."""
    pkt = bytearray(data.ljust(pos + 60, b"\0"))
    pkt[12:12 + len(head)] = head
    pkt[pos:pos + 1] = bytes([proto])
    pkt = bytes(pkt)
    prog = PROGRAMS[lt]
    expected = prog.filter(pkt)
    got = capture._pcapread.bpf(prog.get_bpf(), pkt, len(pkt))
    assert (expected != 0) == (got != 0), (lt, pkt.hex())


@needs_reader
def test_bpf_interpreter_on_every_capture_frame():
    from carpscope.pcapfile import read_records
    for path in FILES:
        with open(path, "rb") as f:
            recs = [r for r in read_records(f) if hasattr(r, "data")]
        for r in recs:
            if r.linktype not in PROGRAMS:
                continue
            prog = PROGRAMS[r.linktype]
            assert (prog.filter(r.data) != 0) == (capture._pcapread.bpf(prog.get_bpf(), r.data, len(r.data)) != 0)


# numbers, times and bytes (the link type value may be the DLT or the LINKTYPE for raw IP)
_FRAMES = _DIGEST.replace("repr((lt, k, ts))", "repr((k, ts))")
_FRAMES_STDIN = _FRAMES.replace("open_source(sys.argv[1])", "open_source('-')")


@pytest.mark.parametrize("path", [p for p in FILES if "external" not in str(p)], ids=lambda p: p.name)
def test_exact_reader_passes_the_frames_libpcap_passes(path):
    """Standard input goes through the exact reader, which applies the filter per frame; on
    DLT_NULL/LOOP libpcap compiles "ip6" per savefile (BSD address families, the file's byte
    order), so the exact reader must match that, not this host's AF_INET6."""
    env = dict(os.environ, CARPSCOPE_LIBPCAP_READ="1")
    outs = []
    for code, stdin in ((_FRAMES, None), (_FRAMES_STDIN, path)):
        with open(stdin or os.devnull, "rb") as f:
            p = subprocess.run([sys.executable, "-c", code, str(path)], stdin=f, capture_output=True,
                               text=True, cwd=ROOT, timeout=60, env=env)
        assert p.returncode == 0, p.stderr
        outs.append(p.stdout.split()[1:3])
    assert outs[0] == outs[1]
