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
TYPE_CHECKING = False     # typing.TYPE_CHECKING without importing typing at run time (start-up)
if TYPE_CHECKING:
    from typing import Final

from carpscope.model import CARP, VRRP2, VRRP3, Advert
from carpscope.wire import checksum as ck

CARP_LEN: Final = 36
_CARP_HDR = struct.Struct("!BBBBBBH8s20s")
_vrrp_hdr = struct.Struct("!BBBBBBH")


def _carp(p: bytes, a: Advert) -> None:
    vt = p[0]
    a.protocol, a.version, a.type = CARP, vt >> 4, vt & 0x0F
    a.vhid, a.advskew, a.authlen, a.demote, a.advbase = p[1], p[2], p[3], p[4], p[5]
    a.checksum = (p[6] << 8) | p[7]
    a.counter, a.md = p[8:16], p[16:36]
    a.trailing = len(p) - CARP_LEN
    a.checksum_ok = ck.verifies(p if len(p) == CARP_LEN else p[:CARP_LEN])
    a.checksum_variant = "plain" if a.checksum_ok else "bad"


def decode(p: bytes, family: int, src: bytes, dst: bytes) -> Advert | str:
    """Decode a payload on its own (tests, tools): the fields in a blank Advert, or the reason
    it is malformed."""
    a = Advert(0, 0.0, "", "", family, "", "", 255)
    why = decode_into(p, family, src + dst, a)
    return a if why is None else why


def decode_into(p: bytes, family: int, addrs: bytes, a: Advert) -> str | None:
    """Decode a protocol-112 payload into ``a`` (whose frame and IP facts are set); returns
    None, or a string saying why it is malformed.

    ``addrs`` are the packed source and destination IP addresses, as in the IP header (for
    VRRPv3 pseudo-header checksums).
    """
    n = len(p)
    if n < 8:
        return f"payload too short ({n} bytes, a header needs 8)"
    version = p[0] >> 4
    a.payload_len = n
    if version == 2:
        if family == 6:
            if n < CARP_LEN:
                return f"CARP over IPv6 truncated ({n} of 36 bytes)"
            _carp(p, a)
            return None
        count = p[3]
        if n == CARP_LEN and count == 7:
            _carp(p, a)
        elif n == 16 + 4 * count:
            _vrrp2(p, a)
        elif n > CARP_LEN and count == 7:
            _carp(p, a)
        elif n == 8 + 4 * count:
            _vrrp2(p, a)
        else:
            return (f"version 2 payload of {n} bytes fits neither CARP (36 bytes, authlen 7) nor "
                    f"VRRPv2 with {count} addresses ({16 + 4 * count} bytes)")
        return None
    if version == 3:
        return _vrrp3(p, a, family, addrs)
    return f"unknown version {version} (CARP is 2, VRRP 2 or 3)"


# packed address -> text: a capture holds few distinct addresses, and inet_ntop per advert
# was a tenth of decoding. Emptied when full. The text is inet_ntop's (glibc: RFC 5952 with
# the longest first run of two or more zero groups as ::, ::ffff:a.b.c.d and ::a.b.c.d for
# mapped and compatible IPv4), written here so that a run does not import socket (~3 ms).
_ADDRS: Final[dict[bytes, str]] = {}
_MAX_ADDRS: Final = 8192


def ntop(packed: bytes) -> str:
    """The text of a packed IPv4 (4 bytes) or IPv6 (16 bytes) address, as inet_ntop writes it."""
    text = _ADDRS.get(packed)
    if text is None:
        if len(_ADDRS) >= _MAX_ADDRS:
            _ADDRS.clear()
        text = _ADDRS[packed] = addr_text(packed)
    return text


def addr_text(packed: bytes) -> str:
    """inet_ntop(AF_INET, packed) for 4 bytes, inet_ntop(AF_INET6, packed) for 16 (uncached)."""
    n = len(packed)
    if n == 4:
        return f"{packed[0]}.{packed[1]}.{packed[2]}.{packed[3]}"
    if n != 16:
        raise ValueError("invalid length of packed IP address string")
    return _text6(packed)


def _text6(p: bytes) -> str:
    words = [(p[i] << 8) | p[i + 1] for i in range(0, 16, 2)]
    best, best_len, cur, cur_len = -1, 0, -1, 0
    for i in range(8):
        if words[i] == 0:
            if cur == -1:
                cur, cur_len = i, 1
            else:
                cur_len += 1
        elif cur != -1:
            if best == -1 or cur_len > best_len:
                best, best_len = cur, cur_len
            cur = -1
    if cur != -1 and (best == -1 or cur_len > best_len):
        best, best_len = cur, cur_len
    if best_len < 2:
        best = -1
    out = ""
    i = 0
    while i < 8:
        if best != -1 and best <= i < best + best_len:
            if i == best:
                out += ":"
            i += 1
            continue
        if i != 0:
            out += ":"
        if i == 6 and best == 0 and (best_len == 6 or (best_len == 5 and words[5] == 0xFFFF)):
            out += f"{p[12]}.{p[13]}.{p[14]}.{p[15]}"
            return out
        out += f"{words[i]:x}"
        i += 1
    if best != -1 and best + best_len == 8:
        out += ":"
    return out


def _vrrp2(p: bytes, a: Advert) -> None:
    vt = p[0]
    a.protocol, a.version, a.type = VRRP2, vt >> 4, vt & 0x0F
    a.vhid, a.priority, a.count, a.auth_type = p[1], p[2], p[3], p[4]
    a.checksum = (p[6] << 8) | p[7]
    end = 8 + 4 * p[3]
    a.addresses = tuple([ntop(p[i:i + 4]) for i in range(8, end, 4)])
    a.auth_data = p[end:end + 8]        # b"" when the sender left the 8 bytes out
    a.interval_cs = p[5] * 100
    a.checksum_ok = ck.verifies(p)
    a.checksum_variant = "plain" if a.checksum_ok else "bad"


def _vrrp3(p: bytes, a: Advert, family: int, addrs: bytes) -> str | None:
    vt = p[0]
    a.protocol, a.version, a.type = VRRP3, vt >> 4, vt & 0x0F
    a.vhid, a.priority, a.count = p[1], p[2], p[3]
    a.checksum = (p[6] << 8) | p[7]
    a.reserved = p[4] >> 4
    a.interval_cs = ((p[4] & 0x0F) << 8) | p[5]
    alen = 4 if family == 4 else 16
    end = 8 + alen * p[3]
    n = len(p)
    if n < end:
        return f"VRRPv3 truncated: {p[3]} addresses need {end} bytes, payload has {n}"
    a.addresses = tuple([ntop(p[i:i + alen]) for i in range(8, end, alen)])
    a.trailing = n - end
    half = len(addrs) // 2
    src, dst = addrs[:half], addrs[half:]
    if family == 6:
        a.checksum_ok = ck.verifies(p, ck.pseudo6(src, dst, n))
        a.checksum_variant = "pseudo" if a.checksum_ok else "bad"
        return None
    for variant, start in (("pseudo", ck.pseudo4(src, dst, n)), ("none", 0),
                           ("pseudo-224", ck.pseudo4(src, ck.VRRP_GROUP4, n))):
        if ck.verifies(p, start):
            a.checksum_ok, a.checksum_variant = True, variant
            return None
    a.checksum_ok, a.checksum_variant = False, "bad"
    return None


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
    from socket import AF_INET, inet_pton
    body = b"".join(inet_pton(AF_INET, a) for a in addresses) + auth_data.ljust(8, b"\0")[:8]
    hdr = _vrrp_hdr.pack(0x21, vrid, priority, len(addresses), auth_type, adver_int, 0)
    c = ck.checksum(hdr + body) ^ (0xFFFF if bad_checksum else 0)
    return hdr[:6] + struct.pack("!H", c) + body


def encode_vrrp3(vrid: int, priority: int, addresses: list[str], interval_cs: int = 100, *,
                 family: int = 4, src: bytes = b"", dst: bytes = b"", variant: str = "pseudo") -> bytes:
    """A VRRPv3 advert; ``variant`` picks the checksum form: pseudo, none, pseudo-224 or bad."""
    from socket import AF_INET, AF_INET6, inet_pton
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
