"""CARP authentication: keys, VIP sets, HMAC flavours, the keyring, verification and diagnosis.

The CARP HMAC (protocol.md §2) is plain HMAC-SHA1 with a 20-byte key over

    0x02 ‖ 0x01 ‖ [lladdr, 6 bytes] ‖ vhid ‖ sorted IPv4 VIPs ‖ sorted IPv6 VIPs ‖ counter

where the VIP set is *not* in the packet: it must come from configuration or be inferred.

Flavours (how the sender builds the message)
---------------------------------------------
``freebsd``         IPv4 numerically sorted, IPv6 sorted by bytes after clearing bytes 2-3 of
                    scope-embedded (link-local) addresses, duplicates once, link-locals included.
``openbsd``         as freebsd but scope-embedded IPv6 addresses left out (HMAC_NOV6LL, which
                    is what OpenBSD *sends*; its receivers also accept the freebsd form).
``ucarp``           exactly one IPv4 address and nothing else.
``openbsd-lladdr``  openbsd plus the 6-byte interface MAC between type and vhid (an OpenBSD leader
                    vhost with a custom ``lladdr``); tried with the advert's Ethernet source when
                    that is not a virtual MAC, since OpenBSD sends from the carp interface's MAC.

Several flavours often produce the *same* message (one IPv4 VIP: all three; no link-local:
freebsd and openbsd). A match therefore reports every flavour that produces that message:
``AuthResult.flavours`` is the tuple in the fixed order freebsd, openbsd, ucarp, openbsd-lladdr,
and ``AuthResult.flavour`` is the same joined with ``|`` (``"freebsd|openbsd|ucarp"``). A single
name (``"freebsd"``, ``"openbsd"``) means the capture really tells the implementations apart.

Speed
-----
As the kernels do, the inner SHA-1 state after ipad ‖ prefix and the outer state after opad are
precomputed per (key, vhid, VIP set, flavour); an advert then costs one copy+update+digest of
each (``HmacContext.digest``). A steady speaker is checked against its last good context first.

Secrets
-------
Passphrases and raw keys live only in ``Key`` objects whose repr/str show the label. No error
message, repr, result, diagnosis or finding built here contains a passphrase; weak keys are
labelled ``weak-default-N`` / ``weak-empty`` and described as "bundled list entry N".
"""
from __future__ import annotations

import functools
import hashlib
import ipaddress
import os
import re
import stat
from dataclasses import dataclass, field
from importlib import resources
from itertools import combinations
from pathlib import Path
from typing import Iterable, Mapping

from carpscope.files import read_limited
from carpscope.model import CARP, VRRP2, Advert
from carpscope.rules import ERROR, INFO, WARNING, Rule, declare

HMAC_MISMATCH = declare("hmac-mismatch", "CS301", ERROR,
                        "CARP HMAC verifies with no known passphrase and VIP set", __name__)
VIP_SET_MISMATCH = declare("vip-set-mismatch", "CS302", ERROR,
                           "CARP HMAC verifies only with a different VIP set", __name__)
PASSPHRASE_MISMATCH = declare("passphrase-mismatch", "CS303", ERROR,
                              "Speakers of one VHID verify under different passphrases", __name__)
HMAC_UNCHECKED = declare("hmac-unchecked", "CS304", INFO,
                         "No passphrase known for a VHID: HMAC not checked", __name__)
WEAK_PASSPHRASE = declare("weak-passphrase", "CS305", WARNING,
                          "CARP passphrase is a default or documentation example", __name__)
VRRP_CLEARTEXT_AUTH = declare("vrrp-cleartext-auth", "CS306", WARNING,
                              "VRRPv2 simple password authentication: the password is readable on the wire", __name__)
VRRP_AUTH_MISMATCH = declare("vrrp-auth-mismatch", "CS307", ERROR,
                             "Speakers of one VRID send different VRRPv2 authentication", __name__)

KEY_LEN = 20
BSD_PASS_MAX = 19          # ifconfig strlcpy()s into 20 bytes: 19 characters and a NUL
ENV_PASSPHRASES = "CARPSCOPE_PASSPHRASES"

FREEBSD, OPENBSD, UCARP, OPENBSD_LLADDR = "freebsd", "openbsd", "ucarp", "openbsd-lladdr"
FLAVOURS = (FREEBSD, OPENBSD, UCARP, OPENBSD_LLADDR)

ORIGINS = ("cli", "config", "inventory", "file", "inferred")
INFERRED = "inferred"

_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))
_LABEL_RE = re.compile(r"[A-Za-z0-9_.:@/-]{1,64}")   # config labels look like hosta:vhid1 or carp-1@10.0.0.0/24
_FILE_LINE_RE = re.compile(rb"([A-Za-z0-9_.-]+):(.*)", re.S)


class PassphraseError(ValueError):
    """A passphrase or raw key that an implementation would refuse. Never carries the secret."""


# --------------------------------------------------------------------------- key derivation

def _secret_bytes(passphrase: str | bytes) -> bytes:
    """UTF-8 bytes of a passphrase (surrogateescape keeps undecodable file bytes exact)."""
    if isinstance(passphrase, str):
        return passphrase.encode("utf-8", "surrogateescape")
    if isinstance(passphrase, (bytes, bytearray, memoryview)):
        return bytes(passphrase)
    raise TypeError("a passphrase must be str or bytes")


def is_truncated(passphrase: str | bytes) -> bool:
    """True when BSD ifconfig would silently keep only the first 19 bytes (protocol.md §2.2)."""
    return len(_secret_bytes(passphrase)) > BSD_PASS_MAX


def derive_key(passphrase: str | bytes, style: str = "bsd") -> bytes:
    """The 20-byte CARP key for a passphrase.

    ``bsd``: FreeBSD/OpenBSD ifconfig ``pass``: the first 19 bytes, a NUL, zero padding; longer
    passphrases are truncated silently (see ``is_truncated``); empty gives the all-zero key.
    ``ucarp``: the same bytes, but ucarp refuses empty and 20+ byte passphrases, which raises
    ``PassphraseError``. ``keypass``: first 20 bytes of SHA-256 (the ``keypass`` ifconfig fork).
    The passphrase is a C string for ifconfig and ucarp, so it ends at an embedded NUL.
    """
    raw = _secret_bytes(passphrase).split(b"\0", 1)[0]
    if style == "bsd":
        return raw[:BSD_PASS_MAX].ljust(KEY_LEN, b"\0")
    if style == "ucarp":
        if not raw:
            raise PassphraseError("ucarp refuses an empty passphrase")
        if len(raw) > BSD_PASS_MAX:
            raise PassphraseError(f"ucarp refuses a passphrase of {len(raw)} bytes (at most {BSD_PASS_MAX})")
        return raw.ljust(KEY_LEN, b"\0")
    if style == "keypass":
        return hashlib.sha256(raw).digest()[:KEY_LEN]
    raise ValueError(f"unknown key derivation style {style!r} (bsd, ucarp, keypass)")


def key_from_hex(text: str) -> bytes:
    """A raw 20-byte key written as 40 hex digits (``0x`` prefix and ``:``/space separators ok)."""
    t = "".join(str(text).split()).replace(":", "").lower()
    if t.startswith("0x"):
        t = t[2:]
    if not re.fullmatch(r"[0-9a-f]{40}", t):
        raise PassphraseError("a raw CARP key must be 40 hexadecimal digits (20 bytes)")
    return bytes.fromhex(t)


class Key:
    """A labelled 20-byte key. The secret is private: repr and str show only label and origin."""

    __slots__ = ("label", "origin", "_raw", "truncated", "weak_index")

    def __init__(self, label: str, raw: bytes, origin: str = "cli", *, truncated: bool = False,
                 weak_index: int | None = None):
        if len(raw) != KEY_LEN:
            raise PassphraseError(f"a CARP key is {KEY_LEN} bytes")
        self.label = label
        self.origin = origin
        self._raw = bytes(raw)
        self.truncated = truncated          # passphrase was longer than 19 bytes
        self.weak_index = weak_index        # bundled weak list entry (0 = empty passphrase)

    @property
    def weak(self) -> bool:
        return self.weak_index is not None

    def __repr__(self) -> str:
        return f"<Key {self.label!r} origin={self.origin}>"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("carpscope keys are not picklable (they hold a secret)")


# Every form of every secret this process was given, so that no message can carry one even when
# a bug puts it into an exception's text (see ``scrub``). Bounded by the keys the user supplied.
_SECRET_FORMS: set[str] = set()


def remember_secret(secret: str | bytes, raw: bytes | None = None) -> None:
    """Note a secret (and its derived key) so ``scrub`` can blank it out of any text."""
    b = secret.encode("utf-8", "surrogatepass") if isinstance(secret, str) else bytes(secret)
    forms = {b.decode("utf-8", "replace"), b.hex(), b.hex().upper(), b[:BSD_PASS_MAX].decode("utf-8", "replace")}
    if raw is not None:
        forms |= {raw.hex(), raw.hex().upper()}
    _SECRET_FORMS.update(f for f in forms if len(f) >= 3)


def scrub(text: str) -> str:
    """``text`` with every remembered secret replaced by ``<secret>`` (longest forms first)."""
    for form in sorted(_SECRET_FORMS, key=len, reverse=True):
        if form in text:
            text = text.replace(form, "<secret>")
    return text


def _check_label(label: str) -> str:
    # The label is not echoed: a caller who swapped label and secret would otherwise leak it.
    if not isinstance(label, str) or not _LABEL_RE.fullmatch(label):
        raise ValueError("a key label must be 1-64 letters, digits or _ . : @ / -")
    return label


# --------------------------------------------------------------------------- weak passphrases

def _weak_entries() -> list[bytes]:
    text = resources.files("carpscope").joinpath("data/weak_passphrases.txt").read_bytes()
    out = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith(b"#"):
            continue
        out.append(line)
    return out


@functools.cache
def weak_keys() -> tuple[Key, ...]:
    """The all-zero key (``weak-empty``) and one key per bundled weak passphrase."""
    keys = [Key("weak-empty", bytes(KEY_LEN), origin="weak", weak_index=0)]
    for i, secret in enumerate(_weak_entries(), 1):
        keys.append(Key(f"weak-default-{i}", derive_key(secret), origin="weak", weak_index=i))
    return tuple(keys)


@functools.cache
def _weak_by_raw() -> dict[bytes, int]:
    out: dict[bytes, int] = {}
    for k in weak_keys():
        out.setdefault(k._raw, k.weak_index)
    return out


def weak_index_of(raw: bytes) -> int | None:
    """Bundled weak list entry number whose key equals ``raw`` (0 = empty), or None."""
    return _weak_by_raw().get(bytes(raw))


def describe_weak(index: int | None) -> str:
    """Human words for a weak key that never reveal it."""
    if index == 0:
        return "no passphrase (the all-zero key)"
    return f"a well-known default passphrase (bundled list entry {index})"


# --------------------------------------------------------------------------- VIP sets

def _scope_embedded(b: bytes) -> bool:
    """IN6_IS_SCOPE_EMBED: link-local unicast, interface- and link-local multicast."""
    return (b[0] == 0xFE and (b[1] & 0xC0) == 0x80) or (b[0] == 0xFF and (b[1] & 0x0F) in (1, 2))


def parse_address(text: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> tuple[int, bytes]:
    """(family, wire bytes) of a VIP; accepts ``fe80::1%em0`` and ``10.0.0.1/24`` forms.

    Scope-embedded IPv6 addresses get bytes 2-3 cleared as the kernels do before hashing, so the
    KAME in-kernel form ``fe80:2::1`` equals ``fe80::1``.
    """
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
    return str(ipaddress.ip_address(b))


@dataclass(frozen=True, slots=True, repr=False)
class VipSet:
    """The addresses bound to a VHID, in the kernels' hashing order (sorted, duplicates once).

    0.0.0.0, 255.255.255.255, :: and ff..ff are left out: the kernels' strictly-increasing
    selection loop can never pick them (protocol.md §2.3).
    """

    v4: tuple[bytes, ...]
    v6: tuple[bytes, ...]

    @classmethod
    def of(cls, addrs: Iterable) -> "VipSet":
        v4, v6 = set(), set()
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


# --------------------------------------------------------------------------- fast HMAC

class KeyPads:
    """SHA-1 states after absorbing ipad and opad of one key (shared by all its contexts)."""

    __slots__ = ("key", "inner", "outer")

    def __init__(self, key: Key):
        block = key._raw.ljust(64, b"\0")
        self.key = key
        self.inner = hashlib.sha1(block.translate(_IPAD))
        self.outer = hashlib.sha1(block.translate(_OPAD))

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

    ``digest(counter)`` costs one inner copy+update+digest and one outer copy+update+digest.
    """

    __slots__ = ("key", "vhid", "vips", "flavours", "lladdr", "vip_origin", "_inner", "_outer",
                 "result", "prefix")

    def __init__(self, pads: KeyPads, vhid: int, vips: VipSet, flavours: tuple[str, ...],
                 prefix: bytes, lladdr: bytes | None = None, vip_origin: str | None = None):
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
        self.result: AuthResult | None = None

    @property
    def flavour(self) -> str:
        return "|".join(self.flavours)

    def digest(self, counter: bytes) -> bytes:
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


# --------------------------------------------------------------------------- keyring

@dataclass(frozen=True, slots=True)
class VipEntry:
    vips: VipSet
    origin: str
    segment: str | None = None


class Keyring:
    """Labelled keys plus the VIP sets known per VHID (optionally per segment).

    ``generation`` increases on every change so verifiers can drop stale caches.
    Inferred VIP sets replace the previous inferred set of the same (vhid, segment): inference
    grows its set as more ARP/NA arrive, and the old partial set is no longer a candidate.
    """

    MAX_SETS_PER_VHID = 256

    def __init__(self):
        self._keys: dict[str, Key] = {}
        self._vips: dict[int, list[VipEntry]] = {}
        self.generation = 0

    # keys
    def add_key(self, key: Key) -> Key:
        if key.label in self._keys:
            raise ValueError(f"duplicate key label {key.label!r}")
        self._keys[key.label] = key
        self.generation += 1
        return key

    def add_passphrase(self, label: str, secret: str | bytes, origin: str = "cli",
                       style: str = "bsd") -> Key:
        """Add a passphrase under ``label`` (derived with ``derive_key(secret, style)``)."""
        _check_label(label)
        raw = derive_key(secret, style)
        remember_secret(secret, raw)
        return self.add_key(Key(label, raw, origin, truncated=is_truncated(secret),
                                weak_index=weak_index_of(raw)))

    def add_raw_key(self, label: str, key: bytes | str, origin: str = "cli") -> Key:
        """Add a raw 20-byte key (bytes, or 40 hex digits)."""
        _check_label(label)
        raw = key_from_hex(key) if isinstance(key, str) else bytes(key)
        if len(raw) != KEY_LEN:
            raise PassphraseError(f"a raw CARP key must be {KEY_LEN} bytes")
        return self.add_key(Key(label, raw, origin, weak_index=weak_index_of(raw)))

    def keys(self) -> list[Key]:
        return list(self._keys.values())

    def __contains__(self, label: str) -> bool:
        return label in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    # VIP sets
    def add_vips(self, vhid: int, addrs: Iterable, origin: str = "cli",
                 segment: str | None = None) -> VipSet:
        """Record the VIP set of ``vhid`` (on ``segment``, or everywhere when None)."""
        if not 1 <= int(vhid) <= 255:
            raise ValueError(f"VHID must be 1-255, not {vhid}")
        if origin not in ORIGINS:
            raise ValueError(f"unknown VIP origin {origin!r} ({', '.join(ORIGINS)})")
        vs = VipSet.of(addrs)
        if not len(vs):
            raise ValueError(f"empty VIP set for vhid {vhid}")
        entries = self._vips.setdefault(int(vhid), [])
        if origin == INFERRED:
            old = [e for e in entries if e.origin == INFERRED and e.segment == segment]
            if old and old[0].vips == vs:
                return vs
            for e in old:
                entries.remove(e)
            if any(e.vips == vs and e.segment in (None, segment) for e in entries):
                self.generation += bool(old)
                return vs            # a configured set already says the same
        elif any(e.vips == vs and e.segment == segment and e.origin != INFERRED for e in entries):
            return vs
        if len(entries) >= self.MAX_SETS_PER_VHID:
            return vs
        entries.append(VipEntry(vs, origin, segment))
        self.generation += 1
        return vs

    def set_inferred(self, vhid: int, sets: list, segment: str | None) -> None:
        """Replace every inferred set of (vhid, segment) with ``sets`` (candidates, best first)."""
        want = [VipSet.of(a) for a in sets if a]
        entries = self._vips.setdefault(int(vhid), [])
        old = [e for e in entries if e.origin == INFERRED and e.segment == segment]
        if [e.vips for e in old] == want:
            return
        for e in old:
            entries.remove(e)
        for vs in want:
            if len(entries) >= self.MAX_SETS_PER_VHID:
                break
            if not any(e.vips == vs and e.segment in (None, segment) for e in entries):
                entries.append(VipEntry(vs, INFERRED, segment))
        self.generation += 1

    def remove_inferred(self, vhid: int, segment: str | None) -> None:
        """Forget the inferred set of (vhid, segment), e.g. when its evidence was retracted."""
        entries = self._vips.get(vhid, [])
        keep = [e for e in entries if not (e.origin == INFERRED and e.segment == segment)]
        if len(keep) != len(entries):
            self._vips[vhid] = keep
            self.generation += 1

    def vip_entries(self, vhid: int, segment: str | None = None, all_segments: bool = False
                    ) -> list[VipEntry]:
        """Sets for ``vhid`` usable on ``segment``: configured ones first, inferred last."""
        es = self._vips.get(vhid, ())
        if not all_segments:
            es = [e for e in es if e.segment is None or e.segment == segment]
        return sorted(es, key=lambda e: e.origin == INFERRED)

    def vhids(self) -> list[int]:
        return sorted(self._vips)

    def __repr__(self) -> str:
        labels = ", ".join(self._keys) or "-"
        return f"<Keyring keys=[{labels}] vhids={self.vhids()}>"

    __str__ = __repr__


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


def _group_other_readable(path: str | os.PathLike) -> int | None:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return stat.S_IMODE(mode) if mode & (stat.S_IRGRP | stat.S_IROTH) else None


def load_passphrase_file(path: str | os.PathLike, keyring: Keyring | None = None,
                         origin: str = "file") -> tuple[Keyring, list[str]]:
    """Read passphrases, one a line, into ``keyring`` (a new one if None).

    Line rule: if the line starts with ``LABEL:`` where LABEL is ``[A-Za-z0-9_.-]+`` (everything
    before the *first* colon), that is the label and the rest of the line, verbatim, is the
    passphrase; otherwise the whole line is the passphrase and the label is ``keyN`` (N = the
    entry's position among the file's passphrases). So a passphrase that itself looks like
    ``word:more`` or starts with ``#`` must be written with a label: ``lab:word:more``. Nothing
    but the line ending is stripped. ``#`` comment lines and blank lines are skipped.

    Returns (keyring, warnings); warnings name lines and labels, never passphrases, and include
    a file readable by group or others. Nothing is printed.
    """
    keyring = keyring if keyring is not None else Keyring()
    warnings: list[str] = []
    mode = _group_other_readable(path)
    if mode is not None:
        warnings.append(f"{path}: passphrase file is readable by group or others (mode {mode:04o}); "
                        "chmod 600 it")
    data = read_limited(path)
    n = 0
    for lineno, line in enumerate(data.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith(b"#"):
            continue
        n += 1
        m = _FILE_LINE_RE.fullmatch(line)
        label, secret = (m[1].decode("ascii"), m[2]) if m else (f"key{n}", line)
        if label in keyring:
            warnings.append(f"{path}:{lineno}: duplicate key label {label!r}: line ignored")
            continue
        keyring.add_passphrase(label, secret, origin=origin)
        if not secret:
            warnings.append(f"{path}:{lineno}: key {label!r} is empty (the all-zero key)")
        elif secret != secret.strip():
            warnings.append(f"{path}:{lineno}: key {label!r} begins or ends with white space, "
                            "which is kept as part of the passphrase")
        if is_truncated(secret):
            warnings.append(f"{path}:{lineno}: key {label!r} is longer than {BSD_PASS_MAX} bytes: "
                            "BSD ifconfig uses only the first 19, ucarp refuses it")
    return keyring, warnings


def keyring_from_env(environ: Mapping[str, str] | None = None, keyring: Keyring | None = None
                     ) -> tuple[Keyring, list[str]]:
    """Load the passphrase file named by ``$CARPSCOPE_PASSPHRASES`` (if set)."""
    env = os.environ if environ is None else environ
    path = env.get(ENV_PASSPHRASES, "")
    if not path:
        return (keyring if keyring is not None else Keyring()), []
    return load_passphrase_file(path, keyring, origin="env")


# --------------------------------------------------------------------------- results

@dataclass(frozen=True, slots=True)
class Diagnosis:
    """Why an advert does not verify, computed once per speaker.

    kind: ``vip-set`` (a known key verifies with another VIP set: ``key``, ``vips``),
    ``passphrase`` (no known key verifies with any known VIP set or the cheap variants tried),
    ``unknown-vips`` (no VIP set known for the vhid), ``no-keys`` (no key to try at all).
    """

    kind: str
    message: str
    vhid: int
    key: str | None = None
    vips: tuple[str, ...] = ()
    flavour: str | None = None
    weak: bool = False
    weak_index: int | None = None
    known_vips: tuple[tuple[str, ...], ...] = ()
    keys_tried: int = 0
    sets_tried: int = 0

    def to_json(self) -> dict:
        return {"kind": self.kind, "message": self.message, "key": self.key,
                "vips": list(self.vips), "flavour": self.flavour, "weak": self.weak,
                "known_vips": [list(v) for v in self.known_vips],
                "keys_tried": self.keys_tried, "sets_tried": self.sets_tried}


@dataclass(frozen=True, slots=True)
class AuthResult:
    """Outcome of checking one advert. Results are shared between adverts: do not mutate.

    status: ``ok`` | ``fail`` | ``unchecked`` (no key has a VIP set to try) | ``none`` (not a
    CARP advert). ``key`` is a label; ``vips`` the known VIP set that matched, as a tuple (a JSON
    list; with an openbsd flavour its link-locals were not hashed); ``weak_index`` the bundled
    weak list entry when the key is a weak one (0 = empty passphrase); ``lladdr`` the MAC hashed
    by ``openbsd-lladdr``; ``diagnosis`` set for ``fail`` and ``unchecked``.
    """

    status: str
    key: str | None = None
    vips: tuple[str, ...] = ()
    flavour: str | None = None
    flavours: tuple[str, ...] = ()
    inferred_vips: bool = False
    weak: bool = False
    weak_index: int | None = None
    lladdr: str | None = None
    reason: str | None = None
    diagnosis: Diagnosis | None = None

    def to_json(self) -> dict:
        """The ``auth`` object of the JSON report (design.md)."""
        return {"status": self.status, "key": self.key, "vips": list(self.vips),
                "flavour": self.flavour}


NOT_CARP = AuthResult("none", reason="not a CARP advertisement")


# --------------------------------------------------------------------------- verifier

def _is_vmac(mac: str) -> bool:
    m = mac.lower()
    return m.startswith(("00:00:5e:00:", "01:00:5e:00:01:"))


def _lladdr_of(advert: Advert) -> bytes | None:
    """The advert's Ethernet source as a candidate OpenBSD lladdr (None for virtual MACs)."""
    mac = advert.eth_src
    if not mac or _is_vmac(mac):
        return None
    try:
        b = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    except ValueError:
        return None
    return b if len(b) == 6 and not b[0] & 1 else None


def _candidate_sets(known: list[VipSet], limit: int = 512) -> list[VipSet]:
    """Cheap alternatives to the known VIP sets of a vhid, nearest first.

    The union of all known sets; each known set minus one address and plus one address of the
    union; each single address; and all subsets of size 2 and 3 when the union has ≤ 8 addresses.
    """
    union_addrs: list[str] = []
    for vs in known:
        for a in vs.addrs:
            if a not in union_addrs:
                union_addrs.append(a)
    out: list[VipSet] = []
    seen = set(known)

    def push(addrs):
        if len(out) >= limit or not addrs:
            return
        vs = VipSet.of(addrs)
        if vs not in seen and len(vs):
            seen.add(vs)
            out.append(vs)

    push(union_addrs)
    for vs in known:
        for a in vs.addrs:
            push([x for x in vs.addrs if x != a])
        for a in union_addrs:
            if a not in vs.addrs:
                push(list(vs.addrs) + [a])
    for a in union_addrs:
        push([a])
    if len(union_addrs) <= 8:
        for r in (2, 3):
            for combo in combinations(union_addrs, r):
                push(combo)
    return out


def _fmt_sets(sets) -> str:
    return ", ".join("{" + ", ".join(s) + "}" for s in sets) or "none"


class _DiagEntry:
    __slots__ = ("generation", "diagnosis", "pads", "prefix", "reruns")

    def __init__(self, generation, diagnosis, pads=None, prefix=None, reruns=0):
        self.generation, self.diagnosis, self.pads, self.prefix, self.reruns = (
            generation, diagnosis, pads, prefix, reruns)


class Verifier:
    """Verifies every CARP advert against the keyring (and the bundled weak keys).

    Per speaker (segment, src, eth_src, vhid) the last matching context is tried first; only
    when it fails is the full candidate list searched, so a tampered advert in a steady stream
    still fails. Diagnosis of a failing speaker runs once and is reused while it stays valid.
    Memory is bounded by speakers and VHIDs, not packets.
    """

    MAX_SPEAKERS = 8192
    MAX_CONTEXT_LISTS = 4096
    MAX_DIAG_RERUNS = 4

    def __init__(self, keyring: Keyring, try_weak: bool = True):
        self.keyring = keyring
        self.try_weak = try_weak
        self._generation = -1
        self._pads: dict[str, KeyPads] = {}
        self._keys: list[Key] = []
        self._contexts: dict[tuple, list[HmacContext]] = {}
        self._good: dict[tuple, HmacContext] = {}
        self._diag: dict[tuple, _DiagEntry] = {}
        self._fail_results: dict[tuple, AuthResult] = {}
        self._unchecked: dict[tuple, AuthResult] = {}
        self.stats = {"ok": 0, "fail": 0, "unchecked": 0, "fast": 0, "searches": 0, "diagnoses": 0}

    def __repr__(self) -> str:
        return f"<Verifier {self.keyring!r} try_weak={self.try_weak}>"

    # caches
    def _sync(self) -> None:
        if self._generation == self.keyring.generation:
            return
        self._generation = self.keyring.generation
        keys, seen = [], set()
        for k in self.keyring.keys() + (list(weak_keys()) if self.try_weak else []):
            if k._raw not in seen:            # same secret under two labels: first label wins
                seen.add(k._raw)
                keys.append(k)
        self._keys = keys
        old = self._pads
        self._pads = {k.label: (old[k.label] if k.label in old and old[k.label].key is k else KeyPads(k))
                      for k in keys}
        self._contexts.clear()
        self._good.clear()
        self._diag.clear()
        self._fail_results.clear()
        self._unchecked.clear()

    def keys(self) -> list[Key]:
        self._sync()
        return list(self._keys)

    def _build(self, vhid: int, entries: list[VipEntry], lladdr: bytes | None) -> list[HmacContext]:
        out, seen = [], set()
        for k in self._keys:
            pads = self._pads[k.label]
            for e in entries:
                for flavours, prefix in flavour_prefixes(vhid, e.vips, lladdr):
                    if lladdr and flavours != (OPENBSD_LLADDR,):
                        continue                  # the plain flavours are in the base list
                    if (k.label, prefix) in seen:
                        continue
                    seen.add((k.label, prefix))
                    ctx = HmacContext(pads, vhid, e.vips, flavours, prefix, lladdr, e.origin)
                    ctx.result = AuthResult(
                        "ok", key=k.label, vips=e.vips.addrs, flavour=ctx.flavour, flavours=flavours,
                        inferred_vips=e.origin == INFERRED, weak=k.weak, weak_index=k.weak_index,
                        lladdr=lladdr.hex(":") if lladdr else None)
                    out.append(ctx)
        return out

    def contexts(self, segment: str, vhid: int, lladdr: bytes | None = None) -> list[HmacContext]:
        """Candidate contexts for a vhid on a segment (plus openbsd-lladdr ones for ``lladdr``)."""
        self._sync()
        ck = (segment, vhid, lladdr)
        ctxs = self._contexts.get(ck)
        if ctxs is None:
            entries = self.keyring.vip_entries(vhid, segment)
            ctxs = self._build(vhid, entries, None) if lladdr is None else self._build(vhid, entries, lladdr)
            if len(self._contexts) >= self.MAX_CONTEXT_LISTS:
                self._contexts.clear()
            self._contexts[ck] = ctxs
        return ctxs

    def verify(self, advert: Advert) -> AuthResult:
        """Check one advert; every advert is checked (no result is reused without a hash)."""
        if advert.protocol != CARP or advert.md is None or advert.counter is None:
            return NOT_CARP
        self._sync()
        counter, md = advert.counter, advert.md
        speaker = (advert.segment, advert.src, advert.eth_src, advert.vhid)
        good = self._good.get(speaker)
        if good is not None and good.matches(counter, md):
            self.stats["fast"] += 1
            self.stats["ok"] += 1
            return good.result
        base = self.contexts(advert.segment, advert.vhid)
        if not base or not self._keys:
            self.stats["unchecked"] += 1
            return self._unchecked_result(advert)
        self.stats["searches"] += 1
        lladdr = _lladdr_of(advert)
        extra = self.contexts(advert.segment, advert.vhid, lladdr) if lladdr else []
        for ctx in (*base, *extra):
            if ctx is not good and ctx.matches(counter, md):
                if len(self._good) >= self.MAX_SPEAKERS and speaker not in self._good:
                    self._good.pop(next(iter(self._good)))
                self._good[speaker] = ctx
                self.stats["ok"] += 1
                return ctx.result
        diag = self._diagnosis_for(speaker, advert)
        if all(k.origin == "weak" for k in self._keys) and diag.kind != "vip-set":
            # only the bundled defaults were tried and none fits any VIP variant: that says
            # nothing about the real key, so the advert is unchecked, not failed
            self.stats["unchecked"] += 1
            return self._unchecked_result(advert)
        self.stats["fail"] += 1
        res = self._fail_results.get(speaker)
        if res is None or res.diagnosis is not diag:
            res = AuthResult("fail", diagnosis=diag, reason=diag.message)
            if len(self._fail_results) >= self.MAX_SPEAKERS:
                self._fail_results.clear()
            self._fail_results[speaker] = res
        return res

    def _unchecked_result(self, advert: Advert) -> AuthResult:
        ck = (advert.segment, advert.vhid)
        res = self._unchecked.get(ck)
        if res is None:
            diag = self._unchecked_diag(advert.vhid, advert.segment)
            res = AuthResult("unchecked", reason=diag.message, diagnosis=diag)
            if len(self._unchecked) >= self.MAX_CONTEXT_LISTS:
                self._unchecked.clear()
            self._unchecked[ck] = res
        return res

    # diagnosis
    def _diagnosis_for(self, speaker: tuple, advert: Advert) -> Diagnosis:
        entry = self._diag.get(speaker)
        if entry is not None:
            if entry.pads is None or entry.reruns >= self.MAX_DIAG_RERUNS:
                return entry.diagnosis
            if entry.pads.digest(entry.prefix, advert.counter) == advert.md:
                return entry.diagnosis
        reruns = entry.reruns + 1 if entry is not None else 0
        diag, pads, prefix = self._diagnose(advert)
        if len(self._diag) >= self.MAX_SPEAKERS and speaker not in self._diag:
            self._diag.pop(next(iter(self._diag)))
        self._diag[speaker] = _DiagEntry(self._generation, diag, pads, prefix, reruns)
        return diag

    def diagnose(self, advert: Advert) -> Diagnosis:
        """Explain why ``advert`` does not verify (uncached; ``verify`` caches per speaker)."""
        self._sync()
        return self._diagnose(advert)[0]

    def _unchecked_diag(self, vhid: int, segment: str) -> Diagnosis:
        """Why nothing can be tried: no key at all, or no VIP set for this vhid here."""
        every = tuple(e.vips.addrs for e in self.keyring.vip_entries(vhid, all_segments=True))
        here = self.keyring.vip_entries(vhid, segment)
        if here and all(k.origin == "weak" for k in self._keys):
            return Diagnosis("no-keys", f"no passphrase was given and none of the bundled default "
                             f"passphrases verifies vhid {vhid}: the HMAC is not checked (give "
                             "--passphrase-file or $CARPSCOPE_PASSPHRASES)", vhid, known_vips=every)
        if not self._keys:
            return Diagnosis("no-keys", f"no passphrase is known: the HMAC of vhid {vhid} cannot be "
                             "checked (give --passphrase-file or $CARPSCOPE_PASSPHRASES)", vhid,
                             known_vips=every)
        elsewhere = f" on {segment} (VIP sets are known only for other segments)" if every else ""
        return Diagnosis("unknown-vips", f"no VIP set is known for vhid {vhid}{elsewhere}: the HMAC "
                         f"covers the VIPs, so it cannot be checked (give --vip {vhid}=ADDR[,ADDR...] "
                         "or an inventory)", vhid, known_vips=every)

    def _diagnose(self, advert: Advert):
        vhid = advert.vhid
        self.stats["diagnoses"] += 1
        local = [e.vips for e in self.keyring.vip_entries(vhid, advert.segment)]
        every = [e.vips for e in self.keyring.vip_entries(vhid, all_segments=True)]
        known = list(dict.fromkeys(local + every))
        known_txt = tuple(vs.addrs for vs in known)
        if not self._keys or not known:
            return self._unchecked_diag(vhid, advert.segment), None, None
        lladdr = _lladdr_of(advert)
        candidates = [vs for vs in every if vs not in local] + _candidate_sets(known)
        for vs in candidates:
            for k in self._keys:
                pads = self._pads[k.label]
                for flavours, prefix in flavour_prefixes(vhid, vs, lladdr):
                    if pads.digest(prefix, advert.counter) == advert.md:
                        return self._vip_diag(vhid, k, vs, flavours, known_txt, len(candidates)), pads, prefix
        msg = (f"no known passphrase ({len(self._keys)} tried) verifies vhid {vhid} with the known "
               f"VIP set(s) {_fmt_sets(known_txt)} or any of {len(candidates)} subsets/supersets tried")
        return Diagnosis("passphrase", msg, vhid, known_vips=known_txt, keys_tried=len(self._keys),
                         sets_tried=len(candidates)), None, None

    def _vip_diag(self, vhid, key, vs, flavours, known_txt, tried) -> Diagnosis:
        flavour = "|".join(flavours)
        who = (describe_weak(key.weak_index) + f" (key {key.label})") if key.weak else f"passphrase `{key.label}`"
        msg = (f"verifies with {who} if the VIP set of vhid {vhid} is {vs} ({flavour}); "
               f"known VIP set(s): {_fmt_sets(known_txt)}")
        return Diagnosis("vip-set", msg, vhid, key=key.label, vips=vs.addrs, flavour=flavour,
                         weak=key.weak, weak_index=key.weak_index, known_vips=known_txt,
                         keys_tried=len(self._keys), sets_tried=tried)


# --------------------------------------------------------------------------- findings

_SAMPLE = 10


def _fingerprint(data: bytes | None) -> bytes:
    """Internal comparison token for VRRP auth data; never reported."""
    return hashlib.sha256(data or b"").digest()


@dataclass(slots=True)
class _Speaker:
    segment: str
    protocol: str
    vhid: int
    src: str
    eth_src: str | None
    family: int
    first_seen: float
    last_seen: float
    adverts: int = 0
    ok: int = 0
    fail: int = 0
    unchecked: int = 0
    frames: list[int] = field(default_factory=list)
    fail_frames: list[int] = field(default_factory=list)
    ok_by: dict = field(default_factory=dict)        # (key, vips, flavour, weak_index) -> count
    diagnosis: Diagnosis | None = None
    unchecked_reason: str | None = None
    auth: dict = field(default_factory=dict)         # (auth_type, fingerprint) -> count
    auth_frames: list[int] = field(default_factory=list)

    def best_ok(self):
        return max(self.ok_by.items(), key=lambda kv: kv[1])[0] if self.ok_by else None

    def effective(self):
        """(key label or None, vips or None, flavour, weak_index) this speaker appears to use."""
        b = self.best_ok()
        if b is not None:
            return b
        d = self.diagnosis
        if self.fail and d is not None and d.kind == "vip-set":
            return (d.key, d.vips, d.flavour, d.weak_index)
        if self.fail:
            return (None, None, None, None)
        return None


def _sample(frames: list[int], frame: int) -> None:
    if len(frames) < _SAMPLE:
        frames.append(frame)


class AuthFindings:
    """Collects auth results per speaker and turns them into findings at the end.

    State is per speaker (segment, protocol, vhid, source IP) with bounded samples, never per
    packet. Feed ``add(advert, result)`` for every advert (VRRP adverts need no result).
    """

    MAX_SPEAKERS = 8192
    MAX_VARIANTS = 8

    def __init__(self):
        self._speakers: dict[tuple, _Speaker] = {}
        self.dropped = 0

    def speaker(self, advert: Advert) -> _Speaker | None:
        """The state of the advert's speaker (None once MAX_SPEAKERS are kept)."""
        key = (advert.segment, advert.protocol, advert.vhid, advert.src)
        sp = self._speakers.get(key)
        if sp is None:
            if len(self._speakers) >= self.MAX_SPEAKERS:
                return None
            sp = self._speakers[key] = _Speaker(advert.segment, advert.protocol, advert.vhid,
                                                advert.src, advert.eth_src, advert.family,
                                                advert.ts, advert.ts)
        return sp

    def add(self, advert: Advert, result: AuthResult | None = None) -> None:
        sp = self.speaker(advert)
        if sp is None:
            self.dropped += 1
            return
        sp.adverts += 1
        sp.last_seen = max(sp.last_seen, advert.ts)
        sp.first_seen = min(sp.first_seen, advert.ts)
        _sample(sp.frames, advert.frame)
        if advert.protocol == CARP and result is not None:
            if result.status == "ok":
                sp.ok += 1
                k = (result.key, tuple(result.vips), result.flavour, result.weak_index)
                if k in sp.ok_by or len(sp.ok_by) < self.MAX_VARIANTS:
                    sp.ok_by[k] = sp.ok_by.get(k, 0) + 1
            elif result.status == "fail":
                sp.fail += 1
                _sample(sp.fail_frames, advert.frame)
                sp.diagnosis = result.diagnosis or sp.diagnosis
            elif result.status == "unchecked":
                sp.unchecked += 1
                sp.unchecked_reason = result.reason
        elif advert.protocol == VRRP2 and advert.auth_type is not None:
            fp = _fingerprint(advert.auth_data) if advert.auth_type == 1 else b""
            k = (advert.auth_type, fp)
            if k in sp.auth or len(sp.auth) < self.MAX_VARIANTS:
                sp.auth[k] = sp.auth.get(k, 0) + 1
            if advert.auth_type == 1:
                _sample(sp.auth_frames, advert.frame)

    def findings(self) -> list:
        groups: dict[tuple, list[_Speaker]] = {}
        for sp in self._speakers.values():
            groups.setdefault((sp.segment, sp.protocol, sp.vhid), []).append(sp)
        out = []
        for gk in sorted(groups, key=lambda g: (g[0], g[1], g[2])):
            sps = sorted(groups[gk], key=lambda s: (s.first_seen, s.src))
            if gk[1] == CARP:
                out += _carp_findings(sps)
            elif gk[1] == VRRP2:
                out += _vrrp_findings(sps)
        return out


def auth_findings(results: Iterable[tuple[Advert, AuthResult | None]]) -> list:
    """Findings for a stream of (advert, auth result) pairs (see ``AuthFindings``)."""
    col = AuthFindings()
    for advert, res in results:
        col.add(advert, res)
    return col.findings()


def _speaker_evidence(sp: _Speaker) -> dict:
    if sp.protocol != CARP:
        return {"ip": sp.src, "mac": sp.eth_src, "family": sp.family, "adverts": sp.adverts,
                "auth_types": sorted({t for t, _ in sp.auth})}
    eff = sp.effective()
    d = sp.diagnosis
    return {"ip": sp.src, "mac": sp.eth_src, "family": sp.family, "adverts": sp.adverts,
            "ok": sp.ok, "fail": sp.fail, "unchecked": sp.unchecked,
            "key": eff[0] if eff else None,
            "vips": list(eff[1]) if eff and eff[1] is not None else None,
            "flavour": eff[2] if eff else None,
            "diagnosis": d.to_json() if (d is not None and sp.fail) else None}


def _finding(rule: Rule, message, sps, frames, cause=None, **evidence):
    first = min(s.first_seen for s in sps)
    last = max(s.last_seen for s in sps)
    ev = {"speakers": [_speaker_evidence(s) for s in sps]}
    ev.update(evidence)
    return rule.finding(message, protocol=sps[0].protocol, vhid=sps[0].vhid,
                             segment=sps[0].segment, first_seen=first, last_seen=last,
                             packets=sorted(set(frames))[:_SAMPLE], evidence=ev, cause=cause)


def _failing_first(sps: list[_Speaker]) -> list[int]:
    """Sample frames: the failing adverts when there are any (they are the evidence)."""
    failing = [f for s in sps for f in s.fail_frames]
    return failing or [f for s in sps for f in s.frames]


def _set_txt(vips) -> str:
    return "{" + ", ".join(vips) + "}"


def _carp_findings(sps: list[_Speaker]) -> list:
    out = []
    vhid, seg = sps[0].vhid, sps[0].segment
    where = f"vhid {vhid} on {seg}"
    eff = {s.src: s.effective() for s in sps}
    judged = [s for s in sps if eff[s.src] is not None]
    known_sets: list = []
    for s in sps:
        if s.diagnosis is not None:
            known_sets = [list(v) for v in s.diagnosis.known_vips]
            break

    # passphrase-mismatch: speakers of the group verify under different keys (None = no key)
    labels = {eff[s.src][0] for s in judged}
    pp_covered: set[str] = set()
    if len(judged) >= 2 and len(labels) >= 2 and labels != {None}:
        parts = [f"{s.src} with " + (f"`{eff[s.src][0]}`" if eff[s.src][0] else "no known passphrase")
                 for s in judged]
        frames = _failing_first(judged)
        out.append(_finding(PASSPHRASE_MISMATCH,
                            f"speakers of {where} verify under different passphrases: " + "; ".join(parts),
                            judged, frames, cause="passphrase",
                            key_labels=sorted(label for label in labels if label)))
        pp_covered = {s.src for s in judged if eff[s.src][0] is None and not s.ok}

    # vip-set-mismatch: a known key verifies only with another VIP set than configured / others use
    vip_users = [s for s in judged if eff[s.src][1] is not None]
    sets = {tuple(eff[s.src][1]) for s in vip_users}
    diag_vip = [s for s in vip_users if not s.ok and s.diagnosis is not None and s.diagnosis.kind == "vip-set"]
    if diag_vip or len(sets) >= 2:
        parts = [f"{s.src} uses {_set_txt(eff[s.src][1])}" + (f" (key `{eff[s.src][0]}`)" if eff[s.src][0] else "")
                 for s in vip_users]
        msg = f"speakers of {where} hash different VIP sets: " + "; ".join(parts)
        if known_sets:
            msg += f"; known/configured VIP set(s): {_fmt_sets(known_sets)}"
        frames = _failing_first(vip_users)
        flav = sorted({eff[s.src][2] for s in vip_users if eff[s.src][2]})
        out.append(_finding(VIP_SET_MISMATCH, msg, vip_users, frames, cause="vip-set",
                            vips={s.src: list(eff[s.src][1]) for s in vip_users},
                            known_vips=known_sets, flavour=flav[0] if len(flav) == 1 else flav))

    # hmac-mismatch: adverts that verify with nothing known (and are not explained above)
    for s in sps:
        if not s.fail or s.src in pp_covered:
            continue
        if not s.ok and s.diagnosis is not None and s.diagnosis.kind == "vip-set":
            continue
        if s.ok:
            good = s.best_ok()
            msg = (f"{s.fail} of {s.adverts} adverts from {s.src} ({where}) verify with nothing known, "
                   f"while its other adverts verify with `{good[0]}`: forged or corrupted adverts, "
                   "or a passphrase/VIP change during the capture")
        else:
            why = s.diagnosis.message if s.diagnosis is not None else "no known key and VIP set verify"
            msg = f"adverts from {s.src} ({where}) verify with no known passphrase and VIP set: {why}"
        out.append(_finding(HMAC_MISMATCH, msg, [s], s.fail_frames, cause="auth"))

    # weak-passphrase
    weak = [s for s in judged if eff[s.src][3] is not None]
    if weak:
        idx = sorted({eff[s.src][3] for s in weak})
        what = " and ".join(describe_weak(i) for i in idx)
        msg = f"{', '.join(s.src for s in weak)} ({where}) authenticate with {what}"
        out.append(_finding(WEAK_PASSPHRASE, msg, weak, [f for s in weak for f in s.frames],
                            cause="passphrase", weak_entries=idx,
                            key_labels=sorted({eff[s.src][0] for s in weak})))

    # hmac-unchecked: nothing in the group could be checked
    if all(not s.ok and not s.fail for s in sps) and any(s.unchecked for s in sps):
        reason = next((s.unchecked_reason for s in sps if s.unchecked_reason), "no key or VIP set known")
        out.append(_finding(HMAC_UNCHECKED, f"CARP HMAC of {where} not checked: {reason}", sps,
                            [f for s in sps for f in s.frames]))
    return out


def _vrrp_findings(sps: list[_Speaker]) -> list:
    out = []
    vrid, seg = sps[0].vhid, sps[0].segment
    where = f"VRID {vrid} on {seg}"
    variant_no: dict[bytes, int] = {}
    for s in sps:
        for (t, fp) in s.auth:
            if t == 1 and fp not in variant_no:
                variant_no[fp] = len(variant_no) + 1

    def describe(s: _Speaker) -> str:
        parts = []
        for (t, fp) in s.auth:
            parts.append(f"type {t} (simple password #{variant_no[fp]})" if t == 1 else f"type {t}")
        return f"{s.src}: " + ", ".join(parts)

    clear = [s for s in sps if any(t == 1 for t, _ in s.auth)]
    if clear:
        msg = (f"{', '.join(s.src for s in clear)} ({where}) use VRRPv2 simple password "
               "authentication (auth type 1): the password is sent in clear text in every advert "
               "and protects against nothing")
        out.append(_finding(VRRP_CLEARTEXT_AUTH, msg, clear, [f for s in clear for f in s.auth_frames],
                            cause="auth", auth_types={s.src: sorted({t for t, _ in s.auth}) for s in clear},
                            password_variants=len(variant_no)))
    with_auth = [s for s in sps if s.auth]
    variants = {k for s in with_auth for k in s.auth}
    if len(with_auth) >= 1 and len(variants) >= 2:
        msg = (f"speakers of {where} send different VRRPv2 authentication ("
               + "; ".join(describe(s) for s in with_auth)
               + "): receivers drop adverts whose auth type or password differs from theirs")
        out.append(_finding(VRRP_AUTH_MISMATCH, msg, with_auth,
                            [f for s in with_auth for f in (s.auth_frames or s.frames)], cause="auth",
                            auth={s.src: [{"type": t, "variant": variant_no.get(fp)} for t, fp in s.auth]
                                  for s in with_auth}))
    return out
