"""The operator's intent as data: segments, groups, hosts and their memberships, plus TOML I/O.

Every parser (rc.conf, keepalived.conf, ucarp, inventory TOML) ends up in this one model, so the
linter and the capture verifier reason about a single shape whatever the source was.

Two properties matter more than convenience here:

* **Secrets never show themselves.** A passphrase is held in a `Secret` whose repr/str name only
  its label and where it comes from; writing an inventory keeps references (`passphrase_file`,
  `passphrase_env`) and never the value. Reports refer to keys by label (``hosta:vhid1``).
* **Every value remembers where it was written** (`Origin`: file and line), so a finding can point
  at the line to fix. Origins are excluded from equality: a model loaded from a file compares equal
  to the same model written out and loaded again.
"""
from __future__ import annotations

import hmac
import ipaddress
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from carpscope.files import read_text_limited, text_error

CARP, VRRP2, VRRP3 = "carp", "vrrp2", "vrrp3"
PROTOCOLS = (CARP, VRRP2, VRRP3)

BSD_KEY_LEN = 20          # CARP_KEY_LEN: the key is 20 bytes ...
BSD_PASS_MAX = 19         # ... filled by strlcpy(key, pass, 20): at most 19 characters survive
VRRP_PASS_MAX = 8         # VRRPv2 simple password field (keepalived truncates auth_pass to 8)

CARP_DEFAULT_ADVBASE = 1
CARP_DEFAULT_ADVSKEW = 0
VRRP_DEFAULT_PRIORITY = 100
VRRP_DEFAULT_ADVERT_INT = 1.0
MAX_PASSPHRASE_FILE = 64 << 10   # a passphrase file holds one short line


class ConfigError(ValueError):
    """A configuration that cannot be read as written, located at file and line.

    ``str()`` gives one line, ``path:line: message``, fit for stderr. The message never quotes a
    passphrase (parsers describe the offending word by position instead of echoing it).
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None, line: int | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path or "<config>"
        if self.line:
            where = f"{where}:{self.line}"
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a value was written: a file and (when known) a 1-based line."""

    path: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path


def bsd_key(passphrase: str | bytes | None) -> bytes:
    """The 20-byte CARP key FreeBSD/OpenBSD ifconfig derive from a passphrase (protocol.md §2.2).

    ``strlcpy(key, pass, 20)``: the first 19 bytes, a NUL, zero padding. No passphrase gives the
    all-zero key a fresh vhid starts with.
    """
    if passphrase is None:
        return bytes(BSD_KEY_LEN)
    raw = passphrase.encode() if isinstance(passphrase, str) else bytes(passphrase)
    raw = raw[:BSD_PASS_MAX]
    return raw + bytes(BSD_KEY_LEN - len(raw))


class Secret:
    """A passphrase known by a label, held so that it cannot leak by accident.

    The value comes from one of: a file (``passphrase_file``; first line, newline stripped, as
    ucarp's ``--passfile``), an environment variable (``passphrase_env``), or a value read from a
    configuration (rc.conf ``pass``, keepalived ``auth_pass``, inventory inline). File and variable
    are read when first needed, so an inventory can be loaded, converted and written on a machine
    that does not hold the secrets.

    ``repr``/``str`` show the label and the kind of reference only. Use `reveal()` where the value
    is really needed (key derivation) and never put its result in a message.
    """

    __slots__ = ("label", "file", "env", "base", "origin", "_value")

    def __init__(self, label: str, *, value: str | None = None, file: str | None = None,
                 env: str | None = None, base: str | os.PathLike | None = None,
                 origin: Origin | None = None):
        if sum(x is not None for x in (value, file, env)) != 1:
            raise ValueError("a Secret needs exactly one of value, file, env")
        self.label = label
        self.file = file
        self.env = env
        self.base = None if base is None else str(base)
        self.origin = origin
        self._value = value

    # -- what it is, without the value -------------------------------------------------------
    @property
    def kind(self) -> str:
        """``file``, ``env`` or ``value`` (read from a configuration)."""
        return "file" if self.file is not None else "env" if self.env is not None else "value"

    def describe(self) -> str:
        if self.file is not None:
            return f"passphrase_file {self.file!r}"
        if self.env is not None:
            return f"passphrase_env {self.env!r}"
        return f"from {self.origin}" if self.origin else "from a configuration"

    def __repr__(self) -> str:
        return f"Secret({self.label!r}, {self.describe()})"

    __str__ = __repr__

    def __reduce__(self):  # pickling would carry the value; refuse rather than leak
        raise TypeError("Secret objects are not picklable")

    # -- the value ---------------------------------------------------------------------------
    def path(self) -> Path | None:
        if self.file is None:
            return None
        p = Path(self.file).expanduser()
        if not p.is_absolute() and self.base:
            p = Path(self.base) / p
        return p

    def reveal(self) -> str:
        """The passphrase itself. Raises ConfigError (at the reference's line) when unavailable."""
        if self._value is not None:
            return self._value
        where = self.origin or Origin("<inventory>")
        if self.env is not None:
            val = os.environ.get(self.env)
            if val is None:
                raise ConfigError(f"passphrase {self.label!r}: environment variable {self.env} is not set",
                                  where.path, where.line)
            return val
        p = self.path()
        try:     # a passphrase file is a small regular file: /dev/zero or a FIFO is refused
            first = read_text_limited(p, MAX_PASSPHRASE_FILE).split("\n", 1)[0]
        except OSError as exc:
            raise ConfigError(f"passphrase {self.label!r}: cannot read the file {self.file!r}: "
                              f"{exc.strerror or exc}", where.path, where.line) from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"passphrase {self.label!r}: the file {self.file!r} is {text_error(exc)}",
                              where.path, where.line) from None
        return first.rstrip("\r")

    def available(self) -> bool:
        try:
            self.reveal()
        except ConfigError:
            return False
        return True

    def bsd_key(self) -> bytes:
        """The 20-byte key BSD ifconfig derives (first 19 characters, NUL padded)."""
        return bsd_key(self.reveal())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        if (self.label, self.file, self.env) != (other.label, other.file, other.env):
            return False
        if self._value is None and other._value is None:
            return True
        if self._value is None or other._value is None:
            return False
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((self.label, self.file, self.env))


# ------------------------------------------------------------------------------------------------
# The model
# ------------------------------------------------------------------------------------------------

def _where() -> dict[str, Origin]:
    return field(default_factory=dict, compare=False, repr=False)


@dataclass
class Segment:
    """One layer-2 broadcast domain: where a VHID/VRID must be unique.

    ``network`` is an IP network on the segment (how configs are matched to it), ``interface`` and
    ``vlan`` describe it when the network is not known.
    """

    name: str
    interface: str | None = None
    vlan: int | None = None
    network: str | None = None
    where: dict[str, Origin] = _where()


@dataclass
class Member:
    """One host's part in one group, with the values that host is (or should be) configured with.

    Unset values (None) fall back to the group's value, then to the protocol default.
    ``master`` records that the host's own configuration calls it the master (keepalived
    ``state MASTER``, ifupdown ``ucarp-master yes``, ifconfig ``state master``).
    ``implementation`` (freebsd, keepalived, ucarp; None for an inventory) decides quirks such as
    the 241-254 advskew clamp and ucarp's refusal of long passwords.
    """

    host: str
    advskew: int | None = None
    advbase: int | None = None
    priority: int | None = None
    advert_int: float | None = None
    preempt: bool | None = None
    vips: tuple[str, ...] | None = None
    passphrase: Secret | None = None
    auth_type: str | None = None
    interface: str | None = None
    source: str | None = None
    peers: tuple[str, ...] = ()
    master: bool = False
    implementation: str | None = None
    where: dict[str, Origin] = _where()

    def origin(self, *keys: str) -> Origin | None:
        """The first known origin among ``keys``, else where the membership was declared."""
        for k in (*keys, "member"):
            if k in self.where:
                return self.where[k]
        return None


@dataclass
class Group:
    """A CARP vhid or VRRP VRID on one segment: the unit that elects one master.

    Identity is (segment, protocol, id). ``vips``/``passphrase``/``advbase``/``advert_int`` are
    the group's intended values (inventory); members may carry their own (configs). ``primary`` is
    the explicitly intended master; see `intended_primary` for the derived one.
    """

    name: str
    protocol: str
    id: int
    segment: str
    vips: tuple[str, ...] | None = None
    passphrase: Secret | None = None
    primary: str | None = None
    advbase: int | None = None
    advert_int: float | None = None
    members: list[Member] = field(default_factory=list)
    where: dict[str, Origin] = _where()

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.segment, self.protocol, self.id)

    @property
    def id_word(self) -> str:
        return "vhid" if self.protocol == CARP else "VRID"

    def describe(self) -> str:
        """``carp vhid 1 on 192.168.1.0/24``: how messages name a group."""
        return f"{self.protocol} {self.id_word} {self.id} on {self.segment}"

    def member(self, host: str) -> Member | None:
        return next((m for m in self.members if m.host == host), None)

    def vips_of(self, m: Member) -> tuple[str, ...] | None:
        return m.vips if m.vips is not None else self.vips

    def passphrase_of(self, m: Member) -> Secret | None:
        return m.passphrase if m.passphrase is not None else self.passphrase

    def advbase_of(self, m: Member) -> int:
        return m.advbase if m.advbase is not None else (
            self.advbase if self.advbase is not None else CARP_DEFAULT_ADVBASE)

    def advskew_of(self, m: Member) -> int:
        return m.advskew if m.advskew is not None else CARP_DEFAULT_ADVSKEW

    def priority_of(self, m: Member) -> int:
        return m.priority if m.priority is not None else VRRP_DEFAULT_PRIORITY

    def advert_int_of(self, m: Member) -> float:
        return m.advert_int if m.advert_int is not None else (
            self.advert_int if self.advert_int is not None else VRRP_DEFAULT_ADVERT_INT)

    def rank_of(self, m: Member) -> int:
        """Configured election rank, lower wins: 256*advbase + advskew (CARP), -priority (VRRP)."""
        if self.protocol == CARP:
            return 256 * self.advbase_of(m) + self.advskew_of(m)
        return -self.priority_of(m)

    def intended_primary(self) -> str | None:
        """Who should be master: the explicit ``primary``; else the one member whose own config
        says master; else the unique best configured rank (lowest advbase/advskew, highest
        priority). None when that is a tie or the group is empty."""
        if self.primary:
            return self.primary
        flagged = [m.host for m in self.members if m.master]
        if len(flagged) == 1:
            return flagged[0]
        if not self.members:
            return None
        best = min(self.rank_of(m) for m in self.members)
        top = [m.host for m in self.members if self.rank_of(m) == best]
        return top[0] if len(top) == 1 else None


@dataclass
class Host:
    """A machine taking part in groups. Host-wide settings: FreeBSD's ``net.inet.carp.preempt``
    and ``net.inet.carp.demotion`` (sysctl.conf), ``carp_load`` (loader.conf)."""

    name: str
    fqdn: str | None = None
    addresses: tuple[str, ...] = ()
    preempt: bool | None = None
    demotion: int | None = None
    carp_load: bool | None = None
    kind: str | None = None
    files: tuple[str, ...] = field(default=(), compare=False)
    where: dict[str, Origin] = _where()


@dataclass
class Inventory:
    segments: list[Segment] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    hosts: list[Host] = field(default_factory=list)
    allow_inline_secret: bool = False
    source: str | None = field(default=None, compare=False)
    notes: list[str] = field(default_factory=list, compare=False)

    def host(self, name: str) -> Host | None:
        return next((h for h in self.hosts if h.name == name), None)

    def segment(self, name: str) -> Segment | None:
        return next((s for s in self.segments if s.name == name), None)

    def group(self, name: str) -> Group | None:
        return next((g for g in self.groups if g.name == name), None)

    def find_group(self, segment: str, protocol: str, id: int) -> Group | None:
        return next((g for g in self.groups if g.key == (segment, protocol, id)), None)

    def memberships(self, host: str) -> list[tuple[Group, Member]]:
        return [(g, m) for g in self.groups for m in g.members if m.host == host]

    def secrets(self) -> list[Secret]:
        """Every labelled passphrase (group and member level), e.g. for a verifier's keyring."""
        out: list[Secret] = []
        for g in self.groups:
            for s in [g.passphrase, *(m.passphrase for m in g.members)]:
                if s is not None and all(s is not o for o in out):
                    out.append(s)
        return out


def group_name(protocol: str, id: int, segment: str) -> str:
    """Default group name, e.g. ``carp-1@192.168.1.0/24``."""
    return f"{protocol}-{id}@{segment}"


# ------------------------------------------------------------------------------------------------
# Reading TOML
# ------------------------------------------------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEYLINE = re.compile(r"""^\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_\-]+)\s*=""")


def _toml_lines(text: str) -> dict[tuple, int]:
    """Line numbers for the tables and keys of a TOML document (tomllib keeps none).

    Keys: ``(table, index...)`` for a header, ``(table, index..., key)`` for a key line, where
    arrays of tables count their instances (``("host", 1, "member", 0, "advskew")``). Multi-line
    strings and arrays are skipped over, so their continuation lines are never taken for keys.
    Good enough for the simple documents an inventory is; unknown positions just stay unknown.
    """
    lines: dict[tuple, int] = {}
    counts: dict[tuple, int] = {}
    current: tuple = ()
    depth = 0                     # bracket depth of a multi-line array
    in_ml: str | None = None      # open multi-line string delimiter
    for no, raw in enumerate(text.splitlines(), 1):
        if in_ml:
            if in_ml in raw:
                in_ml = None
            continue
        if depth:
            depth += raw.count("[") - raw.count("]")
            depth = max(depth, 0)
            continue
        m = _HEADER.match(raw)
        if m and not _KEYLINE.match(raw):
            names = [n.strip().strip('"\'') for n in m.group(2).split(".")]
            if m.group(1) == "[[":
                parent = _resolve(current, names[:-1])
                arr = parent + (names[-1],)
                idx = counts.get(arr, 0)
                counts[arr] = idx + 1
                current = arr + (idx,)
            else:
                current = _resolve(current, names[:-1]) + (names[-1],)
            lines[current] = no
            continue
        k = _KEYLINE.match(raw)
        if k:
            key = k.group(1).strip('"\'')
            lines[current + (key,)] = no
            rest = raw[k.end():]
            for delim in ('"""', "'''"):
                if rest.count(delim) == 1:
                    in_ml = delim
            stripped = re.sub(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'', "", rest).split("#")[0]
            depth = max(stripped.count("[") - stripped.count("]"), 0)
    return lines


def _resolve(current: tuple, names: list[str]) -> tuple:
    """Map a dotted header prefix (``host`` in ``[[host.member]]``) to the latest instance."""
    out: tuple = ()
    for n in names:
        out = out + (n,)
        # the current instance of an array of tables with that prefix
        if len(current) > len(out) and current[:len(out)] == out and isinstance(current[len(out)], int):
            out = out + (current[len(out)],)
    return out


class _Reader:
    """Validates a parsed TOML inventory into the model, locating every complaint."""

    def __init__(self, path: str, text: str):
        self.path = path
        self.base = str(Path(path).resolve().parent)
        self.lines = _toml_lines(text)

    def where(self, table: dict, kind: str, *key) -> dict[str, Origin]:
        """Where each key of ``table`` (at ``key``) was written, and the table itself as ``kind``."""
        return {k: self.at(*key, k) for k in table} | {kind: self.at(*key)}

    def at(self, *key) -> Origin:
        """Origin of a key (or of the nearest enclosing table)."""
        key = tuple(key)
        while key:
            if key in self.lines:
                return Origin(self.path, self.lines[key])
            key = key[:-1]
        return Origin(self.path, None)

    def fail(self, message: str, *key) -> ConfigError:
        o = self.at(*key)
        return ConfigError(message, o.path, o.line)

    # -- typed getters ------------------------------------------------------------------------
    def check_keys(self, table: dict, allowed: set[str], *key) -> None:
        for k in table:
            if k not in allowed:
                raise self.fail(f"unknown key {k!r} in [{_dotted(key)}] (allowed: {', '.join(sorted(allowed))})",
                                *key, k)

    def get(self, table: dict, name: str, types, *key, required=False):
        if name not in table:
            if required:
                raise self.fail(f"[{_dotted(key)}] needs {name!r}", *key)
            return None
        v = table[name]
        if isinstance(v, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            raise self.fail(f"{name!r} must be {_typename(types)}", *key, name)
        if not isinstance(v, types):
            raise self.fail(f"{name!r} must be {_typename(types)}", *key, name)
        return v

    def get_int(self, table, name, lo, hi, *key, required=False):
        v = self.get(table, name, int, *key, required=required)
        if v is not None and not lo <= v <= hi:
            raise self.fail(f"{name!r} = {v} is out of range {lo}-{hi}", *key, name)
        return v

    def get_float(self, table, name, lo, hi, *key):
        v = self.get(table, name, (int, float), *key)
        if v is None:
            return None
        v = float(v)
        if not (math.isfinite(v) and lo <= v <= hi):
            raise self.fail(f"{name!r} = {v} is out of range {lo}-{hi}", *key, name)
        return v

    def get_addrs(self, table, name, *key) -> tuple[str, ...] | None:
        v = self.get(table, name, list, *key)
        if v is None:
            return None
        out = []
        for item in v:
            if not isinstance(item, str):
                raise self.fail(f"{name!r} must be a list of addresses (strings)", *key, name)
            try:
                out.append(normalize_address(item))
            except ValueError:
                raise self.fail(f"{name!r}: {item!r} is not an IP address", *key, name) from None
        return tuple(out)

    def get_secret(self, table: dict, label: str, allow_inline: bool, *key) -> Secret | None:
        """``passphrase_file`` / ``passphrase_env`` / inline ``passphrase`` (opt-in), by label."""
        given = [k for k in ("passphrase", "passphrase_file", "passphrase_env") if k in table]
        if not given:
            if "passphrase_label" in table:
                raise self.fail("'passphrase_label' without passphrase_file or passphrase_env", *key,
                                "passphrase_label")
            return None
        if len(given) > 1:
            raise self.fail(f"give only one of {', '.join(given)}", *key, given[1])
        label = self.get(table, "passphrase_label", str, *key) or label
        k = given[0]
        origin = self.at(*key, k)
        if k == "passphrase":
            if not (allow_inline or table.get("allow_inline_secret") is True):
                raise self.fail("inline 'passphrase' refused: use passphrase_file or passphrase_env, "
                                "or set allow_inline_secret = true", *key, k)
            v = table[k]
            if not isinstance(v, str):
                raise self.fail("'passphrase' must be a string", *key, k)
            return Secret(label, value=v, origin=origin)
        v = self.get(table, k, str, *key)
        if not v:
            raise self.fail(f"{k!r} must not be empty", *key, k)
        if k == "passphrase_env":
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
                raise self.fail(f"'passphrase_env' = {v!r} is not an environment variable name", *key, k)
            return Secret(label, env=v, origin=origin)
        return Secret(label, file=v, base=self.base, origin=origin)


def _dotted(key: tuple) -> str:
    return ".".join(str(k) for k in key if not isinstance(k, int)) or "top level"


def _typename(types) -> str:
    names = {int: "an integer", float: "a number", str: "a string", list: "a list",
             bool: "true or false", dict: "a table"}
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join(names.get(t, t.__name__) for t in types)


def normalize_address(text: str) -> str:
    """An IP address in canonical form; a ``/prefix`` is accepted and dropped (VIP sets and HMACs
    are about addresses, not masks)."""
    return str(ipaddress.ip_interface(text.strip()).ip)


_TOP = {"version", "allow_inline_secret", "segment", "group", "host"}
_SEGMENT = {"name", "interface", "vlan", "network"}
_SECRET_KEYS = {"passphrase", "passphrase_file", "passphrase_env", "passphrase_label", "allow_inline_secret"}
_GROUP = {"name", "protocol", "id", "segment", "vips", "primary", "advbase", "advert_int"} | _SECRET_KEYS
_HOST = {"name", "fqdn", "addresses", "preempt", "demotion", "carp_load", "member"}
_MEMBER = {"group", "advskew", "advbase", "priority", "advert_int", "preempt", "vips", "auth_type",
           "interface", "source", "peers", "master"} | _SECRET_KEYS


def load_inventory(path: str | os.PathLike) -> Inventory:
    """Read an inventory TOML file (format: docs/inventory.md). Raises ConfigError with file:line."""
    path = str(path)
    try:
        text = read_text_limited(path)
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", path) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(text_error(exc), path, getattr(exc, "line", None)) from None
    return parse_inventory(text, path)


def parse_inventory(text: str, path: str = "<inventory>") -> Inventory:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column \d+\)", msg)
        line = int(m.group(1)) if m else None
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", msg)
        if m is None and "end of document" in msg:
            line = text.count("\n") + 1
        raise ConfigError(f"invalid TOML: {msg}", path, line) from None
    r = _Reader(path, text)
    r.check_keys(doc, _TOP)
    version = r.get(doc, "version", int)
    if version not in (None, 1):
        raise r.fail(f"inventory version {version} is not supported (this carpscope reads version 1)", "version")
    allow_inline = bool(r.get(doc, "allow_inline_secret", bool))
    inv = Inventory(allow_inline_secret=allow_inline, source=path)

    for i, t in enumerate(_tables(r, doc, "segment")):
        key = ("segment", i)
        r.check_keys(t, _SEGMENT, *key)
        name = r.get(t, "name", str, *key, required=True)
        if inv.segment(name):
            raise r.fail(f"segment {name!r} is defined twice", *key, "name")
        network = r.get(t, "network", str, *key)
        if network is not None:
            try:
                network = str(ipaddress.ip_network(network, strict=False))
            except ValueError:
                raise r.fail(f"'network' = {network!r} is not an IP network", *key, "network") from None
        seg = Segment(name=name, interface=r.get(t, "interface", str, *key),
                      vlan=r.get_int(t, "vlan", 0, 4095, *key), network=network)
        seg.where = r.where(t, "segment", *key)
        inv.segments.append(seg)

    for i, t in enumerate(_tables(r, doc, "group")):
        key = ("group", i)
        r.check_keys(t, _GROUP, *key)
        protocol = r.get(t, "protocol", str, *key, required=True)
        if protocol not in PROTOCOLS:
            raise r.fail(f"'protocol' = {protocol!r}: expected one of {', '.join(PROTOCOLS)}", *key, "protocol")
        gid = r.get_int(t, "id", 1, 255, *key, required=True)
        seg = r.get(t, "segment", str, *key, required=True)
        if not inv.segment(seg):
            if inv.segments:
                raise r.fail(f"segment {seg!r} is not defined in a [[segment]] table", *key, "segment")
            inv.segments.append(Segment(name=seg, where={"segment": r.at(*key, "segment")}))
        name = r.get(t, "name", str, *key) or group_name(protocol, gid, seg)
        if inv.group(name):
            raise r.fail(f"group {name!r} is defined twice", *key, "name" if "name" in t else "id")
        g = Group(name=name, protocol=protocol, id=gid, segment=seg,
                  vips=r.get_addrs(t, "vips", *key),
                  passphrase=r.get_secret(t, name, allow_inline, *key),
                  primary=r.get(t, "primary", str, *key),
                  advbase=r.get_int(t, "advbase", 1, 255, *key),
                  advert_int=r.get_float(t, "advert_int", 0.01, 40.95, *key))
        g.where = r.where(t, "group", *key)
        inv.groups.append(g)

    for i, t in enumerate(_tables(r, doc, "host")):
        key = ("host", i)
        r.check_keys(t, _HOST, *key)
        name = r.get(t, "name", str, *key, required=True)
        if inv.host(name):
            raise r.fail(f"host {name!r} is defined twice", *key, "name")
        addrs = r.get(t, "addresses", list, *key) or []
        for a in addrs:
            try:
                if not isinstance(a, str):
                    raise ValueError
                ipaddress.ip_interface(a)
            except ValueError:
                raise r.fail(f"'addresses': {a!r} is not an IP address", *key, "addresses") from None
        h = Host(name=name, fqdn=r.get(t, "fqdn", str, *key), addresses=tuple(addrs),
                 preempt=r.get(t, "preempt", bool, *key),
                 demotion=r.get_int(t, "demotion", -(2**31), 2**31 - 1, *key),
                 carp_load=r.get(t, "carp_load", bool, *key), kind="inventory", files=(path,))
        h.where = r.where(t, "host", *key)
        inv.hosts.append(h)
        for j, mt in enumerate(_tables(r, t, "member", key)):
            mkey = key + ("member", j)
            r.check_keys(mt, _MEMBER, *mkey)
            gname = r.get(mt, "group", str, *mkey, required=True)
            g = inv.group(gname)
            if g is None:
                raise r.fail(f"group {gname!r} is not defined in a [[group]] table", *mkey, "group")
            if g.member(name):
                raise r.fail(f"host {name!r} is a member of group {gname!r} twice", *mkey, "group")
            peers = r.get_addrs(mt, "peers", *mkey) or ()
            auth = r.get(mt, "auth_type", str, *mkey)
            if auth is not None and auth.upper() not in ("PASS", "AH"):
                raise r.fail(f"'auth_type' = {auth!r}: expected PASS or AH", *mkey, "auth_type")
            src = r.get(mt, "source", str, *mkey)
            if src is not None:
                try:
                    src = normalize_address(src)
                except ValueError:
                    raise r.fail(f"'source' = {src!r} is not an IP address", *mkey, "source") from None
            m = Member(host=name,
                       advskew=r.get_int(mt, "advskew", 0, 255, *mkey),
                       advbase=r.get_int(mt, "advbase", 1, 255, *mkey),
                       priority=r.get_int(mt, "priority", 1, 255, *mkey),
                       advert_int=r.get_float(mt, "advert_int", 0.01, 40.95, *mkey),
                       preempt=r.get(mt, "preempt", bool, *mkey),
                       vips=r.get_addrs(mt, "vips", *mkey),
                       passphrase=r.get_secret(mt, f"{name}:{gname}", allow_inline, *mkey),
                       auth_type=None if auth is None else auth.upper(),
                       interface=r.get(mt, "interface", str, *mkey),
                       source=src, peers=peers,
                       master=bool(r.get(mt, "master", bool, *mkey)))
            m.where = r.where(mt, "member", *mkey)
            g.members.append(m)

    for g in inv.groups:
        if g.primary is not None and g.member(g.primary) is None:
            raise r.fail(f"group {g.name!r}: primary {g.primary!r} is not a member of the group",
                         "group", inv.groups.index(g), "primary")
    return inv


def _tables(r: _Reader, doc: dict, name: str, parent: tuple = ()) -> list[dict]:
    v = doc.get(name, [])
    if isinstance(v, dict):
        raise r.fail(f"{name!r} must be an array of tables: write [[{_dotted(parent + (name,))}]]", *parent, name)
    if not isinstance(v, list) or not all(isinstance(t, dict) for t in v):
        raise r.fail(f"{name!r} must be an array of tables", *parent, name)
    return v


# ------------------------------------------------------------------------------------------------
# Writing TOML
# ------------------------------------------------------------------------------------------------

def _q(s: str) -> str:
    """A TOML basic string."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\b\t\n\f\r":
            out.append({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\u{o:04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _v(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("TOML cannot hold inf/nan here")
        return repr(value)
    if isinstance(value, str):
        return _q(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_v(x) for x in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def placeholder_env(label: str) -> str:
    """The environment variable name written for a secret that has no file/env reference."""
    return "CARPSCOPE_PASS_" + re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_").upper()


def _secret_lines(s: Secret | None) -> list[str]:
    if s is None:
        return []
    out = [f"passphrase_label = {_q(s.label)}"]
    if s.file is not None:
        out.append(f"passphrase_file = {_q(s.file)}")
    elif s.env is not None:
        out.append(f"passphrase_env = {_q(s.env)}")
    else:
        src = f" (read from {s.origin})" if s.origin else ""
        out.append(f"# placeholder{src}: export this variable or write passphrase_file instead")
        out.append(f"passphrase_env = {_q(placeholder_env(s.label))}")
    return out


def inventory_to_toml(inv: Inventory) -> str:
    """Write an inventory as TOML (docs/inventory.md). Secrets stay references: a secret known only
    by value (read from a config) is written as a ``passphrase_env`` placeholder, never the value.
    `load_inventory` of the result gives an equal model when every secret was a reference."""
    out = ["# carpscope inventory (docs/inventory.md)", "version = 1"]
    if inv.allow_inline_secret:
        out.append("allow_inline_secret = true")
    for s in inv.segments:
        out += ["", "[[segment]]", f"name = {_q(s.name)}"]
        for k in ("interface", "vlan", "network"):
            if getattr(s, k) is not None:
                out.append(f"{k} = {_v(getattr(s, k))}")
    for g in inv.groups:
        out += ["", "[[group]]", f"name = {_q(g.name)}", f"protocol = {_q(g.protocol)}",
                f"id = {g.id}", f"segment = {_q(g.segment)}"]
        for k in ("vips", "primary", "advbase", "advert_int"):
            if getattr(g, k) is not None:
                out.append(f"{k} = {_v(getattr(g, k))}")
        out += _secret_lines(g.passphrase)
    for h in inv.hosts:
        out += ["", "[[host]]", f"name = {_q(h.name)}"]
        if h.fqdn is not None:
            out.append(f"fqdn = {_q(h.fqdn)}")
        if h.addresses:
            out.append(f"addresses = {_v(h.addresses)}")
        for k in ("preempt", "demotion", "carp_load"):
            if getattr(h, k) is not None:
                out.append(f"{k} = {_v(getattr(h, k))}")
        out += _member_lines(inv, h.name)
    # members whose host has no [[host]] entry still need one to be written under
    named = {h.name for h in inv.hosts}
    for name in dict.fromkeys(m.host for g in inv.groups for m in g.members if m.host not in named):
        out += ["", "[[host]]", f"name = {_q(name)}"] + _member_lines(inv, name)
    return "\n".join(out) + "\n"


def _member_lines(inv: Inventory, host: str) -> list[str]:
    out: list[str] = []
    for g, m in inv.memberships(host):
        out += ["", "[[host.member]]", f"group = {_q(g.name)}"]
        for k in ("advskew", "advbase", "priority", "advert_int", "preempt", "vips", "auth_type",
                  "interface", "source"):
            if getattr(m, k) is not None:
                out.append(f"{k} = {_v(getattr(m, k))}")
        if m.peers:
            out.append(f"peers = {_v(m.peers)}")
        if m.master:
            out.append("master = true")
        out += _secret_lines(m.passphrase)
    return out


# ------------------------------------------------------------------------------------------------
# What a config parser hands to the merger (carpscope.config.inventory_from_configs)
# ------------------------------------------------------------------------------------------------

@dataclass
class Link:
    """What a host knows about the link a membership lives on; the merger turns it into a segment.

    ``network`` is the host's own IP network on that interface (e.g. 192.168.1.0/24) when known.
    """

    interface: str | None = None
    parent: str | None = None
    vlan: int | None = None
    network: str | None = None
    # every IP network of the host's own addresses on that interface (IPv4 and IPv6), when the
    # configuration says; empty when it does not (keepalived, ucarp command lines)
    networks: tuple[str, ...] = ()

    def fallback_name(self) -> str:
        """Segment name when no network is known: ``em0``, ``em0.30`` (parent + VLAN tag)."""
        if self.vlan is not None and self.parent:
            return f"{self.parent}.{self.vlan}"
        return self.interface or "unknown"


@dataclass
class Declared:
    """One membership as a config declares it, before it is placed in a group.

    The fields after ``member`` are what some implementations add about delivery and that the
    inventory format does not hold (lint reads them from the host configs): keepalived's
    instance name, the TTL window it accepts from each unicast peer (``min_ttl``/``max_ttl``),
    the TTL it sends unicast adverts with (``unicast_ttl``), and whether it drops unicast adverts
    from sources that are not among its peers.
    """

    protocol: str
    id: int
    link: Link
    member: Member
    instance: str | None = None
    accept_ttl: dict[str, tuple[int, int]] = field(default_factory=dict)
    send_ttl: int | None = None
    check_source: bool = False


@dataclass
class SyncGroup:
    """A keepalived ``vrrp_sync_group``: instances that change state together."""

    name: str
    origin: Origin
    instances: list[str] = field(default_factory=list)


@dataclass
class HostConfig:
    """A parser's result for one host: the host, its memberships, and non-fatal problems (lines
    that were skipped; each becomes a config-parse-error finding while the rest is still used)."""

    host: Host
    declared: list[Declared] = field(default_factory=list)
    problems: list[ConfigError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # the HA peer a firewall synchronises with (pfSense/OPNsense <hasync>): (address, where, what)
    ha_peers: list[tuple[str, Origin, str]] = field(default_factory=list)
    sync_groups: list[SyncGroup] = field(default_factory=list)
