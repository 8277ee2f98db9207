"""Hostile input, faults and interrupts (issue 15), one table per class of defect.

Every row runs the real CLI in a subprocess (files, pipes, FIFOs, process substitution,
standard input, signals, full and read-only file systems) and asserts: the exit status, the
one line on stderr that says what happened, that no "internal error" or traceback appears, and
that what was readable is in the report. The memory bound of floods is tests/test_bounds.py;
the live flood and --user are tests/test_hostile_live.py.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import stat
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from carpscope import synth
from conftest import REPO, stderr_messages

N = 40               # adverts in the clean capture (one a second from 192.0.2.2, CARP vhid 5)
PASS, VIP = "pass:word", "192.0.2.100"     # an unlabelled passphrase with a colon


def carp(i: int, src: str = "192.0.2.2", **kw) -> bytes:
    return synth.carp_frame(src, 5, counter=i + 1, passphrase=PASS, vips=[VIP], **kw)


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("hostile") / "clean.pcap"
    with open(p, "wb") as f:
        w = synth.PcapWriter(f)
        for i in range(N):
            w.write(1_700_000_000 + i, carp(i))
    return p


def cli_env() -> dict:
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=str(REPO))
    env.pop("CARPSCOPE_PASSPHRASES", None)
    return env


CARPSCOPE = [sys.executable, "-m", "carpscope"]


@dataclass
class Run:
    rc: int
    out: str
    err: str
    seconds: float

    def report(self) -> dict:
        return json.loads(self.out)

    def adverts(self) -> int:
        return sum(s["adverts"] for s in self.report()["sources"])

    def messages(self) -> list[str]:
        return stderr_messages(self.err)


def run(argv: list[str] | str, stdin: bytes | None = None, timeout: float = 60, cwd: Path | None = None) -> Run:
    """The CLI (a list: carpscope's arguments; a string: a bash command line using $CS)."""
    t = time.monotonic()
    if isinstance(argv, str):
        env = dict(cli_env(), CS=" ".join(CARPSCOPE))
        p = subprocess.run(["bash", "-c", argv], input=stdin, capture_output=True, timeout=timeout,
                           cwd=cwd or REPO, env=env)
    else:
        p = subprocess.run([*CARPSCOPE, *argv], input=stdin, capture_output=True, timeout=timeout,
                           cwd=cwd or REPO, env=cli_env())
    r = Run(p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace"),
            time.monotonic() - t)
    assert "internal error" not in r.err and "Traceback" not in r.err, r.err
    return r


def one_line(r: Run, pattern: str) -> None:
    """Exactly one diagnostic line matching ``pattern`` (and no other error line)."""
    msgs = r.messages()
    hits = [m for m in msgs if re.search(pattern, m)]
    assert len(hits) == 1, f"expected one line matching {pattern!r}, got {msgs}"
    assert not [m for m in msgs if m.startswith("carpscope: error") and m not in hits], msgs


@contextlib.contextmanager
def fifo_writer(path: Path, data: bytes, delay: float = 0.0, chunk: int = 0, hold: float = 0.0):
    """A FIFO at ``path`` written by a thread: after ``delay``, in pieces of ``chunk`` bytes
    (0: at once) with a pause between, then held open ``hold`` seconds."""
    os.mkfifo(path)

    def write() -> None:
        time.sleep(delay)
        with contextlib.suppress(OSError), open(path, "wb") as f:
            step = chunk or len(data)
            for i in range(0, len(data), step):
                f.write(data[i:i + step])
                f.flush()
                if chunk:
                    time.sleep(0.05)
            time.sleep(hold)
    t = threading.Thread(target=write, daemon=True)
    t.start()
    try:
        yield path
    finally:
        if t.is_alive():              # nobody read it: open the other end so the writer ends
            with contextlib.suppress(OSError):
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
                os.close(fd)
        t.join(5)


# ============================================================================ one reader path
# Every input is read once, whatever it is: the same report from a file, stdin, a pipe, a FIFO
# (also with a slow writer, or one that comes late), a process substitution.

READ_ONCE = {
    "file": lambda c, t: (["analyze", str(c)], None),
    "stdin": lambda c, t: (["analyze", "-"], c.read_bytes()),
    "stdin-named-twice": lambda c, t: (["analyze", "-", "-"], c.read_bytes()),
    "file-named-twice": lambda c, t: (["analyze", str(c), str(c)], None),
    "process-substitution": lambda c, t: (f'$CS analyze <(cat "{c}")', None),
    "pipe-from-cat": lambda c, t: (f'cat "{c}" | $CS analyze -', None),
}


@pytest.mark.parametrize("how", list(READ_ONCE))
def test_every_input_read_once(clean, tmp_path, how):
    argv, stdin = READ_ONCE[how](clean, tmp_path)
    if isinstance(argv, str):
        argv += " --format json -q --vip 5=" + VIP
    else:
        argv += ["--format", "json", "-q", "--vip", f"5={VIP}"]
    r = run(argv, stdin)
    assert r.rc in (0, 1), r.err
    rep = r.report()
    assert len(rep["sources"]) == 1 and r.adverts() == N, rep["sources"]
    assert rep["sources"][0]["error"] is None
    if "twice" in how:
        one_line(r, "named more than once; read once")


@pytest.mark.parametrize("delay,chunk", [(0.0, 0), (1.0, 0), (0.0, 500)], ids=["fifo", "late-writer", "slow-writer"])
def test_fifo_read_once(clean, tmp_path, delay, chunk):
    with fifo_writer(tmp_path / "cap.fifo", clean.read_bytes(), delay, chunk) as f:
        r = run(["analyze", str(f), "--format", "json", "-q"], timeout=30)
    assert r.rc in (0, 1) and r.adverts() == N and r.report()["sources"][0]["error"] is None, r.err


# ============================================================================ length fields
# Every length is checked against what remains and a sane maximum before anything is
# allocated; damaged data is read in linear time; on file and stdin alike.

def shb(length: int = 28) -> bytes:
    return struct.pack("<II", 0x0A0D0D0A, length) + struct.pack("<IHHqI", 0x1A2B3C4D, 1, 0, -1, length)


def idb() -> bytes:
    return struct.pack("<IIHHI", 1, 20, 1, 0, 262144) + struct.pack("<I", 20)


def epb(i: int) -> bytes:
    fr = carp(i)
    pad = -len(fr) % 4
    ts = (1_700_000_000 + i) * 10 ** 6
    body = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(fr), len(fr)) + fr + bytes(pad)
    return struct.pack("<II", 6, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def pcapng(n: int) -> bytes:
    return shb() + idb() + b"".join(epb(i) for i in range(n))


def pcap_head() -> bytes:
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)


LENGTHS = {
    # (bytes, exit status, the line on stderr, adverts still reported)
    "pcapng-section-claims-4GB": (lambda: shb(0xFFFFFFFC) + bytes(64), 2, "bad section header length 4294967292", None),
    "pcapng-block-claims-64MB": (lambda: pcapng(10) + struct.pack("<II", 6, 64 << 20) + bytes(100), 1,
                                 "bogus block length 67108864", 10),
    "pcapng-block-claims-16MB-of-100-bytes": (lambda: pcapng(10) + struct.pack("<II", 6, 16 << 20) + bytes(100), 1,
                                              "truncated block: 16777216 bytes announced", 10),
    "pcap-record-claims-4GB": (lambda: pcap_head() + b"".join(
        struct.pack("<IIII", 1_700_000_000 + i, 0, len(carp(i)), len(carp(i))) + carp(i) for i in range(10))
        + struct.pack("<IIII", 1_700_000_100, 0, 0xFFFFFFF0, 60) + bytes(64), 1, "bogus record length 4294967280", 10),
}


@pytest.mark.parametrize("via", ["file", "stdin"])
@pytest.mark.parametrize("case", list(LENGTHS))
def test_length_fields_bounded(tmp_path, case, via):
    make, rc, line, adverts = LENGTHS[case]
    data = make()
    p = tmp_path / "bad.pcapng"
    p.write_bytes(data)
    args = ["analyze", str(p) if via == "file" else "-", "--format", "json", "-q", "--fail-on", "warning"]
    r = run(args, data if via == "stdin" else None, timeout=30)
    assert r.rc == rc, r.err
    assert r.seconds < 15, f"{case} via {via}: {r.seconds:.1f} s"
    one_line(r, re.escape(line))
    if adverts is not None:
        assert r.adverts() == adverts


def test_damaged_stdin_is_linear(tmp_path):
    """A 16 MiB block announced and 12 MiB sent in small pieces through a pipe: the pieces are
    joined once (it was 19 s for 64 MiB when each piece re-copied the buffer)."""
    data = pcapng(10) + struct.pack("<II", 6, 16 << 20) + bytes(12 << 20)
    r = run(f"python3 -c 'import sys,time; d=sys.stdin.buffer.read(); o=sys.stdout.buffer\n"
            f"for i in range(0, len(d), 4096): o.write(d[i:i+4096]); o.flush()' | $CS analyze - --format json -q "
            "--fail-on warning",
            data, timeout=60)
    assert r.rc == 1 and r.adverts() == 10 and r.seconds < 20, (r.err, r.seconds)
    one_line(r, "truncated block: 16777216 bytes announced")


def test_records_longer_than_snaplen_agree_on_file_and_stdin(tmp_path):
    """A record longer than the file's snapshot length is cut to it, as libpcap does, on both paths."""
    fr = carp(0)
    data = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 64, 1) + b"".join(
        struct.pack("<IIII", 1_700_000_000 + i, 0, len(carp(i)), len(carp(i))) + carp(i) for i in range(N))
    assert len(fr) > 64
    p = tmp_path / "snap.pcap"
    p.write_bytes(data)
    a = run(["analyze", str(p), "--format", "json", "-q"]).report()
    b = run(["analyze", "-", "--format", "json", "-q"], data).report()
    for k in ("packets", "adverts", "malformed"):
        assert a["sources"][0][k] == b["sources"][0][k], (a["sources"], b["sources"])
    assert a["sources"][0]["packets"] == N
    assert sorted(f["rule"] for f in a["findings"]) == sorted(f["rule"] for f in b["findings"])


# ============================================================================ changed while read

def test_file_shrinking_while_read_keeps_what_was_read(clean, tmp_path):
    """Cut between two records while the reader is in the middle: everything before is
    reported, with where reading stopped and why (the file shrank)."""
    from carpscope.capture import open_source
    from carpscope.engine import Engine
    big = tmp_path / "big.pcap"
    rec = clean.read_bytes()[24:]
    big.write_bytes(clean.read_bytes()[:24] + rec * 2000)          # 80,000 adverts, about 7 MB
    src = open_source(str(big))
    e = Engine()
    chunks = src.chunks()
    first = next(chunks)                                           # one read (1 MiB) analysed
    e.chunk(first, src.name, src.info)
    size = 24 + len(rec) * 20                                      # now cut to 20 copies (800 records)
    os.truncate(big, size)
    for c in chunks:
        e.chunk(c, src.name, src.info)
    e._source_done(src)
    rep = e.finish()
    assert src.info.adverts == len(first) > 800
    assert "the file shrank" in src.info.error and f"to {size} bytes" in src.info.error
    assert [f.rule for f in rep.findings if f.rule == "capture-truncated"]


def test_file_replaced_while_read_is_read_whole(clean, tmp_path):
    """Replaced by a rename while read (log rotation): the file opened is read to its end,
    through the one handle opened."""
    from carpscope.capture import open_source
    p = tmp_path / "rot.pcap"
    rec = clean.read_bytes()[24:]
    p.write_bytes(clean.read_bytes()[:24] + rec * 500)             # 20,000 adverts, 1.7 MB
    src = open_source(str(p))
    chunks = src.chunks()
    n = len(next(chunks))
    (tmp_path / "new.pcap").write_bytes(clean.read_bytes())
    os.replace(tmp_path / "new.pcap", p)
    n += sum(len(c) for c in chunks)
    assert n == 500 * N and src.info.error is None


# ============================================================================ one speaker, with and without a MAC

def raw_and_ether_pcapng(tmp_path: Path) -> Path:
    """One speaker seen on a RAW interface (no MAC) and on an Ethernet one."""
    buf = bytearray(shb())
    buf += struct.pack("<IIHHI", 1, 20, 101, 0, 262144) + struct.pack("<I", 20)   # LINKTYPE_RAW (101)
    buf += idb()
    for i in range(N):
        fr = carp(i)
        data, iface = (fr[14:], 0) if i % 2 else (fr, 1)
        pad = -len(data) % 4
        ts = (1_700_000_000 + i) * 10 ** 6
        body = struct.pack("<IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data)) + data + bytes(pad)
        buf += struct.pack("<II", 6, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
    p = tmp_path / "mixed.pcapng"
    p.write_bytes(bytes(buf))
    return p


def test_speaker_with_and_without_mac(tmp_path, clean):
    mixed = raw_and_ether_pcapng(tmp_path)
    raw = tmp_path / "raw.pcap"
    with open(raw, "wb") as f:
        w = synth.PcapWriter(f, linktype=101)
        for i in range(N):
            w.write(1_700_000_000 + i + 0.5, carp(i)[14:])
    for args in ([str(mixed)], [str(raw), str(clean), "--segment", "lan"], ["-", "--segment", "lan"]):
        stdin = mixed.read_bytes() if args[0] == "-" else None
        r = run(["analyze", *args, "--format", "json", "-q"], stdin)
        assert r.rc in (0, 1), r.err
        assert r.adverts() == (2 * N if raw.name in args[0] else N)
        speakers = [(s["ip"], s["mac"]) for g in r.report()["groups"] for s in g["speakers"]]
        assert {ip for ip, _ in speakers} == {"192.0.2.2"} and None in {m for _, m in speakers}, speakers


def test_sll_with_unusual_address_length(tmp_path):
    p = tmp_path / "sll.pcap"
    with open(p, "wb") as f:
        w = synth.PcapWriter(f, linktype=113)
        for i in range(N):
            fr = synth.sll("00:00:5e:00:01:05", 0x0800, carp(i)[14:])
            fr = fr[:4] + struct.pack("!H", 3 if i % 2 else 6) + fr[6:]      # address length 3 or 6
            w.write(1_700_000_000 + i, fr)
    r = run(["analyze", str(p), "--format", "json", "-q"])
    assert r.rc in (0, 1) and r.adverts() == N, r.err


# ============================================================================ file names

def test_non_utf8_name_is_analysed_and_named_safely(clean, tmp_path):
    bad = os.path.join(os.fsencode(tmp_path), b"cap\xff\xfe.pcap")
    with open(bad, "wb") as f:
        f.write(clean.read_bytes())
    p = subprocess.run([*map(os.fsencode, CARPSCOPE), b"analyze", bad, os.fsencode(clean), b"--format", b"json", b"-q"],
                       capture_output=True, timeout=60, cwd=REPO, env=cli_env())
    assert p.returncode in (0, 1) and b"internal error" not in p.stderr, p.stderr
    rep = json.loads(p.stdout)
    assert [s["adverts"] for s in rep["sources"]] == [N, N]
    assert rep["sources"][0]["name"].endswith("cap\\xff\\xfe.pcap")
    missing = os.path.join(os.fsencode(tmp_path), b"gone\xff.pcap")
    p = subprocess.run([*map(os.fsencode, CARPSCOPE), b"analyze", missing, os.fsencode(clean), b"--format", b"json",
                        b"-q"], capture_output=True, timeout=60, cwd=REPO, env=cli_env())
    assert p.returncode == 2 and b"gone\\xff.pcap: no such file" in p.stderr, p.stderr
    assert json.loads(p.stdout)["sources"][0]["adverts"] == N


# ============================================================================ outputs

def is_root() -> bool:
    return os.geteuid() == 0


@contextlib.contextmanager
def tmpfs(path: Path, opts: str):
    if not is_root():
        pytest.skip("mounting a small tmpfs needs root")
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], check=True, timeout=10)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], timeout=10)


def big_capture(tmp_path: Path) -> Path:
    """Enough speakers for a report of several hundred KB."""
    p = tmp_path / "many.pcap"
    with open(p, "wb") as f:
        w = synth.PcapWriter(f)
        for i in range(3000):
            w.write(1_700_000_000 + i * 0.01, synth.carp_frame(f"10.{i // 250}.{i % 250}.2", 1 + i % 200,
                                                               counter=i + 1))
    return p


@pytest.mark.parametrize("fmt", ["json", "sarif", "html", "text", "jsonl"])
def test_full_disk_leaves_no_partial_file(tmp_path, fmt):
    cap = big_capture(tmp_path)
    with tmpfs(tmp_path / "small", "size=64k") as d:
        (d / "report").write_text("old report\n")
        r = run(["analyze", str(cap), "-o", str(d / "report"), "--format", fmt, "-q"])
        assert r.rc == 2
        one_line(r, r"report: No space left on device")
        assert sorted(os.listdir(d)) == ["report"] and (d / "report").read_text() == "old report\n"


@pytest.mark.parametrize("args", [["-o", "/dev/full"], [], ["--adverts"]], ids=["-o", "stdout", "adverts"])
def test_dev_full(clean, args):
    r = run(f'$CS analyze "{clean}" --format json {" ".join(args)} > /dev/full')
    assert r.rc == 2
    one_line(r, "No space left on device")


OUTPUTS = {
    # how the target is set up -> (the line, what must hold afterwards)
    "symlink": ("is a symbolic link", lambda t: (t / "victim").read_text() == "precious\n"),
    "dangling-symlink": ("is a symbolic link", lambda t: not (t / "nowhere").exists()),
    "missing-directory": ("no such directory", lambda t: True),
    "directory": ("is a directory", lambda t: True),
}


def _target(t: Path, how: str) -> Path:
    if how == "symlink":
        (t / "victim").write_text("precious\n")
        os.symlink(t / "victim", t / "out")
    elif how == "dangling-symlink":
        os.symlink(t / "nowhere", t / "out")
    elif how == "missing-directory":
        return t / "no" / "out"
    elif how == "directory":
        (t / "out").mkdir()
    return t / "out"


@pytest.mark.parametrize("option", ["--output", "--write-baseline"])
@pytest.mark.parametrize("how", list(OUTPUTS))
def test_output_refused_before_reading(tmp_path, how, option):
    """Checked before the capture is read: the input here is a FIFO nobody writes to, so the
    run would hang if the check came after."""
    line, holds = OUTPUTS[how]
    target = _target(tmp_path, how)
    os.mkfifo(tmp_path / "never.fifo")
    r = run(["analyze", str(tmp_path / "never.fifo"), option, str(target)], timeout=20)
    assert r.rc == 2 and r.seconds < 10
    one_line(r, re.escape(line))
    assert holds(tmp_path)


def test_read_only_output_directory(tmp_path, clean):
    with tmpfs(tmp_path / "ro", "size=64k,ro") as d:
        r = run(["analyze", str(clean), "-o", str(d / "x.json")])
        assert r.rc == 2
        one_line(r, "cannot create files in")


def test_output_written_by_rename(tmp_path, clean):
    """A reader of the old report never sees half a new one: the new file is a new inode."""
    out = tmp_path / "r.json"
    out.write_text("{}\n")
    before = out.stat().st_ino
    r = run(["analyze", str(clean), "-o", str(out), "--format", "json", "-q"])
    assert r.rc in (0, 1) and json.loads(out.read_text())["sources"][0]["adverts"] == N
    assert out.stat().st_ino != before and [p.name for p in tmp_path.iterdir()] == ["r.json"]


# ============================================================================ interrupts

def held_stdin(data: bytes, sig: int, delay: float = 3.0, extra: tuple[str, ...] = ()) -> Run:
    """`analyze -` fed ``data`` and then kept waiting (the pipe stays open), then ``sig``."""
    t = time.monotonic()
    p = subprocess.Popen([*CARPSCOPE, "analyze", "-", "--format", "json", *extra], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=cli_env())
    try:
        p.stdin.write(data)
        p.stdin.flush()
        time.sleep(delay)
        p.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(10)            # with the pipe still open: the signal, not its end, stops the read
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    r = Run(p.returncode, out.decode(), err.decode(), time.monotonic() - t)
    assert "internal error" not in r.err and "Traceback" not in r.err, r.err
    return r


@pytest.mark.parametrize("sig,rc", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("fmt", ["json", "text"])
def test_signal_while_stdin_waits(clean, sig, rc, fmt):
    data = clean.read_bytes()
    half = data[:24 + (len(data) - 24) // 2]
    r = held_stdin(half, sig, extra=("--format", fmt))
    assert r.rc == rc
    one_line(r, f"{signal.Signals(sig).name}: reading stopped \\(stdin at byte offset \\d+\\); "
                "the report covers what was read")
    if fmt == "json":
        rep = json.loads(r.out)
        assert rep["interrupted"] == signal.Signals(sig).name and rep["sources"][0]["adverts"] == N // 2
    else:
        assert f"interrupted ({signal.Signals(sig).name})" in r.out and f"{N // 2} adverts" in r.out


def test_ctrl_c_in_the_readme_pipeline(clean, tmp_path):
    """`tcpdump -U -w - ... | carpscope analyze -` and Ctrl-C: the terminal signals the whole
    pipeline (its process group); the writer dies, carpscope reports what it read."""
    data = clean.read_bytes()
    writer = ("import sys, time; d = open(sys.argv[1], 'rb').read(); o = sys.stdout.buffer; "
              "o.write(d[:24 + (len(d) - 24) // 2]); o.flush(); time.sleep(60)")
    # ``trap : INT``: the parent shell outlives the signal, as an interactive one does, and exits
    # with carpscope's status. Without it a non-interactive bash that sees a child killed by
    # SIGINT (here the writer) may kill itself with SIGINT too, depending on which child it reaps
    # first: its exit status would then say nothing about carpscope.
    p = subprocess.Popen(["bash", "-c", f'trap : INT; {sys.executable} -c "{writer}" "{clean}" | $CS analyze - --format json'],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
                         env=dict(cli_env(), CS=" ".join(CARPSCOPE)), start_new_session=True)
    try:
        time.sleep(2.0)
        t = time.monotonic()
        os.killpg(p.pid, signal.SIGINT)
        out, err = p.communicate(timeout=20)
        took = time.monotonic() - t
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)
    assert p.returncode == 130 and took < 5, err
    rep = json.loads(out)
    assert rep["interrupted"] == "SIGINT" and rep["sources"][0]["adverts"] == N // 2
    assert b"internal error" not in err


def test_sigterm_while_fifo_has_no_writer(tmp_path):
    os.mkfifo(tmp_path / "w.fifo")
    p = subprocess.Popen([*CARPSCOPE, "analyze", str(tmp_path / "w.fifo"), "--format", "json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=cli_env())
    try:
        time.sleep(1.5)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    assert p.returncode == 143 and json.loads(out)["interrupted"] == "SIGTERM", err
    assert b"internal error" not in err and b"reading stopped" in err


def read_position(pid: int, path: Path) -> int:
    """How far process ``pid`` has read the file ``path`` (its descriptor's offset), 0 before."""
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError, IndexError, ValueError):     # a descriptor closing
                if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                    with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                        return int(f.readline().split()[1])
    return 0


def test_sigint_during_a_long_file_read(tmp_path, clean):
    """A regular file: the read stops after the current chunk; the report covers the chunks read."""
    big = tmp_path / "big.pcap"
    rec = clean.read_bytes()[24:]
    big.write_bytes(clean.read_bytes()[:24] + rec * 20000)          # 800,000 adverts, 69 MB
    p = subprocess.Popen([*CARPSCOPE, "analyze", str(big), "--format", "json"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=REPO, env=cli_env())
    try:
        deadline = time.monotonic() + 30
        while read_position(p.pid, big) < (2 << 20):       # past the header's read: analysing
            assert p.poll() is None and time.monotonic() < deadline
            time.sleep(0.002)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    rep = json.loads(out)
    assert p.returncode == 130 and rep["interrupted"] == "SIGINT", err
    assert 0 < rep["sources"][0]["adverts"] < 20000 * N


# ============================================================================ passphrase files and configs

def test_unlabelled_passphrase_with_a_colon_verifies(clean, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text(PASS + "\n")
    keys.chmod(0o600)
    r = run(["analyze", str(clean), "--passphrase-file", str(keys), "--vip", f"5={VIP}", "--format", "json", "-q"])
    rep = r.report()
    assert not [f for f in rep["findings"] if f["rule"] in ("hmac-mismatch", "passphrase-mismatch")], rep["findings"]
    (sp,) = rep["groups"][0]["speakers"]
    assert sp["auth"]["status"] == "ok" and sp["auth"]["key"] == "line1"
    assert "word" not in r.out + r.err and PASS not in r.out + r.err


PASSPHRASE_FILES = {
    # set up in tmp -> the line (the path given is never echoed when it is not found)
    "fifo": (lambda t: os.mkfifo(t / "k") or t / "k", "a FIFO, not a regular file"),
    "dev-zero": (lambda t: Path("/dev/zero"), "a device, not a regular file"),
    "directory": (lambda t: t, "Is a directory"),
    "typed-secret": (lambda t: Path("hunter2-is-my-secret"), r"--passphrase-file #1: no such file"),
}


@pytest.mark.parametrize("how", list(PASSPHRASE_FILES))
def test_passphrase_file_refused(clean, tmp_path, how):
    make, line = PASSPHRASE_FILES[how]
    path = make(tmp_path)
    r = run(["analyze", str(clean), "--passphrase-file", str(path)], timeout=20)
    assert r.rc == 2 and r.seconds < 10
    one_line(r, line)
    assert "hunter2" not in r.err


KEEPALIVED = ("vrrp_instance A {\n state MASTER\n interface eth0\n virtual_router_id 5\n priority 100\n"
              " virtual_ipaddress {\n 10.0.0.1\n }\n}\n")
CONFIGS = {
    # name, bytes -> the config-parse-error message
    "rc.conf-nul": ("rc.conf", b'ifconfig_em0="inet 10.0.0.2/24"\nifconfig_em0_alias0="inet vhid 1 pass x\0y '
                               b'alias 10.0.0.1/32"\n', "not a text file: a NUL byte on line 2"),
    "keepalived-nul": ("keepalived.conf", KEEPALIVED.encode() + b"\0\n", "not a text file: a NUL byte on line 10"),
    "keepalived-include-fifo": ("keepalived.conf", None, "cannot read: a FIFO, not a regular file"),
    "keepalived-include-dev-zero": ("keepalived.conf", (KEEPALIVED + "include /dev/zero\n").encode(),
                                    "cannot read: a device, not a regular file"),
}


@pytest.mark.parametrize("case", list(CONFIGS))
def test_hostile_configs(tmp_path, case):
    name, data, message = CONFIGS[case]
    if data is None:
        os.mkfifo(tmp_path / "inc.fifo")
        data = (KEEPALIVED + f"include {tmp_path / 'inc.fifo'}\n").encode()
    (tmp_path / name).write_bytes(data)
    r = run(["lint", str(tmp_path / name), "--format", "json"], timeout=20)
    assert r.rc == 1 and r.seconds < 10, r.err
    msgs = [f["message"] for f in r.report()["findings"] if f["rule"] == "config-parse-error"]
    assert msgs == [message], r.report()["findings"]


@pytest.mark.parametrize("target", ["/dev/zero", "fifo"])
def test_inventory_passphrase_file_not_regular(clean, tmp_path, target):
    if target == "fifo":
        os.mkfifo(tmp_path / "k.fifo")
        target = str(tmp_path / "k.fifo")
    inv = tmp_path / "inv.toml"
    inv.write_text(f'[[group]]\nname = "g"\nprotocol = "carp"\nid = 5\nsegment = "lan"\nvips = ["{VIP}"]\n'
                   f'passphrase_file = "{target}"\n[[host]]\nname = "fw1"\naddresses = ["192.0.2.2/24"]\n'
                   'member = [{group = "g", advskew = 0}]\n')
    r = run(["analyze", str(clean), "--inventory", str(inv), "--format", "json", "-q"], timeout=20)
    assert r.rc in (0, 1) and r.adverts() == N and r.seconds < 10
    one_line(r, "cannot read the file .*not a regular file")


def test_settings_file_fifo_refused(clean, tmp_path):
    os.mkfifo(tmp_path / "carpscope.toml")
    r = run(["analyze", str(clean), "--settings", str(tmp_path / "carpscope.toml")], timeout=20)
    assert r.rc == 2 and r.seconds < 10
    one_line(r, "a FIFO, not a regular file")
