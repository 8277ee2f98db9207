"""The fuzz targets, shared by the atheris scripts (fuzz_*.py) and the regression replay
(tests/fuzz_regressions/test_replay.py).

Each target takes the raw fuzzer input and raises only on a bug: an exception of a type the
code under test does not document, or a broken invariant (AssertionError). Documented
outcomes (CaptureFormatError for a file that is not a capture, ConfigError for a bad
configuration, a Damage record, a Malformed record, None) return normally.

Layout of an input:
  decode   byte 0 picks the link type (LINKTYPES, in order), the rest is the frame; the same
           bytes are also decoded as a bare protocol-112 payload over IPv4 and IPv6.
  capture  the whole input is a capture file; byte 0 bit 0 chooses the path: 0 the exact
           reader (pcapfile.read_records) then decode_frame on every record; 1 the standard
           input path of capture.FileSource (peek, first link type, BPF per frame).
  pipe     byte 0 bit 0: a FIFO (1) or standard input as a real pipe (0); bits 1-7 pick the size
           of the pieces the writer sends (1 byte to 64 KiB); the rest is the capture, which
           must read as the exact reader reads it from memory.
  config   byte 0 picks the kind (rc.conf, sysctl.conf, keepalived.conf, ucarp unit,
           interfaces, inventory TOML), the rest is the text (UTF-8, undecodable bytes replaced).
"""
from __future__ import annotations

import importlib
import io
import os
import sys
import tempfile
import threading

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

# every module a target reaches is imported here, at import time, so that the atheris scripts
# (which import this module inside atheris.instrument_imports) instrument all of them
from carpscope import capture  # noqa: E402,F401
from carpscope.capture import CaptureError, FileSource  # noqa: E402
from carpscope.config import ConfigError, inventory, keepalived, merge, rcconf, ucarp  # noqa: E402
from carpscope.config.inventory import Secret  # noqa: E402
from carpscope.model import AddressHint, Advert, Malformed  # noqa: E402
from carpscope.capture.reader import CaptureFormatError, Damage, Record, read_records  # noqa: E402
from carpscope.wire import proto112  # noqa: E402
from carpscope.wire.frame import decode_frame  # noqa: E402
from carpscope.wire.link import LINKTYPES, UnsupportedLinkType, check_linktype  # noqa: E402

LINKTYPE_LIST = sorted(LINKTYPES)
RECORD_TYPES = (Advert, Malformed, AddressHint, type(None))
A4S, A4D = bytes([192, 0, 2, 1]), bytes([224, 0, 0, 18])
A6S, A6D = bytes([0xFE, 0x80] + [0] * 13 + [1]), bytes([0xFF, 0x02] + [0] * 13 + [0x12])


# ------------------------------------------------------------------ decode

def _check_record(rec) -> None:
    assert type(rec) in RECORD_TYPES, type(rec)
    if type(rec) is Advert:
        assert rec.protocol in ("carp", "vrrp2", "vrrp3"), rec.protocol
        assert rec.family in (4, 6)
        assert 0 <= rec.vhid <= 255
        assert rec.payload_len >= 8
        assert rec.trailing >= 0
        if rec.protocol == "carp":
            assert len(rec.counter) == 8 and len(rec.md) == 20
    elif type(rec) is Malformed:
        assert isinstance(rec.reason, str) and rec.reason


def decode_target(data: bytes) -> None:
    if not data:
        return
    lt = LINKTYPE_LIST[data[0] % len(LINKTYPE_LIST)]
    frame = data[1:]
    _check_record(decode_frame(lt, frame, 1, 0.0, "fuzz"))
    for family, s, d in ((4, A4S, A4D), (6, A6S, A6D)):
        r = proto112.decode(frame, family, s, d)
        assert isinstance(r, (str, proto112.Decoded)), type(r)


# ------------------------------------------------------------------ capture

def _exact(data: bytes) -> None:
    try:
        items = read_records(io.BytesIO(data))
        last = None
        for item in items:
            assert last is None or not isinstance(last, Damage), "a record after a Damage"
            last = item
            if isinstance(item, Damage):
                assert 0 <= item.offset <= len(data) and item.number >= 1 and item.reason
                continue
            assert isinstance(item, Record)
            assert 0 <= item.offset < len(data) and item.length >= 12
            try:
                check_linktype(item.linktype)
            except UnsupportedLinkType:
                continue
            _check_record(decode_frame(item.linktype, item.data, item.number, item.ts, "fuzz"))
    except CaptureFormatError:
        pass


class _Stdin:
    def __init__(self, data: bytes):
        self.buffer = io.BytesIO(data)

    def isatty(self) -> bool:
        return False


def _check_frames(src: FileSource, name: str) -> None:
    """Every frame of ``src``: numbers strictly increasing, each decoded record sound."""
    n = 0
    for num, ts, lt, frame, _off, _len in src.frames():
        assert num > n
        n = num
        _check_record(decode_frame(lt, frame, num, ts, name))


def _stdin(data: bytes) -> None:
    saved = sys.stdin
    sys.stdin = _Stdin(data)
    try:
        try:
            src = FileSource("-")
        except CaptureError:
            return
        _check_frames(src, "stdin")
    except CaptureError:
        pass
    finally:
        sys.stdin = saved


def capture_target(data: bytes) -> None:
    if not data:
        return
    body = data[1:]
    if data[0] & 1:
        _stdin(body)
    else:
        _exact(body)


# ------------------------------------------------------------------ pipe (stdin and FIFO, in pieces)

PIECES = (1, 3, 64, 1000, 4096, 65536)
_fifo_dir = None


class _FdStdin:
    """A stand-in for sys.stdin over a real file descriptor (FileSource dups it)."""

    def __init__(self, fd: int):
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def isatty(self) -> bool:
        return False


def _feed(fd_or_path, data: bytes, piece: int) -> threading.Thread:
    def write() -> None:
        try:
            fd = os.open(fd_or_path, os.O_WRONLY) if isinstance(fd_or_path, str) else fd_or_path
        except OSError:
            return
        try:
            for i in range(0, len(data), piece):
                os.write(fd, data[i:i + piece])
        except OSError:            # the reader stopped early (damage): a closed pipe
            pass
        finally:
            os.close(fd)
    t = threading.Thread(target=write, daemon=True)
    t.start()
    return t


def pipe_target(data: bytes) -> None:
    """The capture read through a real pipe (standard input) or a FIFO, written in pieces of
    a size byte 0 picks (1 byte to 64 KiB): what FileSource reads must be what the exact reader
    reads from memory (the same records counted, the same damage), whatever the pieces."""
    global _fifo_dir
    if not data:
        return
    body, piece, fifo = data[1:], PIECES[(data[0] >> 1) % len(PIECES)], bool(data[0] & 1)
    expect_records, expect_damage = 0, None
    try:
        for item in read_records(io.BytesIO(body)):
            if isinstance(item, Damage):
                expect_damage = (item.number, item.offset)
            else:
                expect_records += 1
        readable = True
    except CaptureFormatError:
        readable = False
    saved = sys.stdin
    if fifo:
        if _fifo_dir is None:
            _fifo_dir = tempfile.mkdtemp(prefix="carpscope-fuzz-fifo-")
        path = os.path.join(_fifo_dir, "cap")
        if not os.path.exists(path):
            os.mkfifo(path)
        writer = _feed(path, body, piece)
    else:
        r, w = os.pipe()
        writer = _feed(w, body, piece)
        sys.stdin = _FdStdin(r)
        path = "-"
    try:
        try:
            src = FileSource(path)
        except CaptureError as e:
            assert (not readable or "link type" in str(e) or expect_damage is not None and expect_records == 0), \
                f"refused a readable capture: {e}"
            return
        _check_frames(src, "pipe")
        src.close()
        info = src.info
        assert readable, "read a capture the exact reader refuses"
        assert info.packets == expect_records, (info.packets, expect_records)
        got = (info.stopped_frame, info.stopped_offset) if info.error else None
        assert got == expect_damage, (got, expect_damage, info.error)
    finally:
        sys.stdin = saved
        if not fifo:
            os.close(r)
        elif writer.is_alive():          # the reader never opened it: open it so the writer ends
            try:
                os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
            except OSError:
                pass
        writer.join(5)


# ------------------------------------------------------------------ config

CONFIG_KINDS = ("rc.conf", "sysctl.conf", "keepalived.conf", "ucarp.service", "interfaces", "inventory.toml")
_tmpdir = None


def _safe_tokenize(path, _depth=0, _stack=(), included=None):
    """keepalived tokenize_file without following ``include`` (a fuzzed include of /dev/zero or
    /proc/kmsg would read forever: what include reads is the user's own file system)."""
    from pathlib import Path
    text = Path(path).read_text(encoding="utf-8")
    return [t for line in keepalived._lex_lines(text, path)
            if not (line[0].text == "include" and not line[0].quoted) for t in line]


def config_target(data: bytes) -> None:
    """Parse one configuration text with the parser of its kind, merge and lint it: only
    ConfigError may come out (read_configs' last-resort guard, which turns any ValueError
    into a ConfigError, is bypassed so that such a bug shows). Includes are not followed and
    secrets held in files or variables are not read (monkeypatched for the call only)."""
    global _tmpdir
    if not data:
        return
    kind = CONFIG_KINDS[data[0] % len(CONFIG_KINDS)]
    text = data[1:].decode("utf-8", "replace")
    if _tmpdir is None:
        _tmpdir = tempfile.mkdtemp(prefix="carpscope-fuzz-")
    path = os.path.join(_tmpdir, "host1." + kind if kind != "interfaces" else "interfaces")
    real_reveal = Secret.reveal

    def reveal(self):
        if self._value is None:
            raise ConfigError("not read while fuzzing")
        return real_reveal(self)
    keepalived.tokenize_file, Secret.reveal = _safe_tokenize, reveal
    try:
        _config(kind, text, path)
    finally:
        keepalived.tokenize_file, Secret.reveal = _real_tokenize, real_reveal


def _config(kind: str, text: str, path: str) -> None:
    hosts, invs = [], []
    try:
        if kind == "rc.conf":
            hosts.append(rcconf.host_from_assignments(rcconf.lex_assignments(text, path), "host1", (path,)))
        elif kind == "sysctl.conf":
            hosts.append(rcconf.host_from_assignments(rcconf.parse_sysctl_conf(text, path), "host1", (path,)))
        elif kind == "keepalived.conf":
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            hosts.append(keepalived.host_from_keepalived(path, "host1"))
        elif kind == "ucarp.service":
            runs = ucarp.find_ucarp_commands(text, path)
            hosts.append(ucarp.host_from_runs(runs, "host1", path))
        elif kind == "interfaces":
            runs, addrs, probs = ucarp.find_interfaces_ucarp(text, path)
            hosts.append(ucarp.host_from_runs(runs, "host1", path, addrs, kind="interfaces"))
        else:
            invs.append(inventory.parse_inventory(text, path))
    except ConfigError:
        return
    for hc in hosts:
        for p in hc.problems:
            assert isinstance(p, ConfigError), type(p)
    inv = merge(hosts, invs)
    inventory.inventory_to_toml(inv)
    # lint's checks on the merged inventory
    ctx = _LINT._Ctx(inv)
    for g in inv.groups:
        for sub in _LINT._split_reused(g, ctx):
            _LINT._check_group(sub, ctx)
    _LINT._check_cross_groups(inv, ctx)
    _LINT._scrub(ctx.findings, ctx)


# ------------------------------------------------------------------ report (end to end)

from carpscope import cli  # noqa: E402
from carpscope.report import jsonreport, text  # noqa: E402,F401

REPORT_FORMATS = tuple(next(a for a in cli.build_parser()._subparsers._group_actions[0].choices["analyze"]._actions
                            if "--format" in a.option_strings).choices)


def report_target(data: bytes) -> None:
    """The whole pipeline on a capture read from standard input: byte 0 picks the output
    format (every choice of 'analyze --format') and --all-frames; the rest is the capture.
    With --debug the CLI re-raises what it would print as 'internal error'."""
    if not data:
        return
    fmt = REPORT_FORMATS[data[0] % len(REPORT_FORMATS)]
    args = ["analyze", "-", "--format", fmt, "-q", "--debug", "--color", "never"]
    if data[0] & 0x80:
        args.append("--all-frames")
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = _Stdin(data[1:]), io.StringIO(), io.StringIO()
    try:
        rc = cli.main(args)
        err = sys.stderr.getvalue()
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
    assert rc in (0, 1, 2), rc
    assert "internal error" not in err and "Traceback" not in err, err


_LINT = importlib.import_module("carpscope.config.lint")
_real_tokenize = keepalived.tokenize_file
TARGETS = {"decode": decode_target, "capture": capture_target, "pipe": pipe_target, "config": config_target,
           "report": report_target}
