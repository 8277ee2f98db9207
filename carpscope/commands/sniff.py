"""`carpscope sniff IFACE`: the engine on a live interface.

libpcap (pcapy-ng) opens the interface with ``create()`` + ``set_timeout(50)`` + ``activate()``:
this pcapy-ng has no ``set_immediate_mode``, and with TPACKET_V3 the read timeout is the block
retire timeout, so a 50 ms timeout bounds the delivery delay (measured: a few milliseconds on an
idle bridge) where the usual 1 s would hold adverts back. The handle is non-blocking and
``select``-ed together with a self-pipe woken by SIGINT/SIGTERM, so the loop also wakes up for
signals, dashboard refreshes and the silence timers of the tracker.

The same engine as ``analyze``: the capture filter of capture/filters.py (protocol 112 plus ARP
and IPv6 neighbour advertisements for VIP inference) in the kernel, then libpcap's batches
through Engine.chunk (decode, repeats, verify, track, rules). Once a second (and on each split
brain) ``Engine.snapshot()`` gives the findings as of
now; they are compared with the previous ones by (rule, segment, vhid, speakers) to announce
findings raised and cleared. At the end (duration, count, Ctrl-C, SIGTERM, interface lost) the
final report is the one ``analyze`` prints, with the same policy and exit status.

Output: a rich dashboard when stdout is a terminal (``--format text``); otherwise, or with
``--format jsonl``, one flushed JSON object per event (see docs/sniff.md for the schema), and
nothing else on stdout: the final text report then goes to stderr when that is a terminal.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import select
import signal
import sys
import time

from carpscope.capture.live import InterfaceLost, LiveError, LiveSource, check_interface, list_interfaces
from carpscope.commands import EXIT_ERROR, EXIT_OK, UsageError, say
from carpscope.commands.keys import build_auth
from carpscope.commands.output import clock, console, final_status, prepare_outputs, render_report, run_policy
from carpscope.engine import Engine
from carpscope.files import Output, OutputError
from carpscope.model import SourceInfo

SCHEMA = 1              # version of the JSON lines event schema (docs/sniff.md)
WAIT_S = 0.1            # longest select() wait: ticks, deadlines and refreshes stay on time
SNAPSHOT_S = 1.0        # findings recomputed this often (and on each split brain)
HOLD_S = 3.0            # a warning/info finding is announced once it has held this long (errors
                        # at once): a VIP set inferred from the second gratuitous ARP, or a
                        # group that just appeared, do not raise and clear within a second
REFRESH_S = 0.5         # dashboard redrawn at least this often
REFRESH_MIN_S = 0.2     # ...and at most this often, even when events pour in
CHECK_IFACE_S = 1.0     # interface state polled this often (libpcap reports most losses itself)
DRAIN_S = 0.2           # longest stretch spent reading before the loop ticks and redraws


def lookup_user(name: str):
    import pwd
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise LiveError(f"--user {name}: no such user") from None


def preload() -> None:
    """Load, while still privileged, everything the run needs after --user: the interpreter's
    and carpscope's own files (modules, compiled extensions, rule pages, the weak-passphrase
    list) may be unreadable to that user (an install under /root). Every carpscope module is
    imported, the bundled data read, and a small report rendered in every format."""
    import importlib
    import io
    import pkgutil

    import carpscope
    for mod in pkgutil.walk_packages(carpscope.__path__, "carpscope."):
        if not mod.name.startswith(("carpscope.__main__",)):
            try:
                importlib.import_module(mod.name)
            except ImportError:
                pass
    for m in ("rich.console", "rich.live", "rich.table", "rich.text", "rich.markdown", "unicodedata",
              "encodings.idna", "tempfile", "xml.etree.ElementTree", "json", "hmac"):
        try:
            importlib.import_module(m)
        except ImportError:
            pass
    from rich.console import Console

    from carpscope.auth.keys import weak_keys
    from carpscope.report import jsonreport, text
    from carpscope.report.dashboard import Dashboard
    from carpscope.rules import catalogue, page
    from carpscope.synth import carp_frame
    weak_keys()
    for rule in catalogue().values():
        page(rule)
    e = Engine()
    for i in range(8):
        for src in ("192.0.2.1", "192.0.2.2"):
            e.frame(1, i + 1, 1e9 + i, carp_frame(src, 1, counter=i), "preload", SourceInfo("preload"))
    report = e.finish()
    doc = jsonreport.report_json(report)
    for color in (True, False):
        c = Console(file=io.StringIO(), force_terminal=color, width=120)
        text.render(doc, c)
        d = Dashboard(c, "preload")
        d.update(report.groups, report.findings, 1e9 + 9)
        c.print(d.renderable())
    json.dumps(doc, default=str)
    rfc3339(0.0)


def drop_privileges(pw) -> None:
    """setgroups([]), setgid, setuid, as tcpdump -Z does; then check root cannot come back."""
    try:
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    except OSError as e:
        raise LiveError(f"--user {pw.pw_name}: cannot drop privileges: {e.strerror} "
                        "(switching user needs root)") from None
    if pw.pw_uid != 0:
        try:
            os.setuid(0)
        except OSError:
            pass
        else:
            raise LiveError(f"--user {pw.pw_name}: privileges could be regained after dropping them")


# ---------------------------------------------------------------------------- events

def rfc3339(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def finding_key(f) -> tuple:
    """Identity of a finding across snapshots: (rule, segment, vhid, speakers), the speakers
    read from the evidence as the baseline fingerprints read them."""
    from carpscope.policy import speakers
    return (f.rule, f.segment, f.vhid, tuple(speakers(f)))


class JsonLines:
    """One flushed JSON object per event: schema, ts (RFC 3339 UTC), type, then the rest."""

    def __init__(self, out, interface: str):
        self.out, self.interface = out, interface

    def __call__(self, etype: str, ts: float, **kw) -> None:
        d = {"schema": SCHEMA, "ts": rfc3339(ts), "type": etype, "interface": self.interface}
        for k, v in kw.items():
            d[k] = rfc3339(v) if k == "since" and isinstance(v, (int, float)) else v
        try:
            self.out.write(json.dumps(d, default=str) + "\n")
            self.out.flush()
        except BrokenPipeError:
            raise
        except OSError as e:     # a full disk: one line, exit 2 (the --output file is not kept)
            raise UsageError(f"cannot write the events: {e.strerror or e}") from None


class Sniffer:
    """The loop: read frames, feed the analysis, tick, diff findings, refresh, stop.

    ``source`` has ``fd``, ``batch()``, ``check()``, ``stats()``; ``clock``/``mono`` and
    ``wait`` are injectable so the loop runs on a fake clock in tests.
    """

    def __init__(self, analysis, source, *, emit=None, dashboard=None, policy=None, writer=None,
                 duration: float | None = None, count: int | None = None,
                 clock=time.time, mono=time.monotonic, wait=select.select, wake_fd: int | None = None):
        self.analysis, self.source = analysis, source
        self.emit, self.dashboard, self.writer = emit, dashboard, writer
        self.policy = policy or (lambda fs: fs)
        self.duration, self.count = duration, count
        self.clock, self.mono, self.wait, self.wake_fd = clock, mono, wait, wake_fd
        self.info = SourceInfo(source.name, linktype=getattr(source, "linktype_name", None))
        # tracker events come here (groups take the callback when they are created)
        analysis.tracker.on_event = self.on_event
        analysis.sources.append(self.info)
        if getattr(source, "filter", None):
            analysis.filters[source.name] = source.filter
        self.frames = 0
        self.stop_reason: str | None = None
        self.lost: str | None = None
        self.active: dict[tuple, object] = {}     # finding key -> Finding (as last announced)
        self.pending: dict[tuple, float] = {}     # finding key -> when first seen, not announced yet
        self.findings: list = []
        self._snapshot_due = False
        self.started = None
        self.first_split_brain: float | None = None

    # events from the tracker (called inside analysis.record)
    def on_event(self, ev: dict) -> None:
        if ev["type"] == "split-brain":
            self._snapshot_due = True
            if self.first_split_brain is None:
                self.first_split_brain = self.clock()
        if self.dashboard is not None:
            self.dashboard.event(ev)
        if self.emit is not None:
            kw = {k: v for k, v in ev.items() if k not in ("type", "ts")}
            self.emit(ev["type"], ev["ts"], **kw)

    def finish(self):
        """The final report, as ``analyze`` would compute it from the same frames."""
        report = self.analysis.finish()
        for g in report.groups:
            # the master as of the group's last advert, what `analyze` reports for a group that
            # went silent before the end (ticks end such runs here, analyze only at the end)
            g.master = g.last_master
        return report

    def request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason

    def _feed(self, frames) -> None:
        """A chunk of live frames through the engine (one by one when --count must stop at an
        exact advert)."""
        engine, name, info = self.analysis, self.source.name, self.info
        if self.writer is not None:
            for f in frames:
                self.writer.write(f[1], f[3])
        self.frames += len(frames)
        info.packets = self.frames
        if not self.count:
            engine.chunk(frames, name, info)
            return
        for n, ts, lt, data, _off, _len in frames:
            if engine.frame(lt, n, ts, data, name, info) == 1 and info.adverts >= self.count:
                self.request_stop("count")
                return

    def _drain(self) -> None:
        """Read what the kernel holds, for at most DRAIN_S: under a flood the loop still ticks,
        redraws and answers a signal in time."""
        until = self.mono() + DRAIN_S
        while self.stop_reason is None:
            frames = self.source.chunk()
            if not frames:
                break
            self._feed(frames)
            if self.mono() >= until:
                break
        if self.writer is not None:
            self.writer.f.flush()

    def update_findings(self, now: float) -> None:
        from carpscope.model import Severity
        report = self.analysis.snapshot()
        findings = self.policy(report.findings)
        current = {}
        for f in findings:
            current.setdefault(finding_key(f), f)
        raised, active = [], {}
        for k, f in current.items():
            if k in self.active:
                active[k] = f
            elif f.severity == Severity.ERROR or now - self.pending.setdefault(k, now) >= HOLD_S:
                active[k] = f
                raised.append(f)
                self.pending.pop(k, None)
        self.pending = {k: t for k, t in self.pending.items() if k in current and k not in active}
        cleared = [f for k, f in self.active.items() if k not in current]
        if self.emit is not None:
            for f in raised:
                self.emit("finding-raised", now, **f.to_json())
            for f in cleared:
                self.emit("finding-cleared", now, **{x: y for x, y in f.to_json().items()
                                                    if x in ("rule", "code", "severity", "protocol", "vhid",
                                                             "segment", "message", "evidence")})
        self.active = active
        self.findings = [f for f in findings if finding_key(f) in active]
        if self.dashboard is not None:
            self.dashboard.update(report.groups, self.findings, now, self.info, self.source.stats())

    def run(self) -> None:
        start = self.mono()
        self.started = self.clock()
        deadline = start + self.duration if self.duration else None
        last_snap = last_refresh = last_check = -1e9
        fds = [self.source.fd] + ([self.wake_fd] if self.wake_fd is not None else [])
        if self.dashboard is not None:
            self.dashboard.update([], [], self.started, self.info, None)
            self.dashboard.refresh()
        try:
            while self.stop_reason is None:
                t = self.mono()
                timeout = WAIT_S if deadline is None else max(0.0, min(WAIT_S, deadline - t))
                try:
                    ready, _, _ = self.wait(fds, [], [], timeout)
                except InterruptedError:
                    ready = []
                if self.wake_fd is not None and self.wake_fd in ready:
                    try:
                        os.read(self.wake_fd, 512)
                    except OSError:
                        pass
                self._drain()
                now, t = self.clock(), self.mono()
                self.analysis.tracker.tick(now)
                if t - last_check >= CHECK_IFACE_S:
                    last_check = t
                    self.source.check()
                if deadline is not None and t >= deadline:
                    self.request_stop("duration")
                if self._snapshot_due or t - last_snap >= SNAPSHOT_S:
                    self._snapshot_due = False
                    last_snap = t
                    self.update_findings(now)
                    if self.dashboard is not None:
                        last_refresh = t
                        self.dashboard.refresh()
                elif self.dashboard is not None and (
                        t - last_refresh >= REFRESH_S or (self.dashboard.dirty and t - last_refresh >= REFRESH_MIN_S)):
                    last_refresh = t
                    self.dashboard.update(self.analysis.tracker.groups.values(), self.findings, now,
                                          self.info, self.source.stats())
                    self.dashboard.refresh()
        except InterfaceLost as e:
            self.lost = str(e)
            self.request_stop("interface-lost")
        self.elapsed = self.mono() - start


# ---------------------------------------------------------------------------- the command

class _Signals:
    """SIGINT/SIGTERM set a stop reason and wake the select() through a self-pipe."""

    def __init__(self, on_signal):
        self.on_signal = on_signal
        self.r, self.w = os.pipe()
        for fd in (self.r, self.w):
            os.set_blocking(fd, False)
        self.old = {}
        self.old_wakeup = None

    def __enter__(self):
        self.old_wakeup = signal.set_wakeup_fd(self.w, warn_on_full_buffer=False)
        for s in (signal.SIGINT, signal.SIGTERM):
            self.old[s] = signal.signal(s, lambda num, _f: self.on_signal(num))
        return self

    def __exit__(self, *exc):
        for s, h in self.old.items():
            signal.signal(s, h)
        signal.set_wakeup_fd(self.old_wakeup if self.old_wakeup is not None else -1)
        for fd in (self.r, self.w):
            try:
                os.close(fd)
            except OSError:
                pass
        return False


def _err(msg: str) -> None:
    say(f"carpscope: {msg}")


def run(args) -> int:
    try:
        return _run(args)
    except LiveError as e:
        _err(f"error: {e}")
        return EXIT_ERROR


def _run(args) -> int:
    if args.list:
        return list_interfaces(args.format)
    if not args.interface:
        raise LiveError("sniff needs an interface (carpscope sniff --list shows them)")
    iface = args.interface
    pw = lookup_user(args.user) if args.user else None
    verifier, vipinfer, intent, warnings = build_auth(args)
    for w in warnings:
        _err(f"warning: {w}")
    prepare_outputs(args)
    write_out = None
    if args.write:
        try:
            write_out = Output(args.write, "--write")
        except OutputError as e:
            raise UsageError(str(e)) from None
    check_interface(iface)
    source = LiveSource(iface, promisc=not args.no_promisc)
    writer = wfile = None
    try:
        if source.warning:
            _err(f"warning: {source.warning}")
        if pw is not None:
            preload()
            drop_privileges(pw)
        if write_out is not None:      # opened as the user it runs as, like tcpdump -Z -w
            from carpscope.capture.filters import SNAPLEN
            from carpscope.synth import PcapWriter
            try:
                wfile = open(os.open(args.write, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                                     0o644), "wb")
            except OSError as e:
                raise LiveError(f"--write {write_out.name}: {e.strerror}") from None
            writer = PcapWriter(wfile, linktype=source.file_linktype, snaplen=SNAPLEN)
            wfile.flush()
        return _sniff(args, source, writer, verifier, vipinfer, intent)
    finally:
        source.close()
        if wfile is not None:
            wfile.close()


def live_policy(args, sources: list[str]):
    """The policy of the final report (severity overrides, select/ignore, settings file,
    baseline) as a function on each snapshot's findings."""
    from carpscope import policy
    pol = args.policy
    accepted = None
    if pol.baseline and os.path.exists(pol.baseline):
        try:
            accepted = policy.load_baseline(pol.baseline)
        except Exception:
            accepted = None      # the final report says what is wrong with it

    def apply(findings):
        kept = policy.apply(pol, findings, sources)
        if accepted:
            placed, _, _ = policy.filter_baseline(policy.place(kept, sources, pol.root), accepted.copy())
            kept = [p.finding for p in placed]
        return kept
    return apply


def _sniff(args, source, writer, verifier, vipinfer, intent) -> int:
    from carpscope.commands.output import stream

    # where the events go: --format jsonl (to --output when given), or text on a non-terminal
    events_out = None
    if args.format == "jsonl":
        events_out = stream(args)
    elif args.format == "text" and not sys.stdout.isatty():
        events_out = sys.stdout
        if not args.output:
            args.format = "jsonl"   # piped: JSON lines from start to end, the final report too
    dash_console = None
    if not args.quiet and events_out is not sys.stdout:
        for stderr in (False, True):     # the report replaces it at the end: stdout if a terminal
            c = console(args, stderr=stderr)
            if c.is_terminal:
                dash_console = c
                break
    emit = JsonLines(events_out, source.name) if events_out is not None else None
    dashboard = None
    if dash_console is not None:
        from carpscope.report.dashboard import Dashboard
        dashboard = Dashboard(dash_console, source.name, source.linktype_name, source.promisc,
                              source.filter, writing=args.write, clock=clock(args),
                              hosts=intent.addr_host if intent is not None else None)
    analysis = Engine(verifier, vipinfer, intent)
    sniffer = Sniffer(analysis, source, emit=emit, dashboard=dashboard, policy=live_policy(args, [source.name]),
                      writer=writer, duration=args.duration, count=args.count)

    def on_signal(num):
        sniffer.request_stop(signal.Signals(num).name)

    with _Signals(on_signal) as sig:
        sniffer.wake_fd = sig.r
        if emit is not None:
            emit("start", time.time(), linktype=source.linktype_name, filter=source.filter,
                 promiscuous=source.promisc, user=args.user, write=args.write,
                 duration=args.duration, count=args.count)
        try:
            if dashboard is not None:
                with dashboard.live():
                    sniffer.run()
            else:
                sniffer.run()
        finally:
            stats = source.stats()
    report = sniffer.finish()
    names = [source.name]
    placed, ctx = run_policy(args, report.findings, names, filtered={source.name: True})
    report.findings = [p.finding for p in placed]
    dropped = stats[1] if stats else None
    if emit is not None:
        emit("end", time.time(), reason=sniffer.stop_reason, seconds=round(sniffer.elapsed, 3),
             frames=sniffer.frames, adverts=sniffer.info.adverts, malformed=sniffer.info.malformed,
             kernel_dropped=dropped, groups=len(report.groups), findings=len(report.findings))
    if sniffer.lost:
        _err(f"error: {sniffer.lost}; the report covers what was seen until then")
    elif not args.quiet and events_out is not sys.stdout:
        why = {"duration": "duration reached", "count": f"{args.count} adverts seen",
               "SIGINT": "interrupted", "SIGTERM": "terminated"}.get(sniffer.stop_reason, sniffer.stop_reason)
        _err(f"sniffed {source.name} for {sniffer.elapsed:.1f} s: {sniffer.frames} frames, "
             f"{sniffer.info.adverts} adverts ({why})")
    if dropped:
        _err(f"warning: {source.name}: the kernel dropped {dropped} frames (the report may miss adverts)")
    render_report(args, report, placed, ctx, analysis.intent, summary=events_out is not sys.stdout)
    return final_status(args, EXIT_ERROR if sniffer.lost else EXIT_OK, report.findings)
