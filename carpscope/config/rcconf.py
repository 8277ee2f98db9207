"""FreeBSD host configuration: rc.conf, sysctl.conf and loader.conf, read as the operator wrote them.

rc.conf is sourced by sh(1), so values are read with the quoting rules sh applies to a
``NAME=value`` line (single and double quotes, backslash escapes and continuations, ``$VAR``
expansion of earlier assignments, comments); anything that is not an assignment is an error with
file and line, because rc.conf must not run commands. Then the ``ifconfig_*`` variables are read the
way rc.d/netif hands them to ifconfig(8): words split on white space, ``inet``/``inet6`` starting a
new address, ``vhid/advskew/advbase/pass`` making that address a CARP virtual address (FreeBSD 10
and later), aliases numbered from 0 with no gap.

Why the care: what the linter compares (passphrase, VIP set, advskew) must be exactly what the
kernel gets, and a message must never echo a value (it may be a passphrase), so problems are
described by variable name and word position.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from carpscope.config.inventory import (
    CARP, VRRP3, ConfigError, Declared, Host, HostConfig, Link, Member, Origin, Secret,
)

# -------------------------------------------------------------------------------------------------
# sh lexer for NAME=value files
# -------------------------------------------------------------------------------------------------

_NAME_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_NAME_CHARS = _NAME_START | frozenset("0123456789.")
_SHELL_WORDS = {"export", "unset", "if", "then", "else", "elif", "fi", "for", "while", "do", "done",
                "case", "esac", "set", "echo", "source", "local", "readonly", "eval", "exec", "test"}


@dataclass(frozen=True, slots=True)
class Assignment:
    name: str
    value: str
    line: int
    path: str

    @property
    def origin(self) -> Origin:
        return Origin(self.path, self.line)


def lex_assignments(text: str, path: str = "<rc.conf>") -> list[Assignment]:
    """Parse a file of sh ``NAME=value`` assignments (rc.conf, loader.conf, a combined file).

    Names may contain dots so that sysctl lines (``net.inet.carp.preempt=1``) can sit in a
    combined file. Raises ConfigError at the first line that is not an assignment.
    """
    lx = _Lexer(text, path)
    return lx.run()


class _Lexer:
    def __init__(self, text: str, path: str):
        self.t = text
        self.n = len(text)
        self.i = 0
        self.line = 1
        self.path = path
        self.vars: dict[str, str] = {}

    def err(self, msg: str, line: int | None = None) -> ConfigError:
        return ConfigError(msg, self.path, line or self.line)

    def run(self) -> list[Assignment]:
        out: list[Assignment] = []
        t, n = self.t, self.n
        expect_separator = False
        last_name = ""
        while self.i < n:
            c = t[self.i]
            if c == "\n":
                self.line += 1
                self.i += 1
                expect_separator = False
                continue
            if c in " \t\r":
                self.i += 1
                continue
            if c == ";":
                self.i += 1
                expect_separator = False
                continue
            if c == "\\" and t[self.i + 1:self.i + 2] == "\n":
                self.i += 2
                self.line += 1
                continue
            if c == "#":
                while self.i < n and t[self.i] != "\n":
                    self.i += 1
                continue
            start = self.line
            j = self.i
            while j < n and t[j] in _NAME_CHARS:
                j += 1
            name = t[self.i:j]
            if not name or name[0] not in _NAME_START or j >= n or t[j] != "=":
                if expect_separator:
                    raise self.err(f"unexpected text after the value of {last_name} "
                                   "(quote a value that contains spaces)")
                word = name if name in _SHELL_WORDS else None
                if word:
                    raise self.err(f"shell command {word!r} is not allowed here: only NAME=value lines")
                raise self.err("not an assignment: expected NAME=\"value\"")
            self.i = j + 1
            value = self.word(start)
            self.vars[name] = value
            out.append(Assignment(name, value, start, self.path))
            expect_separator = True
            last_name = name
        return out

    def word(self, start: int) -> str:
        """One sh word (the value), with quotes removed and ``$NAME`` expanded."""
        t, n = self.t, self.n
        buf: list[str] = []
        while self.i < n:
            c = t[self.i]
            if c in " \t\r\n;":
                break
            if c == "\\":
                nxt = t[self.i + 1:self.i + 2]
                if nxt == "\n":
                    self.line += 1
                elif nxt:
                    buf.append(nxt)
                self.i += 2
                continue
            if c == "'":
                k = t.find("'", self.i + 1)
                if k < 0:
                    raise self.err("unterminated single quote", start)
                seg = t[self.i + 1:k]
                self.line += seg.count("\n")
                buf.append(seg)
                self.i = k + 1
                continue
            if c == '"':
                self.dquote(buf, self.line)
                continue
            if c == "$":
                buf.append(self.expand())
                continue
            if c == "`":
                raise self.err("command substitution (`...`) is not allowed here")
            if c in "|&<>()":
                raise self.err(f"shell operator {c!r} is not allowed here: quote the value")
            buf.append(c)
            self.i += 1
        return "".join(buf)

    def dquote(self, buf: list[str], opened: int) -> None:
        t, n = self.t, self.n
        self.i += 1
        while True:
            if self.i >= n:
                raise self.err("unterminated double quote", opened)
            c = t[self.i]
            if c == '"':
                self.i += 1
                return
            if c == "\\" and self.i + 1 < n and t[self.i + 1] in '$`"\\\n':
                if t[self.i + 1] == "\n":
                    self.line += 1
                else:
                    buf.append(t[self.i + 1])
                self.i += 2
                continue
            if c == "$":
                buf.append(self.expand())
                continue
            if c == "`":
                raise self.err("command substitution (`...`) is not allowed here")
            if c == "\n":
                self.line += 1
            buf.append(c)
            self.i += 1

    def expand(self) -> str:
        """``$NAME`` / ``${NAME}`` from earlier assignments (unset: empty, as sh does)."""
        t = self.t
        m = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)").match(t, self.i)
        if not m:
            if t.startswith("${", self.i):
                raise self.err("only ${NAME} expansions are supported here")
            self.i += 1
            return "$"
        self.i = m.end()
        return self.vars.get(m.group(1) or m.group(2), "")


def parse_sysctl_conf(text: str, path: str = "<sysctl.conf>") -> list[Assignment]:
    """sysctl.conf(5): ``name=value`` per line, ``#`` comments; blanks around ``=`` tolerated."""
    out: list[Assignment] = []
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, eq, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not eq or not re.fullmatch(r"[A-Za-z0-9_%.\-]+", name):
            raise ConfigError("not a sysctl setting: expected name=value", path, no)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out.append(Assignment(name, value, no, path))
    return out


# -------------------------------------------------------------------------------------------------
# ifconfig words
# -------------------------------------------------------------------------------------------------

# ifconfig(8) parameters that take one argument (consumed so their argument is not an address)
_ARG_WORDS = {
    "vhid", "advskew", "advbase", "pass", "state", "peer", "peer6", "carpver", "vrrpprio",
    "vrrpinterval", "key", "keyhex", "keypass",
    "netmask", "prefixlen", "broadcast", "vlan", "vlandev", "vlanpcp", "vlanproto", "mtu", "media",
    "mediaopt", "-mediaopt", "mode", "inst", "instance", "description", "descr", "ether", "lladdr",
    "link", "metric", "name", "fib", "tunnelfib", "laggproto", "laggport", "-laggport", "group",
    "-group", "pltime", "vltime", "ssid", "wepkey", "authmode", "country", "channel", "addm",
    "deletem", "tunnel", "maclabel", "pcp", "vxlanid", "vxlanlocal", "vxlanremote", "wlandev",
}
_CARP_WORDS = {"vhid", "advskew", "advbase", "pass", "state", "peer", "peer6", "carpver",
               "vrrpprio", "vrrpinterval", "mcast", "mcast6", "key", "keyhex", "keypass"}
# words rc.d strips before calling ifconfig
_RC_KEYWORDS = {"dhcp", "syncdhcp", "nosyncdhcp", "wpa", "hostap", "noauto"}


@dataclass(kw_only=True)
class CarpParams:
    """The carp parameters of a vhid that ifconfig sets; a later invocation wins per parameter."""

    advskew: int | None = None
    advbase: int | None = None
    passphrase: str | None = None
    state: str | None = None
    carpver: int | None = None
    vrrpprio: int | None = None
    vrrpinterval: int | None = None
    # unicast destination of the adverts (``peer``/``peer6``; ``mcast``/``mcast6`` restore the
    # multicast group): FreeBSD 14's carp.c keeps one per family
    peer: str | None = None
    peer6: str | None = None


CARP_PARAMS = tuple(f.name for f in fields(CarpParams))


@dataclass
class Clause(CarpParams):
    """One address (or none) with its parameters, as one ifconfig invocation would set it."""

    var: str
    origin: Origin
    family: int | None = None
    address: str | None = None         # as written, without netmask/prefixlen
    netmask: int | None = None         # prefix length from netmask/prefixlen
    vhid: int | None = None
    vlan: int | None = None
    vlandev: str | None = None
    carp_words: bool = False
    unknown: list[int] = field(default_factory=list)   # word positions, never the words

    def empty(self) -> bool:
        return (self.address is None and self.vhid is None and not self.carp_words
                and self.vlan is None and self.vlandev is None)

    def interface_address(self) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
        if self.address is None:
            return None
        addr = self.address.split("%", 1)[0]
        if "/" in addr or self.netmask is None:
            return ipaddress.ip_interface(addr)
        return ipaddress.ip_interface(f"{addr}/{self.netmask}")


def _int(word: str, lo: int, hi: int) -> int | None:
    if not re.fullmatch(r"\d{1,6}", word):
        return None
    v = int(word)
    return v if lo <= v <= hi else None


def _is_address(word: str) -> bool:
    try:
        ipaddress.ip_interface(word.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _netmask_len(word: str) -> int | None:
    try:
        if word.lower().startswith("0x"):
            bits = int(word, 16)
            s = f"{bits:032b}"
            return s.count("1") if "01" not in s and len(s) == 32 else None
        return ipaddress.IPv4Network(f"0.0.0.0/{word}").prefixlen
    except ValueError:
        return None


def parse_ifconfig(value: str, var: str, origin: Origin, problems: list[ConfigError]) -> list[Clause]:
    """Split one ``ifconfig_*`` value into clauses (one per address) and read the CARP words.

    ``inet``/``inet6`` start a new clause; so does a second ``vhid`` or a second address in a
    clause without ``inet`` (the ``vhid 1 pass x ADDR vhid 2 pass y ADDR`` form of ``_aliases``).
    Values that cannot be used are reported in ``problems`` and left out.
    """
    words = value.split()
    clauses: list[Clause] = []
    cur = Clause(var, origin)

    def push():
        nonlocal cur
        if not cur.empty() or cur.unknown:
            clauses.append(cur)
        cur = Clause(var, origin)

    def bad(msg: str):
        # ifconfig stops at a bad value, so the whole address is not configured
        problems.append(ConfigError(f"{var}: {msg}", origin.path, origin.line))
        cur.unknown.append(-1)

    i = 0
    while i < len(words):
        w = words[i]
        lw = w.lower()
        pos = i + 1
        if lw in ("inet", "inet6"):
            if not cur.empty() or cur.unknown:
                push()
            cur.family = 4 if lw == "inet" else 6
            i += 1
            continue
        if lw == "vhid" and cur.vhid is not None:
            fam = cur.family
            push()
            cur.family = fam
        if lw in _ARG_WORDS:
            if i + 1 >= len(words):
                bad(f"'{lw}' (word {pos}) needs a value")
                break
            arg = words[i + 1]
            i += 2
            if lw in _CARP_WORDS:
                cur.carp_words = True
            if lw == "vhid":
                cur.vhid = _int(arg, 1, 255)
                if cur.vhid is None:
                    bad(f"vhid must be a number 1-255 (word {pos + 1})")
            elif lw == "advskew":
                v = _int(arg, 0, 10**6)
                if v is None:
                    bad(f"advskew needs a number (word {pos + 1})")
                elif v > 254:
                    bad(f"advskew {v} is out of range 0-254: ifconfig refuses it")
                else:
                    cur.advskew = v
            elif lw == "advbase":
                v = _int(arg, 0, 10**6)
                if v is None or not 1 <= v <= 255:
                    bad(f"advbase must be a number 1-255 (word {pos + 1})")
                else:
                    cur.advbase = v
            elif lw == "pass":
                cur.passphrase = arg
            elif lw == "state":
                if arg.lower() not in ("master", "backup"):
                    bad(f"state must be master or backup (word {pos + 1})")
                else:
                    cur.state = arg.lower()
            elif lw == "carpver":
                cur.carpver = _int(arg, 2, 3)
                if cur.carpver is None:
                    bad(f"carpver must be 2 or 3 (word {pos + 1})")
            elif lw == "vrrpprio":
                cur.vrrpprio = _int(arg, 0, 255)
                if cur.vrrpprio is None:
                    bad(f"vrrpprio must be a number 0-255 (word {pos + 1})")
            elif lw == "vrrpinterval":
                cur.vrrpinterval = _int(arg, 1, 4095)
                if cur.vrrpinterval is None:
                    bad(f"vrrpinterval must be a number 1-4095 centiseconds (word {pos + 1})")
            elif lw in ("key", "keyhex", "keypass"):
                bad(f"'{lw}' (a FreeBSD fork's key option) is not supported; use 'pass'")
            elif lw == "netmask":
                cur.netmask = _netmask_len(arg)
                if cur.netmask is None:
                    bad(f"netmask {arg!r} is not a netmask" if _is_address(arg) or arg.startswith("0x")
                        else f"netmask needs a value (word {pos + 1})")
            elif lw == "prefixlen":
                cur.netmask = _int(arg, 0, 128)
                if cur.netmask is None:
                    bad(f"prefixlen must be a number 0-128 (word {pos + 1})")
            elif lw in ("peer", "peer6"):
                try:
                    ip = ipaddress.ip_address(arg)
                except ValueError:
                    ip = None
                if ip is None or ip.version != (4 if lw == "peer" else 6):
                    bad(f"{lw} needs an IPv{4 if lw == 'peer' else 6} address (word {pos + 1})")
                else:
                    setattr(cur, lw, str(ip))
            elif lw == "vlan":
                cur.vlan = _int(arg, 0, 4095)
            elif lw == "vlandev":
                cur.vlandev = arg
            continue
        if lw in ("mcast", "mcast6"):
            cur.carp_words = True
            setattr(cur, "peer" if lw == "mcast" else "peer6", "224.0.0.18" if lw == "mcast" else "ff02::12")
            i += 1
            continue
        if lw in ("alias", "-alias", "up", "down", "add", "delete", "remove") or lw in _RC_KEYWORDS:
            i += 1
            continue
        if _is_address(w):
            if cur.address is not None:
                fam = cur.family
                push()
                cur.family = fam
            cur.address = w
            i += 1
            continue
        cur.unknown.append(pos)
        i += 1
    push()

    out: list[Clause] = []
    for c in clauses:
        if -1 in c.unknown:
            continue
        if c.vhid is None and (c.carp_words or c.passphrase is not None):
            bad("CARP parameters without 'vhid N'")
            continue
        if c.vhid is not None:
            if c.unknown:
                words_at = ", ".join(str(p) for p in c.unknown)
                bad(f"word {words_at} is not an ifconfig keyword or address "
                    "(is 'pass' missing before a passphrase?)")
                continue
            if c.address is None:
                bad(f"vhid {c.vhid} has no address")
                continue
        if c.address is not None:
            try:
                ia = c.interface_address()
            except ValueError:
                bad("the address and its netmask/prefixlen do not form a valid address")
                continue
            fam = 4 if ia.version == 4 else 6
            if c.family is not None and c.family != fam:
                bad(f"an IPv{fam} address after 'inet{'6' if c.family == 6 else ''}'")
                continue
            c.family = fam
        out.append(c)
    return out


# -------------------------------------------------------------------------------------------------
# rc.conf -> host
# -------------------------------------------------------------------------------------------------

_IFVAR = re.compile(r"ifconfig_(.+?)(?:_(alias\d+|aliases|ipv6|descr|name))?")


def _varform(ifname: str) -> str:
    """rc.d's name mangling for variables: ``em0.30`` is configured by ``ifconfig_em0_30``."""
    return re.sub(r"[.\-/+]", "_", ifname)


@dataclass
class _Vhid(CarpParams):
    iface: str
    vhid: int
    origin: Origin
    vips: list[str] = field(default_factory=list)
    vip_prefixes: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)
    where: dict[str, Origin] = field(default_factory=dict)


def host_from_assignments(assignments: list[Assignment], name_hint: str, files: tuple[str, ...] = ()
                          ) -> HostConfig:
    """Build a host from the assignments of its rc.conf, loader.conf and sysctl.conf together.

    Dotted names are sysctls (``net.inet.carp.preempt``, ``net.inet.carp.demotion``), ``carp_load``
    and ``kld_list`` tell whether carp(4) is loaded, the rest is rc.conf. Later assignments win, as
    when the files are sourced in order.
    """
    vars_: dict[str, Assignment] = {}
    for a in assignments:
        vars_[a.name] = a
    problems: list[ConfigError] = []
    notes: list[str] = []

    hostname = vars_.get("hostname")
    fqdn = hostname.value.strip() if hostname and hostname.value.strip() else None
    name = fqdn.split(".", 1)[0] if fqdn else name_hint
    host = Host(name=name, fqdn=fqdn if fqdn and fqdn != name else None, kind="rcconf", files=files)
    if hostname:
        host.where["name"] = hostname.origin
    host.where["host"] = Origin(files[0] if files else "<rc.conf>", 1)

    # sysctl and loader settings -------------------------------------------------------------
    for sysname in ("net.inet.carp.preempt", "net.inet.carp.demotion"):
        a = vars_.get(sysname)
        if a is None:
            continue
        v = a.value.strip()
        if not re.fullmatch(r"-?\d+", v):
            problems.append(ConfigError(f"{sysname} needs an integer value", a.path, a.line))
            continue
        if sysname.endswith("preempt"):
            host.preempt = int(v) != 0
            host.where["preempt"] = a.origin
        else:
            host.demotion = int(v)
            host.where["demotion"] = a.origin
    load = vars_.get("carp_load")
    if load is not None:
        host.carp_load = load.value.strip().upper() in ("YES", "TRUE", "ON", "1")
        host.where["carp_load"] = load.origin
        if not Path(load.path).name.endswith("loader.conf"):
            notes.append(f"{load.origin}: carp_load is a /boot/loader.conf setting; rc.conf ignores it "
                         "(in rc.conf use kld_list=\"carp\")")
    kld = vars_.get("kld_list")
    if kld is not None and ("carp" in kld.value.split() or "carp.ko" in kld.value.split()):
        host.carp_load = True
        host.where["carp_load"] = kld.origin

    # interfaces and VLANs --------------------------------------------------------------------
    parents: dict[str, tuple[str, int | None]] = {}   # child interface -> (parent, tag)
    varmap: dict[str, str] = {}                        # variable form -> interface name
    for a in vars_.values():
        m = re.fullmatch(r"vlans_(.+)", a.name)
        if not m:
            continue
        parent = m.group(1)
        for w in a.value.split():
            if w.isdigit():
                child, tag = f"{parent}.{w}", int(w)
            else:
                child, tag = w, None
                ca = vars_.get(f"create_args_{_varform(w)}")
                if ca is not None:
                    mm = re.search(r"\bvlan\s+(\d+)", ca.value)
                    tag = int(mm.group(1)) if mm else None
                else:
                    problems.append(ConfigError(f"VLAN {w!r} of {a.name} has no create_args_{_varform(w)}"
                                                " giving its tag", a.path, a.line))
            parents[child] = (parent, tag)
            varmap[_varform(child)] = child
    cloned = vars_.get("cloned_interfaces")
    if cloned is not None:
        for w in cloned.value.split():
            varmap.setdefault(_varform(w), w)

    per_if: dict[str, dict[str, Assignment]] = {}
    for a in vars_.values():
        m = _IFVAR.fullmatch(a.name)
        if not m or m.group(1) == "DEFAULT":
            continue
        iface = varmap.get(m.group(1), m.group(1))
        per_if.setdefault(iface, {})[m.group(2) or ""] = a

    vhids: dict[tuple[str, int], _Vhid] = {}
    links: dict[str, Link] = {}
    own: list[str] = []
    for iface, avars in per_if.items():
        ordered: list[Assignment] = []
        for suffix in ("", "ipv6"):
            if suffix in avars:
                ordered.append(avars[suffix])
        n = 0
        while f"alias{n}" in avars:
            ordered.append(avars[f"alias{n}"])
            n += 1
        for suffix, a in sorted(avars.items()):
            if re.fullmatch(r"alias\d+", suffix) and int(suffix[5:]) > n:
                problems.append(ConfigError(
                    f"{a.name} is ignored by rc.d: ifconfig_{_varform(iface)}_alias{n} is missing "
                    "(aliases are numbered from 0 without gaps)", a.path, a.line))
        if "aliases" in avars:
            ordered.append(avars["aliases"])

        link = Link(interface=iface)
        if iface in parents:
            link.parent, link.vlan = parents[iface]
        for a in ordered:
            for c in parse_ifconfig(a.value, a.name, a.origin, problems):
                if c.vlan is not None:
                    link.vlan = c.vlan
                if c.vlandev is not None:
                    link.parent = c.vlandev
                if c.address is None:
                    continue
                ia = c.interface_address()
                if c.vhid is None:
                    own.append(str(ia) if ia.network.prefixlen < ia.max_prefixlen else str(ia.ip))
                    if ia.network.prefixlen < ia.max_prefixlen and str(ia.network) not in link.networks:
                        link.networks += (str(ia.network),)
                    # the segment is named by the interface's network: IPv4 first, else global IPv6
                    if ia.network.prefixlen < ia.max_prefixlen and (ia.version == 4 or not ia.ip.is_link_local):
                        if link.network is None or (ia.version == 4 and ":" in link.network):
                            link.network = str(ia.network)
                    continue
                v = vhids.get((iface, c.vhid))
                if v is None:
                    v = vhids[(iface, c.vhid)] = _Vhid(iface, c.vhid, c.origin)
                    v.where["member"] = c.origin
                ip = str(ia.ip)
                if ip not in v.vips:
                    v.vips.append(ip)
                if ia.network.prefixlen < ia.max_prefixlen:
                    v.vip_prefixes.append(ia.network)
                v.where.setdefault("vips", c.origin)
                # later settings of the same vhid win, as repeated ifconfig calls do
                for attr in CARP_PARAMS:
                    val = getattr(c, attr)
                    if val is not None:
                        setattr(v, attr, val)
                        v.where[attr] = c.origin
        links[iface] = link

    host.addresses = tuple(own)
    declared: list[Declared] = []
    labels: set[str] = set()
    for (iface, vhid), v in vhids.items():
        link = links[iface]
        if link.network is None and v.vip_prefixes:
            # old style (carpN interfaces, VIP with the subnet mask): the VIP names the network
            link = Link(link.interface, link.parent, link.vlan, str(v.vip_prefixes[0]), link.networks)
        vrrp = v.carpver == 3
        word = "vrid" if vrrp else "vhid"
        label = f"{name}:{word}{vhid}"
        if label in labels:
            label = f"{name}:{iface}:{word}{vhid}"
        labels.add(label)
        secret = None
        if v.passphrase is not None:
            secret = Secret(label, value=v.passphrase, origin=v.where.get("passphrase"))
        peers = tuple(p for p in (v.peer, v.peer6) if p and not ipaddress.ip_address(p).is_multicast)
        m = Member(host=name, vips=tuple(v.vips), passphrase=secret, interface=iface,
                   master=v.state == "master", implementation="freebsd")
        if peers and not vrrp:
            m.peers = peers
            v.where["peers"] = v.where.get("peer") or v.where["peer6"]
        elif peers:
            notes.append(f"{v.where.get('peer') or v.where['peer6']}: 'peer' has no effect with carpver 3: "
                         "FreeBSD sends VRRPv3 adverts to 224.0.0.18 / ff02::12 only")
        if vrrp:
            m.priority = v.vrrpprio if v.vrrpprio else None
            m.advert_int = v.vrrpinterval / 100 if v.vrrpinterval else None
            for src, dst in (("vrrpprio", "priority"), ("vrrpinterval", "advert_int")):
                if src in v.where:
                    v.where[dst] = v.where[src]
            if secret is not None:
                notes.append(f"{v.where['passphrase']}: 'pass' has no effect with carpver 3 (VRRPv3 "
                             "has no authentication)")
                m.passphrase = None
        else:
            m.advskew, m.advbase = v.advskew, v.advbase
        m.where = dict(v.where)
        if host.preempt is not None:
            m.where.setdefault("preempt", host.where["preempt"])
        declared.append(Declared(VRRP3 if vrrp else CARP, vhid, link, m))

    if declared and host.carp_load is None and any(
            Path(f).name.endswith("loader.conf") for f in files):
        notes.append(f"{name}: loader.conf does not load carp (carp_load=\"YES\"); fine only if "
                     "'device carp' is compiled into the kernel")
    return HostConfig(host=host, declared=declared, problems=problems, notes=notes)
