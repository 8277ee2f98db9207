"""The live dashboard of `carpscope sniff` (rich): groups per segment, recent mastership
changes and active findings, redrawn in place.

``Dashboard.renderable(now)`` is pure (tests render it on a recording console); ``live()`` and
``refresh()`` drive a rich ``Live`` without its refresh thread: the sniff loop decides when to
redraw (at least twice a second), and rich writes each frame in one go, so nothing flickers.
"""
from __future__ import annotations

import contextlib
import datetime as dt
from collections import deque

from rich.console import Console, Group as RGroup
from rich.live import Live
from rich.text import Text

from carpscope.model import protocol_name
from carpscope.report import text
from carpscope.report.jsonreport import group_json
from carpscope.report.view import Clock, annotate

MAX_CHANGES = 8        # recent mastership changes shown
MAX_FINDINGS = 12      # active findings shown (the rest counted)
RATE_WINDOW = 10.0     # seconds over which adverts/s is measured
COLUMNS = ["proto", "id", "speaker", "role", "mac", "timing", "period", "adv/s", "auth", "adverts", "last seen"]

_CHANGE_TYPES = ("master", "silent", "gap", "split-brain", "split-brain-end", "interface-lost", "interface-back")


def age_text(seconds: float) -> str:
    if seconds < 0:
        seconds = 0.0
    if seconds < 60:
        return f"{seconds:.1f}s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s ago"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m ago"


def change_text(ev: dict, clock: Clock | None = None) -> Text:
    """One line for a tracker event (or an interface lost or back) in the 'recent mastership
    changes' list."""
    kind = ev["type"]
    when = ((clock or Clock()).clock(ev["ts"]), "dim")
    if kind == "interface-lost":
        return Text.assemble(when, "  ", (f"{ev['interface']} lost: {ev['reason']}", "bold red"))
    if kind == "interface-back":
        return Text.assemble(when, "  ", (f"{ev['interface']} is back: captured again", "green"))
    who = f"{protocol_name(ev['protocol'])} {ev['vhid']}"
    t = Text.assemble(when, "  ", (f"{who:10}", "bold"), " ")
    if kind == "master":
        prev = ev.get("previous")
        t.append(f"{prev} → " if prev else "→ ")
        t.append(ev["ip"], style="bold green")
        t.append(f"  {ev.get('kind', '')}", style="dim")
    elif kind == "silent":
        t.append(f"{ev['ip']} went silent: no master", style="yellow")
    elif kind == "gap":
        t.append(f"no master for {ev['seconds']:.1f}s before {ev['master']}", style="yellow")
    elif kind == "split-brain":
        t.append(f"SPLIT BRAIN {' and '.join(ev['speakers'])} both master", style="bold red")
    elif kind == "split-brain-end":
        t.append(f"split brain over ({' and '.join(ev['speakers'])}, {ev['seconds']:.1f}s)", style="green")
    return t


class Rates:
    """Adverts per second per speaker over about the last RATE_WINDOW seconds.

    Samples are (time of the speaker's last advert, its advert count): while it advertises the
    rate is counted between adverts (exact for a steady speaker, whenever the screen refreshes);
    once it is silent, up to now (so the rate decays to 0)."""

    def __init__(self, window: float = RATE_WINDOW):
        self.window = window
        self.samples: dict[tuple, deque] = {}

    def sample(self, key: tuple, now: float, last: float, adverts: int, active: bool = True) -> float | None:
        q = self.samples.setdefault(key, deque(maxlen=512))
        if not q or q[-1][1] != adverts:
            q.append((last, adverts))
        while len(q) > 2 and q[1][0] <= now - self.window:
            q.popleft()
        if not active and last <= now - self.window:
            return 0.0
        t0, n0 = q[0]
        span = (last - t0) if active else (now - t0)
        if adverts == n0 or span <= 0:
            return None if active else 0.0
        return (adverts - n0) / span


class Dashboard:
    def __init__(self, console: Console, interface: str, linktype: str | None = None,
                 promisc: bool = True, bpf: str | None = None, writing: str | None = None,
                 hosts: dict[str, str] | None = None, clock: Clock | None = None):
        self.console = console
        self.hosts = hosts or {}
        self.clock = clock or Clock()
        self.interface, self.linktype, self.promisc, self.bpf, self.writing = interface, linktype, promisc, bpf, writing
        self.changes: deque = deque(maxlen=MAX_CHANGES)
        self.groups: list = []
        self.findings: list = []
        self.info = None
        self.stats = None
        self.now: float | None = None
        self.started: float | None = None
        self.rates = Rates()
        self._rate: dict[tuple, float | None] = {}
        self.dirty = True
        self._live: Live | None = None

    # ------------------------------------------------------------ state
    def event(self, ev: dict) -> None:
        if ev["type"] in _CHANGE_TYPES:
            self.changes.append(ev)
        self.dirty = True

    def update(self, groups, findings, now: float, info=None, stats=None) -> None:
        if self.started is None:
            self.started = now
        self.groups = sorted(groups, key=lambda g: (g.segment, g.vhid, g.protocol, g.family))
        self.findings = list(findings)
        self.now, self.info, self.stats = now, info, stats
        for g in self.groups:
            for key, s in g.speakers.items():
                k = (g.key, key)
                self._rate[k] = self.rates.sample(k, now, s.last, s.adverts, s.run_start is not None)

    # ------------------------------------------------------------ rendering
    def header(self) -> Text:
        now = self.now or 0.0
        el = max(0.0, now - (self.started or now))
        t = Text.assemble(("carpscope sniff ", "bold"), (self.interface, "bold cyan"))
        bits = [self.linktype or "", "promiscuous" if self.promisc else "not promiscuous",
                str(dt.timedelta(seconds=int(el)))]
        if self.info is not None:
            rate = self.info.adverts / el if el >= 1 else 0.0
            bits += [f"{self.info.packets} frames", f"{self.info.adverts} adverts ({rate:.1f}/s)",
                     f"{self.info.malformed} malformed"]
        if self.stats:
            bits.append(f"kernel drops {self.stats[1]}")
        if self.writing:
            bits.append(f"writing {self.writing}")
        t.append("  " + " · ".join(b for b in bits if b), style="dim")
        t.append("   Ctrl-C: stop and report", style="dim italic")
        return t

    def group_table(self, segment: str, groups: list):
        """The groups of a segment, laid out by the text report's code (a table, or one block
        per group when the terminal is too narrow), from each group's JSON document plus what
        only a live view knows: who advertises now, adverts per second, how long ago."""
        now = self.now or 0.0
        rows = []
        for g in groups:
            doc = group_json(g)
            # a speaker that advertises acts as master (backups are silent): two at once = split brain
            acting = [s.ip for s in sorted((s for s in g.speakers.values() if s.run_start is not None),
                                           key=lambda s: s.run_start)]
            extra = {}
            for key, s in g.speakers.items():
                rate = self._rate.get((g.key, key))
                extra[s.ip] = {"adv/s": Text("-" if rate is None else f"{rate:.2f}"),
                               "last seen": Text(age_text(now - s.last), style="" if s.run_start is not None else "dim")}
                if s.run_start is None:
                    extra[s.ip]["role"] = Text("silent", style="dim")
            rows.append(text.group_rows(doc, self.hosts, self.clock, masters=acting, extra=extra))
        lines = [Text(f"segment {segment}", style="bold")] + text.layout(rows, COLUMNS, self.console.width)
        return RGroup(*lines)

    def changes_block(self):
        if not self.changes:
            return Text("no mastership change yet", style="dim")
        return RGroup(*[change_text(ev, self.clock) for ev in reversed(self.changes)])

    def findings_block(self):
        if not self.findings:
            return Text("no active findings", style="green")
        lines = []
        for f in self.findings[:MAX_FINDINGS]:
            sev = f.severity.value
            line = Text.assemble((f"{sev.upper():7} ", text.SEV_STYLE[sev]), (f"{f.code} ", "bold"),
                                 (f"{f.rule}", "bold"), "  ", annotate(f.message, self.hosts))
            lines += text.prose(line, self.console.width, 0, 8)     # wrapped, never cut
        if len(self.findings) > MAX_FINDINGS:
            lines.append(Text(f"… and {len(self.findings) - MAX_FINDINGS} more", style="dim"))
        return RGroup(*lines)

    def renderable(self):
        parts = [self.header()]
        if not self.groups:
            parts.append(Text(f"waiting for CARP/VRRP advertisements on {self.interface}…", style="dim"))
        by_seg: dict[str, list] = {}
        for g in self.groups:
            by_seg.setdefault(g.segment, []).append(g)
        for seg, gs in by_seg.items():
            parts.append(self.group_table(seg, gs))
        parts.append(Text("recent mastership changes", style="bold underline"))
        parts.append(self.changes_block())
        n = len(self.findings)
        parts.append(Text(f"active findings ({n})", style="bold underline"))
        parts.append(self.findings_block())
        return RGroup(*parts)

    # ------------------------------------------------------------ driving
    @contextlib.contextmanager
    def live(self):
        self._live = Live(self.renderable(), console=self.console, auto_refresh=False, transient=True,
                          vertical_overflow="ellipsis", redirect_stdout=False, redirect_stderr=False)
        with self._live:
            try:
                yield self
            finally:
                self._live = None

    def refresh(self) -> None:
        self.dirty = False
        if self._live is not None:
            self._live.update(self.renderable(), refresh=True)
