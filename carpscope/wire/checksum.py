"""RFC 1071 Internet checksum and the IP pseudo-headers used by VRRPv3."""
from __future__ import annotations

import struct

PROTO = 112
VRRP_GROUP4 = bytes([224, 0, 0, 18])


def ones_sum(data: bytes, start: int = 0) -> int:
    """One's-complement sum of 16-bit big-endian words (odd length padded with a zero byte),
    folded to 16 bits and added to ``start``.

    Computed as one big integer: 2**16 = 1 (mod 0xFFFF), so the data read as a big-endian
    number is congruent to the sum of its 16-bit words, and folding the carries keeps that
    residue; the folded sum is 0 only when every word (and ``start``) is 0, otherwise it lies in
    1..0xFFFF. One ``int.from_bytes`` instead of an unpack of every word: the checksum of each
    advert is on the hot path.
    """
    if len(data) & 1:
        data = data + b"\0"
    total = start + int.from_bytes(data, "big")
    return total % 0xFFFF or (0xFFFF if total else 0)


def checksum(data: bytes, start: int = 0) -> int:
    """The checksum value to put in a header whose checksum field is zero in ``data``."""
    return ~ones_sum(data, start) & 0xFFFF


def verifies(data: bytes, start: int = 0) -> bool:
    """True when ``data`` (with its checksum field in place) sums to all ones."""
    return ones_sum(data, start) == 0xFFFF


def pseudo4(src: bytes, dst: bytes, length: int, proto: int = PROTO) -> int:
    """Partial sum of the IPv4 pseudo-header (src, dst, zero, protocol, length)."""
    return ones_sum(src + dst + struct.pack("!BBH", 0, proto, length))


def pseudo6(src: bytes, dst: bytes, length: int, proto: int = PROTO) -> int:
    """Partial sum of the IPv6 pseudo-header (RFC 8200 §8.1)."""
    return ones_sum(src + dst + struct.pack("!I3xB", length, proto))
