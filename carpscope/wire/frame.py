"""From a captured frame to a pipeline record: Advert, Malformed, AddressHint or None.

IP framing is parsed here with struct (the hot path: dense captures reach hundreds of
thousands of adverts a second); the payload is bounded by the IPv4 total length or the IPv6
payload length, so Ethernet padding never leaks into an advertisement.
"""
from __future__ import annotations

import struct
from socket import AF_INET, AF_INET6, inet_ntop

from carpscope.model import AddressHint, Advert, Malformed
from carpscope.wire import proto112
from carpscope.wire.link import ETH_ARP, ETH_IP4, ETH_IP6, Link, mac, parse_link

PROTO = 112
# IPv6 extension headers walked to reach the upper layer (fragment handled apart)
_EXT = {0, 43, 60, 135, 139, 140}
_AH = 51
_FRAG = 44


def segment_name(source: str, link: Link) -> str:
    """Capture point plus VLAN tags (and the SLL2 interface: `-i any` sees a frame per port)."""
    if not link.vlans and link.ifindex is None:
        return source
    seg = source
    if link.vlans:
        seg += "/vlan" + ".".join(str(v) for v in link.vlans)
    if link.ifindex is not None:
        seg += f"/if{link.ifindex}"
    return seg


# packed address -> text: a capture holds few distinct addresses, and inet_ntop per advert
# was a tenth of decoding. Emptied when full.
_ADDRS: dict[bytes, str] = {}
_MAX_ADDRS = 8192


def _ntop(packed: bytes) -> str:
    text = _ADDRS.get(packed)
    if text is None:
        if len(_ADDRS) >= _MAX_ADDRS:
            _ADDRS.clear()
        text = _ADDRS[packed] = inet_ntop(AF_INET if len(packed) == 4 else AF_INET6, packed)
    return text


def decode_frame(linktype: int, data: bytes, frame: int, ts: float, source: str):
    """Decode one frame. Never raises on frame bytes: bad input becomes a Malformed record."""
    link = parse_link(linktype, data)
    if link is None:
        return None
    et, off = link.ethertype, link.offset
    if et == ETH_IP4:
        return _ip4(data, off, link, frame, ts, source)
    if et == ETH_IP6:
        return _ip6(data, off, link, frame, ts, source)
    if et == ETH_ARP:
        return _arp(data, off, link, frame, ts, source)
    return None


def _malformed(reason, link, frame, ts, source, family=None, src=None, dst=None, payload=b""):
    return Malformed(frame, ts, source, segment_name(source, link), reason, family, src, dst,
                     link.eth_src, link.vlans,
                     payload[1] if len(payload) > 1 else None,
                     payload[0] >> 4 if payload else None)


def _ip4(data, off, link, frame, ts, source):
    n = len(data)
    if n < off + 20:
        if n >= off + 10 and data[off + 9] == PROTO:
            return _malformed("IPv4 header truncated", link, frame, ts, source, 4)
        return None
    vihl = data[off]
    proto = data[off + 9]
    if proto != PROTO:
        return None
    ihl = (vihl & 0x0F) * 4
    total = (data[off + 2] << 8) | data[off + 3]
    ttl = data[off + 8]
    s, d = data[off + 12:off + 16], data[off + 16:off + 20]
    src, dst = _ntop(s), _ntop(d)
    if vihl >> 4 != 4:
        return _malformed(f"IPv4 ethertype but IP version {vihl >> 4}", link, frame, ts, source, 4, src, dst)
    if ihl < 20 or total < ihl:
        return _malformed(f"bad IPv4 header (IHL {ihl}, total length {total})", link, frame, ts, source, 4, src, dst)
    frag = (data[off + 6] << 8) | data[off + 7]
    if frag & 0x3FFF:
        return _malformed("IPv4 fragment (adverts are never fragmented)", link, frame, ts, source, 4, src, dst)
    end = off + total
    if end > n:
        return _malformed(f"truncated: IPv4 length {total} but {n - off} bytes captured",
                          link, frame, ts, source, 4, src, dst, data[off + ihl:n])
    return _advert(data[off + ihl:end], 4, s, d, src, dst, ttl, link, frame, ts, source)


def _ip6(data, off, link, frame, ts, source):
    n = len(data)
    if n < off + 40 or data[off] >> 4 != 6:
        return None
    plen = (data[off + 4] << 8) | data[off + 5]
    nxt = data[off + 6]
    hlim = data[off + 7]
    s, d = data[off + 8:off + 24], data[off + 24:off + 40]
    pos, end = off + 40, off + 40 + plen
    while nxt != PROTO:
        if nxt in _EXT or nxt == _AH:
            if pos + 2 > min(end, n):
                return None
            hlen = (data[pos + 1] + 2) * 4 if nxt == _AH else (data[pos + 1] + 1) * 8
            nxt, pos = data[pos], pos + hlen
        elif nxt == _FRAG:
            if pos + 8 > n:
                return None
            if nxt == _FRAG and (((data[pos + 2] << 8) | data[pos + 3]) & 0xFFF9):
                if data[pos] == PROTO:
                    return _malformed("IPv6 fragment (adverts are never fragmented)", link, frame, ts,
                                      source, 6, inet_ntop(AF_INET6, s), inet_ntop(AF_INET6, d))
                return None
            nxt, pos = data[pos], pos + 8
        elif nxt == 58:
            return _na(data, pos, min(end, n), s, link, frame, ts, source)
        else:
            return None
    src, dst = _ntop(s), _ntop(d)
    if pos > end:
        return _malformed("IPv6 extension headers longer than the payload", link, frame, ts, source, 6, src, dst)
    if end > n:
        return _malformed(f"truncated: IPv6 payload length {plen} but {n - off - 40} bytes captured",
                          link, frame, ts, source, 6, src, dst, data[pos:n])
    return _advert(data[pos:end], 6, s, d, src, dst, hlim, link, frame, ts, source)


def _advert(payload, family, s, d, src, dst, ttl, link, frame, ts, source):
    r = proto112.decode(payload, family, s, d)
    if isinstance(r, str):
        return _malformed(r, link, frame, ts, source, family, src, dst, payload)
    return Advert(frame, ts, source, segment_name(source, link), r.protocol, family, src, dst, ttl,
                  r.vhid, r.version, r.type, r.checksum, r.checksum_ok, r.checksum_variant,
                  len(payload), r.trailing, link.eth_src, link.eth_dst, link.vlans,
                  r.advbase, r.advskew, r.authlen, r.demote, r.counter, r.md,
                  r.priority, r.count, r.addresses, r.auth_type, r.auth_data, r.interval_cs, r.reserved)


def _arp(data, off, link, frame, ts, source):
    """ARP replies and gratuitous ARPs (sender IP == target IP) announce who holds an address."""
    if len(data) < off + 28:
        return None
    htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", data, off)
    if htype != 1 or ptype != 0x0800 or hlen != 6 or plen != 4:
        return None
    sha, spa = data[off + 8:off + 14], data[off + 14:off + 18]
    tpa = data[off + 24:off + 28]
    if not (op == 2 or spa == tpa) or spa == b"\0\0\0\0":
        return None
    return AddressHint(frame, ts, source, segment_name(source, link), 4, inet_ntop(AF_INET, spa),
                       link.eth_src or mac(sha), mac(sha))


def _na(data, pos, end, s, link, frame, ts, source):
    """IPv6 neighbour advertisement: target address and its target link-layer option."""
    if end < pos + 24 or data[pos] != 136:
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
    return AddressHint(frame, ts, source, segment_name(source, link), 6, inet_ntop(AF_INET6, target),
                       eth, lladdr or eth)


def ip_offset(linktype: int, data: bytes) -> int:
    """Where the IP header of a frame that decoded to an advert starts."""
    return parse_link(linktype, data).offset
