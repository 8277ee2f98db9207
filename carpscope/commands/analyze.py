"""``carpscope analyze CAPTURE...``: the engine over capture files, pipes or standard input.

Each capture is opened once (a file named twice is read once), checked up front (a bad one is
one error line, the others are still analysed), then read by the engine. SIGINT or SIGTERM
stop the reading: the report of what was read is written, marked as interrupted, and the exit
status is 130 / 143.
"""
from __future__ import annotations

import os
import gc
import _signal as signal     # signal's functions without its enums (start-up)
import stat
import sys

from carpscope.capture import CaptureError, FileSource, open_source
from carpscope.commands import EXIT_ERROR, EXIT_OK, say
from carpscope.commands.keys import build_auth
from carpscope.commands.output import CI_FORMATS, final_status, prepare_outputs, render_report, run_policy
from carpscope.engine import Engine
from carpscope.files import display_name


class Interrupted(Exception):
    """A signal arrived while the reader waited for input."""


def expand(patterns: list[str]) -> list[str]:
    """Expand globs the shell left alone (quoted, or on Windows-like shells); keep order."""
    out = []
    for p in patterns:
        hits = []
        if any(c in p for c in "*?["):
            import glob         # only for a pattern: a plain name is taken as it is
            hits = sorted(glob.glob(p, recursive=True))
        out += hits or [p]
    return out


def _identity(path: str) -> tuple | None:
    """What makes two names one capture: the same regular file (device, inode), or stdin."""
    if path == "-":
        return ("stdin",)
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None


def open_sources(paths: list[str], numbering: str, errors: list[tuple[str, str]],
                 sources: list[FileSource] | None = None, stop: "_Stop | None" = None) -> list[FileSource]:
    """Open each capture once (into ``sources`` as each opens); a signal (``stop``) ends the
    loop: at once while an open may block (a FIFO, standard input), else after that file."""
    sources, seen = [] if sources is None else sources, set()
    for path in paths:
        ident = _identity(path)
        if stop is not None:
            if stop.engine.interrupted:
                break
            stop.blocking = ident is None or ident == ("stdin",)
        if ident is not None and ident in seen:
            say(f"carpscope: warning: {display_name(path)}: named more than once; read once")
            continue
        if ident is not None:
            seen.add(ident)
        try:
            sources.append(open_source(path, numbering))
        except CaptureError as e:
            say(f"carpscope: error: {e}")
            errors.append((display_name(path), str(e)))
    return sources


class _Stop:
    """SIGINT/SIGTERM: stop reading and report what was read. While the captures are read, the
    reader stops after the current chunk, or at once when it is waiting for input (a pipe or a
    FIFO with nothing to say); before (a FIFO whose writer has not come), at once. A second
    signal stops at once whatever is going on."""

    def __init__(self, engine: Engine, sources: list[FileSource]) -> None:
        self.engine, self.sources = engine, sources
        self.reading = False
        self.blocking = False       # opening an input that may wait (a FIFO, a pipe)
        self.old: dict = {}

    def __enter__(self) -> "_Stop":
        for s in (signal.SIGINT, signal.SIGTERM):
            self.old[s] = signal.signal(s, self._handler)
        return self

    def _handler(self, num: int, _frame: object) -> None:
        again = self.engine.interrupted is not None
        if not again:
            self.engine.interrupted = "SIGINT" if num == signal.SIGINT else "SIGTERM"
        for src in self.sources:
            src.stop()
        if again or (not self.reading and self.blocking) or any(src.reader.waiting for src in self.sources):
            raise Interrupted()

    def __exit__(self, *exc: object) -> bool:
        for s, h in self.old.items():
            signal.signal(s, h)
        return isinstance(exc[1], Interrupted)


def run(args) -> int:
    verifier, vipinfer, intent, warnings = build_auth(args)
    for w in warnings:
        say(f"carpscope: warning: {w}")
    prepare_outputs(args)
    on_advert = advert_printer(args) if args.adverts or args.format == "jsonl" else None
    engine = Engine(verifier, vipinfer, intent, on_advert=on_advert)
    errors: list[tuple[str, str]] = []
    sources: list[FileSource] = []
    with _Stop(engine, sources) as stop:
        open_sources(expand(args.captures), args.numbering, errors, sources, stop)
        if engine.interrupted:          # during the opening: nothing more is read
            for src in sources:
                src.stop()
        if sources:
            stop.reading = True
            with _progress(args, sources):
                engine.feed_sources(sources, args.segment)
    status = EXIT_ERROR if errors else EXIT_OK
    if not sources and args.format not in CI_FORMATS and not engine.interrupted:
        return EXIT_ERROR
    for src in sources:
        src.close()
        if src.info.error:
            say(f"carpscope: warning: {src.name}: {src.info.error}")
    if engine.interrupted:
        where = ", ".join(f"{s.name} at byte offset {s.position()}" for s in sources if not s.reader.eof)
        say(f"carpscope: {engine.interrupted}: reading stopped{f' ({where})' if where else ''}; "
            "the report covers what was read")
    # the report is built once and the process ends: the collector's passes over everything the
    # analysis holds would only cost time (a tenth of a run with many groups)
    gc.disable()
    report = engine.finish()
    names = [s.name for s in report.sources]
    placed, ctx = run_policy(args, report.findings, names, errors,
                             filtered={n: report.numberings.get(n) == "filtered" for n in names})
    report.findings = [p.finding for p in placed]
    render_report(args, report, placed, ctx, intent)
    return final_status(args, status, report.findings, engine.interrupted)


def advert_printer(args):
    """The engine's on_advert callback for --adverts (text lines) or --format jsonl (objects),
    written as the adverts are analysed: to --output when given (jsonl), else stdout."""
    import json

    from carpscope.commands.output import Lines
    from carpscope.report.adverts import advert_json, advert_line
    local = getattr(args, "tz", "utc") == "local"
    if args.format == "jsonl":
        out = Lines(args)

        def on_advert(a, g, sp, result) -> None:
            out.write(json.dumps(advert_json(a, result)) + "\n")
    else:
        out = Lines(args, to_stdout=True)

        def on_advert(a, g, sp, result) -> None:
            out.write(advert_line(a, result, local) + "\n")
    return on_advert


class _NoProgress:
    def __enter__(self) -> "_NoProgress":
        return self

    def __exit__(self, *exc: object) -> bool:
        return False


def _progress(args, sources: list[FileSource]):
    """A progress bar on stderr for long reads of regular files (never when piped or --quiet).
    rich is imported only when a bar is shown: machine-readable runs skip its start-up cost."""
    sizes = [s.size() for s in sources]
    if args.quiet or not sys.stderr.isatty() or None in sizes or sum(s or 0 for s in sizes) < (64 << 20):
        return _NoProgress()
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    from carpscope.commands.output import console
    err = console(args, stderr=True)
    if not err.is_terminal:
        return _NoProgress()
    prog = Progress("reading", BarColumn(), DownloadColumn(), TimeRemainingColumn(), console=err, transient=True)
    task = prog.add_task("read", total=sum(s or 0 for s in sizes))
    done = [0] * len(sources)

    def hook(i: int):
        def on_chunk(pos: int) -> None:
            done[i] = pos
            prog.update(task, completed=sum(done))
        return on_chunk
    for i, s in enumerate(sources):
        s.on_chunk = hook(i)
    return prog
