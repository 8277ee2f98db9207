"""CARP keys: the one derivation of a key from a passphrase, labelled keys, the bundled list of
well-known default passphrases.

The key is what FreeBSD and OpenBSD ifconfig ``pass`` and ucarp build from a passphrase
(protocol.md §2.2): the first 19 bytes, a NUL, zero padding to 20 bytes.
"""
from __future__ import annotations

import functools
import os
import re

from carpscope.auth.secrets import BSD_PASS_MAX
from carpscope.digests import sha256

KEY_LEN = 20
_LABEL = r"[A-Za-z0-9_.:@/-]{1,64}"   # config labels look like hosta:vhid1 or carp-1@10.0.0.0/24


class PassphraseError(ValueError):
    """A passphrase or raw key that an implementation would refuse. Never carries the secret."""


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
        return sha256(raw).digest()[:KEY_LEN]
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

    __slots__ = ("label", "origin", "_raw", "truncated", "weak_index", "owners", "vhids")

    def __init__(self, label: str, raw: bytes, origin: str = "cli", *, truncated: bool = False,
                 weak_index: int | None = None, owners: frozenset[str] = frozenset(),
                 vhids: frozenset[int] = frozenset()):
        if len(raw) != KEY_LEN:
            raise PassphraseError(f"a CARP key is {KEY_LEN} bytes")
        self.label = label
        self.origin = origin
        self._raw = bytes(raw)
        self.truncated = truncated          # passphrase was longer than 19 bytes
        self.weak_index = weak_index        # bundled weak list entry (0 = empty passphrase)
        self.owners = owners                # addresses of the host configured with it (configs)
        self.vhids = vhids                  # ... and the VHIDs it is configured for

    @property
    def weak(self) -> bool:
        return self.weak_index is not None

    def __repr__(self) -> str:
        return f"<Key {self.label!r} origin={self.origin}>"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("carpscope keys are not picklable (they hold a secret)")


def check_label(label: str) -> str:
    # The label is not echoed: a caller who swapped label and secret would otherwise leak it.
    if not isinstance(label, str) or not re.fullmatch(_LABEL, label):
        raise ValueError("a key label must be 1-64 letters, digits or _ . : @ / -")
    return label


# --------------------------------------------------------------------------- weak passphrases

def _weak_entries() -> list[bytes]:
    # package data beside the modules, read directly: importlib.resources would add its imports
    # (tempfile, zipfile, threading...) to every run that checks weak keys, i.e. every analyze
    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "weak_passphrases.txt")
    with open(path, "rb") as f:
        text = f.read()
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
        if k.weak_index is not None:
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
