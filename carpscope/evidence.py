"""`carpscope sniff --evidence DIR`: the packets kept when something breaks.

Per interface, a rolling window of the last ``window`` seconds of the frames that passed the
capture filter (protocol 112, ARP, IPv6 neighbour advertisements: what the analysis reads),
bounded in memory by ``WINDOW_BYTES``. When a finding at or above ``--fail-on`` starts (it is
raised, or its evidence goes on again after it had ended), a pcapng file is written in DIR: the
window, then every frame of the interface until each finding it was opened for has ended
(cleared, or no new evidence for ``TAIL_S``: a finding's last_seen is its rule's). A file holds
at most ``FILE_BYTES`` and ``RECORD_S`` seconds after its start (a finding still going on then
gets no new file until it clears: a broken pair left for days keeps one file); at most
``max_files`` files of carpscope's naming are kept in DIR (the oldest deleted first). The file
is named in the finding (``evidence.pcapng``, a list: one file per time it started) and in
``evidence`` events.

Files are created relative to the directory opened once (a directory swapped for a link
afterwards does not redirect the writes), with O_CREAT|O_EXCL|O_NOFOLLOW: never over an
existing file nor through a link; written with the project's pcapng writer (synth.py) and
flushed as they grow, so a file being written already opens in tshark. A failing write (disk
full) is said once on stderr and never stops the capture.
"""
from __future__ import annotations

import datetime as dt
import math
import os
import re
import stat
from collections import deque
from itertools import islice
TYPE_CHECKING = False     # typing.TYPE_CHECKING without importing typing at run time (start-up)
if TYPE_CHECKING:
    from typing import Callable

from carpscope.capture.filters import SNAPLEN
from carpscope.files import display_name
from carpscope.policy import FAIL_ON, finding_key, source_of
from carpscope.synth import PcapngWriter

WINDOW_S = 60.0             # seconds of frames kept before a finding starts
WINDOW_BYTES = 16 << 20     # ... in at most this many bytes per interface (a flood shortens it)
FILE_BYTES = 32 << 20       # one evidence file at most
MAX_FILES = 100             # evidence files kept in DIR
TAIL_S = 10.0               # frames kept after the last evidence of the findings of a file
RECORD_S = 900.0            # one evidence file covers at most this long after its start
MAX_NAMED = 8               # files named per finding (one per episode: the first ones)
NAME_RE = re.compile(r"^carpscope-\d{8}T\d{6}Z-[A-Za-z0-9_.-]+\.pcapng$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_EPB = 32                   # enhanced packet block bytes besides the frame (and its padding)


class EvidenceError(Exception):
    """--evidence cannot be used: one line for the user, exit status 2."""


def check_dir(path: str) -> str:
    """The directory as given, refused early (before any capture) when it is missing, not a
    directory or a symbolic link."""
    name = display_name(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise EvidenceError(f"--evidence {name}: no such directory") from None
    except OSError as e:
        raise EvidenceError(f"--evidence {name}: {e.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise EvidenceError(f"--evidence {name}: is a symbolic link; give the real path")
    if not stat.S_ISDIR(st.st_mode):
        raise EvidenceError(f"--evidence {name}: not a directory")
    return path


class Window:
    """The last ``seconds`` of one interface's frames, at most ``limit`` bytes of them."""

    def __init__(self, seconds: float, limit: int = WINDOW_BYTES) -> None:
        self.seconds, self.limit = seconds, limit
        self.frames: deque[tuple[float, bytes]] = deque()
        self.bytes = 0

    def add(self, ts: float, data: bytes) -> None:
        self.frames.append((ts, data))
        self.bytes += len(data)
        while self.bytes > self.limit:
            self.bytes -= len(self.frames.popleft()[1])

    def trim(self, now: float) -> None:
        frames, old = self.frames, now - self.seconds
        while frames and frames[0][0] < old:
            self.bytes -= len(frames.popleft()[1])


class Recording:
    """One evidence file being written: the interface's frames from the window on."""

    def __init__(self, path: str, name: str, iface: str, file, writer: PcapngWriter, started: float) -> None:
        self.path, self.name, self.iface = path, name, iface
        self.file, self.writer, self.started = file, writer, started
        self.findings: dict[tuple, float] = {}     # finding key -> time of its last evidence
        self.rules: list[str] = []
        self.frames = 0
        self.bytes = 0
        self.failed: str | None = None

    @property
    def full(self) -> bool:
        return self.bytes >= FILE_BYTES

    def write(self, ts: float, data: bytes) -> None:
        self.writer.write(ts, data)
        self.frames += 1
        self.bytes += _EPB + len(data) + (-len(data) % 4)


class Evidence:
    def __init__(self, directory: str, fail_on: str, taps, *, window: float = WINDOW_S,
                 max_files: int = MAX_FILES, emit: Callable[..., None] | None = None,
                 warn: Callable[[str], None] | None = None) -> None:
        self.directory = os.path.abspath(directory)
        try:
            self.dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as e:
            raise EvidenceError(f"--evidence {display_name(directory)}: {e.strerror}") from None
        if not os.access(".", os.W_OK | os.X_OK, dir_fd=self.dir_fd):
            os.close(self.dir_fd)
            raise EvidenceError(f"--evidence {display_name(directory)}: cannot create files there "
                                "(permission denied or read-only)")
        self.threshold = FAIL_ON[fail_on]
        self.taps = {t.name: t for t in taps}
        self.names = list(self.taps)
        self.window_s, self.max_files = window, max_files
        self.emit, self.warn = emit, warn
        self.windows = {n: Window(window) for n in self.names}
        self.open: dict[str, Recording] = {}          # interface -> its recording
        self.done: dict[tuple, float] = {}            # finding key -> its evidence recorded up to
        self.files: dict[tuple, list[str]] = {}       # finding key -> the files that hold it
        self.written: deque[str] = deque(maxlen=max_files)   # the last files written
        self.n_written = 0
        self._said: set[str] = set()

    # ------------------------------------------------------------ frames
    def frames(self, tap, frames: list) -> None:
        if not frames:
            return
        w = self.windows[tap.name]
        for f in frames:
            w.add(f[1], f[3])
        w.trim(frames[-1][1])
        rec = self.open.get(tap.name)
        if rec is None:
            return
        try:
            for f in frames:
                rec.write(f[1], f[3])
                if rec.full:
                    break
        except OSError as e:
            self._fail(rec, e)
            return
        self._flush(rec)
        if rec.full:
            self._close(rec, frames[-1][1], "size")

    # ------------------------------------------------------------ findings
    def update(self, now: float, active: dict) -> None:
        """The findings announced now, by key: start, extend and end recordings, and name the
        files in the findings' evidence."""
        for k, f in active.items():
            if f.severity.rank < self.threshold:
                continue
            iface = source_of(f, self.names)
            if iface not in self.taps:
                continue
            last = f.last_seen if f.last_seen is not None else now
            rec = self.open.get(iface)
            if rec is not None and k in rec.findings:
                rec.findings[k] = max(rec.findings[k], last)
                continue
            if k in self.done and last <= self.done[k]:
                continue                   # recorded; nothing new since
            if rec is None:
                rec = self._start(iface, f, now)
                if rec is None:            # said once; not tried again until it clears
                    self.done[k] = math.inf
                    continue
            rec.findings[k] = last
            rec.rules.append(f.rule)
            named = self.files.setdefault(k, [])
            if len(named) < MAX_NAMED:
                named.append(rec.path)
        for k, f in active.items():
            if k in self.files:
                f.evidence["pcapng"] = list(self.files[k])
        for rec in list(self.open.values()):
            if all(k not in active or last < now - TAIL_S for k, last in rec.findings.items()):
                self._close(rec, now, "ended")
            elif now - rec.started >= RECORD_S:
                self._close(rec, now, "duration")
        for k in [k for k, t in self.done.items() if math.isinf(t) and k not in active]:
            self.done[k] = now             # a file that filled up: once cleared, it may start again

    def name_files(self, findings: list, key: Callable | None = None) -> None:
        """Name the files in the findings of the final report."""
        if key is None:
            key = finding_key
        for f in findings:
            got = self.files.get(key(f))
            if got:
                f.evidence["pcapng"] = list(got)

    def close(self, now: float, reason: str = "stopped") -> None:
        for rec in list(self.open.values()):
            self._close(rec, now, reason)
        if self.dir_fd >= 0:
            os.close(self.dir_fd)
            self.dir_fd = -1

    # ------------------------------------------------------------ files
    def _start(self, iface: str, f, now: float) -> Recording | None:
        self._rotate()
        stamp = dt.datetime.fromtimestamp(now, dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        base = f"carpscope-{stamp}-{_UNSAFE.sub('_', iface)}-{f.rule}"
        fd = name = None
        for i in range(1, 100):
            name = f"{base}.pcapng" if i == 1 else f"{base}-{i}.pcapng"
            try:
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640,
                             dir_fd=self.dir_fd)
                break
            except FileExistsError:
                continue
            except OSError as e:
                self._say(f"--evidence {self.directory}: cannot create {name}: {e.strerror}")
                return None
        if fd is None or name is None:
            return None
        path = os.path.join(self.directory, name)
        w = self.windows[iface]
        w.trim(now)
        src = self.taps[iface].source
        file = os.fdopen(fd, "wb")
        when = dt.datetime.fromtimestamp(now, dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        writer = PcapngWriter(file, comment=(f"carpscope evidence: {f.rule} ({f.code}) on {f.segment or iface}, "
                                             f"raised {when}; the {self.window_s:g} s before it, then until it ended"))
        writer.add_interface(getattr(src, "file_linktype", getattr(src, "linktype", 1)), SNAPLEN, name=iface)
        rec = Recording(path, name, iface, file, writer, now)
        rec.bytes = file.tell()           # the section and interface blocks
        self.open[iface] = rec
        # the window's newest frames, in at most half the file: the rest is for what follows
        budget, start = FILE_BYTES // 2, len(w.frames)
        for ts, data in reversed(w.frames):
            budget -= _EPB + len(data) + (-len(data) % 4)
            if budget < 0:
                break
            start -= 1
        first = None
        try:
            for ts, data in islice(w.frames, start, None):
                first = ts if first is None else first
                rec.write(ts, data)
        except OSError as e:
            self._fail(rec, e)
            return None
        self._flush(rec)
        if self.open.get(iface) is not rec:
            return None
        self.written.append(path)
        self.n_written += 1
        if self.emit is not None:
            self.emit("evidence", now, interface=iface, state="started", pcapng=path, segment=f.segment,
                      rule=f.rule, window_frames=rec.frames,
                      since=now if first is None else first)
        return rec

    def _flush(self, rec: Recording) -> None:
        try:
            rec.file.flush()
        except OSError as e:
            self._fail(rec, e)

    def _fail(self, rec: Recording, e: OSError) -> None:
        rec.failed = e.strerror
        self._say(f"--evidence {rec.path}: {e.strerror}")
        self._close(rec, rec.started, "error")

    def _close(self, rec: Recording, now: float, reason: str) -> None:
        if self.open.get(rec.iface) is not rec:
            return
        del self.open[rec.iface]
        try:
            rec.file.close()
        except OSError as e:
            self._say(f"--evidence {rec.path}: {e.strerror}")
        for k, last in rec.findings.items():
            self.done[k] = math.inf if reason in ("size", "duration", "error") else last
        if self.emit is not None:
            self.emit("evidence", now, interface=rec.iface, state="closed", pcapng=rec.path, reason=reason,
                      frames=rec.frames, bytes=rec.bytes, rules=sorted(set(rec.rules)))

    def _rotate(self) -> None:
        """Delete the oldest evidence files (carpscope's names, regular files) beyond the cap."""
        try:
            names = sorted(n for n in os.listdir(self.dir_fd) if NAME_RE.match(n))
        except OSError:
            return
        busy = {r.name for r in self.open.values()}
        mine = []
        for n in names:
            try:
                st = os.stat(n, dir_fd=self.dir_fd, follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and n not in busy:
                mine.append(n)
        while mine and len(mine) + len(busy) >= self.max_files:
            try:
                os.unlink(mine.pop(0), dir_fd=self.dir_fd)
            except OSError:
                pass

    def _say(self, msg: str) -> None:
        if msg not in self._said and self.warn is not None and len(self._said) < 100:
            self._said.add(msg)
            self.warn(f"warning: {msg}")
