"""VIP sets: the addresses bound to a VHID, in the order the kernels hash them."""
from __future__ import annotations

TYPE_CHECKING = False     # typing.TYPE_CHECKING without importing typing at run time (start-up)
if TYPE_CHECKING:
    import ipaddress
    from typing import Iterable


def _scope_embedded(b: bytes) -> bool:
    """IN6_IS_SCOPE_EMBED: link-local unicast, interface- and link-local multicast."""
    return (b[0] == 0xFE and (b[1] & 0xC0) == 0x80) or (b[0] == 0xFF and (b[1] & 0x0F) in (1, 2))


def parse_address(text: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> tuple[int, bytes]:
    """(family, wire bytes) of a VIP; accepts ``fe80::1%em0`` and ``10.0.0.1/24`` forms.

    Scope-embedded IPv6 addresses get bytes 2-3 cleared as the kernels do before hashing, so the
    KAME in-kernel form ``fe80:2::1`` equals ``fe80::1``.
    """
    import ipaddress      # here, not at the top: a run given no VIP does not pay for it
    if isinstance(text, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        addr = text
    else:
        s = str(text).strip().split("/", 1)[0].split("%", 1)[0]
        try:
            addr = ipaddress.ip_address(s)
        except ValueError:
            raise ValueError(f"not an IP address: {str(text)!r}") from None
    b = addr.packed
    if addr.version == 6 and _scope_embedded(b):
        b = b[:2] + b"\0\0" + b[4:]
    return addr.version, b


def _addr_text(b: bytes) -> str:
    import ipaddress
    return str(ipaddress.ip_address(b))


class VipSet:
    """The addresses bound to a VHID, in the kernels' hashing order (sorted, duplicates once).

    0.0.0.0, 255.255.255.255, :: and ff..ff are left out: the kernels' strictly-increasing
    selection loop can never pick them (protocol.md §2.3). A value: never changed once made
    (sets are compared and hashed). A plain class: a dataclass costs its creation at every start.
    """

    __slots__ = ("v4", "v6")

    def __init__(self, v4: tuple[bytes, ...], v6: tuple[bytes, ...]) -> None:
        self.v4 = v4
        self.v6 = v6

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VipSet):
            return NotImplemented
        return self.v4 == other.v4 and self.v6 == other.v6

    def __hash__(self) -> int:
        return hash((self.v4, self.v6))

    @classmethod
    def of(cls, addrs: Iterable) -> "VipSet":
        v4: set[bytes] = set()
        v6: set[bytes] = set()
        for a in addrs:
            fam, b = parse_address(a)
            (v4 if fam == 4 else v6).add(b)
        v4 -= {b"\0" * 4, b"\xff" * 4}
        v6 -= {b"\0" * 16, b"\xff" * 16}
        return cls(tuple(sorted(v4)), tuple(sorted(v6)))

    @property
    def addrs(self) -> tuple[str, ...]:
        return tuple(_addr_text(b) for b in self.v4 + self.v6)

    @property
    def v6_global(self) -> tuple[bytes, ...]:
        return tuple(b for b in self.v6 if not _scope_embedded(b))

    @property
    def has_link_local(self) -> bool:
        return any(_scope_embedded(b) for b in self.v6)

    def __len__(self) -> int:
        return len(self.v4) + len(self.v6)

    def __str__(self) -> str:
        return "{" + ", ".join(self.addrs) + "}"

    def __repr__(self) -> str:
        return f"VipSet({self})"


def parse_vip_arg(text: str) -> tuple[int, list[str]]:
    """``--vip VHID=ADDR[,ADDR...]`` → (vhid, addresses). Raises ValueError with the reason."""
    vhid_s, sep, rest = str(text).partition("=")
    if not sep:
        raise ValueError(f"--vip expects VHID=ADDR[,ADDR...], got {text!r}")
    try:
        vhid = int(vhid_s.strip())
    except ValueError:
        raise ValueError(f"--vip: VHID must be a number 1-255, got {vhid_s.strip()!r}") from None
    if not 1 <= vhid <= 255:
        raise ValueError(f"--vip: VHID must be 1-255, got {vhid}")
    addrs = [a.strip() for a in rest.split(",") if a.strip()]
    if not addrs:
        raise ValueError(f"--vip {vhid}=: no address given")
    for a in addrs:
        parse_address(a)
    return vhid, addrs
