"""Ground truth of a recording: what the daemons said and what the wire shows.

Two independent sources, neither of them carpscope:

* the daemons' own state changes (ucarp's up/down scripts, stamped by the script; keepalived's
  notify FIFO, in its order, stamped when the lab reads it) plus the lab's actions (a process stopped):
  who was MASTER when, and the windows in which two or more were MASTER of one id;
* the recording, read with pcapread (dpkt + struct): adverts per source, priority-0 and
  bow-out adverts, CARP counters sent twice (and by whom), identical copies of one frame,
  gratuitous ARPs.

All times are seconds from the capture start (``t_s``); the capture's start epoch is in the
sidecar, so a reader can compare with carpscope's epoch timestamps.
"""
from __future__ import annotations

import ipaddress
from collections import defaultdict

from .pcapread import Advert, Arp

COPY_WINDOW = 0.05    # s: an identical frame from the same source this soon is a copy, not a resend
END_STATES = {"BACKUP", "STOP", "FAULT", "INIT", "DELETED"}


def _r(x: float) -> float:
    return round(x, 3)


# ---------------------------------------------------------------------------- daemons

def master_intervals(transitions: list[dict], timeline: list[dict], instances: dict[str, dict],
                     end_s: float) -> dict[str, list[dict]]:
    """id -> [{host, src_ip, from_s, to_s, open}] from the daemons' own reports.

    A MASTER report opens an interval; any other state, or the lab stopping that process (a
    killed daemon reports nothing), closes it; an interval still open at the capture stop ends
    there with ``open: true`` (the daemon was still MASTER)."""
    src = {(i["host"], f"{i['protocol']}:{i['vhid']}"): i["src_ip"] for i in instances.values()}
    events = [(t["t_s"], t["host"], t["id"], t["state"]) for t in transitions]
    for a in timeline:
        if a.get("action") == "stop" and a.get("instance") in instances:
            i = instances[a["instance"]]
            events.append((a["t_s"], i["host"], f"{i['protocol']}:{i['vhid']}", "STOPPED"))
    events.sort(key=lambda e: e[0])
    open_: dict[tuple, float] = {}
    out: dict[str, list[dict]] = defaultdict(list)
    for t, host, ident, state in events:
        key = (host, ident)
        if state == "MASTER":
            open_.setdefault(key, t)
        elif key in open_:
            out[ident].append({"host": host, "src_ip": src.get(key), "from_s": _r(open_.pop(key)),
                               "to_s": _r(t), "open": False})
    for (host, ident), t in open_.items():
        out[ident].append({"host": host, "src_ip": src.get((host, ident)), "from_s": _r(t),
                           "to_s": _r(end_s), "open": True})
    return {k: sorted(v, key=lambda x: x["from_s"]) for k, v in sorted(out.items())}


def dual_master_windows(intervals: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """id -> windows in which two or more daemons reported MASTER at once (sweep over the
    interval ends), with the hosts and their source addresses."""
    out: dict[str, list[dict]] = {}
    for ident, ivs in intervals.items():
        points = sorted({p for iv in ivs for p in (iv["from_s"], iv["to_s"])})
        windows: list[dict] = []
        for lo, hi in zip(points, points[1:]):
            mid = (lo + hi) / 2
            live = [iv for iv in ivs if iv["from_s"] <= mid < iv["to_s"]]
            if len(live) < 2:
                continue
            hosts = sorted(iv["host"] for iv in live)
            if windows and windows[-1]["hosts"] == hosts and abs(windows[-1]["to_s"] - lo) < 1e-9:
                windows[-1]["to_s"] = _r(hi)
                windows[-1]["open"] = any(iv["open"] and iv["to_s"] == hi for iv in live)
            else:
                windows.append({"hosts": hosts, "src_ips": sorted({iv["src_ip"] for iv in live}, key=_ip_key),
                                "from_s": _r(lo), "to_s": _r(hi),
                                "open": any(iv["open"] and iv["to_s"] == hi for iv in live)})
        for w in windows:
            w["seconds"] = _r(w["to_s"] - w["from_s"])
        if windows:
            out[ident] = windows
    return out


# ---------------------------------------------------------------------------- wire

def advert_summary(adverts: list[Advert], t0: float) -> dict[str, dict]:
    """id -> source -> counts, first/last, parameters, priority-0 and bow-out adverts."""
    out: dict[str, dict] = defaultdict(dict)
    for a in adverts:
        if a.kind == "unknown":
            continue
        sp = out[a.ident].setdefault(a.src, {"kind": [], "adverts": 0, "first_s": _r(a.ts - t0),
                                             "priority_zero_s": [], "bow_out_s": [], "params": []})
        sp["adverts"] += 1
        sp["last_s"] = _r(a.ts - t0)
        if a.kind not in sp["kind"]:
            sp["kind"].append(a.kind)
        p = ({"advbase": a.advbase, "advskew": a.advskew} if a.kind == "carp"
             else {"version": 2 if a.kind == "vrrp2" else 3, "priority": a.priority,
                   "interval_cs": a.interval_cs})
        if p not in sp["params"]:
            sp["params"].append(p)
        if a.kind != "carp" and a.priority == 0:
            sp["priority_zero_s"].append(_r(a.ts - t0))
        if a.kind == "carp" and a.advbase == 255 and a.advskew == 255:
            sp["bow_out_s"].append(_r(a.ts - t0))
    return {k: dict(sorted(v.items(), key=lambda kv: _ip_key(kv[0]))) for k, v in sorted(out.items())}


def carp_counter_repeats(adverts: list[Advert], t0: float, examples: int = 6) -> dict:
    """CARP adverts whose (counter, HMAC) bytes were already sent, by kind of repeat:

    * ``copy``: the same source again within COPY_WINDOW (a reflection / loop copy);
    * ``other_source``: a different source address (a node that adopted the counter);
    * ``same_source``: the same source later, after it sent other counters (a replay).

    ``continued``: adverts whose counter is the previous advert's (from another source) + 1: a
    node that took over or preempted, continuing from the counter it heard (adoption)."""
    first: dict[bytes, Advert] = {}
    last_by_src: dict[str, Advert] = {}
    kinds = {"copy": 0, "other_source": 0, "same_source": 0}
    continued = 0
    previous: Advert | None = None
    shown: list[dict] = []
    for a in adverts:
        if a.kind != "carp" or len(a.payload) < 36:
            continue
        key = bytes(a.payload[8:36])
        if previous is not None and previous.src != a.src and \
                int.from_bytes(a.payload[8:16], "big") == (int.from_bytes(previous.payload[8:16], "big") + 1) % 2 ** 64:
            continued += 1
        previous = a
        prev = first.get(key)
        if prev is None:
            first[key] = a
        else:
            if prev.src != a.src:
                kind = "other_source"
            elif a.ts - _latest_same(prev, a, last_by_src) <= COPY_WINDOW:
                kind = "copy"
            else:
                kind = "same_source"
            kinds[kind] += 1
            if kind != "copy" and len(shown) < examples:
                shown.append({"kind": kind, "counter": key[:8].hex(), "first_src": prev.src,
                              "first_s": _r(prev.ts - t0), "again_src": a.src, "again_s": _r(a.ts - t0)})
        last_by_src[a.src] = a
    return {"repeats": kinds, "continued": continued, "examples": shown}


def _latest_same(prev: Advert, a: Advert, last_by_src: dict[str, Advert]) -> float:
    """Time of the latest earlier frame of this source with the same bytes (a copy burst
    repeats the previous copy, not only the original)."""
    last = last_by_src.get(a.src)
    if last is not None and bytes(last.payload[8:36]) == bytes(a.payload[8:36]):
        return last.ts
    return prev.ts


def copies(adverts: list[Advert], t0: float) -> dict:
    """Identical frames (same source and payload) repeated within COPY_WINDOW of each other,
    as bursts: when, how many, at what rate; and the advertised interval they multiply."""
    bursts: list[dict] = []
    cur: dict | None = None
    prev: dict[tuple, Advert] = {}
    for a in adverts:
        key = (a.src, bytes(a.payload), a.ifindex)
        p = prev.get(key)
        prev[key] = a
        if p is None or a.ts - p.ts > COPY_WINDOW:
            continue
        if cur and cur["src"] == a.src and cur["_key"] == key and a.ts - cur["_last"] <= COPY_WINDOW:
            cur["frames"] += 1
            cur["_last"] = a.ts
        else:
            cur = {"src": a.src, "id": a.ident, "_key": key, "_first": p.ts, "_last": a.ts, "frames": 2,
                   "interval_s": _interval_s(a)}
            bursts.append(cur)
    out = []
    for b in bursts:
        span = b["_last"] - b["_first"]
        rate = (b["frames"] - 1) / span if span > 0 else None
        out.append({"src": b["src"], "id": b["id"], "from_s": _r(b["_first"] - t0), "to_s": _r(b["_last"] - t0),
                    "frames": b["frames"], "rate_per_s": round(rate, 1) if rate else None,
                    "factor": round(rate * b["interval_s"]) if rate and b["interval_s"] else None})
    total = sum(b["frames"] - 1 for b in out)
    return {"bursts": out, "extra_frames": total}


def _interval_s(a: Advert) -> float | None:
    if a.kind == "carp":
        return (a.advbase or 0) + (a.advskew or 0) / 256
    return a.interval_cs / 100 if a.interval_cs else None


def interface_copies(adverts: list[Advert]) -> dict:
    """For a Linux-cooked capture: on how many interfaces each advert was recorded."""
    seen: dict[tuple, set] = defaultdict(set)
    for a in adverts:
        if a.ifindex is None:
            continue
        seen[(a.src, bytes(a.payload), round(a.ts, 2))].add(a.ifindex)
    per = [len(v) for v in seen.values()]
    return {"ifindexes": sorted({i for v in seen.values() for i in v}),
            "copies_per_advert": sorted(set(per)), "distinct_adverts": len(per)} if per else {}


def garps(arps: list[Arp], t0: float, hosts: dict[str, str]) -> dict:
    """Gratuitous ARPs per announced address (who, when, from which MAC), and for each address
    the closest pair announced from two different MACs."""
    by_ip: dict[str, list[dict]] = defaultdict(list)
    for p in arps:
        if not p.gratuitous:
            continue
        by_ip[p.sender_ip].append({"t_s": _r(p.ts - t0), "ts": p.ts, "mac": p.sender_mac,
                                   "host": hosts.get(p.sender_mac, "virtual-mac" if p.sender_mac.startswith("00:00:5e") else None)})
    out = {}
    for ip, rows in sorted(by_ip.items()):
        rows.sort(key=lambda r: r["ts"])
        closest = None
        for x, y in zip(rows, rows[1:]):
            if x["mac"] != y["mac"]:
                gap = y["ts"] - x["ts"]
                if closest is None or gap < closest["gap_ms"] / 1000:
                    closest = {"gap_ms": round(gap * 1000, 3), "t_s": x["t_s"], "macs": [x["mac"], y["mac"]]}
        out[ip] = {"count": len(rows), "macs": sorted({r["mac"] for r in rows}),
                   "first": [{k: r[k] for k in ("t_s", "mac", "host")} for r in rows[:12]],
                   "closest_two_macs": closest}
    return out


def _ip_key(ip: str):
    a = ipaddress.ip_address(ip)
    return (a.version, int(a))
