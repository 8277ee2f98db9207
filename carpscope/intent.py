"""Capture against intent: what the inventory / configs say should happen, compared with the wire.

``load_intent(paths, keyring, warnings)`` reads inventories and configs (rc.conf, keepalived.conf,
ucarp lines), feeds their passphrases (by label) and VIP sets to the keyring, and returns an
``Intent`` whose ``findings(groups)`` gives: unexpected-master, unknown-speaker, missing-group,
skew-order (observed values).

Capture segments are named after capture points, inventory segments after networks, so a
captured group is matched to an intended one by protocol and id, and by its speakers' addresses
belonging to the intended segment's network or to the group's hosts.
"""
from __future__ import annotations

import ipaddress

from carpscope.config import ConfigError, inventory_from_configs
from carpscope.model import CARP, Finding, protocol_name
from carpscope.rules import WARNING, declare
from carpscope.track import Group as TGroup

SKEW_ORDER = declare("skew-order", "CS203", WARNING,
                     "The intended primary does not advertise the shortest interval / highest priority", __name__)
UNEXPECTED_MASTER = declare("unexpected-master", "CS405", WARNING,
                            "A host other than the intended primary is master", __name__)
UNKNOWN_SPEAKER = declare("unknown-speaker", "CS406", WARNING,
                          "An address not in the inventory advertises a known group", __name__)
MISSING_GROUP = declare("missing-group", "CS407", WARNING,
                        "An intended group is never advertised", __name__)



def load_intent(paths: list[str], keyring, warnings: list[str]) -> "Intent":
    try:
        inv = inventory_from_configs(paths)
    except ConfigError as e:
        raise ValueError(str(e)) from None
    for g in inv.groups:
        if g.protocol != CARP:
            continue
        seen_sets = set()
        for m in g.members or [None]:
            secret = g.passphrase_of(m) if m is not None else g.passphrase
            vips = g.vips_of(m) if m is not None else g.vips
            if secret is not None and all(k.label != secret.label for k in keyring.keys()):
                owners: set[str] = set()
                if m is not None:
                    host = inv.host(m.host)
                    owners.update(_bare(a) for a in (host.addresses if host else ()))
                    if m.source:
                        owners.add(_bare(m.source))
                try:
                    keyring.add_passphrase(secret.label, secret.reveal(), origin="config",
                                           owners=frozenset(owners), vhids=frozenset((g.id,)))
                except ConfigError as e:
                    warnings.append(f"{e} (that key is not checked)")
            if vips and tuple(sorted(vips)) not in seen_sets:
                seen_sets.add(tuple(sorted(vips)))
                keyring.add_vips(g.id, vips, origin="config")
    return Intent(inv)


class Intent:
    def __init__(self, inventory):
        self.inv = inventory
        self.addr_host: dict[str, str] = {}
        for h in inventory.hosts:
            for a in h.addresses:
                self.addr_host[_bare(a)] = h.name
        for g in inventory.groups:
            for m in g.members:
                if m.source:
                    self.addr_host.setdefault(_bare(m.source), m.host)

    def host_of(self, ip: str) -> str | None:
        return self.addr_host.get(ip)

    def resolvable(self, ip: str) -> bool:
        """Can the inventory say who this is? IPv6 link-local sources (every VRRPv3-over-IPv6
        advert, RFC 5798 §5.1.2.1) are rarely listed, so they are unknown, not foreign."""
        return ip in self.addr_host or not _link_local(ip)

    def intended_groups(self, tg: TGroup) -> list:
        """The inventory groups a captured group is (for reports: names, VIPs, members)."""
        return [ig for ig in self.inv.groups if self._matches(ig, tg)]

    def _matches(self, ig, tg: TGroup) -> bool:
        if ig.protocol not in tg.protocols or ig.id != tg.vhid:
            return False
        net = _network(self.inv.segment(ig.segment), ig.segment)
        members = {m.host for m in ig.members}
        vips = {_bare(v) for v in (ig.vips or ())}
        for sp in tg.speakers.values():
            if self.host_of(sp.ip) in members:
                return True
            if net is not None and _in(sp.ip, net):
                return True
            # VRRP adverts carry the addresses: the intended VIPs identify the group
            if vips and any(_bare(a) in vips for al in sp.addresses for a in al):
                return True
        return net is None and not members

    def _segment_seen(self, segment: str, groups: list[TGroup], matched: set[str]) -> bool:
        """Does the capture show anything of this inventory segment: one of its groups, or a
        speaker from its network (or, when the network is unknown, from its members' hosts)?"""
        if segment in matched:
            return True
        net = _network(self.inv.segment(segment), segment)
        nets, addrs = ([net], set()) if net is not None else ([], set())
        if net is None:
            for ig in self.inv.groups:
                if ig.segment != segment:
                    continue
                for m in ig.members:
                    h = self.inv.host(m.host)
                    for a in (h.addresses if h else ()):
                        if "/" in a:
                            try:
                                nets.append(ipaddress.ip_interface(a.split("%")[0]).network)
                            except ValueError:
                                pass
                        addrs.add(_bare(a))
                    if m.source:
                        addrs.add(_bare(m.source))
        return any(sp.ip in addrs or any(_in(sp.ip, n) for n in nets)
                   for tg in groups for sp in tg.speakers.values())

    def findings(self, groups: list[TGroup]) -> list[Finding]:
        out: list[Finding] = []
        seen_by = {ig.name: [tg for tg in groups if self._matches(ig, tg)] for ig in self.inv.groups}
        matched = {ig.segment for ig in self.inv.groups if seen_by[ig.name]}
        # a group is missing only from a segment the capture covers; a capture that shows no
        # segment at all (no adverts of ours) cannot tell, and every intended group is missing
        covered = {ig.segment for ig in self.inv.groups if self._segment_seen(ig.segment, groups, matched)}
        for ig in self.inv.groups:
            seen = seen_by[ig.name]
            where = dict(protocol=ig.protocol, vhid=ig.id, segment=ig.segment)
            name = f"{protocol_name(ig.protocol)} {ig.id} ({ig.segment})"
            if not seen and covered and ig.segment not in covered:
                continue
            if not seen:
                out.append(MISSING_GROUP.finding(f"{name}: intended in the inventory, never advertised in the "
                                   "capture: every member down, the group not configured, or the capture point "
                                   "does not see the segment", evidence={"group": ig.name}, **where))
                continue
            members = {m.host for m in ig.members}
            primary = ig.intended_primary()
            for tg in seen:
                out += self._speakers(ig, tg, members, name)
                if primary:
                    out += self._mastership(ig, tg, primary, name)
        return out

    def _speakers(self, ig, tg: TGroup, members: set[str], name: str) -> list[Finding]:
        out = []
        for sp in tg.speakers.values():
            host = self.host_of(sp.ip)
            if host is None and not self.resolvable(sp.ip):
                continue
            if host is None or (members and host not in members):
                out.append(UNKNOWN_SPEAKER.finding(f"{name}: {sp.ip} advertises this group but is not one of "
                                   f"its intended members ({', '.join(sorted(members)) or 'none listed'}): another "
                                   "cluster reusing the id, a new box, or a misaddressed member",
                                   protocol=tg.protocol, vhid=tg.vhid, segment=tg.segment,
                                   first_seen=sp.first, last_seen=sp.last, packets=list(sp.frames),
                                   evidence={"speaker": sp.ip, "mac": sp.mac, "host": host}))
        return out

    def _mastership(self, ig, tg: TGroup, primary: str, name: str) -> list[Finding]:
        out = []
        prim = [sp for sp in tg.speakers.values() if self.host_of(sp.ip) == primary]
        others = [sp for sp in tg.speakers.values() if self.host_of(sp.ip) != primary]
        where = dict(protocol=tg.protocol, vhid=tg.vhid, segment=tg.segment)
        # observed ordering: the primary should advertise the best (shortest) interval
        ranked = [o for o in others if _rank(tg, o) is not None]
        if prim and ranked and _rank(tg, prim[0]) is not None:
            p = prim[0]
            better = [o for o in ranked if _rank(tg, o) < _rank(tg, p)]
            tie = [o for o in ranked if _rank(tg, o) == _rank(tg, p)]
            if better or tie:
                who = better or tie
                out.append(SKEW_ORDER.finding(f"{name}: the intended primary {primary} ({p.ip}) advertises "
                                   f"{_timing(tg, p)}, but {', '.join(o.ip + ' ' + _timing(tg, o) for o in who)} "
                                   f"{'is better' if better else 'is equal'}: it will not win the election as intended",
                                   first_seen=min(s.first for s in [p, *who]), last_seen=max(s.last for s in [p, *who]),
                                   evidence={"primary": p.ip, "others": [o.ip for o in who]}, **where))
        master = tg.master
        end = max((s.last for s in tg.speakers.values()), default=0.0)
        prim_active = any(end - s.last <= s.md * 1.1 for s in prim)   # still master at the end
        # a link-local speaker the inventory does not list may be the primary: no verdict
        unsure = any(not self.resolvable(s.ip) for s in tg.speakers.values())
        if (master is not None and self.host_of(master.ip) != primary and not prim_active
                and not (unsure and (not prim or not self.resolvable(master.ip)))):
            p = prim[0] if prim else None
            host = self.inv.host(primary)
            member = ig.member(primary)
            preempt = member.preempt if member and member.preempt is not None else (host.preempt if host else None)
            why = (" Preemption is off for the primary: after a failover it stays backup until the current "
                   "master fails (net.inet.carp.preempt=1 / ucarp --preempt / keepalived without nopreempt)."
                   if preempt is False else "")
            if p is not None:
                heard = f"{primary} ({p.ip}), which advertised until {_clock(p.last)}"
            else:
                addrs = [_bare(a) for a in (host.addresses if host else ())]
                heard = (f"{primary}{' (' + ', '.join(addrs) + ')' if addrs else ''}, which was not heard in the "
                         "capture (down, or a silent backup)")
            out.append(UNEXPECTED_MASTER.finding(f"{name}: {master.ip} ({self.host_of(master.ip) or 'not in the inventory'}) "
                               f"is master at the end of the capture, not the intended primary {heard}.{why}",
                               first_seen=master.first, last_seen=master.last, packets=list(master.frames),
                               evidence={"master": master.ip, "primary": primary, "primary_ip": p.ip if p else None,
                                         "primary_heard": p is not None, "preempt": preempt}, **where))
        return out


def _carp_timing(sp) -> tuple[int, int] | None:
    """The speaker's election values: its latest, or after a bow-out (255/255, a farewell and
    not an election value) the best it advertised before; None if it only ever bowed out."""
    if (sp.advbase, sp.advskew) != (255, 255):
        return sp.advbase or 0, sp.advskew or 0
    rest = [t for t in sp.timings if t != (255, 255) and t[0] is not None]
    return min(rest, key=lambda t: 256 * t[0] + t[1]) if rest else None


def _rank(tg: TGroup, sp):
    """Smaller wins. CARP: the OpenBSD demote count first (a higher count loses whatever the
    skew), then 256*advbase + advskew; VRRP: the higher priority."""
    if tg.protocol == CARP:
        t = _carp_timing(sp)
        return None if t is None else (sp.demote or 0, 256 * t[0] + t[1])
    return None if sp.priority is None else -sp.priority


def _timing(tg: TGroup, sp) -> str:
    if tg.protocol == CARP:
        t = _carp_timing(sp) or (sp.advbase, sp.advskew)
        return f"advbase {t[0]} advskew {t[1]}" + (f" demote {sp.demote}" if sp.demote else "")
    return f"priority {sp.priority}"


def _clock(ts: float) -> str:
    from datetime import datetime, timezone
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%H:%M:%S")


def _bare(addr: str) -> str:
    return addr.split("/")[0].split("%")[0]


def _network(seg, name: str):
    for text in (getattr(seg, "network", None), name):
        if text:
            try:
                return ipaddress.ip_network(text, strict=False)
            except ValueError:
                continue
    return None


def _link_local(ip: str) -> bool:
    try:
        return ipaddress.ip_address(_bare(ip)).is_link_local
    except ValueError:
        return False


def _in(ip: str, net) -> bool:
    try:
        return ipaddress.ip_address(ip) in net
    except ValueError:
        return False
