"""`carpscope sniff IFACE [IFACE...]`: the engine on live interfaces, each its own segment.

libpcap (pcapy-ng) opens each interface with ``create()`` + ``set_timeout(50)`` + ``activate()``:
this pcapy-ng has no ``set_immediate_mode``, and with TPACKET_V3 the read timeout is the block
retire timeout, so a 50 ms timeout bounds the delivery delay (measured: a few milliseconds on an
idle bridge) where the usual 1 s would hold adverts back. The handles are non-blocking and
``select``-ed together (one select() over every interface, capture/taps.py) with a self-pipe
woken by SIGINT/SIGTERM, so the loop also wakes up for signals, dashboard refreshes and the
silence timers of the tracker.

The same engine as ``analyze``: the capture filter of capture/filters.py (protocol 112 plus ARP
and IPv6 neighbour advertisements for VIP inference) in the kernel, then libpcap's batches
through Engine.chunk (decode, repeats, verify, track, rules). Once a second (and on each split
brain) ``Engine.snapshot()`` gives the findings as of
now; they are compared with the previous ones by (rule, segment, vhid, speakers) to announce
findings raised and cleared. At the end (duration, count, Ctrl-C, SIGTERM, every interface
lost) the final report is the one ``analyze`` prints, with the same policy and exit status.

A sensor (docs/fleet.md): ``--metrics`` hands each update to the Prometheus exporter
(exporter.py, metrics.py; it also keeps the run going when interfaces are lost, and reopens
them); ``--evidence`` shows every frame and each update to evidence.py, which writes the pcapng
files of findings at or above --fail-on.

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
from carpscope.policy import finding_key

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
              "encodings.idna", "tempfile", "xml.etree.ElementTree", "json", "hmac", "gzip",
              "prometheus_client.exposition", "prometheus_client.openmetrics.exposition"):
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


def interface_of(segment: str | None, names: list[str]) -> str | None:
    """The interface a segment was seen on (a segment is the interface's name, plus /vlanN)."""
    from types import SimpleNamespace

    from carpscope.policy import source_of
    return source_of(SimpleNamespace(source=None, segment=segment), names)


class JsonLines:
    """One flushed JSON object per event: schema, ts (RFC 3339 UTC), type, interface, then the
    rest. ``interface`` is the event's own (given, or the one its segment was seen on), else
    the interfaces of the run, comma-separated."""

    def __init__(self, out, interfaces: str | list[str]):
        self.out = out
        self.names = [interfaces] if isinstance(interfaces, str) else list(interfaces)
        self.interface = ",".join(self.names)

    def __call__(self, etype: str, ts: float, **kw) -> None:
        iface = kw.pop("interface", None)
        if iface is None and len(self.names) > 1:
            iface = interface_of(kw.get("segment"), self.names)
        d = {"schema": SCHEMA, "ts": rfc3339(ts), "type": etype, "interface": iface or self.interface}
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

    ``sources`` (one, or a list: each interface its own segment) have ``name``, ``fd``,
    ``chunk()``, ``check()``, ``stats()``; they are read as ``Tap``s (capture/taps.py) with one
    select(). ``clock``/``mono`` and ``wait`` are injectable so the loop runs on a fake clock in
    tests. ``evidence`` (evidence.py) sees every frame and the findings; ``metrics``
    (exporter.py) gets a snapshot after each update of the findings.

    A lost interface (down, gone) is closed and announced; the run stops when every interface
    is lost, unless ``keep_going`` (an exporter: the interface-up gauge says it, and each lost
    interface is reopened once it is back up).
    """

    def __init__(self, analysis, sources, *, emit=None, dashboard=None, policy=None, writer=None,
                 duration: float | None = None, count: int | None = None,
                 clock=time.time, mono=time.monotonic, wait=select.select, wake_fd: int | None = None,
                 keep_going: bool = False, evidence=None, metrics=None):
        from carpscope.capture.taps import Tap
        listed = list(sources) if isinstance(sources, (list, tuple)) else [sources]
        self.taps = [s if isinstance(s, Tap) else Tap(s) for s in listed]
        self.names = [t.name for t in self.taps]
        self.analysis = analysis
        self.source, self.info = self.taps[0].source, self.taps[0].info
        self.emit, self.dashboard, self.writer = emit, dashboard, writer
        self.evidence, self.metrics = evidence, metrics
        self.policy = policy or (lambda fs: fs)
        self.duration, self.count = duration, count
        self.clock, self.mono, self.wait, self.wake_fd = clock, mono, wait, wake_fd
        self.keep_going = keep_going
        # tracker events come here (groups take the callback when they are created)
        analysis.tracker.on_event = self.on_event
        for t in self.taps:
            analysis.sources.append(t.info)
            if getattr(t.source, "filter", None):
                analysis.filters[t.name] = t.source.filter
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
        if self.evidence is not None:
            self.evidence.name_files(report.findings)
        return report

    def request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason

    # counts over every interface
    @property
    def adverts(self) -> int:
        return sum(t.info.adverts for t in self.taps)

    def totals(self) -> SourceInfo:
        if len(self.taps) == 1:
            return self.info
        return SourceInfo(",".join(self.names), packets=sum(t.info.packets for t in self.taps),
                          adverts=self.adverts, malformed=sum(t.info.malformed for t in self.taps))

    def stats(self) -> tuple[int, int, int] | None:
        got = [s for s in (t.stats() for t in self.taps) if s]
        if not got:
            return None
        return (sum(s[0] for s in got), sum(s[1] for s in got), sum(s[2] for s in got))

    def _feed(self, tap, frames) -> None:
        """A chunk of live frames of one interface through the engine (one by one when --count
        must stop at an exact advert)."""
        engine, name, info = self.analysis, tap.name, tap.info
        if self.writer is not None:
            for f in frames:
                self.writer.write(f[1], f[3])
        if self.evidence is not None:
            self.evidence.frames(tap, frames)
        self.frames += len(frames)
        info.packets += len(frames)
        if not self.count:
            engine.chunk(frames, name, info)
            return
        for n, ts, lt, data, _off, _len in frames:
            if engine.frame(lt, n, ts, data, name, info) == 1 and self.adverts >= self.count:
                self.request_stop("count")
                return

    def _drain(self) -> None:
        """Read what the kernel holds on every interface, in turns, for at most DRAIN_S: under
        a flood the loop still ticks, redraws and answers a signal in time."""
        until = self.mono() + DRAIN_S
        busy = True
        while busy and self.stop_reason is None:
            busy = False
            for tap in self.taps:
                try:
                    frames = tap.chunk()
                except InterfaceLost as e:
                    self._lose(tap, str(e))
                    continue
                if frames:
                    busy = True
                    self._feed(tap, frames)
                    if self.stop_reason is not None:
                        break
            if self.mono() >= until:
                break
        if self.writer is not None:
            self.writer.f.flush()

    def _lose(self, tap, why: str) -> None:
        tap.lose(why)
        if self.emit is not None:
            self.emit("interface-lost", self.clock(), interface=tap.name, reason=why)
        if self.dashboard is not None:
            self.dashboard.event({"type": "interface-lost", "ts": self.clock(), "interface": tap.name, "reason": why})
        if all(t.lost for t in self.taps) and not self.keep_going:
            self.request_stop("interface-lost")

    def _check_taps(self) -> None:
        """Interfaces gone or down are lost; lost ones come back when the sensor keeps going."""
        for tap in self.taps:
            if tap.lost:
                if self.keep_going and tap.reopen():
                    if self.emit is not None:
                        self.emit("interface-back", self.clock(), interface=tap.name)
                    if self.dashboard is not None:
                        self.dashboard.event({"type": "interface-back", "ts": self.clock(), "interface": tap.name})
                continue
            try:
                tap.check()
            except InterfaceLost as e:
                self._lose(tap, str(e))

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
        if self.evidence is not None:       # before the events: a raised finding names its file
            self.evidence.update(now, active)
        if self.emit is not None:
            for f in raised:
                self.emit("finding-raised", now, **f.to_json())
            for f in cleared:
                self.emit("finding-cleared", now, **{x: y for x, y in f.to_json().items()
                                                    if x in ("rule", "code", "severity", "protocol", "vhid",
                                                             "segment", "message", "evidence")})
        self.active = active
        self.findings = [f for f in findings if finding_key(f) in active]
        if self.metrics is not None:
            self.metrics.update(now, report.groups, self.findings, self.taps)
        if self.dashboard is not None:
            self.dashboard.update(report.groups, self.findings, now, self.totals(), self.stats())

    def run(self) -> None:
        start = self.mono()
        self.started = self.clock()
        deadline = start + self.duration if self.duration else None
        last_snap = last_refresh = last_check = -1e9
        if self.dashboard is not None:
            self.dashboard.update([], [], self.started, self.totals(), None)
            self.dashboard.refresh()
        while self.stop_reason is None:
            t = self.mono()
            timeout = WAIT_S if deadline is None else max(0.0, min(WAIT_S, deadline - t))
            fds = [t_.fd for t_ in self.taps if not t_.lost] + ([self.wake_fd] if self.wake_fd is not None else [])
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
                self._check_taps()
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
                                      self.totals(), self.stats())
                self.dashboard.refresh()
        lost = [t.lost for t in self.taps if t.lost]
        self.lost = "; ".join(lost) if lost else None
        if self.metrics is not None:     # the last frames counted too, for a scrape before the exit
            self.metrics.update(self.clock(), list(self.analysis.tracker.groups.values()), self.findings, self.taps)
        if self.evidence is not None:
            self.evidence.close(self.clock(), "stopped")
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


def interfaces_of(args) -> list[str]:
    """The interfaces asked for, each once; 'any' only alone (it already holds every one)."""
    names = list(args.interfaces or [])
    if not names:
        raise LiveError("sniff needs an interface (carpscope sniff --list shows them)")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"interface {twice[0]} given twice")
    if "any" in names and len(names) > 1:
        raise UsageError("'any' already captures every interface: give it alone, or name the interfaces")
    if args.write and len(names) > 1:
        raise UsageError("--write records one interface: give one interface, or keep evidence of several "
                         "with --evidence DIR")
    return names


def _run(args) -> int:
    if args.list:
        return list_interfaces(args.format)
    names = interfaces_of(args)
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
    listen = None
    if args.metrics:
        try:
            from carpscope.exporter import ListenError, parse_listen
        except ImportError:
            raise UsageError("--metrics needs the Prometheus client library: pip install 'carpscope[metrics]' "
                             "(prometheus-client)") from None
        try:
            listen = parse_listen(args.metrics)
        except ListenError as e:
            raise UsageError(str(e)) from None
    if args.evidence:
        from carpscope.evidence import EvidenceError, check_dir
        try:
            check_dir(args.evidence)
        except EvidenceError as e:
            raise UsageError(str(e)) from None
    for name in names:
        check_interface(name)
    sources: list = []
    writer = wfile = exporter = None
    try:
        for name in names:
            sources.append(LiveSource(name, promisc=not args.no_promisc))
        for source in sources:
            if source.warning:
                _err(f"warning: {source.warning}")
        if listen is not None:         # bound before the privilege drop: any port, errors at once
            exporter = start_exporter(listen, intent)
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
            writer = PcapWriter(wfile, linktype=sources[0].file_linktype, snaplen=SNAPLEN)
            wfile.flush()
        return _sniff(args, sources, writer, verifier, vipinfer, intent, exporter)
    finally:
        for source in sources:
            source.close()
        if wfile is not None:
            wfile.close()
        if exporter is not None:
            exporter.close()


def start_exporter(listen: tuple[str, int], intent):
    from carpscope.exporter import Exporter
    host, port = listen
    try:
        return Exporter(host, port, hosts=intent.addr_host if intent is not None else None)
    except OSError as e:
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise LiveError(f"--metrics {shown}: cannot listen: {e.strerror or e}") from None


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


def _sniff(args, sources, writer, verifier, vipinfer, intent, exporter=None) -> int:
    from carpscope.capture.taps import Tap
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
    names = [s.name for s in sources]
    emit = JsonLines(events_out, names) if events_out is not None else None
    dashboard = None
    if dash_console is not None:
        from carpscope.report.dashboard import Dashboard
        first = sources[0]
        dashboard = Dashboard(dash_console, ", ".join(names),
                              ", ".join(dict.fromkeys(s.linktype_name for s in sources)), first.promisc,
                              first.filter, writing=args.write, clock=clock(args),
                              hosts=intent.addr_host if intent is not None else None)
    # an exporter keeps going when interfaces are lost, and reopens them when they come back
    opener = (lambda name: LiveSource(name, promisc=not args.no_promisc)) if exporter is not None else None
    taps = [Tap(s, opener) for s in sources]
    evidence = None
    if args.evidence:
        from carpscope.evidence import Evidence, EvidenceError
        try:
            evidence = Evidence(args.evidence, args.policy.fail_on, taps, window=args.evidence_window,
                                max_files=args.evidence_files, emit=emit, warn=_err)
        except EvidenceError as e:
            raise LiveError(str(e)) from None
        if args.policy.fail_on == "never":
            _err("warning: --evidence with --fail-on never (or --exit-zero): no finding starts a recording")
    analysis = Engine(verifier, vipinfer, intent)
    sniffer = Sniffer(analysis, taps, emit=emit, dashboard=dashboard, policy=live_policy(args, names),
                      writer=writer, duration=args.duration, count=args.count, keep_going=exporter is not None,
                      evidence=evidence, metrics=exporter)

    def on_signal(num):
        sniffer.request_stop(signal.Signals(num).name)

    with _Signals(on_signal) as sig:
        sniffer.wake_fd = sig.r
        if emit is not None:
            for s in sources:
                emit("start", time.time(), interface=s.name, linktype=s.linktype_name, filter=s.filter,
                     promiscuous=s.promisc, user=args.user, write=args.write,
                     duration=args.duration, count=args.count,
                     metrics=None if exporter is None else args.metrics, evidence=args.evidence)
        try:
            if dashboard is not None:
                with dashboard.live():
                    sniffer.run()
            else:
                sniffer.run()
        finally:
            stats = {t.name: t.stats() for t in taps}
    report = sniffer.finish()
    placed, ctx = run_policy(args, report.findings, names, filtered={n: True for n in names})
    report.findings = [p.finding for p in placed]
    dropped = {n: st[1] for n, st in stats.items() if st}
    total_dropped = sum(dropped.values()) if dropped else None
    if emit is not None:
        per = [{"interface": t.name, "frames": t.info.packets, "adverts": t.info.adverts,
                "malformed": t.info.malformed, "kernel_dropped": dropped.get(t.name), "lost": t.lost}
               for t in taps]
        emit("end", time.time(), reason=sniffer.stop_reason, seconds=round(sniffer.elapsed, 3),
             frames=sniffer.frames, adverts=sniffer.adverts, malformed=sum(t.info.malformed for t in taps),
             kernel_dropped=total_dropped, groups=len(report.groups), findings=len(report.findings),
             interfaces=per)
    shown = ", ".join(names)
    if sniffer.lost:
        _err(f"error: {sniffer.lost}; the report covers what was seen until then")
    elif not args.quiet and events_out is not sys.stdout:
        why = {"duration": "duration reached", "count": f"{args.count} adverts seen",
               "SIGINT": "interrupted", "SIGTERM": "terminated"}.get(sniffer.stop_reason, sniffer.stop_reason)
        _err(f"sniffed {shown} for {sniffer.elapsed:.1f} s: {sniffer.frames} frames, "
             f"{sniffer.adverts} adverts ({why})")
    for name, n in dropped.items():
        if n:
            _err(f"warning: {name}: the kernel dropped {n} frames (the report may miss adverts)")
    if evidence is not None and evidence.n_written and not args.quiet:
        _err(f"evidence: {evidence.n_written} file(s) written in {evidence.directory}")
    render_report(args, report, placed, ctx, analysis.intent, summary=events_out is not sys.stdout)
    return final_status(args, EXIT_ERROR if sniffer.lost else EXIT_OK, report.findings)
