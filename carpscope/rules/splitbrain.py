"""split-brain: two masters of one group at once, with the most likely cause from evidence.

Causes are tried from the most to the least conclusive:
  ttl        one side's adverts arrive below TTL 255: receivers drop them, so it is never heard;
  passphrase the two verify under different keys;
  vip-set    the same key, but different VIP sets (the VIPs are inside the HMAC);
  auth       one side's HMAC fails and the evidence cannot say which of the two it is;
  advbase    different VRRPv2 intervals (RFC 3768 §7.1: receivers discard those). CARP receivers
             accept any advbase (the election compares whole intervals and the slower side
             yields), and VRRPv3 backups adopt the master's interval, so there a different
             interval does not explain two masters;
  one-way    everything on the wire would be accepted by the other side, yet neither yields: the
             adverts do not reach one of them (IGMP snooping, hypervisor MAC filtering, a switch);
  unknown    no passphrase known to check authentication.
"""
from __future__ import annotations

from datetime import datetime, timezone

from carpscope.model import CARP, Finding, protocol_name
from carpscope.rules import ERROR, declare
from carpscope.track import Episode, Group, Speaker

SPLIT_BRAIN = declare("split-brain", "CS401", ERROR,
                      "Two or more masters advertise the same group at once", __name__)

HINTS = {
    "ttl": "fix the path so adverts stay on one L2 segment (TTL 255), or use unicast where the "
           "implementation skips the TTL check",
    "passphrase": "set the same passphrase on every member of the group",

    "vip-set": "give every member exactly the same virtual addresses for this VHID (the VIP list is inside the HMAC)",
    "auth": "check passphrase and VIP list on both sides (give carpscope the passphrases to tell which)",
    "advbase": "use the same advbase / advert_int on every member",
    "one-way": "the adverts do not reach one side: check IGMP snooping / multicast filtering on the switch, "
               "hypervisor MAC spoofing / forged transmits settings, and port isolation",
    "unknown": "give carpscope the passphrase (--passphrase-file) so it can check authentication",
    "vhid-conflict": "two unrelated groups use this id on one segment: renumber one of them",
    "vrrp-auth": "set the same authentication (auth_type/auth_pass) on every member",
    "vip-list": "give every member the same virtual_ipaddress list",
}


def _auth_cause(g: Group, a: Speaker, b: Speaker) -> tuple[str, str] | None:
    if g.protocol != CARP:
        return None
    sa, sb = a.auth_status(), b.auth_status()
    if sa == "ok" and sb == "ok":
        if a.auth_key != b.auth_key:
            return "passphrase", f"{a.ip} verifies with key '{a.auth_key}', {b.ip} with '{b.auth_key}'"
        if set(a.auth_vips) != set(b.auth_vips):
            return "vip-set", (f"same key '{a.auth_key}', but {a.ip} signs VIPs {{{', '.join(a.auth_vips)}}} "
                               f"and {b.ip} {{{', '.join(b.auth_vips)}}}")
        return None
    if "fail" in (sa, sb):
        bad = [s for s in (a, b) if s.auth_status() == "fail"]
        good = [s for s in (a, b) if s.auth_status() == "ok"]
        diag = [s.auth_diagnosis for s in bad if s.auth_diagnosis is not None]
        kinds = {d.kind for d in diag}
        if "vip-set" in kinds:
            return "vip-set", "; ".join(d.message for d in diag)
        if good and "passphrase" in kinds:
            return "passphrase", (f"{', '.join(s.ip for s in bad)} verifies with no known passphrase while "
                                  f"{good[0].ip} verifies with '{good[0].auth_key}'")
        return "auth", f"HMAC of {', '.join(s.ip for s in bad)} does not verify with any known key and VIP set"
    return None


def _vrrp_cause(g: Group, a: Speaker, b: Speaker) -> tuple[str, str] | None:
    if g.protocol == CARP:
        return None
    if g.protocol == "vrrp2" and a.vrrp_auth != b.vrrp_auth:
        return "passphrase", f"{a.ip} and {b.ip} send different VRRPv2 authentication"
    la = {x for al in a.addresses for x in al}
    lb = {x for al in b.addresses for x in al}
    if la != lb:
        if la.isdisjoint(lb):
            return "vhid-conflict", "disjoint address lists: two different groups share this VRID"
        return "vip-set", f"address lists differ: {sorted(la)} vs {sorted(lb)}"
    return None


def diagnose(g: Group, a: Speaker, b: Speaker) -> tuple[str, str]:
    low = [s for s in (a, b) if s.ttl_min < 255]
    if low:
        s = low[0]
        return "ttl", f"{s.ip}'s adverts arrive with TTL {s.ttl_min}: the other side drops them"
    for check in (_auth_cause, _vrrp_cause):
        r = check(g, a, b)
        if r:
            return r
    if g.protocol == "vrrp2" and a.interval_cs != b.interval_cs:
        return "advbase", (f"advertisement intervals differ ({a.ip}: {(a.interval_cs or 0) / 100:g} s, "
                           f"{b.ip}: {(b.interval_cs or 0) / 100:g} s): VRRPv2 receivers discard adverts "
                           "with another interval")
    if g.protocol == CARP and "unchecked" in (a.auth_status(), b.auth_status()):
        return "unknown", "authentication not checked (no passphrase known)"
    return "one-way", ("both sides' adverts are well formed, TTL 255 and authenticate alike, yet neither "
                       "yields: each does not receive the other")


def _hint(g: Group, cause: str) -> str:
    if g.protocol != CARP:      # VRRP has no HMAC: the CARP wording would mislead
        if cause in ("passphrase", "auth"):
            return HINTS["vrrp-auth"]
        if cause == "vip-set":
            return HINTS["vip-list"]
    return HINTS.get(cause, HINTS["unknown"])


def _hms(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def split_brain_findings(g: Group) -> list[Finding]:
    out = []
    pairs: dict[tuple, list[Episode]] = {}
    for ep in g.all_episodes():
        pairs.setdefault((ep.a, ep.b), []).append(ep)
    for (ia, ib), eps in pairs.items():
        a = next(s for s in g.speakers.values() if s.ip == ia)
        b = next(s for s in g.speakers.values() if s.ip == ib)
        cause, why = diagnose(g, a, b)
        total = sum(e.end - e.start for e in eps)
        first, last = min(e.start for e in eps), max(e.end for e in eps)
        name = f"{protocol_name(g.protocol)} {g.vhid}"
        out.append(SPLIT_BRAIN.finding(
           
            f"{name}: {ia} and {ib} both advertise as master for {total:.1f} s "
            f"({len(eps)} window{'s' if len(eps) > 1 else ''}, {_hms(first)} to {_hms(last)} UTC). "
            f"Likely cause: {cause} — {why}. Next: {_hint(g, cause)}",
            protocol=g.protocol, vhid=g.vhid, segment=g.segment, first_seen=first, last_seen=last,
            packets=sorted({f for e in eps for f in e.frames})[:10], cause=cause,
            evidence={"speakers": [ia, ib], "seconds": round(total, 3),
                      "windows": [{"from": e.start, "to": e.end, "adverts": e.adverts} for e in eps[:10]],
                      "why": why}))
    return out
