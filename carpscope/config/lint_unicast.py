"""Lint of unicast adverts: do they reach every other member of the group, and are they accepted?

A member with peers (FreeBSD ``peer``/``peer6``, OpenBSD ``carppeer``, OPNsense ``<peer>``,
keepalived ``unicast_peer``) sends its adverts to those addresses only. What the receivers do,
from their sources:

* keepalived drops an advert whose destination kind (unicast or multicast) is not the one it is
  configured for: "Expected unicast packet but received multicast packet" (``vrrp.c``
  ``vrrp_check_packet``); so does OpenBSD (``carp_proto_input_c``, protocol.md §5.6), and ucarp,
  which has no unicast mode and ignores every advert not sent to its multicast address ("Ignoring
  different multicast ip", ``src/carp.c`` ``packethandler``). FreeBSD does not compare the
  destination, so FreeBSD members with and without peers hear each other.
* keepalived drops a unicast advert whose TTL is outside the ``min_ttl``/``max_ttl`` window of the
  sending peer ("TTL/HL %d from %s not in range"), and one from a source that is not a listed
  peer once a TTL option, ``check_unicast_src`` or the global ``vrrp_check_unicast_src`` is set
  ("unicast source address %s not a unicast peer"); it sends unicast adverts with TTL 255 unless
  ``unicast_ttl`` says otherwise (``vrrp.c``, ``vrrp_parser.c``).
"""
from __future__ import annotations

import ipaddress

from carpscope.config.inventory import Declared, Group, HostConfig, Inventory, Member
from carpscope.rules import ERROR, declare

CONFIG_UNICAST_PEER = declare("config-unicast-peer", "CS513", ERROR,
                              "Unicast adverts do not reach, or are dropped by, a member of the group",
                              __name__)

# drop adverts of the other destination kind, with what they log
STRICT_KIND = {"keepalived": "'Expected multicast packet but received unicast packet'",
               "openbsd": "carp_proto_input_c",
               "ucarp": "'Ignoring different multicast ip'"}


def check(hosts: list[HostConfig], inv: Inventory, ctx) -> None:
    decl: dict[int, Declared] = {id(d.member): d for hc in hosts for d in hc.declared}
    for g in inv.groups:
        for m in g.members:
            d = decl.get(id(m))
            for peer, (lo, hi) in (d.accept_ttl.items() if d else ()):
                if lo > hi:
                    ctx.add(CONFIG_UNICAST_PEER,
                            f"{m.host} accepts adverts for {g.describe()} from {peer} only with "
                            f"min_ttl {lo} > max_ttl {hi}: keepalived discards all of them",
                            g, m.origin("peers"), {"host": m.host, "peer": peer, "min_ttl": lo, "max_ttl": hi})
        if len(g.members) < 2:
            continue
        addrs = {id(m): _addresses(inv, g, m) for m in g.members}
        seen_mix: set[frozenset[int]] = set()
        for a in g.members:
            for b in g.members:
                if a is not b:
                    _pair(g, a, b, decl, addrs, seen_mix, ctx)


def _pair(g: Group, a: Member, b: Member, decl: dict[int, Declared], addrs: dict[int, set[str]],
          seen_mix: set, ctx) -> None:
    """What happens to the adverts ``a`` sends, at ``b``."""
    da, db = decl.get(id(a)), decl.get(id(b))
    a_addr, b_addr = addrs[id(a)], addrs[id(b)]
    if a.peers and not b.peers and (a.implementation in STRICT_KIND or b.implementation in STRICT_KIND):
        pair = frozenset((id(a), id(b)))
        if pair not in seen_mix:
            seen_mix.add(pair)
            strict = sorted({m.implementation for m in (a, b) if m.implementation in STRICT_KIND})
            said = "; ".join(f"{i}: {STRICT_KIND[i]}" for i in strict)
            ctx.add(CONFIG_UNICAST_PEER,
                    f"{a.host} sends its adverts for {g.describe()} unicast (to {', '.join(a.peers)}) while "
                    f"{b.host} uses multicast: {', '.join(strict)} drops adverts of the other kind ({said}), "
                    "so the two never see each other and both become master; configure the peers on every "
                    "member or on none",
                    g, a.origin("peers"), {"host": a.host, "other": b.host, "peers": list(a.peers)},
                    cause="unicast")
        return
    if a.peers and b_addr and not (b_addr & set(a.peers)):
        ctx.add(CONFIG_UNICAST_PEER,
                f"{a.host} sends its adverts for {g.describe()} only to {', '.join(a.peers)}; {b.host} "
                f"({', '.join(sorted(b_addr))}) is not among them, so {b.host} never hears {a.host} and "
                "becomes master too; list every other member's address as a peer",
                g, a.origin("peers"), {"host": a.host, "missing": b.host, "peers": list(a.peers),
                                       "addresses": sorted(b_addr)}, cause="unicast")
        return
    if not (a.peers and b.peers and db is not None):
        return
    if db.check_source and a_addr and not (a_addr & set(b.peers)):
        ctx.add(CONFIG_UNICAST_PEER,
                f"{b.host} accepts unicast adverts for {g.describe()} only from its unicast_peer list "
                f"({', '.join(b.peers)}), which lacks {a.host} ({', '.join(sorted(a_addr))}): keepalived drops "
                f"them ('unicast source address ... not a unicast peer') and {b.host} becomes master too",
                g, b.origin("peers"), {"host": b.host, "missing": a.host, "peers": list(b.peers)},
                cause="unicast")
        return
    sent = _sent_ttl(a, da)
    for addr in sorted(a_addr):
        window = db.accept_ttl.get(addr)
        if window is None or sent is None or window[0] > window[1]:
            continue
        lo, hi = window
        if not lo <= sent <= hi:
            ctx.add(CONFIG_UNICAST_PEER,
                    f"{b.host} accepts adverts for {g.describe()} from {a.host} ({addr}) only with TTL "
                    f"{lo}-{hi} (min_ttl/max_ttl), but {a.host} sends them with TTL {sent}"
                    f"{'' if da and da.send_ttl else ' (keepalived default)'}: keepalived "
                    f"drops them ('TTL/HL {sent} from {addr} not in range') and {b.host} becomes master too",
                    g, b.origin("peers"), {"host": b.host, "from": a.host, "ttl": sent, "window": [lo, hi]},
                    cause="unicast")


def _sent_ttl(m: Member, d: Declared | None) -> int | None:
    """The TTL of ``m``'s unicast adverts when it leaves the host, if the configuration tells."""
    if d is not None and d.send_ttl is not None:
        return d.send_ttl
    if m.implementation == "keepalived" and all(ipaddress.ip_address(p).version == 4 for p in m.peers):
        return 255              # VRRP_IP_TTL; IPv6 uses the socket's default hop limit
    return None


def _addresses(inv: Inventory, g: Group, m: Member) -> set[str]:
    """The addresses ``m`` sends from and is reached at on the group's segment: its configured
    source, else its host's addresses inside the segment's network (empty when unknown)."""
    if m.source:
        return {m.source}
    seg = inv.segment(g.segment)
    host = inv.host(m.host)
    if seg is None or not seg.network or host is None:
        return set()
    net = ipaddress.ip_network(seg.network)
    out = set()
    for a in host.addresses:
        ip = ipaddress.ip_interface(a.split("%", 1)[0]).ip
        if ip.version == net.version and ip in net:
            out.add(str(ip))
    return out
