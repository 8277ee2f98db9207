"""What a person reads, derived from the JSON report document (jsonreport.report_json): times
in ISO 8601, host names beside addresses, and per group the list of what happened when.

Nothing here looks at the engine's objects: the text report, the HTML report, JUnit and the
live dashboard all read the same document through these helpers, so they say the same thing.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field

from carpscope.model import protocol_name

# an IPv4 or IPv6 address standing alone (not part of a longer address or word)
_ADDR = re.compile(r"(?<![\w:.])(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})(?![\w:.])")


class Clock:
    """Formats epoch seconds for people: ISO 8601 in UTC (``Z``) or in the local zone (with
    its offset). ``tz`` is ``utc`` or ``local``."""

    def __init__(self, tz: str = "utc"):
        if tz not in ("utc", "local"):
            raise ValueError(f"--tz {tz!r}: utc or local")
        self.tz = tz

    def at(self, ts: float) -> dt.datetime:
        t = dt.datetime.fromtimestamp(ts, dt.timezone.utc)
        return t if self.tz == "utc" else t.astimezone()

    def iso(self, ts: float | None, digits: int = 3) -> str:
        """``2026-11-25T17:38:25.046Z`` (UTC) or ``2026-11-25T18:38:25.046+01:00`` (local)."""
        if ts is None:
            return "-"
        t = self.at(ts)
        s = t.isoformat(timespec="milliseconds" if digits == 3 else "microseconds" if digits == 6 else "seconds")
        return s.replace("+00:00", "Z") if self.tz == "utc" else s

    def clock(self, ts: float | None, digits: int = 3) -> str:
        """Time of day only (``17:38:25.046``): where the date is said once nearby."""
        if ts is None:
            return "-"
        t = self.at(ts)
        s = t.strftime("%H:%M:%S")
        if digits:
            s += f".{t.microsecond // 10 ** (6 - digits):0{digits}d}"
        return s

    def day(self, ts: float) -> str:
        return self.at(ts).strftime("%Y-%m-%d")

    def zone(self, ts: float | None = None) -> str:
        """How the zone is named next to clock times: ``UTC`` or ``UTC+01:00`` (local)."""
        if self.tz == "utc":
            return "UTC"
        off = self.at(ts if ts is not None else 0.0).strftime("%z")
        return f"UTC{off[:3]}:{off[3:]}" if off else "local time"

    def offset(self, ts: float) -> float:
        """Seconds east of UTC at ``ts`` (0 for UTC): ticks fall on round local times."""
        off = self.at(ts).utcoffset()
        return off.total_seconds() if off else 0.0


TICKS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
         43200, 86400, 172800, 604800]


def ticks(t0: float, t1: float, min_step: float, clock: Clock) -> list[tuple[float, str]]:
    """Round times between t0 and t1 at least ``min_step`` seconds apart, with their labels
    (clock time; tenths when the step is under a second; dates from a day up). The timelines of
    the text and HTML reports use the same ticks."""
    step = next((s for s in TICKS if s >= min_step), TICKS[-1])
    digits = 1 if step < 1 else 0
    off = clock.offset(t0)
    k = math.ceil((t0 + off) / step - 1e-9)
    out = []
    while True:
        t = k * step - off
        if t > t1 + 1e-9:
            break
        out.append((t, clock.clock(t, digits) if step < 86400 else clock.day(t)))
        k += 1
    return out


def named(addr: str | None, hosts: dict[str, str]) -> str:
    """``10.20.30.2 (fw1)`` when the address has a known host name, else the address."""
    if not addr:
        return "-"
    h = hosts.get(addr)
    return f"{addr} ({h})" if h else addr


def annotate(text: str, hosts: dict[str, str]) -> str:
    """Every known address in ``text`` followed by its host name (once, where not already)."""
    if not hosts:
        return text

    def sub(m: re.Match) -> str:
        a = m.group(0)
        h = hosts.get(a)
        if not h or text[m.end():m.end() + len(h) + 2] == f" ({h}":
            return a
        return f"{a} ({h})"
    return _ADDR.sub(sub, text)


def group_name(g: dict) -> str:
    """``CARP 42``, ``VRRPv3 12 (IPv6)`` for IPv6 groups."""
    return f"{group_protocol(g)} {g['vhid']}" + (" (IPv6)" if g.get("family") == 6 else "")


def group_vips(g: dict) -> list[str]:
    """The group's virtual addresses: intended (inventory, configs), else those its CARP
    adverts verified with, else the addresses its VRRP adverts carry."""
    it = g.get("intent") or {}
    if it.get("vips"):
        return [v.split("/")[0] for v in it["vips"]]
    out: list[str] = []
    for s in g.get("speakers") or []:
        for v in ((s.get("auth") or {}).get("vips") or []) + (s.get("addresses") or []):
            if v not in out:
                out.append(v)
    return out


_BY_GROUP: list = [None, 0, {}]      # the findings list last indexed, its length, (segment, id) -> findings


def group_findings(g: dict, findings: list[dict]) -> list[dict]:
    """The findings about one group (same segment, protocol and id). The list is indexed once
    per report, not scanned once per group (a report of 4,096 groups)."""
    if _BY_GROUP[0] is not findings or _BY_GROUP[1] != len(findings):
        index: dict[tuple, list[dict]] = {}
        for f in findings:
            index.setdefault((f.get("segment"), f.get("vhid")), []).append(f)
        _BY_GROUP[:] = [findings, len(findings), index]
    protos = g.get("protocols") or [g["protocol"]]
    return [f for f in _BY_GROUP[2].get((g["segment"], g["vhid"]), ())
            if f.get("protocol") is None or f["protocol"] in protos]


def segments(groups: list[dict]) -> list[tuple[str, list[dict], float, float]]:
    """The groups by segment, in order of first appearance, with the span of the segment's
    speakers (first to last advert): (segment, groups, t0, t1)."""
    by_seg: dict[str, list[dict]] = {}
    for g in groups:
        by_seg.setdefault(g["segment"], []).append(g)
    out = []
    for seg, gs in by_seg.items():
        times = [t for g in gs for s in g["speakers"] for t in (s["first_seen"], s["last_seen"]) if t is not None]
        out.append((seg, gs, min(times), max(times)))
    return out


def group_protocol(g: dict) -> str:
    """How a group's protocol is named: CARP, VRRPv2, VRRPv3, or VRRPv2+v3 for a mixed VRID."""
    protos = g.get("protocols") or [g["protocol"]]
    if len(protos) > 1:
        return "VRRPv" + "+v".join(sorted(p[-1] for p in protos))
    return protocol_name(protos[0])


def left_out(shown: int, total: int | None) -> str:
    """`` (+21 more)`` when a list was cut, else empty."""
    return f" (+{total - shown} more)" if total is not None and total > shown else ""


def finding_where(f: dict, clock: Clock, sep: str = ",") -> list[str]:
    """When and in which frames a finding was seen, as people read it: its time span and its
    frames (a sample, with how many more)."""
    bits = []
    if f.get("first_seen") is not None:
        bits.append(f"{clock.iso(f['first_seen'])} to {clock.iso(f.get('last_seen'))}")
    pk = f.get("packets") or []
    if pk:
        bits.append("frames " + sep.join(str(p) for p in pk) + left_out(len(pk), packets_total(f)))
    return bits


def packets_total(f: dict) -> int | None:
    """How many packets a finding is about, when its evidence says (its listed packets are a
    sample): folded repeats count ``count``; a split brain the adverts of its windows."""
    ev = f.get("evidence") or {}
    n = len(f.get("packets") or ())
    if isinstance(ev.get("count"), int) and ev["count"] > n:
        return ev["count"]
    wins = ev.get("windows")
    if isinstance(wins, list):
        total = sum(v for w in wins if isinstance(w, dict) for v in (w.get("adverts") or {}).values()
                    if isinstance(v, int))
        if total > n:
            return total
    return n


# ---------------------------------------------------------------------------- events

LEVELS = ("info", "warning", "error")


@dataclass
class Event:
    """One line of a group's event list."""
    ts: float
    kind: str          # master, takeover, failover, stopped, resumed, split-brain, split-brain-end,
                       # demoted, bow-out, resigned, end
    text: str
    level: str = "info"                         # info | warning | error
    speaker: str | None = None
    others: list[str] = field(default_factory=list)
    seconds: float | None = None                # the gap, overlap or window length
    packet: int | None = None                   # a frame number that shows it
    until: float | None = None                  # end of a window (split brain, gap)

    def to_json(self, clock: Clock) -> dict:
        d = {"ts": self.ts, "time": clock.iso(self.ts), "kind": self.kind, "level": self.level, "text": self.text}
        for k in ("speaker", "seconds", "packet", "until"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        if self.others:
            d["others"] = list(self.others)
        return d


_ORDER = {"stopped": 0, "split-brain-end": 1, "master": 2, "failover": 2, "takeover": 2, "resumed": 2,
          "split-brain": 3, "demoted": 4, "bow-out": 4, "resigned": 4, "end": 9}


def _fmt_s(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds >= 0.95 else f"{seconds * 1000:.0f} ms"


def group_events(g: dict, findings: list[dict], hosts: dict[str, str] | None = None,
                 clock: Clock | None = None) -> list[Event]:
    """What happened in a group, in time order: each mastership change with the gap it left
    (the failover time) or the overlap of a takeover, masters that stopped advertising,
    split-brain windows, demotions, bow-outs and resignations, and who is master at the end.

    Derived from the group's ``masters`` runs and ``changes`` and from the findings about it
    (``split-brain`` windows, ``demoted``, ``bow-out``, ``master-gap``)."""
    hosts = hosts or {}
    clock = clock or Clock()
    n = lambda ip: named(ip, hosts)  # noqa: E731
    runs = sorted(g.get("masters") or [], key=lambda r: (r["from"], r["ip"]))
    speakers = {s["ip"]: s for s in g.get("speakers") or []}
    if not runs and not speakers:
        return []
    end = max([s["last_seen"] for s in speakers.values() if s.get("last_seen") is not None]
              + [r["to"] for r in runs])
    interval = {ip: _interval(s) for ip, s in speakers.items()}
    mine = group_findings(g, findings)
    gaps = [f for f in mine if f["rule"] == "master-gap"]
    out: list[Event] = []
    changes = {(c["ts"], c["to"]): c for c in g.get("changes") or []}
    windows = [w["from"] for f in mine if f["rule"] == "split-brain"
               for w in (f.get("evidence") or {}).get("windows") or []]
    for i, r in enumerate(runs):
        c = changes.get((r["from"], r["ip"]))
        before = [o for o in runs[:i] if o["to"] <= r["from"] + 1e-9 or o["ip"] == r["ip"]]
        live = [o for o in runs[:i] if o["ip"] != r["ip"] and o["to"] > r["from"]]
        if c is None and not before and not live:
            kind = "master"
        elif c is not None:
            kind = {"initial": "master", "takeover": "takeover"}.get(c["kind"], "failover")
        else:
            kind = "resumed" if not live else "takeover"
        if kind == "master":
            out.append(Event(r["from"], "master", f"{n(r['ip'])} master (its first advert in the capture)",
                             speaker=r["ip"], packet=r.get("first_packet")))
        elif kind == "takeover":
            if any(abs(w - r["from"]) < 1e-3 for w in windows):
                continue            # the split-brain event that starts here says it
            prev = (c or {}).get("from") or (live[-1]["ip"] if live else None)
            prun = next((o for o in reversed(live) if o["ip"] == prev), None)
            overlap = (min(prun["to"], r["to"]) - r["from"]) if prun else 0.0
            if prun is not None and prun["to"] > r["to"]:
                text = f"{n(r['ip'])} also advertises as master while {n(prev)} is, for {_fmt_s(overlap)}"
            else:
                text = f"{n(r['ip'])} takes over from {n(prev)}"
                if overlap > 0:
                    text += f"; both advertise for {_fmt_s(overlap)}"
            out.append(Event(r["from"], "takeover", text, speaker=r["ip"], others=[prev] if prev else [],
                             seconds=round(overlap, 3), packet=r.get("first_packet")))
        else:
            last = max(before, key=lambda o: o["to"]) if before else None
            gap = r["from"] - last["to"] if last else 0.0
            flagged = [f for f in gaps if last and f.get("first_seen") is not None
                       and abs(f["first_seen"] - last["to"]) < 1e-3]
            if kind == "resumed":
                text = f"{n(r['ip'])} advertises again after {_fmt_s(gap)} of silence"
            else:
                text = (f"{n(r['ip'])} master after {_fmt_s(gap)} without a master "
                        f"(failover time since {n(last['ip']) if last else '?'}'s last advert)")
            if flagged:
                text += ": longer than a takeover needs (master-gap)"
            out.append(Event(r["from"], kind, text, level="warning" if flagged else "info", speaker=r["ip"],
                             others=[last["ip"]] if last else [], seconds=round(gap, 3),
                             packet=r.get("first_packet"), until=None))
        # the end of a run before the end of the capture: the speaker resigned or stopped advertising
        if r.get("resigned"):
            # VRRP priority 0 here; a CARP bow-out has its own finding (the event below)
            if g["protocol"] != "carp":
                still = [o["ip"] for o in runs if o is not r and o["from"] <= r["to"] < o["to"]]
                text = f"{n(r['ip'])} resigns (priority 0): " + (
                    f"{_and([n(x) for x in still])} still master" if still else "a backup takes over at once")
                out.append(Event(r["to"], "resigned", text, speaker=r["ip"], others=still,
                                 packet=r.get("last_packet")))
        elif end - r["to"] > 1.1 * interval.get(r["ip"], 1.0) + 0.1:
            still = [o["ip"] for o in runs if o is not r and o["from"] <= r["to"] < o["to"]]
            text = f"{n(r['ip'])} sends its last advert"
            text += f" ({', '.join(n(x) for x in still)} still master)" if still else " (no other master now)"
            out.append(Event(r["to"], "stopped", text, level="info" if still else "warning", speaker=r["ip"],
                             others=still, packet=r.get("last_packet")))
    for f in mine:
        ev = f.get("evidence") or {}
        rule = f["rule"]
        if rule == "split-brain":
            for w in ev.get("windows") or []:
                pair = list(w.get("speakers") or ev.get("speakers") or [])
                secs = w["to"] - w["from"]
                who = " and ".join(n(x) for x in pair)
                out.append(Event(w["from"], "split-brain", f"SPLIT BRAIN: {who} both master for {_fmt_s(secs)} ("
                                 f"likely cause: {f.get('cause') or 'unknown'})", level="error",
                                 speaker=pair[0] if pair else None, others=pair[1:], seconds=round(secs, 3),
                                 until=w["to"], packet=(f.get("packets") or [None])[0]))
                if not w.get("ongoing") and w["to"] < end - 1e-6:
                    out.append(Event(w["to"], "split-brain-end", f"split brain over: {who} no longer both master",
                                     speaker=pair[0] if pair else None, others=pair[1:]))
        elif rule in ("demoted", "bow-out") and f.get("first_seen") is not None:
            who = ev.get("speaker")
            if rule == "demoted":
                what = (f"demote count {ev['demote']}" if ev.get("demote") else f"advskew {ev.get('advskew')}")
                text = f"{n(who)} demoted ({what}): it loses every election"
            else:
                text = f"{n(who)} bows out (advbase = advskew = 255): a backup takes over at once"
            count = ev.get("count")
            if isinstance(count, int) and count > 1:
                text += f"; {count} adverts until {clock.clock(f.get('last_seen'))}"
            out.append(Event(f["first_seen"], rule, text, level="warning" if rule == "demoted" else "info",
                             speaker=who, packet=(f.get("packets") or [None])[0]))
    at_end = g.get("masters_at_end") or []
    if len(at_end) > 1:
        out.append(Event(end, "end", f"end of capture: {_and([n(x) for x in at_end])} {'both' if len(at_end) == 2 else 'all'} master",
                         level="error", speaker=at_end[0], others=at_end[1:]))
    elif at_end:
        out.append(Event(end, "end", f"end of capture: {n(at_end[0])} master", speaker=at_end[0]))
    else:
        out.append(Event(end, "end", "end of capture: no master advertising", level="warning"))
    out.sort(key=lambda e: (e.ts, _ORDER.get(e.kind, 5)))
    return out


def _interval(s: dict) -> float:
    if s.get("advbase") is not None:
        return (s["advbase"] or 0) + (s.get("advskew") or 0) / 256.0 or 1 / 256
    return (s.get("interval_cs") or 100) / 100.0


# ---------------------------------------------------------------------------- intent

def intent_lines(g: dict, hosts: dict[str, str]) -> list[tuple[str, str]]:
    """(level, text) per intended member: heard or silent, and whether that is as intended."""
    it = g.get("intent")
    if not it:
        return []
    at_end = set(g.get("masters_at_end") or [])
    out = []
    for m in it["members"]:
        addrs = ", ".join(m["addresses"]) or "no address known"
        who = f"{m['host']} ({addrs})"
        master_now = any(hosts.get(a) == m["host"] for a in at_end)
        if m["role"] == "primary":
            if master_now:
                out.append(("info", f"{who}: intended primary, master as intended"))
            elif m["heard"]:
                out.append(("warning", f"{who}: intended primary, heard but not master at the end"))
            else:
                out.append(("warning", f"{who}: intended primary, never heard"))
        elif m["heard"]:
            lvl = "warning" if master_now else "info"
            out.append((lvl, f"{who}: {m['role']}, {'master at the end' if master_now else 'heard'}"))
        else:
            out.append(("info", f"{who}: {m['role']}, silent as intended" if m["role"] == "backup"
                        else f"{who}: {m['role']}, silent"))
    return out


def host_roles(doc: dict) -> list[tuple[str, str]]:
    """One line per inventory host: which groups it masters and backs up, and whether it was
    heard (``hostc (192.168.1.5): backup of CARP 1 and CARP 2, silent as intended``)."""
    roles: dict[str, dict] = {}
    for g in doc.get("groups") or []:
        it = g.get("intent")
        if not it:
            continue
        at_end = set(g.get("masters_at_end") or [])
        for m in it["members"]:
            r = roles.setdefault(m["host"], {"addresses": m["addresses"], "master": [], "backup": [],
                                             "heard": False, "primary": []})
            name = group_name(g)
            if any(doc.get("hosts", {}).get(a) == m["host"] for a in at_end):
                r["master"].append(name)
            elif m["role"] == "primary":
                r["primary"].append(name)
            else:
                r["backup"].append(name)
            r["heard"] = r["heard"] or m["heard"]
    out = []
    for host, r in roles.items():
        bits = []
        if r["master"]:
            bits.append("master of " + _and(r["master"]))
        if r["primary"]:
            bits.append("intended primary of " + _and(r["primary"]) + " but not master")
        if r["backup"]:
            bits.append(("backup of " if len(r["backup"]) == 1 else "backup of both " if len(r["backup"]) == 2
                         else "backup of all of ") + _and(r["backup"]))
        if not r["heard"]:
            bits.append("silent, as intended" if not r["primary"] and not r["master"] else "never heard")
        lvl = "warning" if r["primary"] else "info"
        out.append((lvl, f"{host} ({', '.join(r['addresses']) or 'no address known'}): " + ", ".join(bits)))
    return out


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
