"""The text report, rendered from the JSON report document (jsonreport.report_json).

Per segment a table of groups and speakers; when the table does not fit the width, the narrow
layout (one block per group, one line per speaker, fields wrapped whole). A cell is never cut:
every VHID and every address appears whole at any width from 80 columns. Per group a timeline
with a time axis and the event list (ISO 8601 times). Then the findings.

``width`` None (output piped or written to a file) means no width at all: the table, lines
never wrapped, no colour (the console decides colour). The live dashboard (dashboard.py) lays
out its groups with the same code (``group_rows``, ``layout``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
TYPE_CHECKING = False     # typing.TYPE_CHECKING without importing typing at run time (start-up)
if TYPE_CHECKING:
    from typing import Iterator

from rich.console import Console
from rich.text import Text

from carpscope.model import CARP
from carpscope.report.view import (Clock, annotate, finding_where, group_events, group_findings, group_name, group_protocol, group_vips,
                                   host_roles, intent_lines, named, segments, ticks)

SEV_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
LEVEL_STYLE = {"error": "bold red", "warning": "yellow", "info": ""}
SEVERITIES = ("error", "warning", "info")
REPORT_COLUMNS = ["proto", "id", "speaker", "role", "mac", "timing", "auth", "adverts", "period", "last seen"]
INFERRED_NOTE = "* verified with VIPs inferred from the capture (gratuitous ARP / neighbour advertisements)"
RIGHT = {"id", "adverts", "adv/s"}
# how a cell reads in the narrow layout, where there is no column header
BLOCK_LABEL = {"auth": "auth {}", "adverts": "{} adverts", "period": "every {}", "last seen": "last {}",
               "adv/s": "{}/s"}
INDENT = 2
SEP = 2
PIPED_TIMELINE = 96          # timeline cells when there is no width (piped)


def layout_width(console: Console) -> int | None:
    """The width to lay out for: the terminal's (or $COLUMNS); None when piped or in a file."""
    if console.is_terminal or os.environ.get("COLUMNS"):
        return console.width
    return None


def _sev(f) -> str:
    s = f["severity"] if isinstance(f, dict) else f.severity
    return s if isinstance(s, str) else s.value


# ---------------------------------------------------------------------------- layout

Cells = dict[str, Text]


@dataclass
class GroupRows:
    """One group as cells: ``head`` (proto, id, master) on its first line, one ``rows`` entry
    per speaker, ``notes`` under it (intended members not heard, ...)."""
    head: Cells
    rows: list[Cells]
    notes: list[Text] = field(default_factory=list)


def _t(x) -> Text:
    return x if isinstance(x, Text) else Text(str(x))


def wrap_fields(fields: list[Text], width: int | None, indent: int, hang: int) -> list[Text]:
    """Fields on lines of at most ``width``, two spaces apart, each field whole."""
    lines: list[Text] = []
    cur = Text(" " * indent)
    start = True
    for f in fields:
        if not f.plain:
            continue
        if not start and width is not None and cur.cell_len + SEP + f.cell_len > width:
            lines.append(cur)
            cur, start = Text(" " * hang), True
        if not start:
            cur.append(" " * SEP)
        cur.append_text(f)
        start = False
    lines.append(cur)
    return lines


def _para_words(text: Text, width: int | None, indent: int, hang: int) -> list[Text]:
    out: list[Text] = []
    cur = Text(" " * indent)
    empty = True
    for w in text.split(" "):
        w = w.copy()
        w.rstrip()
        if not empty and width is not None and cur.cell_len + 1 + w.cell_len > width:
            out.append(cur)
            cur, empty = Text(" " * hang), True
        if not empty:
            cur.append(" ")
        cur.append_text(w)
        empty = False
    out.append(cur)
    return out


def prose(text: Text | str, width: int | None, indent: int, hang: int | None = None) -> list[Text]:
    """A sentence wrapped between words, one space apart, hanging indent for the rest."""
    t = _t(text)
    hang = indent if hang is None else hang
    if width is None or indent + t.cell_len <= width:
        return [Text(" " * indent) + t]
    return _para_words(t, width, indent, hang)


def layout(groups: list[GroupRows], columns: list[str], width: int | None) -> list[Text]:
    """The table when it fits ``width`` (always when None), else the narrow layout."""
    widths = {c: max([len(c)] + [_t(r.get(c, "")).cell_len for g in groups for r in [g.head, *g.rows]])
              for c in columns}
    total = INDENT + sum(widths.values()) + SEP * (len(columns) - 1)
    if width is None or total <= width:
        return _table(groups, columns, widths, width)
    return _blocks(groups, columns, width)


def _table(groups: list[GroupRows], columns: list[str], widths: dict, width: int | None) -> list[Text]:
    def line(cells: dict) -> Text:
        t = Text(" " * INDENT)
        for i, c in enumerate(columns):
            cell = _t(cells.get(c, ""))
            pad = " " * (widths[c] - cell.cell_len)
            if i:
                t.append(" " * SEP)
            if c in RIGHT:
                t.append(pad)
                t.append_text(cell)
            else:
                t.append_text(cell)
                if i < len(columns) - 1:
                    t.append(pad)
        t.rstrip()
        return t
    out = [line({c: Text(c, style="bold") for c in columns})]
    for g in groups:
        for i, r in enumerate(g.rows or [{}]):
            out.append(line({**(g.head if i == 0 else {}), **r}))
        for n in g.notes:
            out += prose(n, width, INDENT + 4, INDENT + 6)
    return out


def _blocks(groups: list[GroupRows], columns: list[str], width: int) -> list[Text]:
    out: list[Text] = []
    for g in groups:
        head = [_t(g.head.get("proto", "")) + " " + _t(g.head.get("id", ""))]
        head[0].stylize("bold")
        if "master" in g.head:
            head.append(Text("master ") + _t(g.head["master"]))
        out += wrap_fields(head, width, INDENT, INDENT + 4)
        for r in g.rows:
            fields = []
            for c in columns:
                if c in ("proto", "id", "master") or c not in r or (c == "role" and r[c].plain == "stopped"):
                    continue
                cell = _t(r[c])
                if cell.plain == "-":
                    continue
                if c in BLOCK_LABEL and cell.plain not in ("", "-"):
                    pre, _, post = BLOCK_LABEL[c].partition("{}")
                    cell = Text(pre) + cell + Text(post)
                fields.append(cell)
            out += wrap_fields(fields, width, INDENT + 2, INDENT + 6)
        for n in g.notes:
            out += prose(n, width, INDENT + 2, INDENT + 6)
    return out


# ---------------------------------------------------------------------------- cells

def timing(g: dict, s: dict) -> str:
    if g["protocol"] == CARP:
        t = f"base {s.get('advbase')} skew {s.get('advskew')}"
        if s.get("demote"):
            t += f" demote {s['demote']}"
        return t
    t = f"prio {s.get('priority')} int {(s.get('interval_cs') or 0) / 100:g}s"
    if len(g.get("protocols") or ()) > 1 and s.get("protocol"):
        t = f"v{s['protocol'][-1]} {t}"       # a VRID with both versions: which one each speaks
    return t


def auth_text(g: dict, s: dict) -> Text:
    a = s.get("auth") or {}
    st = a.get("status")
    if g["protocol"] != CARP:
        if st == "cleartext":
            return Text("cleartext pw", style="yellow")
        if st == "ah":
            return Text("AH", style="yellow")
        return Text("-")
    if st == "ok":
        t = f"ok {a.get('key')}"
        if a.get("inferred_vips"):
            t += "*"          # INFERRED_NOTE
        return Text(t, style="yellow" if a.get("weak") else "green")
    if st == "fail":
        return Text("FAIL", style="bold red")
    return Text("unchecked", style="dim")


def period_text(s: dict) -> str:
    ps = s.get("period")
    return f"{ps['mean']:.2f}±{ps['jitter']:.2f}s" if ps else "-"


def speaker_text(ip: str, hosts: dict[str, str], style: str = "") -> Text:
    return Text(named(ip, hosts), style=style)


def master_text(masters: list[str], hosts: dict[str, str]) -> Text:
    if len(masters) > 1:
        return Text(" + ".join(named(m, hosts) for m in masters), style="bold red")
    if masters:
        return Text(named(masters[0], hosts), style="bold green")
    return Text("none", style="bold yellow")


def group_rows(g: dict, hosts: dict[str, str], clock: Clock, *, dated: bool = False,
               masters: list[str] | None = None, extra: dict[str, Cells] | None = None) -> GroupRows:
    """A group's cells from its document. ``masters`` (default ``masters_at_end``) and ``extra``
    (cells per speaker address) let the dashboard say who advertises now and add its columns."""
    masters = list(g.get("masters_at_end") or []) if masters is None else masters
    head = {"proto": Text(group_protocol(g) + ("/v6" if g.get("family") == 6 else "")),
            "id": Text(str(g["vhid"]), style="bold"), "master": master_text(masters, hosts)}
    rows = []
    for s in g.get("speakers") or []:
        ip = s["ip"]
        active = ip in masters
        role = (Text("MASTER", style="bold red") if active and len(masters) > 1 else
                Text("master", style="bold green") if active else Text("stopped", style="dim"))
        cells = {"speaker": speaker_text(ip, hosts, "bold" if active else ""), "role": role,
                 "mac": Text(s.get("mac") or "-"), "timing": Text(timing(g, s)), "auth": auth_text(g, s),
                 "adverts": Text(str(s.get("adverts", 0))), "period": Text(period_text(s)),
                 "last seen": Text(clock.iso(s.get("last_seen")) if dated else clock.clock(s.get("last_seen")))}
        cells.update((extra or {}).get(ip, {}))
        rows.append(cells)
    notes = [Text(text, style=LEVEL_STYLE[lvl]) for lvl, text in intent_lines(g, hosts)]
    if g.get("runs_dropped"):
        notes.append(Text(f"{g['runs_dropped']} earlier mastership runs not kept (the timeline starts later)",
                          style="dim"))
    return GroupRows(head, rows, notes)


# ---------------------------------------------------------------------------- timeline

MARK = {"split": ("!", "bold red"), "overlap": ("x", "yellow"), "gap": ("·", "yellow")}


def _cells(t0: float, cs: float, n: int, a: float, b: float) -> range:
    i = int((a - t0) / cs)
    j = int((b - t0) / cs)
    return range(max(0, min(i, n - 1)), max(0, min(j, n - 1)) + 1)


def timeline_lines(g: dict, findings: list[dict], t0: float, t1: float, clock: Clock, width: int | None,
                   hosts: dict[str, str]) -> list[Text]:
    """Lanes per speaker (█ while it advertises as master), a marker row (x two masters at once,
    ! a split-brain window, · no master) and a time axis with tick labels."""
    runs = sorted(g.get("masters") or [], key=lambda r: (r["from"], r["ip"]))
    if not runs:
        return [Text(" " * (INDENT + 2) + "no mastership run to draw", style="dim")]
    order: list[str] = []
    for r in runs:
        if r["ip"] not in order:
            order.append(r["ip"])
    labels = {ip: named(ip, hosts) for ip in order}
    lw = max(len(x) for x in labels.values())
    pre = INDENT + 2 + lw + 2
    n = PIPED_TIMELINE if width is None else max(16, min(240, width - pre - 1))
    span = max(t1 - t0, 1e-3)
    cs = span / n
    out = []
    for ip in order:
        bar = [" "] * n
        for r in runs:
            if r["ip"] == ip:
                for i in _cells(t0, cs, n, r["from"], r["to"]):
                    bar[i] = "█"
        line = Text(" " * (INDENT + 2) + labels[ip].ljust(lw) + "  ")
        line.append("".join(bar).rstrip(), style="green")
        out.append(line)
    marks = [""] * n
    first, last = runs[0]["from"], max(r["to"] for r in runs)
    covered = [False] * n
    for r in runs:
        for i in _cells(t0, cs, n, r["from"], r["to"]):
            covered[i] = True
    for i in _cells(t0, cs, n, first, last):
        if not covered[i]:
            marks[i] = "gap"
    for k, a in enumerate(runs):
        for b in runs[k + 1:]:
            lo, hi = max(a["from"], b["from"]), min(a["to"], b["to"])
            if a["ip"] != b["ip"] and hi >= lo:
                for i in _cells(t0, cs, n, lo, hi):
                    marks[i] = "overlap"
    for f in group_findings(g, findings):
        if f["rule"] == "split-brain":
            for w in (f.get("evidence") or {}).get("windows") or []:
                for i in _cells(t0, cs, n, w["from"], w["to"]):
                    marks[i] = "split"
    if any(marks):
        line = Text(" " * pre)
        for m in marks:
            ch, st = MARK.get(m, (" ", ""))
            line.append(ch, style=st)
        line.rstrip()
        out.append(line)
    out += axis_lines(t0, t1, n, pre, clock)
    present = set(marks)
    legend = ["█ advertising as master"] + [txt for key, txt in (
        ("overlap", "x two masters at once"), ("split", "! split brain"), ("gap", "· no master")) if key in present]
    out.append(Text(" " * pre + "   ".join(legend), style="dim"))
    return out


def axis_lines(t0: float, t1: float, n: int, pre: int, clock: Clock) -> list[Text]:
    """A ruler under the lanes: ┬ at round times, their clock time below (no two labels touch)."""
    span = max(t1 - t0, 1e-3)
    cs = span / n
    rule = ["─"] * n
    labels = [" "] * (n + 12)
    for t, lab in ticks(t0, t1, cs * 12, clock):
        i = min(n - 1, int(round((t - t0) / cs)))
        rule[i] = "┬"
        if i + len(lab) <= n + 1 and all(c == " " for c in labels[max(0, i - 1):i + len(lab) + 1]):
            labels[i:i + len(lab)] = list(lab)
    return [Text(" " * pre + "".join(rule), style="dim"), Text(" " * pre + "".join(labels).rstrip(), style="dim")]


# ---------------------------------------------------------------------------- the report

def render(doc: dict, console: Console, show_timeline: bool = True, clock: Clock | None = None,
           width: int | None = -1) -> None:
    """The whole text report. ``width`` -1: from the console (``layout_width``)."""
    clock = clock or Clock()
    width = layout_width(console) if width == -1 else width
    for line in report_lines(doc, clock, width, show_timeline):
        console.print(line, soft_wrap=True, highlight=False)


def report_lines(doc: dict, clock: Clock, width: int | None, show_timeline: bool = True) -> Iterator[Text]:
    """The report line by line, made as they are printed (thousands of groups are never held
    as lines all at once)."""
    hosts = doc.get("hosts") or {}
    findings = doc.get("findings") or []
    if doc.get("interrupted"):
        yield from prose(Text.assemble((f"interrupted ({doc['interrupted']}): ", "bold yellow"),
                                   "reading stopped early; this report covers only what was read"), width, 0, 4)
    for s in doc.get("sources") or []:
        line = f"{s['name']}: {s['packets']} frames read, {s['adverts']} adverts, {s['malformed']} malformed"
        if s.get("linktype"):
            line += f" ({s['linktype']})"
        yield from prose(Text(line), width, 0, 4)
        if s.get("error"):
            yield from prose(Text.assemble(("stopped early: ", "yellow"), s["error"]), width, 2, 4)
    groups = doc.get("groups") or []
    if not groups:
        yield Text("no CARP or VRRP advertisements found")
    roles = host_roles(doc)
    if roles:
        yield Text("")
        yield Text("hosts (from the inventory / configs)", style="bold")
        for lvl, text in roles:
            yield from prose(Text(text, style=LEVEL_STYLE[lvl]), width, INDENT, INDENT + 4)
    for seg, gs, t0, t1 in segments(groups):
        one_day = clock.day(t0) == clock.day(t1)
        when = f"times {clock.zone(t0)}" + (f", {clock.day(t0)}" if one_day else "")
        yield Text("")
        yield from prose(Text.assemble(("segment ", "bold"), (seg, "bold"), f"  ({when})"), width, 0, 4)
        rows = [group_rows(g, hosts, clock, dated=not one_day) for g in gs]
        yield from layout(rows, REPORT_COLUMNS, width)
        if any(s["auth"].get("inferred_vips") for g in gs for s in g["speakers"]):
            yield from prose(Text(INFERRED_NOTE, style="dim"), width, INDENT, INDENT + 2)
        for g in gs:
            yield Text("")
            vips = group_vips(g)
            title = Text.assemble((group_name(g), "bold"))
            if vips:
                title.append(f"  VIP{'s' if len(vips) > 1 else ''} {', '.join(vips)}")
            title.append(f"  mastership and events ({clock.zone(t0)})")
            yield from prose(title, width, 0, 4)
            if show_timeline:
                yield from timeline_lines(g, findings, t0, t1, clock, width, hosts)
            yield from event_lines(g, findings, clock, width, hosts)
    yield Text("")
    yield from finding_lines(findings, clock, width, hosts)


def event_lines(g: dict, findings: list[dict], clock: Clock, width: int | None, hosts: dict[str, str]) -> list[Text]:
    evs = group_events(g, findings, hosts, clock)
    out = []
    for e in evs:
        stamp = clock.iso(e.ts)
        hang = INDENT + 2 + len(stamp) + 2 if width is None or width >= 72 else INDENT + 6
        t = Text.assemble((stamp, "dim"), "  ", (e.text, LEVEL_STYLE[e.level]))
        if e.packet:
            t.append(f" (frame {e.packet})", style="dim")
        out += prose(t, width, INDENT + 2, hang)
    return out


def render_findings(findings, console: Console, clock: Clock | None = None, hosts: dict | None = None) -> None:
    """The findings alone (``lint``); ``findings``: documents or Finding objects."""
    docs = [f if isinstance(f, dict) else f.to_json() for f in findings]
    for line in finding_lines(docs, clock or Clock(), layout_width(console), hosts or {}):
        console.print(line, soft_wrap=True, highlight=False)


def finding_lines(findings: list[dict], clock: Clock, width: int | None, hosts: dict[str, str]) -> list[Text]:
    if not findings:
        return [Text("no findings", style="green")]
    counts = {sev: sum(1 for f in findings if _sev(f) == sev) for sev in SEVERITIES}
    out = [Text.assemble("findings: ", *[Text(f"{n} {sev}{'s' if n != 1 else ''}  ", style=SEV_STYLE[sev])
                                         for sev, n in counts.items() if n])]
    out[0].rstrip()
    for sev in SEVERITIES:
        for f in (x for x in findings if _sev(x) == sev):
            head = Text.assemble((f"{sev.upper():7} ", SEV_STYLE[sev]), (f"{f['code']} ", "bold"),
                                 (f["rule"], "bold"), "  ", annotate(f["message"], hosts))
            out += prose(head, width, 0, 8)
            ev = finding_where(f, clock)
            count = (f.get("evidence") or {}).get("count", 0)
            if isinstance(count, int) and count > 1:
                ev.append(f"{count} times")
            if f.get("line"):
                ev.append(f"{f.get('source')}:{f['line']}")
            elif f.get("source") and f["rule"].startswith("config-"):
                ev.append(f["source"])
            ev.append(f"carpscope rules {f['rule']}")
            out += wrap_fields([Text(x, style="dim") for x in ev], width, 8, 8)
    return out


# ---------------------------------------------------------------------------- --adverts

def ts_text(ts: float | None) -> str:
    """Time of day, UTC, milliseconds (the --adverts lines)."""
    return Clock().clock(ts)
