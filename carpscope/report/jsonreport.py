"""The JSON report (a contract: see docs/json.md) and JSON lines."""
from __future__ import annotations

import json

from carpscope import __version__
from carpscope.model import CARP, Advert
from carpscope.track import Group, Speaker


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def speaker_json(g: Group, s: Speaker, host: str | None = None) -> dict:
    carp = g.protocol == CARP
    d = {
        "ip": s.ip, "host": host, "mac": s.mac, "adverts": s.adverts,
        "first_seen": _r(s.first), "last_seen": _r(s.last),
        "advbase": s.advbase if carp else None, "advskew": s.advskew if carp else None,
        "priority": None if carp else s.priority, "interval_cs": None if carp else s.interval_cs,
        "auth": {"status": s.auth_status(), "key": s.auth_key, "vips": list(s.auth_vips),
                 "flavour": s.auth_flavour},
        "demote": s.demote if carp else None,
        "ttl_min": s.ttl_min,
        "period": s.period_stats(),
    }
    if carp:
        d["auth"]["inferred_vips"] = s.auth_inferred
        if s.auth_diagnosis:
            d["auth"]["diagnosis"] = s.auth_diagnosis
    else:
        d["addresses"] = sorted({a for al in s.addresses for a in al})
        if g.protocol == "vrrp2" and s.vrrp_auth:
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
    return sorted(s.ip for s in g.speakers.values() if end - s.last <= 1.5 * s.interval + 0.1)


def group_json(g: Group, hosts: dict | None = None) -> dict:
    """``hosts``: speaker address -> host name (from the configurations given), else null."""
    hosts = hosts or {}
    return {
        "segment": g.segment, "protocol": g.protocol, "family": g.family, "vhid": g.vhid,
        "speakers": [speaker_json(g, s, hosts.get(s.ip))
                     for s in sorted(g.speakers.values(), key=lambda s: (s.first, s.ip))],
        "masters": [{"ip": r.ip, "from": _r(r.start), "to": _r(r.end), "adverts": r.adverts,
                     "first_packet": r.first_frame, "last_packet": r.last_frame} for r in g.timeline()],
        "master": g.master.ip if g.master else None,
        "masters_at_end": masters_at_end(g),
        "changes": [{"ts": _r(c[0]), "from": c[1], "to": c[2], "kind": c[3]} for c in g.changes],
    }


def report_json(report) -> dict:
    return {
        "carpscope": __version__,
        "packet_numbering": report.numbering,
        "sources": [{"name": s.name, "packets": s.packets, "adverts": s.adverts, "malformed": s.malformed,
                     "linktype": s.linktype, "error": s.error, "filter": report.filters.get(s.name),
                     "packet_numbering": report.numberings.get(s.name, report.numbering)}
                    for s in report.sources],
        "groups": [group_json(g, getattr(report, "hosts", None)) for g in report.groups],
        "findings": [f.to_json() for f in report.findings],
    }


def dumps(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n"


def advert_json(a: Advert) -> dict:
    d = {"type": "advert", "frame": a.frame, "ts": _r(a.ts), "source": a.source, "segment": a.segment,
         "protocol": a.protocol, "family": a.family, "src": a.src, "dst": a.dst, "ttl": a.ttl,
         "eth_src": a.eth_src, "eth_dst": a.eth_dst, "vlans": list(a.vlans), "vhid": a.vhid,
         "version": a.version, "msgtype": a.type, "checksum": f"0x{a.checksum:04x}",
         "checksum_ok": a.checksum_ok, "checksum_variant": a.checksum_variant, "length": a.payload_len}
    if a.protocol == CARP:
        d.update(advbase=a.advbase, advskew=a.advskew, authlen=a.authlen, demote=a.demote,
                 counter=a.counter.hex(), hmac=a.md.hex())
    else:
        d.update(priority=a.priority, count=a.count, addresses=list(a.addresses), interval_cs=a.interval_cs)
        if a.protocol == "vrrp2":
            d.update(auth_type=a.auth_type)
        else:
            d.update(reserved=a.reserved)
    return d
