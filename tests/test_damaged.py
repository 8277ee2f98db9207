"""Damaged captures, beyond tests/test_bad_input.py (which covers pcap cut in a record header,
cut in a packet, 2 GiB and over-snaplen record lengths, for files and stdin, and a pcapng cut
in a block or with a too-small block length, as a file).

Added here, each asserting the one warning line (record number, byte offset, reason), the
capture-truncated finding, and everything read before the damage, through the CLI:
  - pcapng on standard input and as a file: cut in a block header, cut in a block, block
    length over 256 MiB, not a multiple of 4, under 12; an IDB or EPB too short for its
    fixed fields (found by the fuzzer); section header damage (nothing readable: exit 2)
  - a pcapng with several interfaces of different link types (libpcap refuses it: the exact
    reader takes it from the start), damaged, file and stdin
  - pcap record length over 256 MiB with snaplen 0 (the only bound then) and with a huge
    snaplen; a record number that counts non-matching frames (filtered numbering)
  - the text report says it too; a damaged file among good ones; exit status under --fail-on
  - a gzip'd pcap: named as such with the command that reads it, and that command works
"""
from __future__ import annotations

import gzip
import io
import json
import struct
import subprocess
import sys

import pytest

from carpscope import synth
from conftest import REPO, jsonl_records, run_cli, stderr_messages

N = 12      # adverts in each generated capture: alternately VRRPv2 vrid 7 and CARP vhid 5


def adverts_frames():
    for i in range(N):
        if i % 2 == 0:
            yield synth.vrrp_frame("192.0.2.3", 7, 150, ["192.0.2.200"])
        else:
            yield synth.carp_frame("192.0.2.2", 5, counter=i, passphrase="x", vips=["192.0.2.100"])


def pcapng(linktypes=(1,)):
    """A pcapng of N adverts; with two link types the frames alternate Ethernet / Linux cooked
    (libpcap refuses such a file). Returns (bytes, [(offset, length) of each packet block])."""
    b = io.BytesIO()
    w = synth.PcapngWriter(b)
    for lt in linktypes:
        w.add_interface(lt)
    blocks = []
    for i, fr in enumerate(adverts_frames()):
        iface = i % len(linktypes)
        if linktypes[iface] == 113:
            fr = synth.sll(fr[6:12].hex(":"), struct.unpack("!H", fr[12:14])[0], fr[14:])
        off = b.tell()
        w.write(1_700_000_000 + i * 0.5, fr, iface)
        blocks.append((off, b.tell() - off))
    return b.getvalue(), blocks


def pcap(background=0, snaplen=262144):
    """A pcap of N adverts, each after ``background`` TCP frames. Returns (bytes, [(offset,
    length) of each advert's record], [record number of each advert])."""
    b = io.BytesIO()
    w = synth.PcapWriter(b, snaplen=snaplen)
    recs, numbers, n = [], [], 0
    for i, fr in enumerate(adverts_frames()):
        for _ in range(background):
            w.write(1_700_000_000 + i * 0.5, synth.other_frame(200))
            n += 1
        off = b.tell()
        w.write(1_700_000_000 + i * 0.5 + 0.1, fr)
        n += 1
        recs.append((off, b.tell() - off))
        numbers.append(n)
    return b.getvalue(), recs, numbers


def analyze(tmp_path, data, via, *args, name="damaged.cap"):
    if via == "stdin":
        rc, out, err = run_cli("analyze", "-", *args, stdin=data)
        src = "stdin"
    else:
        p = tmp_path / name
        p.write_bytes(data)
        rc, out, err = run_cli("analyze", p, *args)
        src = str(p)
    assert "Traceback" not in err and "internal error" not in err, err
    return rc, out, err, src


def check_damage(rc, out, err, src, *, record, offset, reason, kept, fmt="json"):
    """One warning naming source, record, offset and reason; the finding says the same; the
    adverts read before the damage are all in the report."""
    assert rc == 0, (rc, err)
    msgs = stderr_messages(err)
    assert len(msgs) == 1, err
    where = f"reading stopped at record {record} (byte offset {offset})"
    assert msgs[0].startswith(f"carpscope: warning: {src}: {where}: "), msgs[0]
    assert reason in msgs[0], msgs[0]
    if fmt == "jsonl":
        recs = jsonl_records(out)
        got = [r["vhid"] for r in recs if r["type"] == "advert"]
        findings = [r for r in recs if r["type"] == "finding"]
    else:
        rep = json.loads(out)
        got = [sum(s["adverts"] for s in g["speakers"]) for g in rep["groups"]]
        findings = rep["findings"]
        assert rep["sources"][0]["adverts"] == kept and rep["sources"][0]["malformed"] == 0
        assert where in rep["sources"][0]["error"]
    trunc = [f for f in findings if f["rule"] == "capture-truncated"]
    assert len(trunc) == 1 and trunc[0]["source"] == src and trunc[0]["severity"] == "warning"
    assert trunc[0]["evidence"]["record"] == record and trunc[0]["evidence"]["offset"] == offset
    assert where in trunc[0]["message"]
    want = [7 if i % 2 == 0 else 5 for i in range(kept)]
    if fmt == "jsonl":
        assert got == want
    else:
        assert sorted(got) == sorted(n for n in (want.count(5), want.count(7)) if n)
    return trunc[0]


# ------------------------------------------------------------------ pcapng

def _len(data, off, value):
    return data[:off + 4] + struct.pack("<I", value) + data[off + 8:]


def _body_len(data, off, value):
    """Block length ``value`` in header and trailer, the block cut/padded to match."""
    blen = struct.unpack("<I", data[off + 4:off + 8])[0]
    body = data[off + 8:off + blen - 4][:value - 12].ljust(value - 12, b"\0")
    return (data[:off] + data[off:off + 4] + struct.pack("<I", value) + body + struct.pack("<I", value)
            + data[off + blen:])


K = 6       # the damaged packet block (1-based): five adverts are read before it
PCAPNG_DAMAGE = {
    "cut-in-block-header": (lambda d, off: d[:off + 5], "truncated block header (5 of 8 bytes)"),
    "cut-in-block": (lambda d, off: d[:off + 40], "truncated block:"),
    "length-over-256MiB": (lambda d, off: _len(d, off, 0x20000000), "bogus block length 536870912"),
    "length-not-multiple-of-4": (lambda d, off: _len(d, off, 98), "bogus block length 98"),
    "length-under-12": (lambda d, off: _len(d, off, 8), "bogus block length 8"),
    "epb-too-short": (lambda d, off: _body_len(d, off, 24), "enhanced packet block too short: 12 bytes"),
}


@pytest.mark.parametrize("linktypes", [(1,), (1, 113)], ids=["one-interface", "ethernet+sll"])
@pytest.mark.parametrize("how", list(PCAPNG_DAMAGE))
@pytest.mark.parametrize("via", ["file", "stdin"])
def test_damaged_pcapng(tmp_path, how, via, linktypes):
    data, blocks = pcapng(linktypes)
    damage, reason = PCAPNG_DAMAGE[how]
    off = blocks[K - 1][0]
    bad = damage(data, off)
    rc, out, err, src = analyze(tmp_path, bad, via, "--format", "json")
    check_damage(rc, out, err, src, record=K, offset=off, reason=reason, kept=K - 1)


@pytest.mark.parametrize("via", ["file", "stdin"])
def test_damaged_pcapng_jsonl_order(tmp_path, via):
    """The adverts streamed before the damage are the first K-1, in order (jsonl)."""
    data, blocks = pcapng((1, 113))
    off = blocks[K - 1][0]
    rc, out, err, src = analyze(tmp_path, data[:off + 30], via, "--format", "jsonl")
    check_damage(rc, out, err, src, record=K, offset=off, reason="truncated block:", kept=K - 1, fmt="jsonl")


def _idb_short(data):
    """The (only) interface description block made 12 bytes long: no fixed fields."""
    shb_len = struct.unpack("<I", data[4:8])[0]
    idb_len = struct.unpack("<I", data[shb_len + 4:shb_len + 8])[0]
    idb = struct.pack("<II", 1, 12) + struct.pack("<I", 12)
    return data[:shb_len] + idb + data[shb_len + idb_len:], shb_len


@pytest.mark.parametrize("via", ["file", "stdin"])
def test_pcapng_idb_too_short(tmp_path, via):
    """Found by the capture fuzz target (tests/fuzz_regressions/capture/pcapng-idb-body-4-bytes): an
    interface block without its fixed fields crashed the reader."""
    data, _ = pcapng()
    bad, off = _idb_short(data)
    rc, out, err, src = analyze(tmp_path, bad, via, "--format", "json")
    check_damage(rc, out, err, src, record=1, offset=off, reason="interface description block too short", kept=0)


@pytest.mark.parametrize("cut,reason", [
    (0, "empty"), (3, "not a pcap or pcapng"), (10, "truncated section header (10 of at least 28 bytes)"),
    (20, "truncated section header (20 of 28 bytes)"),
])
@pytest.mark.parametrize("via", ["file", "stdin"])
def test_pcapng_section_header_damage_is_an_error(tmp_path, cut, reason, via):
    """Nothing readable (the section header itself): one error line, exit 2, no report."""
    data, _ = pcapng()
    rc, out, err, src = analyze(tmp_path, data[:cut], via, "--format", "json")
    assert rc == 2 and out == ""
    msgs = stderr_messages(err)
    assert len(msgs) == 1 and msgs[0].startswith(f"carpscope: error: {src}: ") and reason in msgs[0], msgs


@pytest.mark.parametrize("via", ["file", "stdin"])
def test_pcapng_bad_byte_order_magic(tmp_path, via):
    data, _ = pcapng()
    rc, out, err, src = analyze(tmp_path, data[:8] + b"\x01\x02\x03\x04" + data[12:], via)
    assert rc == 2 and out == "" and "bad pcapng byte-order magic" in err


@pytest.mark.parametrize("via", ["file", "stdin"])
def test_mixed_linktypes_undamaged(tmp_path, via):
    """The several-interface pcapng itself (libpcap refuses it): every advert, no warning."""
    data, _ = pcapng((1, 113))
    rc, out, err, src = analyze(tmp_path, data, via, "--format", "json")
    assert rc == 0 and err == ""
    rep = json.loads(out)
    assert rep["sources"][0]["adverts"] == N and rep["sources"][0]["error"] is None


# ------------------------------------------------------------------ pcap

@pytest.mark.parametrize("snaplen,incl", [(0, 0x10000001), (0xFFFFFFFF, 0x10000001), (65535, 300000)],
                         ids=["snaplen0-over-256MiB", "huge-snaplen-over-256MiB", "over-snaplen"])
@pytest.mark.parametrize("via", ["file", "stdin"])
def test_pcap_bogus_record_length(tmp_path, snaplen, incl, via):
    data, recs, numbers = pcap(snaplen=snaplen)
    off = recs[K - 1][0]
    bad = data[:off + 8] + struct.pack("<I", incl) + data[off + 12:]
    rc, out, err, src = analyze(tmp_path, bad, via, "--format", "json")
    check_damage(rc, out, err, src, record=K, offset=off, reason=f"bogus record length {incl}", kept=K - 1)


@pytest.mark.parametrize("via", ["file", "stdin"])
@pytest.mark.parametrize("all_frames", [False, True], ids=["filtered", "all-frames"])
def test_record_number_counts_every_record(tmp_path, via, all_frames):
    """With 3 TCP frames before each advert, the damaged advert is file record 4*K, whatever
    the frame numbering; the adverts before it are all kept."""
    data, recs, numbers = pcap(background=3)
    off = recs[K - 1][0]
    args = ("--format", "json") + (() if all_frames else ("--numbering", "filtered"))
    rc, out, err, src = analyze(tmp_path, data[:off + 20], via, *args)
    f = check_damage(rc, out, err, src, record=numbers[K - 1], offset=off, reason="truncated record:", kept=K - 1)
    assert numbers[K - 1] == 4 * K
    assert f["evidence"]["frames_read"] == (4 * K - 1 if all_frames else K - 1)


@pytest.mark.parametrize("via", ["file", "stdin"])
def test_text_report_says_where(tmp_path, via):
    data, recs, _ = pcap()
    off = recs[K - 1][0]
    rc, out, err, src = analyze(tmp_path, data[:off + 7], via, "--format", "text", "--color", "never", "-q")
    assert rc == 0
    flat = " ".join(out.split())
    assert "capture-truncated" in flat and f"record {K} (byte offset {off})" in flat
    assert f"{K - 1} frames read, {K - 1} adverts" in flat


def test_damaged_among_good_files(tmp_path):
    """Two good files and one damaged: all three are reported, the finding names the damaged
    one, the others have no error."""
    good, _, _ = pcap()
    data, recs, _ = pcap()
    off = recs[K - 1][0]
    paths = [tmp_path / "a.pcap", tmp_path / "b.pcap", tmp_path / "c.pcap"]
    paths[0].write_bytes(good)
    paths[1].write_bytes(data[:off + 7])
    paths[2].write_bytes(good)
    rc, out, err = run_cli("analyze", *paths, "--format", "json")
    assert rc == 0 and "internal error" not in err
    rep = json.loads(out)
    assert [s["name"] for s in rep["sources"]] == list(map(str, paths))
    assert [s["error"] is None for s in rep["sources"]] == [True, False, True]
    assert [s["adverts"] for s in rep["sources"]] == [N, K - 1, N]
    trunc = [f for f in rep["findings"] if f["rule"] == "capture-truncated"]
    assert len(trunc) == 1 and trunc[0]["source"] == str(paths[1])


@pytest.mark.parametrize("fail_on,status", [("error", 0), ("warning", 1), ("never", 0)])
@pytest.mark.parametrize("via", ["file", "stdin"])
def test_pcapng_exit_status_follows_policy(tmp_path, fail_on, status, via):
    """capture-truncated is a warning; the generated capture has no other warning or error."""
    data, blocks = pcapng((1, 113))
    rc, out, err, src = analyze(tmp_path, data[:blocks[K - 1][0] + 30], via, "--format", "json", "--fail-on", fail_on)
    assert rc == status, err
    assert json.loads(out)["sources"][0]["adverts"] == K - 1


# ------------------------------------------------------------------ compressed

@pytest.mark.parametrize("via", ["file", "stdin"])
def test_gzip_pcap_is_named_and_the_advice_works(tmp_path, via):
    data, _, _ = pcap()
    gz = gzip.compress(data)
    rc, out, err, src = analyze(tmp_path, gz, via, name="capture.pcap.gz")
    assert rc == 2 and out == ""
    msg = stderr_messages(err)[0]
    assert "gzip" in msg and ("zcat" in msg or "gunzip" in msg), msg
    # what the message says to do: zcat FILE | carpscope analyze -
    p = subprocess.run([sys.executable, "-m", "carpscope", "analyze", "-", "--format", "json"],
                       input=gzip.decompress(gz), capture_output=True, cwd=REPO, timeout=60)
    assert p.returncode == 0 and json.loads(p.stdout)["sources"][0]["adverts"] == N


@pytest.mark.parametrize("cut", [4, 10, 23])
@pytest.mark.parametrize("via", ["file", "stdin"])
def test_pcap_file_header_damage_is_an_error_on_both_paths(tmp_path, cut, via):
    """A pcap cut inside its 24-byte file header: nothing readable, the same error line
    whether it is a file or standard input (before: an error as a file, a warning on stdin)."""
    data, _, _ = pcap()
    rc, out, err, src = analyze(tmp_path, data[:cut], via, "--format", "json")
    assert rc == 2 and out == ""
    msgs = stderr_messages(err)
    assert msgs == [f"carpscope: error: {src}: truncated file header ({cut} of 24 bytes)"], msgs
