"""One line (``--adverts``) or one JSON object (``--format jsonl``) per advertisement, with
what only carpscope knows about it: the HMAC verdict and the key label it verified with.

Counters and HMACs are hexadecimal in both forms (the bytes as on the wire).
"""
from __future__ import annotations

from datetime import datetime, timezone

from carpscope.model import CARP, VRRP2, Advert, protocol_name


def iso_time(ts: float, local: bool = False) -> str:
    """ISO 8601 with the date and microseconds, UTC ("Z") unless ``local``."""
    dt = datetime.fromtimestamp(ts, timezone.utc)
    if local:
        return dt.astimezone().isoformat(timespec="microseconds")
    return dt.isoformat(timespec="microseconds").replace("+00:00", "Z")


def auth_fields(result: object) -> dict:
    """The HMAC verdict of one advert: status, key label, flavour (never a secret)."""
    if result is None:
        return {"status": None, "key": None, "flavour": None}
    return {"status": getattr(result, "status", None), "key": getattr(result, "key", None),
            "flavour": getattr(result, "flavour", None)}


def advert_json(a: Advert, result: object = None) -> dict:
    d: dict = {"type": "advert", "frame": a.frame, "ts": round(a.ts, 6), "time": iso_time(a.ts),
               "source": a.source, "segment": a.segment, "protocol": a.protocol, "family": a.family,
               "src": a.src, "dst": a.dst, "ttl": a.ttl, "tos": a.tos, "dscp": a.tos >> 2,
               "ip_id": a.ip_id, "df": a.df if a.family == 4 else None,
               "eth_src": a.eth_src, "eth_dst": a.eth_dst, "vlans": list(a.vlans), "vhid": a.vhid,
               "version": a.version, "msgtype": a.type, "checksum": f"0x{a.checksum:04x}",
               "checksum_ok": a.checksum_ok, "checksum_variant": a.checksum_variant, "length": a.payload_len}
    if a.protocol == CARP:
        d.update(advbase=a.advbase, advskew=a.advskew, authlen=a.authlen, demote=a.demote,
                 counter=(a.counter or b"").hex(), hmac=(a.md or b"").hex(), auth=auth_fields(result))
    else:
        d.update(priority=a.priority, count=a.count, addresses=list(a.addresses), interval_cs=a.interval_cs)
        if a.protocol == VRRP2:
            d.update(auth_type=a.auth_type)
        else:
            d.update(reserved=a.reserved)
    return d


def advert_line(a: Advert, result: object = None, local: bool = False) -> str:
    """One tcpdump-like line per advertisement."""
    vl = f" vlan {'.'.join(map(str, a.vlans))}" if a.vlans else ""
    ck = "ok" if a.checksum_ok else "BAD"
    if a.checksum_variant not in ("plain", "bad"):
        ck += f" ({a.checksum_variant})"
    link = f" {a.eth_src or '-'} > {a.eth_dst or '-'}" if a.eth_src or a.eth_dst else ""
    ip = f"ttl {a.ttl} dscp {a.tos >> 2}"
    if a.family == 4:
        ip += f" id 0x{a.ip_id or 0:04x}{' DF' if a.df else ''}"
    head = f"{iso_time(a.ts, local)} #{a.frame}{vl}{link} {a.src} > {a.dst} {ip}"
    if a.protocol == CARP:
        body = (f"CARPv{a.version}-advertise vhid {a.vhid} advbase {a.advbase} advskew {a.advskew} "
                f"authlen {a.authlen} demote {a.demote} counter 0x{(a.counter or b'').hex()} "
                f"hmac {(a.md or b'').hex()}")
        r = auth_fields(result)
        if r["status"] is None:
            verdict = "hmac unchecked (no key)"
        elif r["status"] == "ok":
            verdict = f"hmac ok key {r['key']} ({r['flavour']})"
        else:
            verdict = f"hmac {r['status']}"
        return f"{head}: {body}, cksum 0x{a.checksum:04x} {ck}, {verdict}"
    body = (f"{protocol_name(a.protocol)} vrid {a.vhid} prio {a.priority} "
            f"intvl {(a.interval_cs or 0) / 100:g}s addrs {','.join(a.addresses)}")
    if a.protocol == VRRP2:
        body += f" authtype {['none', 'simple', 'ah'][a.auth_type] if a.auth_type in (0, 1, 2) else a.auth_type}"
    return f"{head}: {body}, cksum 0x{a.checksum:04x} {ck}"
