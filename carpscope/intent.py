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
from carpscope.model import CARP, Finding
from carpscope.rules.catalogue import finding
from carpscope.track import Group as TGroup

NAMES = {"carp": "CARP", "vrrp2": "VRRPv2", "vrrp3": "VRRPv3"}


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
                try:
                    keyring.add_passphrase(secret.label, secret.reveal(), origin="config")
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

    def _matches(self, ig, tg: TGroup) -> bool:
        if ig.protocol != tg.protocol or ig.id != tg.vhid:
            return False
        net = _network(self.inv.segment(ig.segment), ig.segment)
        members = {m.host for m in ig.members}
        for sp in tg.speakers.values():
            if self.host_of(sp.ip) in members:
                return True
            if net is not None and _in(sp.ip, net):
                return True
        return net is None and not members

    def findings(self, groups: list[TGroup]) -> list[Finding]:
        out: list[Finding] = []
        for ig in self.inv.groups:
            seen = [tg for tg in groups if self._matches(ig, tg)]
            where = dict(protocol=ig.protocol, vhid=ig.id, segment=ig.segment)
            name = f"{NAMES.get(ig.protocol, ig.protocol)} {ig.id} ({ig.segment})"
            if not seen:
                out.append(finding("missing-group", f"{name}: intended in the inventory, never advertised in the "
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
            if host is None or (members and host not in members):
                out.append(finding("unknown-speaker", f"{name}: {sp.ip} advertises this group but is not one of "
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
        if prim and others:
            p = prim[0]
            better = [o for o in others if _rank(tg, o) < _rank(tg, p)]
            tie = [o for o in others if _rank(tg, o) == _rank(tg, p)]
            if better or tie:
                who = better or tie
                out.append(finding("skew-order", f"{name}: the intended primary {primary} ({p.ip}) advertises "
                                   f"{_timing(tg, p)}, but {', '.join(o.ip + ' ' + _timing(tg, o) for o in who)} "
                                   f"{'is better' if better else 'is equal'}: it will not win the election as intended",
                                   first_seen=min(s.first for s in [p, *who]), last_seen=max(s.last for s in [p, *who]),
                                   evidence={"primary": p.ip, "others": [o.ip for o in who]}, **where))
        master = tg.master
        if master is not None and prim and self.host_of(master.ip) != primary:
            p = prim[0]
            host = self.inv.host(primary)
            member = ig.member(primary)
            preempt = member.preempt if member and member.preempt is not None else (host.preempt if host else None)
            why = (" Preemption is off for the primary: after a failover it stays backup until the current "
                   "master fails (net.inet.carp.preempt=1 / ucarp --preempt / keepalived without nopreempt)."
                   if preempt is False else "")
            out.append(finding("unexpected-master", f"{name}: {master.ip} ({self.host_of(master.ip) or 'not in the inventory'}) "
                               f"is master at the end of the capture, not the intended primary {primary} ({p.ip}), "
                               f"which advertised until {_clock(p.last)}.{why}",
                               first_seen=master.first, last_seen=master.last, packets=list(master.frames),
                               evidence={"master": master.ip, "primary": primary, "primary_ip": p.ip,
                                         "preempt": preempt}, **where))
        return out


def _rank(tg: TGroup, sp) -> int:
    if tg.protocol == CARP:
        return 256 * (sp.advbase or 0) + (sp.advskew or 0)
    return -(sp.priority or 0)


def _timing(tg: TGroup, sp) -> str:
    if tg.protocol == CARP:
        return f"advbase {sp.advbase} advskew {sp.advskew}"
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


def _in(ip: str, net) -> bool:
    try:
        return ipaddress.ip_address(ip) in net
    except ValueError:
        return False
