"""Link layers: find the network-layer bytes inside a captured frame.

Supported (LINKTYPE values as in pcap files; DLT aliases as libpcap reports them):
Ethernet with 802.1Q / 802.1ad / QinQ tags, Linux cooked v1 (SLL) and v2 (SLL2), raw IP,
IPv4, IPv6, BSD null (host byte order) and loopback (network byte order), Frame Relay
(RFC 2427 NLPID/SNAP and Cisco encapsulation), and two firewall logs: pflog (what pf logged on
FreeBSD, OpenBSD, pfSense and OPNsense: ``tcpdump -i pflog0``; a segment per interface named in
the pflog header) and Linux NFLOG (what an nftables or iptables ``log group N`` rule passed:
``tcpdump -i nflog:N``; a segment per interface index, the source MAC when logged).

``locate`` walks a link header (and its VLAN tags) to the network layer without building
anything, on a frame anywhere inside a buffer: the capture reader asks it about every record
of a large capture before cutting a frame out. ``parse_link`` builds the ``Link`` (MACs,
VLANs, interface) of a frame that is worth decoding.
"""
from __future__ import annotations

TYPE_CHECKING = False     # typing.TYPE_CHECKING without importing typing at run time (start-up)
if TYPE_CHECKING:     # native 64-bit integers where mypyc compiles this module; plain ints otherwise
    from typing import Final
    from mypy_extensions import i64

ETH_IP4: Final = 0x0800
ETH_IP6: Final = 0x86DD
ETH_ARP: Final = 0x0806
VLAN_TPIDS: Final = (0x8100, 0x88A8, 0x9100)

LINKTYPES: Final = {
    0: "NULL", 1: "EN10MB", 12: "RAW", 14: "RAW", 101: "RAW", 107: "FRELAY", 108: "LOOP",
    113: "LINUX_SLL", 117: "PFLOG", 228: "IPV4", 229: "IPV6", 239: "NFLOG", 276: "LINUX_SLL2",
}
# every name libpcap/pcap files use for link types we do not decode, for a clear error
OTHER_LINKTYPES: Final = {
    6: "IEEE802_5", 9: "PPP", 10: "FDDI", 50: "PPP_HDLC", 104: "C_HDLC", 105: "IEEE802_11",
    119: "PRISM_HEADER", 127: "IEEE802_11_RADIO", 192: "PPI",
    143: "DOCSIS", 147: "USER0", 220: "USB_LINUX_MMAPPED", 249: "NETLINK", 253: "NETANALYZER",
}
# BSD null/loop address families that mean IPv6 on the various systems that write them
AF_INET6: Final = (10, 24, 28, 30)
# pflog: the header's first byte is its length (61 on FreeBSD, 100 on OpenBSD), the packet
# starts at that length rounded up to 4 bytes (tcpdump's BPF_WORDALIGN); shorter than tcpdump's
# MIN_PFLOG_HDRLEN is no pflog header; the interface name is 16 bytes at offset 4
PFLOG_MIN: Final = 45
# NFLOG (tcpdump.org LINKTYPE_NFLOG): family, version 0, resource id; then TLVs whose length
# (counting its 4-byte head, padded to 4) and type are in the capturing host's byte order
NFULA_IFINDEX_INDEV: Final = 4
NFULA_IFINDEX_OUTDEV: Final = 5
NFULA_HWADDR: Final = 8
NFULA_PAYLOAD: Final = 9


class UnsupportedLinkType(ValueError):
    def __init__(self, linktype: int) -> None:
        name = LINKTYPES.get(linktype) or OTHER_LINKTYPES.get(linktype) or "unknown"
        super().__init__(f"unsupported link type {linktype} ({name}); readable: Ethernet, Linux cooked, "
                         "raw IP, BSD null/loopback, Frame Relay, pflog, NFLOG")
        self.linktype = linktype


def linktype_name(linktype: int) -> str:
    return LINKTYPES.get(linktype) or OTHER_LINKTYPES.get(linktype) or f"LINKTYPE_{linktype}"


def check_linktype(linktype: int) -> None:
    if linktype not in LINKTYPES:
        raise UnsupportedLinkType(linktype)


def mac(b: bytes) -> str:
    return b.hex(":")


class Link:
    """Network-layer location and link facts of one frame (never changed once built: frames
    with the same link header share one)."""

    __slots__ = ("ethertype", "offset", "eth_src", "eth_dst", "vlans", "ifindex", "ifname")

    ethertype: int        # 0x0800, 0x86DD, 0x0806 or other; 0 when unknown
    offset: int           # where the network-layer header starts
    eth_src: str | None
    eth_dst: str | None
    vlans: tuple[int, ...]
    ifindex: int | None   # SLL2, NFLOG: the interface the frame was captured or logged on
    ifname: str | None    # pflog: the interface pf logged the packet on

    def __init__(self, ethertype: int, offset: int, eth_src: str | None, eth_dst: str | None,
                 vlans: tuple[int, ...], ifindex: int | None, ifname: str | None = None) -> None:
        self.ethertype = ethertype
        self.offset = offset
        self.eth_src = eth_src
        self.eth_dst = eth_dst
        self.vlans = vlans
        self.ifindex = ifindex
        self.ifname = ifname


def _ip_version(data: bytes, off: i64, end: i64) -> i64:
    if end <= off:
        return 0
    v: i64 = data[off]
    v >>= 4
    return ETH_IP4 if v == 4 else ETH_IP6 if v == 6 else 0


def locate(linktype: int, data: bytes, start: i64, end: i64) -> tuple[i64, i64]:
    """(ethertype, offset of the network header) of the frame ``data[start:end]``, offsets
    absolute in ``data``; ethertype -1 when the frame is too short for its link header, 0 when
    the link layer does not say (raw frames whose first nibble is no IP version). Offsets and
    ethertype are native 64-bit integers where compiled (the reader asks about every record)."""
    if linktype == 1 or linktype == 113 or linktype == 276:
        off: i64
        at: i64
        if linktype == 1:
            off, at = start + 14, start + 12
        elif linktype == 113:
            off, at = start + 16, start + 14
        else:
            off, at = start + 20, start
        if end < off:
            return -1, 0
        hi: i64 = data[at]
        lo: i64 = data[at + 1]
        et: i64 = (hi << 8) | lo
        while (et == 0x8100 or et == 0x88A8 or et == 0x9100) and off + 4 <= end:
            hi = data[off + 2]
            lo = data[off + 3]
            et = (hi << 8) | lo
            off += 4
        return et, off
    if linktype == 12 or linktype == 14 or linktype == 101:
        return _ip_version(data, start, end), start
    if linktype == 228:
        return ETH_IP4, start
    if linktype == 229:
        return ETH_IP6, start
    if linktype == 0 or linktype == 108:
        if end - start < 4:
            return -1, 0
        if linktype == 108:
            af = int.from_bytes(data[start:start + 4], "big")
        else:  # host byte order of the capturing machine: accept either
            af = int.from_bytes(data[start:start + 4], "little")
            if af > 0xFFFF:
                af = int.from_bytes(data[start:start + 4], "big")
        return (ETH_IP4 if af == 2 else ETH_IP6 if af in AF_INET6 else 0), start + 4
    if linktype == 107:
        return _frelay(data, start, end)
    if linktype == 117:
        if end - start < PFLOG_MIN:
            return -1, 0
        hlen: i64 = data[start]
        off = start + ((hlen + 3) & ~3)
        if hlen < PFLOG_MIN or off > end:
            return -1, 0
        fam: i64 = data[start + 1]
        return (ETH_IP4 if fam == 2 else ETH_IP6 if fam in AF_INET6 else 0), off
    if linktype == 239:
        nf = _nflog(data, start, end)
        return nf[0], nf[1]
    raise UnsupportedLinkType(linktype)


# Link types whose header (plus VLAN tags) fully determines the Link. A capture holds few
# distinct headers, so their Links are kept, keyed by the header bytes: building the MAC
# strings for every frame was most of parse_link's cost.
_LINKS: Final[dict[int, dict[bytes, Link]]] = {1: {}, 113: {}, 276: {}}
_MAX_LINKS: Final = 4096        # per link type; the cache is emptied when full
_RAW: Final = {et: Link(et, 0, None, None, (), None) for et in (ETH_IP4, ETH_IP6, 0)}
_BSD: Final = {et: Link(et, 4, None, None, (), None) for et in (ETH_IP4, ETH_IP6, 0)}


def parse_link(linktype: int, data: bytes) -> Link | None:
    """Locate the network layer of a whole frame; None when it is too short for its link header."""
    if linktype == 239:         # one walk of the TLVs gives the payload, the interface and the MAC
        et, off, ifindex, hw = _nflog(data, 0, len(data))
        if et < 0:
            return None
        return Link(et, off, mac(data[hw:hw + 6]) if hw >= 0 else None, None, (), ifindex if ifindex >= 0 else None)
    et, off = locate(linktype, data, 0, len(data))
    if et < 0:
        return None
    cache = _LINKS.get(linktype)
    if cache is not None:
        head = data[:off]
        link = cache.get(head)
        if link is None:
            if len(cache) >= _MAX_LINKS:
                cache.clear()
            link = cache[head] = _build(linktype, data, et, off)
        return link
    if linktype == 0 or linktype == 108:
        return _BSD.get(et) or Link(et, 4, None, None, (), None)
    if linktype == 107:
        return Link(et, off, None, None, (), None)
    if linktype == 117:
        name = data[4:20].split(b"\0", 1)[0].decode("ascii", "replace")
        return Link(et, off, None, None, (), None, name or None)
    return _RAW.get(et) or Link(et, 0, None, None, (), None)


def link_key(linktype: int, data: bytes, off: int) -> bytes:
    """The bytes that name the link a frame came over (``off``: where its network header
    starts), for keying what frames share (wire/frame.Flow): the link header itself (MACs, VLAN
    tags, interface), except for NFLOG, whose TLVs also carry values of each packet (time stamp,
    sequence numbers) and of the rule that logged it (prefix, mark): there the family, the
    interface index and the source MAC, what parse_link reads from them."""
    if linktype != 239:
        return data[:off]
    _et, _off, ifindex, hw = _nflog(data, 0, off)
    return data[:1] + ifindex.to_bytes(4, "big", signed=True) + (data[hw:hw + 6] if hw >= 0 else b"")


def _vlans(data: bytes, first: int, off: int) -> tuple[int, ...]:
    """The VLAN ids of the tags between ``first`` and ``off`` (4 bytes each, TCI first)."""
    return tuple(((data[p] << 8) | data[p + 1]) & 0x0FFF for p in range(first, off, 4))


def _build(linktype: int, data: bytes, et: int, off: int) -> Link:
    """The Link of an Ethernet or Linux cooked frame (long enough for its fixed header)."""
    if linktype == 1:
        return Link(et, off, mac(data[6:12]), mac(data[0:6]), _vlans(data, 14, off), None)
    if linktype == 113:  # Linux cooked v1: pkttype, hatype, halen, addr[8], protocol
        halen = min((data[4] << 8) | data[5], 8)
        src = mac(data[6:6 + halen]) if halen == 6 else None
        return Link(et, off, src, None, _vlans(data, 16, off), None)
    # Linux cooked v2: protocol, reserved, ifindex, hatype, pkttype, halen, addr[8]
    halen = min(data[11], 8)
    src = mac(data[12:12 + halen]) if halen == 6 else None
    ifindex = int.from_bytes(data[4:8], "big")
    return Link(et, off, src, None, _vlans(data, 20, off), ifindex)


_NLPID: Final = {0xCC: ETH_IP4, 0x8E: ETH_IP6}


def _frelay(data: bytes, start: int, end: int) -> tuple[int, int]:
    """Q.922 address (2-4 bytes, EA bit ends it), then RFC 2427 (UI 0x03, optional 0x00 pad,
    NLPID; SNAP 0x80 carries an ethertype) or Cisco encapsulation (an ethertype directly)."""
    i = 0
    while i < 4 and start + i < end and not data[start + i] & 1:
        i += 1
    p = start + i + 1
    if i >= 4 or i < 1 or p + 2 > end:
        return -1, 0
    if data[p] == 0x03:
        p += 1
        if data[p] == 0x00:
            p += 1
            if p >= end:
                return -1, 0
        nlpid = data[p]
        if nlpid == 0x80:
            if p + 6 > end:
                return -1, 0
            return (data[p + 4] << 8) | data[p + 5], p + 6
        return _NLPID.get(nlpid, 0), p + 1
    return (data[p] << 8) | data[p + 1], p + 2


def _nflog(data: bytes, start: int, end: int) -> tuple[int, int, int, int]:
    """An NFLOG frame: (ethertype, offset of the logged packet, interface index or -1, offset of
    a 6-byte source MAC or -1); ethertype -1 when the frame ends before its packet, 0 when the
    header is no NFLOG version 0 or the family is no IP one. The TLVs' byte order is that of the
    host that captured (tcpdump reads them in its own): read from the first type, never 0
    and always below 256."""
    if end - start < 8:
        return -1, 0, -1, -1
    if data[start + 1] != 0:
        return 0, 0, -1, -1
    little = data[start + 6] != 0
    p = start + 4
    ifindex = outdev = -1
    hw = -1
    while p + 4 <= end:
        if little:
            size, kind = data[p] | (data[p + 1] << 8), data[p + 2] | (data[p + 3] << 8)
        else:
            size, kind = (data[p] << 8) | data[p + 1], (data[p + 2] << 8) | data[p + 3]
        kind &= 0x7FFF          # the netlink "nested" flag
        if size < 4:
            return -1, 0, -1, -1
        if kind == NFULA_PAYLOAD:
            off = p + 4
            fam = data[start]
            et = ETH_IP4 if fam == 2 else ETH_IP6 if fam == 10 else _ip_version(data, off, end)
            return et, off, ifindex if ifindex >= 0 else outdev, hw
        if size >= 8 and (kind == NFULA_IFINDEX_INDEV or kind == NFULA_IFINDEX_OUTDEV) and p + 8 <= end:
            value = int.from_bytes(data[p + 4:p + 8], "big")
            if kind == NFULA_IFINDEX_INDEV:
                ifindex = value
            else:
                outdev = value
        elif kind == NFULA_HWADDR and size >= 14 and p + 14 <= end and data[p + 4] == 0 and data[p + 5] == 6:
            hw = p + 8
        p += (size + 3) & ~3
    return -1, 0, -1, -1
