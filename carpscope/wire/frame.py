"""From a captured frame to a pipeline record: Advert, Malformed, AddressHint or None.

``relevant`` says, from the bytes of a frame lying anywhere in a buffer, whether ``decode_frame``
could make a record of it (protocol 112 over IPv4 or IPv6, ARP, an IPv6 neighbour
advertisement): the capture reader asks it about every record so that the frames of a large
capture that carry nothing of interest are never cut out of the read buffer. Both walk the link
and IP headers with the same functions (``link.locate``, ``ip6_upper``), so they cannot disagree
about where a payload is.

The payload is bounded by the IPv4 total length or the IPv6 payload length, so Ethernet
padding never leaks into an advertisement.
"""
from __future__ import annotations

TYPE_CHECKING = False     # typing.TYPE_CHECKING without importing typing at run time (start-up)

from carpscope.model import AddressHint, Advert, Malformed
from carpscope.wire import proto112
from carpscope.wire.link import ETH_ARP, ETH_IP4, ETH_IP6, Link, link_key, locate, mac, parse_link
from carpscope.wire.proto112 import ntop

if TYPE_CHECKING:     # native 64-bit integers where mypyc compiles this module; plain ints otherwise
    from typing import Final
    from mypy_extensions import i64

PROTO: Final = 112
_ICMP6: Final = 58
_NA: Final = 136
_AH: Final = 51
_FRAG: Final = 44
FRAGMENT: Final = -2      # ip6_upper: a non-first fragment, or a first one: see its note
UNKNOWN: Final = -1


def point_name(source: str, link: Link) -> str:
    """Capture point plus VLAN tags."""
    if not link.vlans:
        return source
    return source + "/vlan" + ".".join([str(v) for v in link.vlans])


def segment_name(source: str, link: Link, ifindex: int | None = None) -> str:
    """Capture point plus VLAN tags and the interface: the SLL2 or NFLOG interface index
    (``ifindex``: the interface the segment is named after, by default the frame's own), or
    the interface a pflog header names."""
    if link.ifindex is None:
        if link.ifname is not None:
            return point_name(source, link) + "/" + link.ifname
        return point_name(source, link)
    return point_name(source, link) + f"/if{link.ifindex if ifindex is None else ifindex}"


def ip6_upper(data: bytes, pos: i64, end: i64, nxt: i64) -> tuple[i64, i64]:
    """Walk IPv6 extension headers from ``pos`` (the first one's type ``nxt``) to the upper
    layer: (protocol, its offset); (UNKNOWN, pos) when a header does not fit or is not one we
    walk; (FRAGMENT, pos of the fragment header) for a fragment other than an unfragmented
    one (offset 0 without more fragments is walked through). Native 64-bit integers where
    compiled; the extension headers walked (the fragment header apart) are a literal tuple,
    compiled to comparisons."""
    while nxt != PROTO and nxt != _ICMP6:
        if nxt in (0, 43, 60, 135, 139, 140) or nxt == _AH:
            if pos + 2 > end:
                return UNKNOWN, pos
            hlen: i64 = data[pos + 1]
            hlen = (hlen + 2) * 4 if nxt == _AH else (hlen + 1) * 8
            nxt, pos = data[pos], pos + hlen
        elif nxt == _FRAG:
            if pos + 8 > end:
                return UNKNOWN, pos
            if ((data[pos + 2] << 8) | data[pos + 3]) & 0xFFF9:
                return FRAGMENT, pos
            nxt, pos = data[pos], pos + 8
        else:
            return UNKNOWN, pos
    return nxt, pos


def relevant(linktype: int, data: bytes, start: i64, end: i64) -> bool:
    """Whether ``decode_frame`` could make a record of the frame ``data[start:end]`` (a
    necessary condition, cheap: no object is built; offsets are native 64-bit integers where
    compiled)."""
    et, off = locate(linktype, data, start, end)
    if et == ETH_IP4:
        return end >= off + 10 and data[off + 9] == PROTO
    if et == ETH_IP6:
        if end < off + 40 or data[off] >> 4 != 6:
            return False
        nxt, pos = ip6_upper(data, off + 40, end, data[off + 6])
        if nxt == PROTO:
            return True
        if nxt == FRAGMENT:
            return data[pos] == PROTO
        return nxt == _ICMP6 and pos < end and data[pos] == _NA
    if et == ETH_ARP:
        if end < off + 28:
            return False
        # replies, and requests whose sender is also the target (gratuitous)
        return data[off + 7] == 2 or data[off + 14:off + 18] == data[off + 24:off + 28]
    return False


class Flow:
    """The frames of one sender to one destination on one link: the same link header (MACs,
    VLAN tags, interface) and the same IP addresses. What they share is worked out once — the
    address texts, segment and capture point — and the engine keeps its own per-flow record in
    ``state`` (the group and speaker, the recent packets), so that an advert of a known flow
    costs one lookup instead of one per stage."""

    link: Link
    segment: str
    point: str
    src: str
    dst: str
    ifindex: int
    decoder: Decoder
    state: object

    def __init__(self, link: Link, decoder: Decoder, src: str, dst: str) -> None:
        self.link = link
        self.decoder = decoder
        self.point = point_name(decoder.base, link)
        self.ifindex = -1 if link.ifindex is None else link.ifindex
        self.segment = segment_name(decoder.base, link, decoder.bridged(self.ifindex))
        self.src, self.dst = src, dst
        self.state = None


class Decoder:
    """Decodes the frames of one source (``source``: its name in records; ``point``: the
    capture point its segments are named after, by default the source). Never raises on frame
    bytes: bad input becomes a Malformed record."""

    MAX_FLOWS = 8192      # flows kept (emptied when full: the cache only saves work)

    def __init__(self, source: str, point: str | None = None) -> None:
        self.source = source
        self.base = point or source
        self.flows: dict[bytes, Flow] = {}
        # interfaces of the capturing host found bridged (Linux cooked v2: the same packet
        # recorded on each, as tcpdump -i any does): each names its segment after the first
        # interface of its bridge, so one L2 segment is one segment whatever port it crossed
        self._bridge: dict[int, int] = {}

    def bridged(self, ifindex: int) -> int:
        """The interface a segment seen on ``ifindex`` is named after."""
        seen = self._bridge
        while ifindex in seen and seen[ifindex] != ifindex:
            ifindex = seen[ifindex]
        return ifindex

    def bridge(self, first: int, other: int) -> None:
        """The same packet was recorded on ``first`` and then on ``other``: one segment (named
        after the first interface seen)."""
        a, b = self.bridged(first), self.bridged(other)
        if a == b or a < 0 or b < 0:
            return
        self._bridge.setdefault(a, a)
        self._bridge[b] = a
        self.flows.clear()          # flows made from now on carry the bridge's segment name

    def decode(self, linktype: int, data: bytes, frame: int, ts: float) -> Advert | Malformed | AddressHint | None:
        n = len(data)
        et, off = locate(linktype, data, 0, n)
        if et == ETH_IP4:
            return self._ip4(linktype, data, off, frame, ts)
        if et == ETH_IP6:
            return self._ip6(linktype, data, off, frame, ts)
        if et == ETH_ARP:
            link = parse_link(linktype, data)
            return _arp(data, off, link, frame, ts, self.source, self._segment(link)) if link is not None else None
        return None

    def _segment(self, link: Link) -> str:
        return segment_name(self.base, link, None if link.ifindex is None else self.bridged(link.ifindex))

    def _flow(self, linktype: int, data: bytes, off: int, addrs: bytes) -> Flow:
        """The flow of a frame whose network header is at ``off``, ``addrs`` its source and
        destination addresses (the key: the link, as link_key names it, and the addresses)."""
        key = link_key(linktype, data, off) + addrs
        flows = self.flows
        fl = flows.get(key)
        if fl is None:
            link = parse_link(linktype, data)
            assert link is not None          # locate() found the network layer
            if len(flows) >= self.MAX_FLOWS:
                flows.clear()
            half = len(addrs) // 2
            fl = flows[key] = Flow(link, self, ntop(addrs[:half]), ntop(addrs[half:]))
        return fl

    def _malformed(self, reason: str, link: Link, frame: int, ts: float, family: int | None = None,
                   src: str | None = None, dst: str | None = None, payload: bytes = b"") -> Malformed:
        return Malformed(frame, ts, self.source, self._segment(link), reason, family, src, dst,
                         link.eth_src, link.vlans,
                         payload[1] if len(payload) > 1 else None,
                         payload[0] >> 4 if payload else None)

    def _ip4(self, lt: int, data: bytes, off: int, frame: int, ts: float) -> Advert | Malformed | None:
        n = len(data)
        if n < off + 20:
            if n >= off + 10 and data[off + 9] == PROTO:
                link = parse_link(lt, data)
                return self._malformed("IPv4 header truncated", link, frame, ts, 4) if link is not None else None
            return None
        if data[off + 9] != PROTO:
            return None
        vihl = data[off]
        ihl = (vihl & 0x0F) * 4
        total = (data[off + 2] << 8) | data[off + 3]
        addrs = data[off + 12:off + 20]
        fl = self._flow(lt, data, off, addrs)
        if vihl >> 4 != 4:
            return self._malformed(f"IPv4 ethertype but IP version {vihl >> 4}", fl.link, frame, ts, 4, fl.src, fl.dst)
        if ihl < 20 or total < ihl:
            return self._malformed(f"bad IPv4 header (IHL {ihl}, total length {total})", fl.link, frame, ts, 4,
                                   fl.src, fl.dst)
        frag = (data[off + 6] << 8) | data[off + 7]
        if frag & 0x3FFF:
            return self._malformed("IPv4 fragment (adverts are never fragmented)", fl.link, frame, ts, 4,
                                   fl.src, fl.dst)
        end = off + total
        if end > n:
            return self._malformed(f"truncated: IPv4 length {total} but {n - off} bytes captured",
                                   fl.link, frame, ts, 4, fl.src, fl.dst, data[off + ihl:n])
        link = fl.link
        a = Advert(frame, ts, self.source, fl.segment, 4, fl.src, fl.dst, data[off + 8],
                   eth_src=link.eth_src, eth_dst=link.eth_dst, vlans=link.vlans, point=fl.point,
                   ifindex=fl.ifindex, packet=data[off:end],
                   ip_id=(data[off + 4] << 8) | data[off + 5], tos=data[off + 1], df=bool(frag & 0x4000))
        a.flow = fl
        return self._payload(data[off + ihl:end], 4, addrs, a, link)

    def _ip6(self, lt: int, data: bytes, off: int, frame: int, ts: float) -> Advert | Malformed | AddressHint | None:
        n = len(data)
        if n < off + 40 or data[off] >> 4 != 6:
            return None
        plen = (data[off + 4] << 8) | data[off + 5]
        hlim = data[off + 7]
        end = off + 40 + plen
        nxt, pos = ip6_upper(data, off + 40, min(end, n), data[off + 6])
        if nxt == FRAGMENT:
            if data[pos] == PROTO:
                link = parse_link(lt, data)
                if link is not None:
                    return self._malformed("IPv6 fragment (adverts are never fragmented)", link, frame, ts, 6,
                                           ntop(data[off + 8:off + 24]), ntop(data[off + 24:off + 40]))
            return None
        if nxt == _ICMP6:
            link = parse_link(lt, data)
            return _na(data, pos, min(end, n), link, frame, ts, self.source, self._segment(link)) if link is not None else None
        if nxt != PROTO:
            return None
        addrs = data[off + 8:off + 40]
        fl = self._flow(lt, data, off, addrs)
        if pos > end:
            return self._malformed("IPv6 extension headers longer than the payload", fl.link, frame, ts, 6,
                                   fl.src, fl.dst)
        if end > n:
            return self._malformed(f"truncated: IPv6 payload length {plen} but {n - off - 40} bytes captured",
                                   fl.link, frame, ts, 6, fl.src, fl.dst, data[pos:n])
        tclass = ((data[off] & 0x0F) << 4) | (data[off + 1] >> 4)
        link = fl.link
        a = Advert(frame, ts, self.source, fl.segment, 6, fl.src, fl.dst, hlim,
                   eth_src=link.eth_src, eth_dst=link.eth_dst, vlans=link.vlans, point=fl.point,
                   ifindex=fl.ifindex, packet=data[off:end], tos=tclass)
        a.flow = fl
        return self._payload(data[pos:end], 6, addrs, a, link)

    def _payload(self, payload: bytes, family: int, addrs: bytes, a: Advert, link: Link) -> Advert | Malformed:
        why = proto112.decode_into(payload, family, addrs, a)
        if why is not None:
            return self._malformed(why, link, a.frame, a.ts, family, a.src, a.dst, payload)
        return a


def decode_frame(linktype: int, data: bytes, frame: int, ts: float,
                 source: str) -> Advert | Malformed | AddressHint | None:
    """Decode one frame on its own (tests, tools): a Decoder for this one frame."""
    return Decoder(source).decode(linktype, data, frame, ts)


def _arp(data: bytes, off: int, link: Link, frame: int, ts: float, source: str, segment: str) -> AddressHint | None:
    """ARP replies and gratuitous ARPs (sender IP == target IP) announce who holds an address."""
    if len(data) < off + 28:
        return None
    htype = (data[off] << 8) | data[off + 1]
    ptype = (data[off + 2] << 8) | data[off + 3]
    hlen, plen = data[off + 4], data[off + 5]
    op = (data[off + 6] << 8) | data[off + 7]
    if htype != 1 or ptype != 0x0800 or hlen != 6 or plen != 4:
        return None
    sha, spa = data[off + 8:off + 14], data[off + 14:off + 18]
    tpa = data[off + 24:off + 28]
    if not (op == 2 or spa == tpa) or spa == b"\0\0\0\0":
        return None
    return AddressHint(frame, ts, source, segment, 4, ntop(spa),
                       link.eth_src or mac(sha), mac(sha))


def _na(data: bytes, pos: int, end: int, link: Link, frame: int, ts: float, source: str,
        segment: str) -> AddressHint | None:
    """IPv6 neighbour advertisement: target address and its target link-layer option."""
    if end < pos + 24 or data[pos] != _NA:
        return None
    target = data[pos + 8:pos + 24]
    lladdr = None
    o = pos + 24
    while o + 8 <= end:
        otype, olen = data[o], data[o + 1] * 8
        if olen == 0:
            break
        if otype == 2 and olen >= 8:
            lladdr = mac(data[o + 2:o + 8])
        o += olen
    eth = link.eth_src or lladdr
    if eth is None:
        return None
    return AddressHint(frame, ts, source, segment, 6, ntop(target),
                       eth, lladdr or eth)
