"""The IP protocol 112 payload: CARP, VRRPv2 and VRRPv3 (decode and encode).

Classification follows the protocol notes (§3.2), on the payload bounded by the IP length
fields, never the frame:
  version 3                         -> VRRPv3 (address size from the IP family)
  version 2 over IPv6               -> CARP (VRRPv2 is IPv4-only)
  version 2 over IPv4, 36 bytes and byte 3 (authlen) == 7
                                    -> CARP (never a self-consistent VRRPv2: count 7 needs 44)
  version 2 over IPv4, 8 + 4*count + 8 bytes
                                    -> VRRPv2
  version 2 over IPv4, >36 bytes, byte 3 == 7
                                    -> CARP with trailing bytes
  version 2 over IPv4, 8 + 4*count bytes (no authentication data; some stacks and test
  generators omit it, tshark and tcpdump decode it)
                                    -> VRRPv2 with auth_data == b""
  anything else                     -> malformed, with the reason
"""
from __future__ import annotations

import struct
from socket import AF_INET, AF_INET6, inet_ntop

from carpscope.wire import checksum as ck

CARP_LEN = 36
_CARP_HDR = struct.Struct("!BBBBBBH8s20s")
_vrrp_hdr = struct.Struct("!BBBBBBH")


class Decoded:
    """Fields of a decoded payload, filled by ``decode``; a field it does not set reads as the
    class default (an instance starts empty, which is cheap: one is built per advert)."""
    protocol = version = type = vhid = checksum = checksum_ok = checksum_variant = None
    advbase = advskew = authlen = demote = counter = md = None
    priority = count = auth_type = auth_data = interval_cs = reserved = None
    trailing = 0
    addresses: tuple = ()


def _carp(p: bytes, d: Decoded) -> Decoded:
    vt, d.vhid, d.advskew, d.authlen, d.demote, d.advbase, d.checksum, d.counter, d.md = _CARP_HDR.unpack_from(p)
    d.protocol, d.version, d.type = "carp", vt >> 4, vt & 0x0F
    d.trailing = len(p) - CARP_LEN
    d.checksum_ok = ck.verifies(p[:CARP_LEN])
    d.checksum_variant = "plain" if d.checksum_ok else "bad"
    return d


def decode(p: bytes, family: int, src: bytes, dst: bytes) -> Decoded | str:
    """Decode a protocol-112 payload; returns the fields, or a string saying why it is malformed.

    ``src``/``dst`` are the packed IP addresses (for VRRPv3 pseudo-header checksums).
    """
    n = len(p)
    if n < 8:
        return f"payload too short ({n} bytes, a header needs 8)"
    version = p[0] >> 4
    d = Decoded()
    if version == 2:
        if family == 6:
            if n < CARP_LEN:
                return f"CARP over IPv6 truncated ({n} of 36 bytes)"
            return _carp(p, d)
        count = p[3]
        if n == CARP_LEN and count == 7:
            return _carp(p, d)
        if n == 16 + 4 * count:
            return _vrrp2(p, d)
        if n > CARP_LEN and count == 7:
            return _carp(p, d)
        if n == 8 + 4 * count:
            return _vrrp2(p, d)
        return (f"version 2 payload of {n} bytes fits neither CARP (36 bytes, authlen 7) nor "
                f"VRRPv2 with {count} addresses ({16 + 4 * count} bytes)")
    if version == 3:
        return _vrrp3(p, d, family, src, dst)
    return f"unknown version {version} (CARP is 2, VRRP 2 or 3)"


def _vrrp2(p: bytes, d: Decoded) -> Decoded:
    vt, d.vhid, d.priority, d.count, d.auth_type, adv, d.checksum = _vrrp_hdr.unpack_from(p)
    d.protocol, d.version, d.type = "vrrp2", vt >> 4, vt & 0x0F
    end = 8 + 4 * d.count
    d.addresses = tuple(inet_ntop(AF_INET, p[i:i + 4]) for i in range(8, end, 4))
    d.auth_data = p[end:end + 8]        # b"" when the sender left the 8 bytes out
    d.interval_cs = adv * 100
    d.checksum_ok = ck.verifies(p)
    d.checksum_variant = "plain" if d.checksum_ok else "bad"
    return d


def _vrrp3(p: bytes, d: Decoded, family: int, src: bytes, dst: bytes) -> Decoded | str:
    vt, d.vhid, d.priority, d.count, b4, b5, d.checksum = _vrrp_hdr.unpack_from(p)
    d.protocol, d.version, d.type = "vrrp3", vt >> 4, vt & 0x0F
    d.reserved = b4 >> 4
    d.interval_cs = ((b4 & 0x0F) << 8) | b5
    alen = 4 if family == 4 else 16
    end = 8 + alen * d.count
    if len(p) < end:
        return f"VRRPv3 truncated: {d.count} addresses need {end} bytes, payload has {len(p)}"
    af = AF_INET if family == 4 else AF_INET6
    d.addresses = tuple(inet_ntop(af, p[i:i + alen]) for i in range(8, end, alen))
    d.trailing = len(p) - end
    n = len(p)
    if family == 6:
        d.checksum_ok = ck.verifies(p, ck.pseudo6(src, dst, n))
        d.checksum_variant = "pseudo" if d.checksum_ok else "bad"
        return d
    for variant, start in (("pseudo", ck.pseudo4(src, dst, n)), ("none", 0),
                           ("pseudo-224", ck.pseudo4(src, ck.VRRP_GROUP4, n))):
        if ck.verifies(p, start):
            d.checksum_ok, d.checksum_variant = True, variant
            return d
    d.checksum_ok, d.checksum_variant = False, "bad"
    return d


# ------------------------------------------------------------------ encode (tests, demos, bench)

def encode_carp(vhid: int, advbase: int = 1, advskew: int = 0, counter: bytes = bytes(8),
                md: bytes = bytes(20), *, version: int = 2, type_: int = 1, authlen: int = 7,
                demote: int = 0, bad_checksum: bool = False) -> bytes:
    """A 36-byte CARP header with a correct checksum (or a deliberately wrong one)."""
    hdr = _CARP_HDR.pack((version << 4) | type_, vhid, advskew, authlen, demote, advbase, 0, counter, md)
    c = ck.checksum(hdr) ^ (0xFFFF if bad_checksum else 0)
    return hdr[:6] + struct.pack("!H", c) + hdr[8:]


def encode_vrrp2(vrid: int, priority: int, addresses: list[str], adver_int: int = 1,
                 auth_type: int = 0, auth_data: bytes = b"", *, bad_checksum: bool = False) -> bytes:
    from socket import inet_pton
    body = b"".join(inet_pton(AF_INET, a) for a in addresses) + auth_data.ljust(8, b"\0")[:8]
    hdr = _vrrp_hdr.pack(0x21, vrid, priority, len(addresses), auth_type, adver_int, 0)
    c = ck.checksum(hdr + body) ^ (0xFFFF if bad_checksum else 0)
    return hdr[:6] + struct.pack("!H", c) + body


def encode_vrrp3(vrid: int, priority: int, addresses: list[str], interval_cs: int = 100, *,
                 family: int = 4, src: bytes = b"", dst: bytes = b"", variant: str = "pseudo") -> bytes:
    """A VRRPv3 advert; ``variant`` picks the checksum form: pseudo, none, pseudo-224 or bad."""
    from socket import inet_pton
    af = AF_INET if family == 4 else AF_INET6
    body = b"".join(inet_pton(af, a) for a in addresses)
    hdr = _vrrp_hdr.pack(0x31, vrid, priority, len(addresses), (interval_cs >> 8) & 0x0F, interval_cs & 0xFF, 0)
    n = len(hdr) + len(body)
    if family == 6:
        start = ck.pseudo6(src, dst, n)
    elif variant in ("pseudo", "bad"):
        start = ck.pseudo4(src, dst, n)
    elif variant == "pseudo-224":
        start = ck.pseudo4(src, ck.VRRP_GROUP4, n)
    else:
        start = 0
    c = ck.checksum(hdr + body, start) ^ (0xFFFF if variant == "bad" else 0)
    return hdr[:6] + struct.pack("!H", c) + body
