"""The text report for a terminal (rich): groups per segment, a timeline per group, findings."""
from __future__ import annotations

import datetime as dt

from rich.console import Console, Group as RGroup
from rich.table import Table
from rich.text import Text

from carpscope.model import CARP, Advert, Severity, protocol_name
from carpscope.report.jsonreport import masters_at_end
from carpscope.track import Group, Speaker

SEV_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
BAR_WIDTH = 48


def ts_text(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def timing(g: Group, s: Speaker) -> str:
    if g.protocol == CARP:
        t = f"base {s.advbase} skew {s.advskew}"
        if s.demote:
            t += f" demote {s.demote}"
        return t
    return f"prio {s.priority} int {(s.interval_cs or 0) / 100:g}s"


def auth_text(g: Group, s: Speaker) -> Text:
    if g.protocol != CARP:
        if g.protocol == "vrrp2" and s.vrrp_auth and s.vrrp_auth[0]:
            return Text("cleartext pw" if s.vrrp_auth[0] == 1 else "AH", style="yellow")
        return Text("-")
    st = s.auth_status()
    if st == "ok":
        t = f"ok {s.auth_key}"
        if s.auth_inferred:
            t += " (VIPs inferred)"
        return Text(t, style="yellow" if s.auth_weak else "green")
    if st == "fail":
        return Text("FAIL", style="bold red")
    return Text("unchecked", style="dim")


def groups_table(segment: str, groups: list[Group], now: float | None = None, hosts: dict | None = None) -> Table:
    """``hosts``: speaker address -> host name (from the configurations given), shown after the address."""
    hosts = hosts or {}
    t = Table(title=f"segment {segment}", title_justify="left", expand=False, show_lines=False)
    for col in ("proto", "id", "master", "speaker", "mac", "timing", "auth", "adverts", "period", "last seen"):
        t.add_column(col, no_wrap=True)
    for g in groups:
        first = True
        now_masters = masters_at_end(g)
        master = Text(", ".join(now_masters), style="bold red") if len(now_masters) > 1 else \
            Text(now_masters[0] if now_masters else (g.master.ip if g.master else "-"))
        for s in sorted(g.speakers.values(), key=lambda s: (s.first, s.ip)):
            ps = s.period_stats()
            period = f"{ps['mean']:.2f}±{ps['jitter']:.2f}s" if ps else "-"
            active = s.run_start is not None
            t.add_row(protocol_name(g.protocol) if first else "", str(g.vhid) if first else "",
                      master if first else "",
                      Text(s.ip + (f" ({hosts[s.ip]})" if s.ip in hosts else ""), style="bold" if active else "dim"),
                      s.mac or "-", timing(g, s), auth_text(g, s),
                      str(s.adverts), period, ts_text(s.last))
            first = False
    return t


def timeline(g: Group, t0: float, t1: float) -> Table:
    span = max(t1 - t0, 1e-6)
    t = Table(show_header=False, box=None, padding=(0, 1))
    t.add_column("who", no_wrap=True)
    t.add_column("bar", no_wrap=True)
    runs = g.timeline()
    order = []
    for r in runs:
        if r.ip not in order:
            order.append(r.ip)
    for ip in order:
        bar = [" "] * BAR_WIDTH
        for r in runs:
            if r.ip != ip:
                continue
            a = int((r.start - t0) / span * (BAR_WIDTH - 1))
            b = int((r.end - t0) / span * (BAR_WIDTH - 1))
            for i in range(a, b + 1):
                bar[i] = "█"
        t.add_row(f"  {ip}", "|" + "".join(bar) + "|")
    return t


def render(report, console: Console, show_timeline: bool = True) -> None:
    for s in report.sources:
        line = f"{s.name}: {s.packets} frames read, {s.adverts} adverts, {s.malformed} malformed"
        if s.linktype:
            line += f" ({s.linktype})"
        console.print(line, highlight=False)
        if s.error:
            console.print(f"  [yellow]stopped early:[/] {s.error}", highlight=False)
    if not report.groups:
        console.print("no CARP or VRRP advertisements found")
    by_seg: dict[str, list[Group]] = {}
    for g in report.groups:
        by_seg.setdefault(g.segment, []).append(g)
    for seg, gs in by_seg.items():
        console.print(groups_table(seg, gs, hosts=getattr(report, "hosts", None)))
        if show_timeline:
            t0 = min(s.first for g in gs for s in g.speakers.values())
            t1 = max(s.last for g in gs for s in g.speakers.values())
            console.print(f"mastership timeline {ts_text(t0)} .. {ts_text(t1)} (UTC)", style="bold", highlight=False)
            for g in gs:
                console.print(f" {protocol_name(g.protocol)} {g.vhid}", highlight=False)
                console.print(timeline(g, t0, t1))
    render_findings(report.findings, console)


def render_findings(findings, console: Console) -> None:
    if not findings:
        console.print("[green]no findings[/]")
        return
    counts = {sev: sum(1 for f in findings if f.severity == sev) for sev in Severity}
    console.print(Text.assemble("findings: ", *[
        Text(f"{n} {sev.value}{'s' if n != 1 else ''}  ", style=SEV_STYLE[sev]) for sev, n in counts.items() if n]))
    for sev in Severity:
        for f in (x for x in findings if x.severity == sev):
            head = Text.assemble((f"{f.severity.value.upper():7} ", SEV_STYLE[sev]), (f"{f.code} ", "bold"),
                                 (f"{f.rule}", "bold"), "  ", f.message)
            console.print(head)
            ev = []
            if f.first_seen is not None:
                ev.append(f"{ts_text(f.first_seen)} .. {ts_text(f.last_seen)}")
            if f.packets:
                ev.append("packets " + ",".join(str(p) for p in f.packets[:10]))
            if f.evidence.get("count", 0) > 1:
                ev.append(f"{f.evidence['count']} times")
            if f.line:
                ev.append(f"{f.source}:{f.line}")
            elif f.source and f.rule.startswith("config-"):
                ev.append(f.source)
            if ev:
                console.print("         " + "; ".join(ev), style="dim", highlight=False)


def advert_line(a: Advert) -> str:
    """One tcpdump-like line per advertisement."""
    vl = f"vlan {'.'.join(map(str, a.vlans))} " if a.vlans else ""
    ck = "ok" if a.checksum_ok else "BAD"
    if a.checksum_variant not in ("plain", "bad"):
        ck += f" ({a.checksum_variant})"
    head = f"{ts_text(a.ts)} #{a.frame} {vl}{a.eth_src or ''} {a.src} > {a.dst} ttl {a.ttl}"
    if a.protocol == CARP:
        body = (f"CARPv{a.version}-advertise vhid {a.vhid} advbase {a.advbase} advskew {a.advskew} "
                f"authlen {a.authlen} demote {a.demote} counter {int.from_bytes(a.counter, 'big')}")
    else:
        body = (f"{protocol_name(a.protocol)} vrid {a.vhid} prio {a.priority} "
                f"intvl {(a.interval_cs or 0) / 100:g}s addrs {','.join(a.addresses)}")
        if a.protocol == "vrrp2":
            body += f" authtype {['none', 'simple', 'ah'][a.auth_type] if a.auth_type in (0, 1, 2) else a.auth_type}"
    return f"{head}: {body}, cksum 0x{a.checksum:04x} {ck}"
