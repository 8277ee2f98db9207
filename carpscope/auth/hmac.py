"""The CARP HMAC: flavours (how each implementation builds the message) and the precomputed
SHA-1 states that make checking an advert one copy-update-digest per candidate.
"""
from __future__ import annotations

import importlib

TYPE_CHECKING = False     # typing.TYPE_CHECKING without importing typing at run time (start-up)
if TYPE_CHECKING:
    from typing import Any, Iterable

from carpscope.auth.keys import Key
from carpscope.digests import sha1

try:            # the compiled SHA-1 kernel (setup.py); without it, SHA-1 objects' states
    _sha1: Any = importlib.import_module("carpscope._sha1")
except ImportError:
    _sha1 = None
from carpscope.auth.results import AuthResult
from carpscope.auth.vips import VipSet

FREEBSD, OPENBSD, UCARP, OPENBSD_LLADDR = "freebsd", "openbsd", "ucarp", "openbsd-lladdr"
FLAVOURS = (FREEBSD, OPENBSD, UCARP, OPENBSD_LLADDR)
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


def _prefix(vhid: int, v4: tuple[bytes, ...], v6: tuple[bytes, ...], lladdr: bytes = b"") -> bytes:
    return b"\x02\x01" + lladdr + bytes((vhid & 0xFF,)) + b"".join(v4) + b"".join(v6)


def flavour_prefixes(vhid: int, vips: VipSet, lladdr: bytes | None = None
                     ) -> list[tuple[tuple[str, ...], bytes]]:
    """Every distinct HMAC message prefix (all but the counter) for this VIP set.

    Each entry is (flavours producing it, prefix). ``lladdr`` (6 bytes) adds the
    ``openbsd-lladdr`` flavour.
    """
    cands = [(FREEBSD, _prefix(vhid, vips.v4, vips.v6)),
             (OPENBSD, _prefix(vhid, vips.v4, vips.v6_global))]
    if len(vips.v4) == 1 and not vips.v6:
        cands.append((UCARP, _prefix(vhid, vips.v4, ())))
    if lladdr:
        cands.append((OPENBSD_LLADDR, _prefix(vhid, vips.v4, vips.v6_global, lladdr)))
    out: list[tuple[tuple[str, ...], bytes]] = []
    for name, prefix in cands:
        for i, (names, p) in enumerate(out):
            if p == prefix:
                out[i] = (names + (name,), p)
                break
        else:
            out.append(((name,), prefix))
    return out


def hmac_message(vhid: int, vips: VipSet | Iterable, counter: bytes, flavour: str = FREEBSD,
                 lladdr: bytes | None = None) -> bytes:
    """The exact byte string a sender of ``flavour`` hashes (for tests and explanations)."""
    vs = vips if isinstance(vips, VipSet) else VipSet.of(vips)
    if flavour == FREEBSD:
        return _prefix(vhid, vs.v4, vs.v6) + counter
    if flavour == OPENBSD:
        return _prefix(vhid, vs.v4, vs.v6_global) + counter
    if flavour == OPENBSD_LLADDR:
        if not lladdr or len(lladdr) != 6:
            raise ValueError("openbsd-lladdr needs a 6-byte lladdr")
        return _prefix(vhid, vs.v4, vs.v6_global, lladdr) + counter
    if flavour == UCARP:
        if len(vs.v4) != 1 or vs.v6:
            raise ValueError("ucarp hashes exactly one IPv4 address")
        return _prefix(vhid, vs.v4, ()) + counter
    raise ValueError(f"unknown flavour {flavour!r}")


class KeyPads:
    """SHA-1 states after absorbing ipad and opad of one key (shared by all its contexts)."""

    __slots__ = ("key", "inner", "outer", "ipad", "opad_state")

    def __init__(self, key: Key):
        block = key._raw.ljust(64, b"\0")
        self.key = key
        self.ipad = block.translate(_IPAD)
        self.inner = sha1(self.ipad)
        self.outer = sha1(block.translate(_OPAD))
        # the compiled kernel's outer midstate (None without it)
        self.opad_state: bytes | None = _sha1.absorb(block.translate(_OPAD)) if _sha1 is not None else None

    def digest(self, prefix: bytes, counter: bytes) -> bytes:
        """HMAC-SHA1(key, prefix ‖ counter) without building a context (diagnosis path)."""
        i = self.inner.copy()
        i.update(prefix)
        i.update(counter)
        o = self.outer.copy()
        o.update(i.digest())
        return o.digest()

    def __repr__(self) -> str:
        return f"<KeyPads {self.key.label!r}>"


class HmacContext:
    """One precomputed (key, vhid, VIP set, flavours) candidate, as ``carp_hmac_prepare`` builds.

    ``digest(counter)`` finishes the inner and the outer hash from their midstates: with the
    compiled kernel (carpscope._sha1) one call; without it one copy+update+digest of each
    SHA-1 state.
    """

    __slots__ = ("key", "vhid", "vips", "flavours", "lladdr", "vip_origin", "_inner", "_outer",
                 "result", "prefix", "_k_inner", "_k_outer")

    def __init__(self, pads: KeyPads, vhid: int, vips: VipSet, flavours: tuple[str, ...],
                 prefix: bytes, lladdr: bytes | None = None, vip_origin: str | None = None,
                 result: AuthResult | None = None) -> None:
        self.key = pads.key
        self.vhid = vhid
        self.vips = vips
        self.flavours = flavours
        self.lladdr = lladdr
        self.vip_origin = vip_origin
        self.prefix = prefix
        self._inner = pads.inner.copy()
        self._inner.update(prefix)
        self._outer = pads.outer
        self._k_outer = pads.opad_state
        self._k_inner: bytes | None = _sha1.absorb(pads.ipad + prefix) if _sha1 is not None else None
        self.result = result             # what a match concludes (the verifier's, on the first match)

    @property
    def flavour(self) -> str:
        return "|".join(self.flavours)

    def digest(self, counter: bytes) -> bytes:
        if self._k_inner is not None and self._k_outer is not None:
            return _sha1.finish(self._k_inner, self._k_outer, counter)
        i = self._inner.copy()
        i.update(counter)
        o = self._outer.copy()
        o.update(i.digest())
        return o.digest()

    def matches(self, counter: bytes, md: bytes) -> bool:
        # Not a security boundary (we only observe), so a plain comparison is fine.
        return self.digest(counter) == md

    def __repr__(self) -> str:
        return f"<HmacContext key={self.key.label!r} vhid={self.vhid} vips={self.vips} flavour={self.flavour}>"


def carp_hmac(key: bytes, vhid: int, vips: VipSet | Iterable, counter: bytes,
              flavour: str = FREEBSD, lladdr: bytes | None = None) -> bytes:
    """HMAC-SHA1 of one advert for a raw 20-byte key (reference entry point, same fast path)."""
    vs = vips if isinstance(vips, VipSet) else VipSet.of(vips)
    msg = hmac_message(vhid, vs, b"", flavour, lladdr)
    return KeyPads(Key("adhoc", key)).digest(msg, counter)
