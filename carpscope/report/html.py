"""The HTML report (``--format html``): one self-contained page to open after an incident.

Rendered from the JSON report document. No network access and no external asset: inline CSS,
inline SVG, no script (hover text comes from SVG ``<title>`` elements, the browser's own
tooltips). Everything that comes from a capture or a configuration (addresses, segment and file
names, messages) is escaped.

Per group an SVG mastership timeline: a lane per speaker with its runs as master, takeovers
marked at the top, split-brain windows and times without a master as bands across the lanes,
a time axis; hover shows times and frame numbers. Elements carry their times in ``data-``
attributes (epoch seconds) and the SVG its scale (``data-t0``, ``data-t1``, ``data-x0``,
``data-x1``), so tests can check positions in the browser's DOM.
"""
from __future__ import annotations

import html
import json
import re
TYPE_CHECKING = False     # typing.TYPE_CHECKING without importing typing at run time (start-up)
if TYPE_CHECKING:
    from typing import Iterator

from carpscope import __version__
from carpscope.report.view import (Clock, annotate, finding_where, group_events, group_findings, group_name, group_vips,
                                   host_roles, intent_lines, left_out, named, packets_total, segments, ticks)

SEVERITIES = ("error", "warning", "info")
# the SVG's coordinate system (it scales to the page width)
W, LABEL_W, RIGHT_PAD, LANE_H, LANE_GAP, TOP, AXIS_H = 1000, 200, 16, 24, 10, 30, 34


def esc(x) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _num(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


CSS = """
:root{--ok:#2e7d32;--err:#c62828;--warn:#b26a00;--info:#1565c0;--mute:#5f6b7a;--line:#d8dee6;--bg:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1b1f24;background:var(--bg)}
main{max-width:1200px;margin:0 auto;padding:20px 24px 48px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:0 0 8px} h3{font-size:15px;margin:16px 0 6px}
.sub{color:var(--mute)} code,.mono,td.mono{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:13px}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px 18px;margin:16px 0}
.verdict{display:flex;gap:10px;flex-wrap:wrap;align-items:center;margin-top:10px}
.pill{display:inline-block;border-radius:999px;padding:2px 10px;font-weight:600;font-size:13px;border:1px solid transparent}
.pill.error{background:#fdecea;color:var(--err);border-color:#f5c2bd}
.pill.warning{background:#fff4e0;color:var(--warn);border-color:#f3d29b}
.pill.info{background:#e8f1fb;color:var(--info);border-color:#bcd5f2}
.pill.ok{background:#e8f5e9;color:var(--ok);border-color:#b9dfbb}
table{border-collapse:collapse;width:100%} th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;text-transform:uppercase;letter-spacing:.03em;color:var(--mute);font-weight:600}
td.num{text-align:right}
.master{color:var(--ok);font-weight:600} .two{color:var(--err);font-weight:700} .dim{color:var(--mute)}
.lvl-error{color:var(--err);font-weight:600} .lvl-warning{color:var(--warn)}
svg.timeline{width:100%;height:auto;display:block;margin:6px 0 2px;font-family:ui-monospace,"DejaVu Sans Mono",monospace}
svg .lane-bg{fill:#f1f4f7} svg .run{fill:var(--ok)} svg .run:hover{fill:#1b5e20} svg .run-split{fill:var(--err)}
svg .split{fill:var(--err);fill-opacity:.13;stroke:var(--err);stroke-opacity:.6;stroke-width:1;stroke-dasharray:4 3}
td.nw,td.mono{white-space:nowrap} svg .gap{fill:#f9a825;fill-opacity:.28}
svg .takeover{fill:var(--info)} svg .mark-split{fill:var(--err)} svg .mark-gap{fill:#e09100}
svg .axis{stroke:#9aa5b1;stroke-width:1} svg .tick{stroke:#9aa5b1} svg .grid{stroke:#e3e8ee;stroke-dasharray:2 3}
svg text{font-size:12px;fill:#1b1f24} svg text.tl{fill:var(--mute);font-size:11px}
.legend{display:flex;gap:16px;flex-wrap:wrap;font-size:12px;color:var(--mute);margin:2px 0 8px}
.sw{display:inline-block;width:14px;height:10px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.finding{border-left:4px solid var(--line);padding:8px 12px;margin:10px 0;background:#fff;border-radius:4px}
.finding.error{border-left-color:var(--err)} .finding.warning{border-left-color:#e09100} .finding.info{border-left-color:var(--info)}
.finding .msg{margin:4px 0} details{margin-top:6px} summary{cursor:pointer;color:var(--info)}
pre{background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:8px 10px;overflow:auto;font-size:12.5px}
.page h1,.page h2,.page h3{font-size:15px;margin:12px 0 4px} .page{font-size:13.5px}
nav a{margin-right:12px} a{color:var(--info)} ul.headline{margin:8px 0 0;padding-left:18px}
"""


def render(doc: dict, clock: Clock | None = None) -> str:
    return "".join(pieces(doc, clock))


def pieces(doc: dict, clock: Clock | None = None) -> Iterator[str]:
    """The page in pieces, written as they are made (a report of thousands of groups is not
    held twice in memory)."""
    clock = clock or Clock()
    hosts = doc.get("hosts") or {}
    findings = doc.get("findings") or []
    groups = doc.get("groups") or []
    yield _head(doc, clock)
    yield _summary(doc, clock, hosts)
    roles = host_roles(doc)
    if roles:
        yield ('<section class="card"><h2>Hosts</h2><ul>' + "".join(
            f'<li class="lvl-{esc(lvl)}">{esc(t)}</li>' for lvl, t in roles) + "</ul></section>")
    for _seg, gs, t0, t1 in segments(groups):
        for g in gs:
            yield _group(g, findings, t0, t1, clock, hosts)
    yield from _findings(findings, clock, hosts)
    yield (f'<p class="sub">carpscope {esc(doc.get("carpscope", __version__))} · times in '
           f'{esc(clock.zone())} · frame numbers as in the report ({esc(doc.get("packet_numbering", "filtered"))} '
           "numbering: see the README)</p></main></body></html>\n")


def _head(doc: dict, clock: Clock) -> str:
    names = [s["name"] for s in doc.get("sources") or []] or list(doc.get("configs") or [])
    title = "carpscope report: " + ", ".join(names) if names else "carpscope report"
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>")


def _summary(doc: dict, clock: Clock, hosts: dict) -> str:
    findings = doc.get("findings") or []
    counts = {s: sum(1 for f in findings if f["severity"] == s) for s in SEVERITIES}
    pills = "".join(f'<span class="pill {s}">{n} {s}{"s" if n != 1 else ""}</span>' for s, n in counts.items() if n)
    if not findings:
        pills = '<span class="pill ok">no findings</span>'
    srcs = doc.get("sources") or []
    rows = "".join(
        f'<tr><td class="mono">{esc(s["name"])}</td><td class="num">{s["packets"]}</td><td class="num">{s["adverts"]}</td>'
        f'<td class="num">{s["malformed"]}</td><td>{esc(s.get("linktype") or "")}'
        + (f' <span class="lvl-warning">stopped early: {esc(s["error"])}</span>' if s.get("error") else "")
        + "</td></tr>" for s in srcs)
    out = ['<header class="card"><h1>carpscope report</h1>']
    times = [t for g in doc.get("groups") or [] for s in g["speakers"] for t in (s["first_seen"], s["last_seen"])
             if t is not None]
    if times:
        out.append(f'<div class="sub">{esc(clock.iso(min(times)))} to {esc(clock.iso(max(times)))}</div>')
    out.append(f'<div class="verdict">{pills}</div>')
    if doc.get("interrupted"):
        out.append(f'<div class="lvl-warning">interrupted ({esc(doc["interrupted"])}): reading stopped early; '
                   "this report covers only what was read</div>")
    top = [f for f in findings if f["severity"] != "info"][:8]
    if top:
        out.append('<ul class="headline">' + "".join(
            f'<li><span class="lvl-{esc(f["severity"])}">{esc(f["code"])} {esc(f["rule"])}</span> '
            f'<a href="#f{i}">{esc(_where(f))}</a></li>' for i, f in enumerate(findings) if f in top) + "</ul>")
    if srcs:
        out.append('<h3>Captures</h3><table><tr><th>file</th><th>frames</th><th>adverts</th><th>malformed</th>'
                   f"<th>link type</th></tr>{rows}</table>")
    gs = doc.get("groups") or []
    if gs:
        out.append('<h3>Groups</h3><table><tr><th>group</th><th>segment</th><th>VIPs</th><th>master at the end</th>'
                   "<th>speakers</th><th>findings</th></tr>")
        for g in gs:
            mine = group_findings(g, findings)
            at_end = g.get("masters_at_end") or []
            cls = "two" if len(at_end) > 1 else "master"
            worst = next((s for s in SEVERITIES if any(f["severity"] == s for f in mine)), None)
            fcell = (f'<span class="pill {worst}">{len(mine)}</span>' if worst else '<span class="dim">none</span>')
            out.append(f'<tr><td><a href="#{_gid(g)}">{esc(group_name(g))}</a></td><td class="mono">{esc(g["segment"])}</td>'
                       f'<td class="mono">{esc(", ".join(group_vips(g)) or "-")}</td>'
                       f'<td class="mono {cls}">{esc(" + ".join(named(m, hosts) for m in at_end) or "none")}</td>'
                       f'<td class="num">{len(g["speakers"])}</td><td>{fcell}</td></tr>')
        out.append("</table>")
    elif srcs:
        out.append("<p>No CARP or VRRP advertisements found.</p>")
    out.append("</header>")
    return "".join(out)


def _gid(g: dict) -> str:
    raw = f"g-{g['protocol']}-{g['family']}-{g['vhid']}-{g['segment']}"
    return re.sub(r"[^A-Za-z0-9_-]", "_", raw)


def _group(g: dict, findings: list[dict], t0: float, t1: float, clock: Clock, hosts: dict) -> str:
    vips = group_vips(g)
    out = [f'<section class="card group" id="{esc(_gid(g))}" data-protocol="{esc(g["protocol"])}" '
           f'data-vhid="{g["vhid"]}" data-segment="{esc(g["segment"])}">'
           f'<h2>{esc(group_name(g))} <span class="sub mono">on {esc(g["segment"])}'
           + (f" · VIP{'s' if len(vips) > 1 else ''} {esc(', '.join(vips))}" if vips else "") + "</span></h2>"]
    out.append(timeline_svg(g, findings, t0, t1, clock, hosts))
    out.append('<div class="legend"><span><i class="sw" style="background:#2e7d32"></i>advertising as master</span>'
               '<span><i class="sw" style="background:#c62828"></i>split brain (both master)</span>'
               '<span><i class="sw" style="background:rgba(249,168,37,.45)"></i>no master</span>'
               '<span style="color:#1565c0">▼</span><span>mastership change</span>'
               '<span style="color:#e09100">▼</span><span>last advert of a master</span>'
               '<span>hover for times and frame numbers</span></div>')
    out.append('<table class="speakers"><tr><th>speaker</th><th>role</th><th>MAC</th><th>timing</th><th>auth</th>'
               "<th>adverts</th><th>period</th><th>first seen</th><th>last seen</th></tr>")
    at_end = g.get("masters_at_end") or []
    for s in g["speakers"]:
        role = ('<span class="two">MASTER</span>' if s["ip"] in at_end and len(at_end) > 1 else
                '<span class="master">master</span>' if s["ip"] in at_end else '<span class="dim">stopped</span>')
        ps = s.get("period")
        period = f"{ps['mean']:.2f} ± {ps['jitter']:.2f} s" if ps else "-"
        out.append(f'<tr><td class="mono">{esc(named(s["ip"], hosts))}</td><td>{role}</td>'
                   f'<td class="mono">{esc(s.get("mac") or "-")}</td><td class="nw">{esc(_timing(g, s))}</td><td>{_auth(g, s)}</td>'
                   f'<td class="num">{s["adverts"]}</td>'
                   f'<td class="nw">{esc(period)}</td>'
                   f'<td class="mono" title="{esc(clock.iso(s.get("first_seen")))}">{esc(clock.clock(s.get("first_seen")))}</td>'
                   f'<td class="mono" title="{esc(clock.iso(s.get("last_seen")))}">{esc(clock.clock(s.get("last_seen")))}</td></tr>')
    out.append("</table>")
    notes = intent_lines(g, hosts)
    if notes:
        out.append("<ul>" + "".join(f'<li class="lvl-{esc(lvl)}">{esc(t)}</li>' for lvl, t in notes) + "</ul>")
    evs = group_events(g, findings, hosts, clock)
    out.append('<h3>Events</h3><table class="events"><tr><th>time</th><th>what happened</th><th>frame</th></tr>')
    for e in evs:
        out.append(f'<tr class="event" data-kind="{esc(e.kind)}" data-ts="{e.ts!r}"><td class="mono">{esc(clock.iso(e.ts))}</td>'
                   f'<td class="lvl-{esc(e.level)}">{esc(e.text)}</td><td class="num">{esc(e.packet or "")}</td></tr>')
    out.append("</table></section>")
    return "".join(out)


def _timing(g: dict, s: dict) -> str:
    if g["protocol"] == "carp":
        t = f"advbase {s.get('advbase')} advskew {s.get('advskew')}"
        return t + (f" demote {s['demote']}" if s.get("demote") else "")
    t = f"priority {s.get('priority')}, every {(s.get('interval_cs') or 0) / 100:g} s"
    if len(g.get("protocols") or ()) > 1 and s.get("protocol"):
        t = f"VRRPv{s['protocol'][-1]}, {t}"
    return t


def _auth(g: dict, s: dict) -> str:
    a = s.get("auth") or {}
    st = a.get("status")
    if st == "ok":
        extra = " (VIPs inferred)" if a.get("inferred_vips") else ""
        cls = "lvl-warning" if a.get("weak") else "master"
        return f'<span class="{cls}">ok</span> key {esc(a.get("key"))}{esc(extra)}'
    if st == "fail":
        return '<span class="two">FAIL</span>'
    if st in ("cleartext", "ah"):
        return f'<span class="lvl-warning">{esc("cleartext password" if st == "cleartext" else "AH")}</span>'
    return f'<span class="dim">{esc(st or "-")}</span>'


def timeline_svg(g: dict, findings: list[dict], t0: float, t1: float, clock: Clock, hosts: dict) -> str:
    """The mastership timeline of one group as inline SVG (see the module docstring)."""
    runs = sorted(g.get("masters") or [], key=lambda r: (r["from"], r["ip"]))
    order: list[str] = []
    for r in runs:
        if r["ip"] not in order:
            order.append(r["ip"])
    for s in g.get("speakers") or []:
        if s["ip"] not in order:
            order.append(s["ip"])
    x0, x1 = LABEL_W, W - RIGHT_PAD
    span = max(t1 - t0, 1e-3)

    def x(t: float) -> float:
        return x0 + (t - t0) / span * (x1 - x0)

    lanes_h = len(order) * (LANE_H + LANE_GAP)
    h = TOP + lanes_h + AXIS_H
    ybot = TOP + lanes_h - LANE_GAP / 2
    o = [f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {_num(h)}" role="img" '
         f'aria-label="{esc(group_name(g))} mastership timeline" data-t0="{t0!r}" data-t1="{t1!r}" '
         f'data-x0="{x0}" data-x1="{x1}">']
    marks = []
    for t, lab in ticks(t0, t1, span * 95 / (x1 - x0), clock):
        xt = x(t)
        o.append(f'<line class="grid" x1="{_num(xt)}" y1="{TOP - 6}" x2="{_num(xt)}" y2="{_num(ybot)}"/>')
        marks.append(f'<line class="tick" x1="{_num(xt)}" y1="{_num(ybot)}" x2="{_num(xt)}" y2="{_num(ybot + 5)}"/>'
                     f'<text class="tl tick-label" data-ts="{t!r}" x="{_num(xt)}" y="{_num(ybot + 18)}" '
                     f'text-anchor="middle">{esc(lab)}</text>')
    lane_y = {ip: TOP + i * (LANE_H + LANE_GAP) for i, ip in enumerate(order)}
    for ip, y in lane_y.items():
        o.append(f'<rect class="lane-bg" x="{x0}" y="{y}" width="{x1 - x0}" height="{LANE_H}" rx="3"/>')
    o += _bands(g, findings, runs, x, clock, hosts, lanes_h)
    for ip, y in lane_y.items():
        label = named(ip, hosts)
        o.append(f'<g class="lane" data-speaker="{esc(ip)}"><text x="{x0 - 8}" y="{_num(y + LANE_H / 2 + 4)}" '
                 f'text-anchor="end">{esc(label)}</text>')
        for r in runs:
            if r["ip"] != ip:
                continue
            w = max(x(r["to"]) - x(r["from"]), 1.5)
            tip = (f"{label} advertising as master\n{clock.iso(r['from'])} to {clock.iso(r['to'])} "
                   f"({r['to'] - r['from']:.3f} s, {r.get('adverts')} adverts)\n"
                   f"frames {r.get('first_packet')} to {r.get('last_packet')}")
            o.append(f'<rect class="run" data-from="{r["from"]!r}" data-to="{r["to"]!r}" '
                     f'data-first-packet="{esc(r.get("first_packet"))}" data-last-packet="{esc(r.get("last_packet"))}" '
                     f'x="{_num(x(r["from"]))}" y="{y + 3}" width="{_num(w)}" height="{LANE_H - 6}" rx="2">'
                     f"<title>{esc(tip)}</title></rect>")
        o.append("</g>")
    # the part of each split-brain window on each of its two lanes, in red over the runs
    for f in group_findings(g, findings):
        if f["rule"] != "split-brain":
            continue
        for w in (f.get("evidence") or {}).get("windows") or []:
            for ip in (f.get("evidence") or {}).get("speakers") or []:
                for r in (r for r in runs if r["ip"] == ip and ip in lane_y):
                    a, b = max(w["from"], r["from"]), min(w["to"], r["to"])
                    if b < a:
                        continue
                    o.append(f'<rect class="run-split" data-speaker="{esc(ip)}" data-from="{a!r}" '
                             f'data-to="{b!r}" x="{_num(x(a))}" y="{lane_y[ip] + 3}" '
                             f'width="{_num(max(x(b) - x(a), 1.5))}" height="{LANE_H - 6}" rx="2">'
                             f"<title>{esc(named(ip, hosts))} master during the split brain\n"
                             f"{esc(clock.iso(a))} to {esc(clock.iso(b))}</title></rect>")
    o += _markers(g, findings, x, clock, hosts)
    o.append(f'<line class="axis" x1="{x0}" y1="{_num(ybot)}" x2="{x1}" y2="{_num(ybot)}"/>')
    o += marks
    o.append("</svg>")
    return "".join(o)


def _bands(g: dict, findings: list[dict], runs: list[dict], x, clock: Clock, hosts: dict, lanes_h: float) -> list[str]:
    """Bands across the lanes: times without a master (between the first and the last run) and
    split-brain windows."""
    o = []
    ends = sorted((r["from"], r["to"]) for r in runs)
    covered_to = ends[0][1] if ends else None
    for a, b in ends[1:]:
        if a > covered_to:
            w = x(a) - x(covered_to)
            tip = f"no master for {a - covered_to:.3f} s\n{clock.iso(covered_to)} to {clock.iso(a)}"
            o.append(f'<rect class="gap" data-from="{covered_to!r}" data-to="{a!r}" x="{_num(x(covered_to))}" '
                     f'y="{TOP - 4}" width="{_num(max(w, 1.5))}" height="{_num(lanes_h)}"><title>{esc(tip)}</title></rect>')
            if w > 70:
                o.append(f'<text class="tl band-label" x="{_num(x(covered_to) + w / 2)}" y="{_num(TOP - 4 + lanes_h / 2 + 4)}" '
                         f'text-anchor="middle">no master {a - covered_to:.1f} s</text>')
        covered_to = max(covered_to, b)
    for f in group_findings(g, findings):
        if f["rule"] != "split-brain":
            continue
        pair = (f.get("evidence") or {}).get("speakers") or []
        for w in (f.get("evidence") or {}).get("windows") or []:
            tip = (f"SPLIT BRAIN: {' and '.join(named(p, hosts) for p in pair)} both master\n"
                   f"{clock.iso(w['from'])} to {clock.iso(w['to'])} ({w['to'] - w['from']:.3f} s)"
                   + (f"\nlikely cause: {f['cause']}" if f.get("cause") else "")
                   + (f"\nframes {', '.join(str(p) for p in f.get('packets') or [])}"
                      f"{left_out(len(f.get('packets') or []), packets_total(f))}" if f.get("packets") else ""))
            o.append(f'<rect class="split" data-from="{w["from"]!r}" data-to="{w["to"]!r}" x="{_num(x(w["from"]))}" '
                     f'y="{TOP - 4}" width="{_num(max(x(w["to"]) - x(w["from"]), 1.5))}" height="{_num(lanes_h)}">'
                     f"<title>{esc(tip)}</title></rect>")
    return o


def _markers(g: dict, findings: list[dict], x, clock: Clock, hosts: dict) -> list[str]:
    """Mastership changes and other events as triangles above the lanes."""
    o = []
    for e in group_events(g, findings, hosts, clock):
        if e.kind in ("end", "split-brain-end"):
            continue
        cls = {"split-brain": "mark-split", "stopped": "mark-gap"}.get(e.kind, "takeover")
        xe = x(e.ts)
        tip = f"{clock.iso(e.ts)}\n{e.text}" + (f"\nframe {e.packet}" if e.packet else "")
        o.append(f'<path class="marker {cls}" data-kind="{esc(e.kind)}" data-ts="{e.ts!r}" '
                 f'd="M{_num(xe - 6)} {TOP - 16} L{_num(xe + 6)} {TOP - 16} L{_num(xe)} {TOP - 7} Z">'
                 f"<title>{esc(tip)}</title></path>")
    return o


def _findings(findings: list[dict], clock: Clock, hosts: dict) -> Iterator[str]:
    """The findings section, one piece per finding (each rule page rendered once)."""
    from carpscope.rules import lookup, page
    yield '<section class="card" id="findings"><h2>Findings</h2>'
    if not findings:
        yield '<p><span class="pill ok">no findings</span></p>'
    pages: dict[str, str] = {}
    for sev in SEVERITIES:
        for i, f in ((i, x) for i, x in enumerate(findings) if x["severity"] == sev):
            out = []
            out.append(f'<div class="finding {esc(sev)}" id="f{i}" data-rule="{esc(f["rule"])}">'
                       f'<span class="pill {esc(sev)}">{esc(sev)}</span> <b class="mono">{esc(f["code"])}</b> '
                       f'<b>{esc(f["rule"])}</b>')
            where = _where(f)
            if where:
                out.append(f' <span class="sub mono">{esc(where)}</span>')
            out.append(f'<div class="msg">{esc(annotate(f["message"], hosts))}</div><div class="sub">')
            bits = finding_where(f, clock, ", ")
            if f.get("cause"):
                bits.append(f"likely cause: {f['cause']}")
            if f.get("line"):
                bits.append(f"{f.get('source')}:{f['line']}")
            out.append(esc(" · ".join(bits)) + "</div>")
            if f.get("evidence"):
                out.append("<details><summary>evidence</summary><pre>"
                           + esc(json.dumps(f["evidence"], indent=2, default=str)) + "</pre></details>")
            if f["rule"] not in pages:
                rule = lookup(f["rule"])
                text = page(rule) if rule else None
                pages[f["rule"]] = (f'<details class="rule"><summary>rule page: {esc(f["rule"])}</summary>'
                                    f'<div class="page">{markdown(text)}</div></details>') if text else ""
            out.append(pages[f["rule"]])
            out.append("</div>")
            yield "".join(out)
    yield "</section>"


def _where(f: dict) -> str:
    from carpscope.model import protocol_name
    bits = []
    if f.get("protocol") or f.get("vhid") is not None:
        bits.append(" ".join(str(x) for x in (protocol_name(f["protocol"]) if f.get("protocol") else "id",
                                               f.get("vhid")) if x is not None))
    if f.get("segment"):
        bits.append(f"on {f['segment']}")
    elif f.get("source"):
        bits.append(f"in {f['source']}" + (f":{f['line']}" if f.get("line") else ""))
    return " ".join(bits)


def markdown(text: str) -> str:
    """The rule pages' Markdown subset as HTML: headings, paragraphs, lists, fenced code,
    inline code and bold. Escaped first: nothing in a page becomes markup by accident."""
    out: list[str] = []
    para: list[str] = []
    items: list[str] = []
    lines = text.splitlines()
    i = 0

    def inline(s: str) -> str:
        s = esc(s)
        s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
        return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", s)

    def flush() -> None:
        if para:
            out.append("<p>" + inline(" ".join(para)) + "</p>")
            para.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{inline(x)}</li>" for x in items) + "</ul>")
            items.clear()
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            flush()
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            out.append("<pre>" + esc("\n".join(lines[i + 1:j])) + "</pre>")
            i = j + 1
            continue
        m = re.match(r"(#{1,6})\s+(.*)", line)
        if m:
            flush()
            level = min(len(m.group(1)) + 2, 6)
            out.append(f"<h{level}>{inline(m.group(2))}</h{level}>")
        elif re.match(r"\s*[-*]\s+", line):
            if para:
                flush()
            items.append(re.sub(r"^\s*[-*]\s+", "", line))
        elif not line.strip():
            flush()
        elif items and line.startswith("  "):
            items[-1] += " " + line.strip()
        else:
            if items:
                flush()
            para.append(line.strip())
        i += 1
    flush()
    return "".join(out)
