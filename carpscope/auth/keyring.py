"""The keyring: labelled keys and the VIP sets known per VHID (configured or inferred), and
loading passphrases from files and the environment."""
from __future__ import annotations

import os
import re
import stat

from carpscope.auth.keys import Key, check_label, derive_key, is_truncated, key_from_hex, weak_index_of, PassphraseError, KEY_LEN
from carpscope.auth.secrets import BSD_PASS_MAX, remember_secret
from carpscope.auth.vips import VipSet
from carpscope.files import read_limited

TYPE_CHECKING = False     # typing.TYPE_CHECKING without importing typing at run time (start-up)
if TYPE_CHECKING:
    from typing import Iterable, Mapping

ENV_PASSPHRASES = "CARPSCOPE_PASSPHRASES"
ORIGINS = ("cli", "config", "inventory", "file", "inferred")
INFERRED = "inferred"
_FILE_LINE = rb"([A-Za-z0-9_.-]+):(.*)"     # label:passphrase (compiled on first use, not at import)


class VipEntry:
    """A VIP set known for a VHID, where it came from, and the segment it holds on (None: any).
    Immutable once made; a plain class, because a NamedTuple needs ``typing`` at start-up."""

    __slots__ = ("vips", "origin", "segment")

    def __init__(self, vips: VipSet, origin: str, segment: str | None = None) -> None:
        self.vips, self.origin, self.segment = vips, origin, segment

    def __repr__(self) -> str:
        return f"VipEntry({self.vips!r}, {self.origin!r}, {self.segment!r})"


class Keyring:
    """Labelled keys plus the VIP sets known per VHID (optionally per segment).

    ``generation`` increases on every change so verifiers can drop stale caches.
    Inferred VIP sets replace the previous inferred set of the same (vhid, segment): inference
    grows its set as more ARP/NA arrive, and the old partial set is no longer a candidate.
    """

    MAX_SETS_PER_VHID = 256

    def __init__(self) -> None:
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
                       style: str = "bsd", owners: frozenset[str] = frozenset(),
                       vhids: frozenset[int] = frozenset()) -> Key:
        """Add a passphrase under ``label`` (derived with ``derive_key(secret, style)``);
        ``owners``, ``vhids``: the addresses of the host whose configuration holds it and the
        VHIDs it is configured for, when a configuration says so."""
        check_label(label)
        raw = derive_key(secret, style)
        remember_secret(secret, raw)
        return self.add_key(Key(label, raw, origin, truncated=is_truncated(secret),
                                weak_index=weak_index_of(raw), owners=owners, vhids=vhids))

    def add_raw_key(self, label: str, key: bytes | str, origin: str = "cli") -> Key:
        """Add a raw 20-byte key (bytes, or 40 hex digits)."""
        check_label(label)
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
    entry's position among the file's passphrases). A line ``word:more`` cannot say which it
    means (an unlabelled passphrase with a colon, or a label): it is read both ways, the whole
    line also being a key labelled ``lineL`` (L = the line number, so that no part of what may
    be a passphrase becomes a label in a report); the HMAC decides which one is right. A
    passphrase starting with ``#`` must be written with a label: ``lab:#more``. Nothing but the
    line ending is stripped. ``#`` comment lines and blank lines are skipped.

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
        m = re.fullmatch(_FILE_LINE, line, re.S)
        label, secret = (m[1].decode("ascii"), m[2]) if m else (f"key{n}", line)
        if label in keyring:
            warnings.append(f"{path}:{lineno}: duplicate key label {label!r}: line ignored")
            continue
        keyring.add_passphrase(label, secret, origin=origin)
        if m and f"line{lineno}" not in keyring:    # or an unlabelled passphrase with a colon
            keyring.add_passphrase(f"line{lineno}", line, origin=origin)
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
