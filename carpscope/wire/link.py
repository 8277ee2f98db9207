"""Link layers: find the network-layer bytes inside a captured frame.

Supported (LINKTYPE values as in pcap files; DLT aliases as libpcap reports them):
Ethernet with 802.1Q / 802.1ad / QinQ tags, Linux cooked v1 (SLL) and v2 (SLL2), raw IP,
IPv4, IPv6, BSD null (host byte order) and loopback (network byte order), Frame Relay
(RFC 2427 NLPID/SNAP and Cisco encapsulation).
"""
from __future__ import annotations

from dataclasses import dataclass

ETH_IP4, ETH_IP6, ETH_ARP = 0x0800, 0x86DD, 0x0806
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)

LINKTYPES = {
    0: "NULL", 1: "EN10MB", 12: "RAW", 14: "RAW", 101: "RAW", 107: "FRELAY", 108: "LOOP",
    113: "LINUX_SLL", 228: "IPV4", 229: "IPV6", 276: "LINUX_SLL2",
}
# every name libpcap/pcap files use for link types we do not decode, for a clear error
OTHER_LINKTYPES = {
    6: "IEEE802_5", 9: "PPP", 10: "FDDI", 50: "PPP_HDLC", 104: "C_HDLC", 105: "IEEE802_11",
    117: "PFLOG", 119: "PRISM_HEADER", 127: "IEEE802_11_RADIO", 192: "PPI",
    143: "DOCSIS", 147: "USER0", 220: "USB_LINUX_MMAPPED", 249: "NETLINK", 253: "NETANALYZER",
}
# BSD null/loop address families that mean IPv6 on the various systems that write them
AF_INET6 = (10, 24, 28, 30)


class UnsupportedLinkType(ValueError):
    def __init__(self, linktype: int):
        name = LINKTYPES.get(linktype) or OTHER_LINKTYPES.get(linktype) or "unknown"
        super().__init__(f"unsupported link type {linktype} ({name}); readable: Ethernet, Linux cooked, "
                         "raw IP, BSD null/loopback, Frame Relay")
        self.linktype = linktype


def linktype_name(linktype: int) -> str:
    return LINKTYPES.get(linktype) or OTHER_LINKTYPES.get(linktype) or f"LINKTYPE_{linktype}"


def check_linktype(linktype: int) -> None:
    if linktype not in LINKTYPES:
        raise UnsupportedLinkType(linktype)


def mac(b: bytes) -> str:
    return b.hex(":")


@dataclass(frozen=True, slots=True)
class Link:
    """Network-layer location and link facts of one frame (frozen: frames with the same link
    header share one)."""
    ethertype: int        # 0x0800, 0x86DD, 0x0806 or other; 0 when unknown
    offset: int           # where the network-layer header starts
    eth_src: str | None
    eth_dst: str | None
    vlans: tuple[int, ...]
    ifindex: int | None   # SLL2 only: the interface the frame was captured on


def _ethertype_chain(data: bytes, off: int, ethertype: int) -> tuple[int, int, tuple[int, ...]]:
    vlans = []
    n = len(data)
    while ethertype in VLAN_TPIDS and off + 4 <= n:
        vlans.append(((data[off] << 8) | data[off + 1]) & 0x0FFF)
        ethertype = (data[off + 2] << 8) | data[off + 3]
        off += 4
    return ethertype, off, tuple(vlans)


def _ip_by_version(data: bytes, off: int) -> int:
    if len(data) <= off:
        return 0
    v = data[off] >> 4
    return ETH_IP4 if v == 4 else ETH_IP6 if v == 6 else 0


# Link types whose header (plus VLAN tags) fully determines the Link: (header length, offset
# of the ethertype). A capture holds few distinct headers, so their Links are kept, keyed by
# the header bytes: building the MAC strings for every frame was most of parse_link's cost.
_TAGGED = {1: (14, 12), 113: (16, 14), 276: (20, 0)}
_LINKS: dict[int, dict[bytes, Link]] = {lt: {} for lt in _TAGGED}
_MAX_LINKS = 4096        # per link type; the cache is emptied when full
_RAW = {et: Link(et, 0, None, None, (), None) for et in (ETH_IP4, ETH_IP6, 0)}
_BSD = {et: Link(et, 4, None, None, (), None) for et in (ETH_IP4, ETH_IP6, 0)}


def parse_link(linktype: int, data: bytes) -> Link | None:
    """Locate the network layer; None when the frame is too short for its link header."""
    hdr = _TAGGED.get(linktype)
    if hdr is not None:
        n = len(data)
        off, at = hdr
        if n < off:
            return None
        et = (data[at] << 8) | data[at + 1]
        while et in VLAN_TPIDS and off + 4 <= n:     # where the tag walk stops, as in _build
            et = (data[off + 2] << 8) | data[off + 3]
            off += 4
        head = data[:off]
        cache = _LINKS[linktype]
        link = cache.get(head)
        if link is None:
            if len(cache) >= _MAX_LINKS:
                cache.clear()
            link = cache[head] = _build(linktype, data)
        return link
    if linktype in (12, 14, 101):
        return _RAW[_ip_by_version(data, 0)]
    if linktype == 228:
        return _RAW[ETH_IP4]
    if linktype == 229:
        return _RAW[ETH_IP6]
    if linktype in (0, 108):
        if len(data) < 4:
            return None
        if linktype == 108:
            af = int.from_bytes(data[:4], "big")
        else:  # host byte order of the capturing machine: accept either
            af = int.from_bytes(data[:4], "little")
            if af > 0xFFFF:
                af = int.from_bytes(data[:4], "big")
        return _BSD[ETH_IP4 if af == 2 else ETH_IP6 if af in AF_INET6 else 0]
    if linktype == 107:
        return _frelay(data)
    raise UnsupportedLinkType(linktype)


def _build(linktype: int, data: bytes) -> Link:
    """The Link of an Ethernet or Linux cooked frame (long enough for its fixed header)."""
    if linktype == 1:
        et, off, vlans = _ethertype_chain(data, 14, (data[12] << 8) | data[13])
        return Link(et, off, mac(data[6:12]), mac(data[0:6]), vlans, None)
    if linktype == 113:  # Linux cooked v1: pkttype, hatype, halen, addr[8], protocol
        halen = min((data[4] << 8) | data[5], 8)
        src = mac(data[6:6 + halen]) if halen == 6 else None
        et, off, vlans = _ethertype_chain(data, 16, (data[14] << 8) | data[15])
        return Link(et, off, src, None, vlans, None)
    # Linux cooked v2: protocol, reserved, ifindex, hatype, pkttype, halen, addr[8]
    halen = min(data[11], 8)
    src = mac(data[12:12 + halen]) if halen == 6 else None
    ifindex = int.from_bytes(data[4:8], "big")
    et, off, vlans = _ethertype_chain(data, 20, (data[0] << 8) | data[1])
    return Link(et, off, src, None, vlans, ifindex)


_NLPID = {0xCC: ETH_IP4, 0x8E: ETH_IP6}


def _frelay(data: bytes) -> Link | None:
    """Q.922 address (2-4 bytes, EA bit ends it), then RFC 2427 (UI 0x03, optional 0x00 pad,
    NLPID; SNAP 0x80 carries an ethertype) or Cisco encapsulation (an ethertype directly)."""
    n = len(data)
    i = 0
    while i < 4 and i < n and not data[i] & 1:
        i += 1
    p = i + 1
    if i >= 4 or p < 2 or p + 2 > n:
        return None
    if data[p] == 0x03:
        p += 1
        if data[p] == 0x00:
            p += 1
            if p >= n:
                return None
        nlpid = data[p]
        if nlpid == 0x80:
            if p + 6 > n:
                return None
            return Link((data[p + 4] << 8) | data[p + 5], p + 6, None, None, (), None)
        return Link(_NLPID.get(nlpid, 0), p + 1, None, None, (), None)
    return Link((data[p] << 8) | data[p + 1], p + 2, None, None, (), None)
