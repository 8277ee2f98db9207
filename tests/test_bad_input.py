"""Bad input through the CLI: one clear line on stderr, never a traceback, exit 2 when nothing
could be read; a damaged file keeps what was read before the damage and says where reading
stopped (a capture-truncated warning), and the exit status follows --fail-on.

Also: decode_frame never raises on wire bytes (seeded mutation and truncation of real frames).
"""
from __future__ import annotations

import gzip
import json
import random
import struct

import pytest

from carpscope import synth
from carpscope.model import AddressHint, Advert, Malformed
from carpscope.wire.frame import decode_frame
from conftest import DATA, jsonl_records, run_cli, stderr_messages

N_PAIRS = 10          # the clean capture: VRRPv2 vrid 7 and CARP vhid 5, one advert each per second


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A capture whose only finding is informational (no key for the CARP HMAC), so the exit
    status of a damaged copy is decided by capture-truncated alone."""
    p = tmp_path_factory.mktemp("bad") / "clean.pcap"
    with open(p, "wb") as f:
        w = synth.PcapWriter(f)
        for i in range(N_PAIRS):
            w.write(1_700_000_000 + i, synth.vrrp_frame("192.0.2.3", 7, 150, ["192.0.2.200"]))
            w.write(1_700_000_000 + i + 0.5, synth.carp_frame("192.0.2.2", 5, counter=i + 1, passphrase="secret",
                                                              vips=["192.0.2.100"]))
    return p


def pcap_records(data: bytes) -> list[tuple[int, int]]:
    """(offset, length incl. 16-byte header) of each record, parsed here."""
    out, off = [], 24
    while off + 16 <= len(data):
        incl = struct.unpack("<I", data[off + 8:off + 12])[0]
        out.append((off, 16 + incl))
        off += 16 + incl
    return out


def analyze(*args, stdin=None):
    rc, out, err = run_cli("analyze", *args, stdin=stdin)
    assert "Traceback" not in out and "Traceback" not in err, err
    assert "internal error" not in err, err
    return rc, out, err


def one_message(err: str, kind: str) -> str:
    msgs = stderr_messages(err)
    assert len(msgs) == 1, f"expected one message on stderr, got: {err!r}"
    assert msgs[0].startswith(f"carpscope: {kind}:"), msgs[0]
    return msgs[0]


# ------------------------------------------------------------------ nothing readable: exit 2

def _write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return p


@pytest.mark.parametrize("make,expect", [
    (lambda t, c: _write(t, "empty.pcap", b""), "empty file"),
    (lambda t, c: _write(t, "notes.txt", b"fw1 carp vhid 5\nthis is not a capture\n"), "text file"),
    (lambda t, c: _write(t, "clean.pcap.gz", gzip.compress(c.read_bytes())), "gzip"),
    (lambda t, c: _write(t, "random.bin", bytes(random.Random(7).randrange(256) for _ in range(300))), "not a pcap or pcapng"),
    (lambda t, c: _write(t, "hdr10.pcap", c.read_bytes()[:10]), "file header"),
    (lambda t, c: _write(t, "unknown_lt.pcap", c.read_bytes()[:20] + struct.pack("<I", 4242) + c.read_bytes()[24:]),
     "unsupported link type 4242"),
    (lambda t, c: t / "does-not-exist.pcap", "no such file"),
    (lambda t, c: t, "is a directory"),
], ids=["empty", "text", "gzip", "random", "cut-in-file-header", "unknown-linktype", "missing", "directory"])
@pytest.mark.parametrize("fmt", ["json", "text"])
def test_unreadable_input(tmp_path, clean, make, expect, fmt):
    path = make(tmp_path, clean)
    rc, out, err = analyze(path, "--format", fmt)
    assert rc == 2
    msg = one_message(err, "error")
    assert str(path) in msg and expect in msg, msg
    assert out == "", "nothing was read: no report"


@pytest.mark.parametrize("data,expect", [
    (b"", "empty"), (b"hello\n", "text"), (gzip.compress(b"\xd4\xc3\xb2\xa1" + bytes(20)), "gzip"),
])
def test_unreadable_stdin(data, expect):
    rc, out, err = analyze("-", "--format", "json", stdin=data)
    assert rc == 2 and out == ""
    msg = one_message(err, "error")
    assert msg.startswith("carpscope: error: stdin:") and expect in msg


def test_unwrapped_error_line_for_long_paths(tmp_path):
    """The error is one physical line even when the path is long."""
    deep = tmp_path / ("very-long-directory-name-" * 4)
    deep.mkdir()
    p = _write(deep, "capture-with-a-long-name.pcap", b"plain text, not a capture\n")
    rc, out, err = analyze(p)
    assert rc == 2
    assert len(err.strip().splitlines()) == 1, f"the console wrapped the message: {err!r}"
    assert err.strip().startswith(f"carpscope: error: {p}: a text file")


def test_header_only_pcap_is_empty_not_an_error(tmp_path, clean):
    p = _write(tmp_path, "hdr.pcap", clean.read_bytes()[:24])
    rc, out, err = analyze(p, "--format", "json")
    assert rc == 0 and err == ""
    rep = json.loads(out)
    assert rep["sources"][0]["packets"] == 0 and rep["groups"] == []
    assert not [f for f in rep["findings"] if f["rule"] == "capture-truncated"]


def test_one_bad_file_among_good_ones(tmp_path, clean):
    """A missing file is an error (exit 2) but the readable one is still analysed and reported."""
    rc, out, err = analyze(clean, tmp_path / "missing.pcap", "--format", "json")
    assert rc == 2
    assert one_message(err, "error").endswith("missing.pcap: no such file")
    rep = json.loads(out)
    assert [s["name"] for s in rep["sources"]] == [str(clean)]
    assert sorted((g["protocol"], g["vhid"]) for g in rep["groups"]) == [("carp", 5), ("vrrp2", 7)]


# ------------------------------------------------------------------ damaged files: keep what was read

def _cut_header(data, recs, k):      # 7 bytes into record k's 16-byte header
    return data[:recs[k - 1][0] + 7]


def _cut_packet(data, recs, k):      # 20 bytes into record k's packet data
    return data[:recs[k - 1][0] + 16 + 20]


def _bogus_length(data, recs, k):    # record k announces 2 GiB
    off = recs[k - 1][0]
    return data[:off + 8] + struct.pack("<I", 0x7FFFFFFF) + data[off + 12:]


def _caplen_over_snaplen(data, recs, k):  # damage that is not a cut: caplen larger than the snaplen
    off = recs[k - 1][0]
    return data[:off + 8] + struct.pack("<I", 300000) + data[off + 12:]


CUT_HEADER = (_cut_header, "truncated record header (7 of 16 bytes)")
CUT_PACKET = (_cut_packet, "truncated record: ")
DAMAGE = [
    (*CUT_HEADER, 8), (*CUT_PACKET, 8),
    (_bogus_length, "bogus record length 2147483647", 8),
    (_caplen_over_snaplen, "bogus record length 300000", 8),
    (*CUT_HEADER, 1), (*CUT_PACKET, 1),                      # nothing before the damage
    (*CUT_HEADER, 2 * N_PAIRS), (*CUT_PACKET, 2 * N_PAIRS),  # only the last record lost
]


@pytest.mark.parametrize("damage,reason,k", DAMAGE, ids=[
    f"{d.__name__.strip('_')}-record{k}" for d, _, k in DAMAGE])
@pytest.mark.parametrize("via", ["file", "stdin"])
def test_damaged_pcap_keeps_what_was_read(tmp_path, clean, damage, reason, k, via):
    data = clean.read_bytes()
    recs = pcap_records(data)
    assert len(recs) == 2 * N_PAIRS
    bad = damage(data, recs, k)
    path = _write(tmp_path, "damaged.pcap", bad)
    args = ("-",) if via == "stdin" else (path,)
    rc, out, err = analyze(*args, "--format", "json", stdin=bad if via == "stdin" else None)
    name = "stdin" if via == "stdin" else str(path)
    assert rc == 0, "capture-truncated is a warning: exit 0 under the default --fail-on error"
    msg = one_message(err, "warning")
    where = f"record {k} (byte offset {recs[k - 1][0]})"
    assert msg.startswith(f"carpscope: warning: {name}: reading stopped at {where}") and reason in msg, msg

    rep = json.loads(out)
    src = rep["sources"][0]
    read = k - 1                     # records before the damaged one; they alternate VRRP, CARP
    assert (src["packets"], src["adverts"], src["malformed"]) == (read, read, 0)
    assert reason in src["error"] and where in src["error"]
    groups = {(g["protocol"], g["vhid"]): g for g in rep["groups"]}
    want = {("vrrp2", 7): (read + 1) // 2, ("carp", 5): read // 2}
    assert {key: sum(s["adverts"] for s in g["speakers"]) for key, g in groups.items()} == \
        {key: n for key, n in want.items() if n}
    trunc = [f for f in rep["findings"] if f["rule"] == "capture-truncated"]
    assert len(trunc) == 1
    f = trunc[0]
    assert f["code"] == "CS102" and f["severity"] == "warning" and f["source"] == name
    assert f["evidence"]["record"] == k and f["evidence"]["offset"] == recs[k - 1][0]
    assert f["evidence"]["frames_read"] == read
    assert where in f["message"]

    # exit status follows --fail-on (capture-truncated is the only warning in this capture)
    if damage is not _cut_packet or k != 8:
        return
    assert analyze(*args, "--format", "json", "--fail-on", "warning", stdin=bad if via == "stdin" else None)[0] == 1
    assert analyze(*args, "--format", "json", "--fail-on", "never", stdin=bad if via == "stdin" else None)[0] == 0


def test_undamaged_copy_has_no_truncation(clean):
    rc, out, err = analyze(clean, "--format", "json", "--fail-on", "warning")
    assert rc == 0 and err == ""
    rep = json.loads(out)
    assert rep["sources"][0]["adverts"] == 2 * N_PAIRS and rep["sources"][0]["error"] is None


def _pcapng_blocks(data: bytes) -> list[tuple[int, int, int]]:
    out, off = [], 0
    while off + 8 <= len(data):
        btype, blen = struct.unpack("<II", data[off:off + 8])
        out.append((off, btype, blen))
        off += blen
    return out


@pytest.mark.parametrize("how", ["cut-in-block", "bogus-block-length"])
def test_damaged_pcapng(tmp_path, how):
    data = (DATA / "eth.pcapng").read_bytes()
    epbs = [(off, blen) for off, t, blen in _pcapng_blocks(data) if t == 6]
    off, blen = epbs[4]                    # the 5th packet (VRRPv3 vrid 8)
    if how == "cut-in-block":
        bad = data[:off + blen - 10]
    else:
        bad = data[:off + 4] + struct.pack("<I", 6) + data[off + 8:]
    p = _write(tmp_path, "damaged.pcapng", bad)
    rc, out, err = analyze(p, "--format", "jsonl", "--all-frames")
    assert rc == 0
    msg = one_message(err, "warning")
    assert f"record 5 (byte offset {off})" in msg
    recs = jsonl_records(out)
    assert [r["vhid"] for r in recs if r["type"] == "advert"] == [5, 6, 7]
    trunc = [r for r in recs if r["type"] == "finding" and r["rule"] == "capture-truncated"]
    assert trunc and trunc[0]["evidence"]["record"] == 5 and trunc[0]["evidence"]["offset"] == off


# ------------------------------------------------------------------ wire bytes never raise

def _frames_of(path):
    from carpscope.capture.reader import Record, read_records
    with open(path, "rb") as f:
        return [(r.linktype, r.data) for r in read_records(f) if isinstance(r, Record)]


def test_decode_frame_never_raises_on_mutations():
    """Every prefix of every frame, and 3000 seeded random mutations, decode to a record or
    None: never an exception (the decoder's contract for wire bytes)."""
    rnd = random.Random(112)
    frames = []
    for name in ("eth.pcap", "vlan.pcap", "qinq.pcap", "sll.pcap", "sll2.pcap", "raw.pcap", "null_le.pcap",
                 "loop.pcap", "frelay.pcap", "ipv6_exthdr.pcap"):
        frames += _frames_of(DATA / name)
    kinds = set()
    for lt, fr in frames:
        for cut in range(len(fr) + 1):
            kinds.add(type(decode_frame(lt, fr[:cut], 1, 0.0, "fuzz")))
    for _ in range(3000):
        lt, fr = rnd.choice(frames)
        b = bytearray(fr)
        for _ in range(rnd.randint(1, 6)):
            i = rnd.randrange(len(b))
            b[i] = rnd.randrange(256) if rnd.random() < 0.7 else rnd.choice((0, 0xFF, 0x70, 0x21, 0x31, 7))
        if rnd.random() < 0.3:
            b = b[:rnd.randrange(len(b) + 1)]
        kinds.add(type(decode_frame(lt, bytes(b), 1, 0.0, "fuzz")))
    assert {Advert, Malformed, type(None)} <= kinds
    assert kinds <= {Advert, Malformed, AddressHint, type(None)}


def test_ip_version_must_match_the_ethertype():
    """An IPv4 ethertype with version nibble 6 (and byte 9 = 112 by accident) is no advert."""
    fr = bytearray((DATA / "eth.pcap").read_bytes()[24 + 16:24 + 16 + 70])   # frame 1: CARP/IPv4
    assert isinstance(decode_frame(1, bytes(fr), 1, 0.0, "t"), Advert)
    fr[14] = 0x65
    rec = decode_frame(1, bytes(fr), 1, 0.0, "t")
    assert isinstance(rec, Malformed) and "version 6" in rec.reason
    v6 = _frames_of(DATA / "eth.pcap")[2][1]                                    # frame 3: CARP/IPv6
    assert isinstance(decode_frame(1, v6, 3, 0.0, "t"), Advert)
    assert decode_frame(1, v6[:14] + b"\x40" + v6[15:], 3, 0.0, "t") is None
