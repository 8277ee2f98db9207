"""RFC 1071 Internet checksum and the IP pseudo-headers used by VRRPv3."""
from __future__ import annotations

import struct

TYPE_CHECKING = False     # typing.TYPE_CHECKING without importing typing at run time (start-up)

if TYPE_CHECKING:     # native 64-bit integers where mypyc compiles this module; plain ints otherwise
    from mypy_extensions import i64

PROTO = 112
VRRP_GROUP4 = bytes([224, 0, 0, 18])


def ones_sum(data: bytes, start: int = 0) -> int:
    """One's-complement sum of 16-bit big-endian words (odd length padded with a zero byte),
    folded to 16 bits and added to ``start``: 0 only when every word (and ``start``) is 0,
    otherwise 1..0xFFFF. A plain loop over the words: compiled (mypyc) with native 64-bit
    integers (no sum of a 16 MiB record can reach 2**63) it is about a nanosecond a word, and
    the checksum of every advert is on the hot path."""
    total: i64 = start
    n: i64 = len(data)
    i: i64 = 0
    while i + 1 < n:
        total += (data[i] << 8) | data[i + 1]
        i += 2
    if n & 1:
        total += data[n - 1] << 8
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


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
