"""The JSON report (a contract: see docs/report.md and the design notes) and JSON lines.

Every other report (text, HTML, JUnit) is rendered from this document, never from the engine's
objects: what a renderer needs is in here. Keys are only ever added (name and type of an
existing key never change); the keys added after the first contract are listed in
docs/report.md.
"""
from __future__ import annotations

import json
TYPE_CHECKING = False     # typing.TYPE_CHECKING without importing typing at run time (start-up)
if TYPE_CHECKING:
    from typing import Iterator

from carpscope import __version__
from carpscope.model import CARP
from carpscope.track import Group, Speaker


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def speaker_json(g: Group, s: Speaker, names: dict[str, str] | None = None) -> dict:
    carp = g.protocol == CARP
    d = {
        "ip": s.ip, "mac": s.mac, "protocol": s.protocol, "adverts": s.adverts,
        "first_seen": _r(s.first), "last_seen": _r(s.last),
        "advbase": s.advbase if carp else None, "advskew": s.advskew if carp else None,
        "priority": None if carp else s.priority, "interval_cs": None if carp else s.interval_cs,
        "auth": {"status": s.auth_status(), "key": s.auth_key, "vips": list(s.auth_vips),
                 "flavour": s.auth_flavour},
        "demote": s.demote if carp else None,
        "ttl_min": s.ttl_min,
        "period": s.period_stats(),
        "host": (names or {}).get(s.ip),
        "frames": list(s.frames),
        "resigned": s.resigned,
        "resigned_at": _r(s.resigned_last) if s.resigned else None,
    }
    if carp:
        d["auth"]["inferred_vips"] = s.auth_inferred
        d["auth"]["weak"] = s.auth_weak
        if s.auth_diagnosis is not None and s.auth_fail:
            # why its failing adverts fail: "diagnosis" when that is its status, else (some
            # adverts failed, most verified) "failed_diagnosis", so the two never contradict
            key = "diagnosis" if s.auth_status() == "fail" else "failed_diagnosis"
            d["auth"][key] = s.auth_diagnosis.to_json()
            d["auth"]["failed"] = s.auth_fail
    else:
        d["addresses"] = sorted({a for al in s.addresses for a in al})
        if s.protocol == "vrrp2" and s.vrrp_auth:
            d["auth"]["status"] = "none" if not s.vrrp_auth[0] else "cleartext" if s.vrrp_auth[0] == 1 else "ah"
    return d


def masters_at_end(g: Group) -> list[str]:
    """Speakers still advertising when the group's last advert was seen: two or more = two masters."""
    if not g.speakers:
        return []
    # a master sends every interval (timers are accurate to a tick): one that has missed half an
    # interval beyond its next advert has stopped (stepped down or died), even before the
    # backups' master-down timers would expire
    end = max(s.last for s in g.speakers.values())
    return sorted(s.ip for s in g.speakers.values() if s.still(end))


def group_json(g: Group, intent=None) -> dict:
    names = intent.addr_host if intent is not None else None
    return {
        "segment": g.segment, "protocol": g.protocol, "protocols": list(g.protocols), "family": g.family,
        "vhid": g.vhid,
        "speakers": [speaker_json(g, s, names) for s in sorted(g.speakers.values(), key=lambda s: (s.first, s.ip))],
        "masters": [{"ip": r.ip, "from": _r(r.start), "to": _r(r.end), "adverts": r.adverts,
                     "first_packet": r.first_frame, "last_packet": r.last_frame, "resigned": r.resigned}
                    for r in g.timeline()],
        "master": g.master.ip if g.master else None,
        "masters_at_end": masters_at_end(g),
        "changes": [{"ts": _r(c[0]), "from": c[1], "to": c[2], "kind": c[3], "packet": c[4]} for c in g.changes],
        "runs_dropped": g.runs_dropped,
        "intent": intent_json(intent, g) if intent is not None else None,
    }


def intent_json(intent, g: Group) -> dict | None:
    """What the inventory or configs intend for this captured group: its name, VIPs, intended
    primary and members (host, addresses, role, whether the capture heard it)."""
    matched = intent.intended_groups(g)
    if not matched:
        return None
    ig = matched[0]
    heard = {intent.host_of(s.ip) for s in g.speakers.values()} - {None}
    primary = ig.intended_primary()
    members = []
    for m in ig.members:
        host = intent.inv.host(m.host)
        addrs = [a.split("/")[0] for a in (host.addresses if host else ())]
        if m.source and m.source not in addrs:
            addrs.append(m.source)
        members.append({"host": m.host, "addresses": addrs,
                        "role": "primary" if m.host == primary else "backup" if primary else "member",
                        "heard": m.host in heard})
    return {"group": ig.name, "segment": ig.segment, "vips": list(ig.vips or ()), "primary": primary,
            "members": members}


def report_json(report, intent=None) -> dict:
    """The document. ``intent`` (intent.Intent, from an inventory or configs) adds host names
    and each group's intended members; without it those keys are empty or null."""
    return {
        "carpscope": __version__,
        "packet_numbering": report.numbering,
        "sources": [{"name": s.name, "packets": s.packets, "adverts": s.adverts, "malformed": s.malformed,
                     "linktype": s.linktype, "error": s.error, "filter": report.filters.get(s.name),
                     "packet_numbering": report.numberings.get(s.name, report.numbering)}
                    for s in report.sources],
        "groups": [group_json(g, intent) for g in report.groups],
        "findings": [f.to_json() for f in report.findings],
        "hosts": dict(sorted(intent.addr_host.items())) if intent is not None else {},
        "interrupted": getattr(report, "interrupted", None),
    }


_ENCODE = json.JSONEncoder(default=str).encode     # no indent: the C encoder does the work


def dumps(obj) -> str:
    """The document as text (``chunks`` joined)."""
    return "".join(chunks(obj))


def chunks(obj) -> Iterator[str]:
    """The document as text, in pieces to be written as they come: one top-level key per line
    and each element of a top-level list (a group, a finding, a source) on its own line,
    compact inside. ``json.dumps(indent=2)`` runs the pure-Python encoder, which holds every
    small piece of a large report at once (half a second and 50 MB on 250 flapping groups, 600
    MB on 8,192 speakers); this is the C encoder per element, and a line per group or finding
    still reads and diffs well (``jq`` for the rest)."""
    if not isinstance(obj, dict):
        yield _ENCODE(obj) + "\n"
        return
    yield "{"
    sep = "\n"
    for k, v in obj.items():
        if isinstance(v, list) and v:
            yield f"{sep}  {_ENCODE(k)}: ["
            inner = "\n"
            for x in v:
                yield inner + "    " + _ENCODE(x)
                inner = ",\n"
            yield "\n  ]"
        else:
            yield f"{sep}  {_ENCODE(k)}: {_ENCODE(v)}"
        sep = ",\n"
    yield "\n}\n"
