"""split-brain: two masters of one group at once, with the most likely cause from evidence.

Causes are tried from the most to the least conclusive:
  version    a VRRPv2 and a VRRPv3 speaker of one VRID: each version discards the other's
             adverts (RFC 5798 §8.4; keepalived logs "wrong version"), so both are master;
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

from carpscope.model import CARP, VRRP2, Finding, protocol_name
from carpscope.rules import ERROR, declare
from carpscope.track import Group, Speaker

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
    "unknown-vips": "give carpscope the VIP set (--vip VHID=ADDR[,ADDR...], an inventory or the configs) so it "
                    "can check authentication",
    "vhid-conflict": "two unrelated groups use this id on one segment: renumber one of them",
    "version": "run one VRRP version on every member of the VRID (keepalived: the same vrrp_version; "
               "RFC 5798 §8.4 interop needs a v3 router that also sends v2)",
    "vrrp-auth": "set the same authentication (auth_type/auth_pass) on every member",
    "vip-list": "give every member the same virtual_ipaddress list",
}


def _auth_cause(g: Group, a: Speaker, b: Speaker) -> tuple[str, str] | None:
    if g.protocol != CARP:
        return None
    sa, sb = a.auth_status(), b.auth_status()
    if sa == "ok" and sb == "ok":
        if a.auth_key_id != b.auth_key_id:
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
    if a.protocol == b.protocol == VRRP2 and a.vrrp_auth != b.vrrp_auth:
        return "passphrase", f"{a.ip} and {b.ip} send different VRRPv2 authentication"
    la = {x for al in a.addresses for x in al}
    lb = {x for al in b.addresses for x in al}
    if la != lb:
        if la.isdisjoint(lb):
            return "vhid-conflict", "disjoint address lists: two different groups share this VRID"
        return "vip-set", f"address lists differ: {sorted(la)} vs {sorted(lb)}"
    return None


def _unchecked_why(a: Speaker, b: Speaker) -> str:
    """Why authentication cannot explain it: what was missing to check each side."""
    unchecked = [s for s in (a, b) if s.auth_status() == "unchecked"]
    kinds = {s.auth_unchecked_kind for s in unchecked}
    who = " and ".join(s.ip for s in unchecked)
    if kinds == {"unknown-vips"}:
        why = (f"the HMAC of {who} was not checked: a passphrase is known, but no VIP set for this "
               "VHID (the HMAC covers the VIPs; none was given and no gratuitous ARP revealed one)")
    elif "unknown-vips" in kinds:
        why = f"the HMAC of {who} was not checked (no passphrase verifies, or no VIP set is known)"
    else:
        why = f"the HMAC of {who} was not checked: no passphrase is known for it"
    ok = [s for s in (a, b) if s.auth_status() == "ok"]
    if ok:
        by = f"key '{ok[0].auth_key}'" + (" (a well-known default passphrase)" if ok[0].auth_weak else "")
        why += f"; {ok[0].ip} verifies with {by}"
    return why


def diagnose(g: Group, a: Speaker, b: Speaker) -> tuple[str, str]:
    if a.protocol != b.protocol:
        return "version", (f"{a.ip} sends {protocol_name(a.protocol)} and {b.ip} {protocol_name(b.protocol)}: "
                           "each version discards the other's adverts, so neither ever hears a master")
    low = [s for s in (a, b) if s.ttl_min < 255]
    if low:
        s = low[0]
        return "ttl", f"{s.ip}'s adverts arrive with TTL {s.ttl_min}: the other side drops them"
    for check in (_auth_cause, _vrrp_cause):
        r = check(g, a, b)
        if r:
            return r
    if a.protocol == b.protocol == VRRP2 and a.interval_cs != b.interval_cs:
        return "advbase", (f"advertisement intervals differ ({a.ip}: {(a.interval_cs or 0) / 100:g} s, "
                           f"{b.ip}: {(b.interval_cs or 0) / 100:g} s): VRRPv2 receivers discard adverts "
                           "with another interval")
    if g.protocol == CARP and "unchecked" in (a.auth_status(), b.auth_status()):
        return "unknown", _unchecked_why(a, b)
    return "one-way", ("both sides' adverts are well formed, TTL 255 and authenticate alike, yet neither "
                       "yields: each does not receive the other")


def _hint(g: Group, cause: str, why: str = "") -> str:
    if cause == "unknown" and "no VIP set" in why:
        return HINTS["unknown-vips"]
    if g.protocol != CARP:      # VRRP has no HMAC: the CARP wording would mislead
        if cause in ("passphrase", "auth"):
            return HINTS["vrrp-auth"]
        if cause == "vip-set":
            return HINTS["vip-list"]
    return HINTS.get(cause, HINTS["unknown"])


def _hms(ts: float) -> str:
    from datetime import datetime, timezone     # only when there is a split brain to describe
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def split_brain_findings(g: Group) -> list[Finding]:
    """One finding per group with a split brain: every window (each names its pair), their
    total (overlapping windows counted once), and the cause of the pair that overlapped longest."""
    eps = sorted(g.all_episodes(), key=lambda e: (e.start, e.a, e.b))
    if not eps:
        return []
    by_ip = {s.ip: s for s in g.speakers.values()}
    per_pair: dict[tuple[str, str], float] = {}
    for e in eps:
        per_pair[(e.a, e.b)] = per_pair.get((e.a, e.b), 0.0) + e.end - e.start
    ia, ib = max(per_pair, key=lambda k: per_pair[k])
    cause, why = diagnose(g, by_ip[ia], by_ip[ib])
    total, reach = 0.0, None
    for e in eps:                   # the union of the windows
        lo = e.start if reach is None or e.start > reach else reach
        if e.end > lo:
            total += e.end - lo
        reach = e.end if reach is None or e.end > reach else reach
    speakers = sorted({ip for e in eps for ip in (e.a, e.b)})
    first, last = eps[0].start, max(e.end for e in eps)
    ongoing = any(e.ongoing for e in eps)
    who = " and ".join(speakers) if len(speakers) < 3 else ", ".join(speakers[:-1]) + " and " + speakers[-1]
    return [SPLIT_BRAIN.finding(
        f"{g.name}: {who} {'both' if len(speakers) == 2 else 'all'} advertise as "
        f"master for {total:.1f} s ({len(eps)} window{'s' if len(eps) > 1 else ''}, {_hms(first)} to "
        f"{_hms(last)} UTC{', still at the end of the capture' if ongoing else ''}). "
        f"Likely cause: {cause} — {why}. Next: {_hint(g, cause, why)}",
        protocol=g.protocol, vhid=g.vhid, segment=g.segment, first_seen=first, last_seen=last,
        packets=sorted({f for e in eps for f in e.frames})[:10], cause=cause,
        evidence={"speakers": speakers, "seconds": round(total, 3), "ongoing": ongoing,
                  "windows": [{"from": e.start, "to": e.end, "speakers": [e.a, e.b], "adverts": e.adverts,
                               "ongoing": e.ongoing} for e in eps[:10]],
                  "windows_total": len(eps), "why": why})]
