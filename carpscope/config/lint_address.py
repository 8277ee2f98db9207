"""Lint of where the virtual addresses sit: outside their interface's subnets, or claimed by two
groups on one segment.

Both checks read the host configs as parsed (the subnets of each interface are not part of the
inventory) and report at the line that attaches the address.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from carpscope.config.inventory import Group, HostConfig, Inventory, Member
from carpscope.rules import ERROR, WARNING, declare

CONFIG_VIP_OUTSIDE_SUBNET = declare("config-vip-outside-subnet", "CS511", WARNING,
                                    "A VIP lies outside every subnet of its interface", __name__)
CONFIG_VIP_CONFLICT = declare("config-vip-conflict", "CS512", ERROR,
                              "One VIP is configured in different groups on one segment", __name__)


def check(hosts: list[HostConfig], inv: Inventory, ctx) -> None:
    _outside_subnet(hosts, inv, ctx)
    _conflicts(inv, ctx)


def group_of(inv: Inventory, m: Member) -> Group | None:
    """The group a parsed membership was placed in (the merge keeps the Member object)."""
    return next((g for g in inv.groups if any(x is m for x in g.members)), None)


def _outside_subnet(hosts: list[HostConfig], inv: Inventory, ctx) -> None:
    for hc in hosts:
        for d in hc.declared:
            nets = [ipaddress.ip_network(n) for n in d.link.networks]
            if not nets:
                continue          # the configuration does not say which subnets the interface has
            g = group_of(inv, d.member)
            outside = []
            for v in d.member.vips or ():
                ip = ipaddress.ip_address(v)
                same = [n for n in nets if n.version == ip.version]
                if ip.is_link_local or not same:
                    continue
                if not any(ip in n for n in same):
                    outside.append((v, same))
            for v, same in outside:
                m = d.member
                ctx.add(CONFIG_VIP_OUTSIDE_SUBNET,
                        f"{m.host} attaches {v} to {g.describe() if g else f'id {d.id}'} via {m.interface}, "
                        f"whose own subnets are {', '.join(map(str, same))}: no address of the interface is "
                        "in the VIP's subnet, so neighbours reach it only through a route (pfSense before 2.2 "
                        "refuses such a CARP VIP; OpenBSD without carpdev finds no parent for it); correct the "
                        "VIP or add an interface address (an IP alias) in its subnet",
                        g, m.origin("vips"), {"host": m.host, "vip": v, "interface": m.interface,
                                              "subnets": [str(n) for n in same]})


def _conflicts(inv: Inventory, ctx) -> None:
    """A VIP in two groups of one segment: each group elects its own master, so two hosts own
    the address at the same time. The group with the most members (the first on a tie) is taken
    as the intended one; each member of the others is reported."""
    claims: dict[tuple[str, str], list[Group]] = {}
    for g in inv.groups:
        for v in _group_vips(g):
            lst = claims.setdefault((g.segment, v), [])
            if g not in lst:
                lst.append(g)
    reported: set[tuple[int, int]] = set()
    for (segment, vip), groups in claims.items():
        if len(groups) < 2 or len({g.id for g in groups}) < 2:
            continue          # one id on one segment twice: config-vhid-reuse says so
        ref = max(groups, key=lambda g: (len(g.members), -groups.index(g)))
        for g in groups:
            if g is ref:
                continue
            for m in g.members:
                if vip not in (g.vips_of(m) or ()) or (id(g), id(m)) in reported:
                    continue
                ref_member = ref.member(m.host)
                if ref_member is not None and vip in (ref.vips_of(ref_member) or ()):
                    continue      # one host runs both vhids on the address: OpenBSD carpnodes balancing
                reported.add((id(g), id(m)))
                others = [x for x in groups if x is not g]
                holders = "; ".join(f"{', '.join(x.host for x in o.members) or 'the inventory'} "
                                    f"{'have' if len(o.members) > 1 else 'has'} it in {o.describe()}"
                                    for o in others)
                ctx.add(CONFIG_VIP_CONFLICT,
                        f"{m.host} configures {vip} in {g.describe()}, but {holders}: each "
                        f"{g.id_word} elects its own master, so two hosts hold {vip} at once (duplicate "
                        f"address, the MAC in ARP replies flips); use one {g.id_word} for the address on "
                        "every host (a wrong vhid on one node looks like this)",
                        g, m.origin("vhid", "vips"),
                        {"host": m.host, "vip": vip, "groups": [x.name for x in [g, *others]]},
                        cause="vhid-conflict")


def _group_vips(g: Group) -> Iterable[str]:
    seen: dict[str, None] = {}
    for m in g.members:
        for v in g.vips_of(m) or ():
            seen.setdefault(v)
    for v in g.vips or ():
        seen.setdefault(v)
    return seen
