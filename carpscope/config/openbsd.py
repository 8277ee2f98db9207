"""OpenBSD: ``/etc/hostname.carpN`` (and the other ``hostname.if`` files, ``myname``, ``sysctl.conf``).

How a line becomes ifconfig arguments is netstart's ``parse_hn_line`` (``src/etc/netstart``):
a line is split into words; ``inet [alias] ADDR [MASK [BCAST [options]]]`` becomes
``ifconfig carpN inet ADDR netmask MASK broadcast BCAST options`` (``NONE`` drops the broadcast),
``inet6 [alias] ADDR [PREFIXLEN [options]]`` gets ``prefixlen``, ``inet autoconf``/``dhcp`` are
dynamic, ``!cmd`` runs a command, a line whose first word starts with ``#`` is a comment, and
any other line is passed to ifconfig as it is. The CARP words are ifconfig's
(``sbin/ifconfig/ifconfig.c``): ``vhid N`` (1-255), ``advskew N``, ``advbase N``, ``pass X``
(``strlcpy`` into the 20-byte key: 19 characters survive), ``carpdev IF``, ``carppeer ADDR``
(IPv4 unicast; ``-carppeer`` back to 224.0.0.18), ``state``, ``carpnodes vhid:advskew,...`` with
``balancing ip|ip-stealth|ip-unicast|none`` (one carp interface running several vhids that share
its key, advbase and addresses), ``lladdr``.

What differs from FreeBSD, and matters to the election and the HMAC (protocol.md §2.4, §5):
every non-link-local address of the carp interface is in the vhid's VIP set; advskew is sent as
configured (no 240 cap); preemption is ``net.inet.carp.preempt`` in sysctl.conf (default 0).
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from carpscope.config.inventory import (
    CARP, ConfigError, Declared, Host, HostConfig, Link, Member, Origin, Secret,
)

# ifconfig(8) keywords that take one argument (ifconfig.c ``cmds[]``, NEXTARG); the rest of the
# words are flags or the address
_ARG = {
    "netmask", "mtu", "nwid", "join", "-join", "bssid", "nwkey", "wpaakms", "wpaciphers",
    "wpagroupcipher", "wpaprotos", "wpakey", "broadcast", "prefixlen", "vnetid", "parent", "vlan",
    "vlandev", "group", "-group", "trunkport", "-trunkport", "trunkproto", "lacpmode",
    "lacptimeout", "pltime", "vltime", "metric", "priority", "rtlabel", "rdomain", "mplslabel",
    "advbase", "advskew", "carppeer", "pass", "vhid", "state", "carpdev", "carpnodes", "balancing",
    "syncdev", "syncif", "syncpeer", "maxupd", "tunneladdr", "tunneldomain", "tunnelttl", "txprio",
    "rxprio", "description", "descr", "mediaopt", "-mediaopt", "mode", "instance", "inst",
    "lladdr", "llprio", "pppoedev", "pppoesvc", "pppoeac", "authproto", "authname", "authkey",
    "peerproto", "peername", "peerkey", "peerflag", "-peerflag", "nwflag", "-nwflag", "flowsrc",
    "flowdst", "pflowproto", "ipdst", "patch", "addlocal", "wgpeer", "wgdescription", "wgdescr",
    "wgaip", "wgpsk", "wgpka", "wgport", "wgkey", "wgrtable", "-wgpeer", "pin", "apn",
}
_ARG2 = {"tunnel", "pweneighbor", "keepalive", "chgpin", "puk", "wgendpoint"}
_BALANCING = ("none", "ip", "ip-stealth", "ip-unicast")     # CARP_BAL_MODES


def host_key(path: str | Path) -> str | None:
    """Which host a ``hostname.if``/``myname`` file belongs to: the part of its name before
    ``hostname.`` (``fw1.hostname.carp0``), else the nearest directory that is not ``etc``.
    None when neither names one."""
    p = Path(path)
    m = re.match(r"^(.+?)[._-](hostname\.[A-Za-z]+\d+|myname)$", p.name)
    if m:
        return m.group(1)
    for parent in p.resolve().parents:
        if parent.name and parent.name.lower() not in ("etc", "conf", "config", "configs", "openbsd"):
            return parent.name
    return None


def interface_of(path: str | Path) -> str | None:
    """``carp0`` for ``.../hostname.carp0`` or ``fw1.hostname.carp0``."""
    m = re.search(r"(?:^|[._-])hostname\.([A-Za-z]+\d+)$", Path(path).name)
    return m.group(1) if m else None


def is_hostname_file(path: str | Path) -> bool:
    return interface_of(path) is not None


def is_myname(path: str | Path) -> bool:
    return re.fullmatch(r"(.+[._-])?myname", Path(path).name) is not None


# -------------------------------------------------------------------------------------------------
# one hostname.if file
# -------------------------------------------------------------------------------------------------

@dataclass
class IfConfig:
    """What one ``hostname.if`` file configures on its interface."""

    ifname: str
    path: str
    addresses: list[tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, Origin]] = field(default_factory=list)
    vhids: list[tuple[int, int | None]] = field(default_factory=list)    # (vhid, advskew)
    advbase: int | None = None
    passphrase: str | None = None
    carpdev: str | None = None
    peer: str | None = None
    state: str | None = None
    balancing: str | None = None
    lladdr: bool = False
    where: dict[str, Origin] = field(default_factory=dict)
    problems: list[ConfigError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _lines(text: str) -> list[tuple[int, list[str]]]:
    """(line number, words) as ksh ``read`` (without -r) gives them: a backslash escapes the
    next character and a backslash at the end joins the next line."""
    out: list[tuple[int, list[str]]] = []
    buf, start = "", 0
    for no, raw in enumerate(text.splitlines(), 1):
        if not buf:
            start = no
        if raw.endswith("\\") and not raw.endswith("\\\\"):
            buf += raw[:-1]
            continue
        buf += raw
        out.append((start, re.sub(r"\\(.)", r"\1", buf).split()))
        buf = ""
    if buf:
        out.append((start, re.sub(r"\\(.)", r"\1", buf).split()))
    return out


def _netmask_bits(word: str) -> int | None:
    try:
        if word.lower().startswith("0x"):
            s = f"{int(word, 16):032b}"
            return s.count("1") if len(s) == 32 and "01" not in s else None
        if not re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", word):
            return None
        return ipaddress.IPv4Network(f"0.0.0.0/{word}").prefixlen
    except ValueError:
        return None


def parse_hostname_if(text: str, path: str, ifname: str) -> IfConfig:
    """Read a ``hostname.if`` file the way netstart and ifconfig apply it."""
    cfg = IfConfig(ifname, path)
    for no, words in _lines(text):
        if not words or words[0].startswith("#"):
            continue
        origin = Origin(path, no)
        head = words[0]
        if head.startswith("!"):
            cfg.notes.append(f"{origin}: command line not interpreted ({head.split()[0][:20]}...)")
            continue
        if head in ("dhcp", "rtsol", "dest", "up", "down") and len(words) == 1:
            continue
        if head in ("inet", "inet6"):
            if len(words) < 2 or words[1] == "autoconf":
                continue
            _address_line(cfg, words, origin)
        else:
            _options(cfg, words, origin)
    return cfg


def _address_line(cfg: IfConfig, words: list[str], origin: Origin) -> None:
    """``inet [alias] ADDR [MASK [BCAST [options]]]`` / ``inet6 [alias] ADDR [PREFIXLEN [options]]``:
    netstart takes the words after the address by position, whatever they are, so
    ``inet 10.0.0.1/24 vhid 1`` becomes ``netmask vhid broadcast 1`` and ifconfig fails."""
    v6 = words[0] == "inet6"
    i = 2 if words[1] == "alias" else 1
    if i >= len(words):
        cfg.problems.append(ConfigError(f"{cfg.ifname}: '{words[0]} alias' needs an address", *_o(origin)))
        return
    addr_word, rest = words[i], words[i + 1:]
    base = addr_word.split("%", 1)[0]
    try:
        version = ipaddress.ip_interface(base).version
    except ValueError:
        version = None
    if version != (6 if v6 else 4):
        cfg.problems.append(ConfigError(f"{cfg.ifname}: {addr_word!r} after '{words[0]}' is not an "
                                        f"{'IPv6' if v6 else 'IPv4'} address", *_o(origin)))
        return
    bits: int | None = None
    form = ("'inet6 ADDR PREFIXLEN options'" if v6 else "'inet ADDR NETMASK BROADCAST options' "
            "(NONE for no broadcast)")
    if rest:
        mask = rest.pop(0)
        bits = (int(mask) if re.fullmatch(r"\d{1,3}", mask) and int(mask) <= 128 else None) if v6 \
            else _netmask_bits(mask)
        if bits is None:
            cfg.problems.append(ConfigError(
                f"{cfg.ifname}: netstart passes the word after the address as the "
                f"{'prefix length' if v6 else 'netmask'}, and {mask!r} is not one: write {form}", *_o(origin)))
            return
        if not v6 and rest:
            bcast = rest.pop(0)
            if bcast != "NONE":
                try:
                    ipaddress.IPv4Address(bcast)
                except ValueError:
                    cfg.problems.append(ConfigError(
                        f"{cfg.ifname}: netstart passes the second word after the address as the broadcast "
                        f"address, and {bcast!r} is not one: write {form}", *_o(origin)))
                    return
    if "/" in base and bits is not None:
        cfg.problems.append(ConfigError(f"{cfg.ifname}: a prefix length on the address and a "
                                        f"{'prefix length' if v6 else 'netmask'} after it: write {form}",
                                        *_o(origin)))
        return
    ia = ipaddress.ip_interface(base if bits is None else f"{base}/{bits}")
    cfg.addresses.append((ia, origin))
    _options(cfg, rest, origin)


def _o(origin: Origin) -> tuple[str, int | None]:
    return origin.path, origin.line


def _options(cfg: IfConfig, words: list[str], origin: Origin) -> None:
    i = 0
    while i < len(words):
        w = words[i]
        if w in _ARG2:
            i += 3
            continue
        if w not in _ARG:
            if w == "-carppeer":
                cfg.peer = None
                cfg.where["peers"] = origin
            i += 1
            continue
        if i + 1 >= len(words):
            cfg.problems.append(ConfigError(f"{cfg.ifname}: '{w}' needs a value", *_o(origin)))
            return
        arg = words[i + 1]
        i += 2
        if w == "vhid":
            if not re.fullmatch(r"\d{1,3}", arg) or not 1 <= int(arg) <= 255:
                cfg.problems.append(ConfigError(f"{cfg.ifname}: vhid must be a number 1-255", *_o(origin)))
                continue
            skew = cfg.vhids[0][1] if cfg.vhids else None
            cfg.vhids = [(int(arg), skew)]
            cfg.where["member"] = cfg.where["vhid"] = origin
        elif w == "advskew":
            if not re.fullmatch(r"\d{1,3}", arg) or int(arg) > 254:
                cfg.problems.append(ConfigError(f"{cfg.ifname}: advskew must be a number 0-254", *_o(origin)))
                continue
            cfg.vhids = [(v, int(arg)) for v, _ in cfg.vhids[:1]] or [(0, int(arg))]
            cfg.where["advskew"] = origin
        elif w == "advbase":
            if not re.fullmatch(r"\d{1,3}", arg) or not 1 <= int(arg) <= 255:
                cfg.problems.append(ConfigError(f"{cfg.ifname}: advbase must be a number 1-255", *_o(origin)))
                continue
            cfg.advbase = int(arg)
            cfg.where["advbase"] = origin
        elif w == "pass":
            cfg.passphrase = arg
            cfg.where["passphrase"] = origin
        elif w == "carpdev":
            cfg.carpdev = arg
        elif w == "carppeer":
            try:
                ipaddress.IPv4Address(arg)
            except ValueError:
                cfg.problems.append(ConfigError(f"{cfg.ifname}: carppeer takes an IPv4 address", *_o(origin)))
                continue
            cfg.peer = arg if arg != "224.0.0.18" else None
            cfg.where["peers"] = origin
        elif w == "state":
            if arg.lower() not in ("init", "backup", "master"):
                cfg.problems.append(ConfigError(f"{cfg.ifname}: state must be init, backup or master",
                                                *_o(origin)))
                continue
            cfg.state = arg.lower()
        elif w == "carpnodes":
            nodes = _carpnodes(arg)
            if nodes is None:
                cfg.problems.append(ConfigError(f"{cfg.ifname}: carpnodes must be vhid:advskew,... "
                                                "(vhid 1-254, advskew 0-254, at most 32 nodes)", *_o(origin)))
                continue
            cfg.vhids = nodes
            cfg.where["member"] = cfg.where["vhid"] = cfg.where["advskew"] = origin
        elif w == "balancing":
            if arg.lower() not in _BALANCING:
                cfg.problems.append(ConfigError(f"{cfg.ifname}: balancing must be one of "
                                                f"{', '.join(_BALANCING)}", *_o(origin)))
                continue
            cfg.balancing = arg.lower()
        elif w == "lladdr":
            cfg.lladdr = True
            cfg.where["lladdr"] = origin


def _carpnodes(arg: str) -> list[tuple[int, int]] | None:
    out = []
    for part in arg.split(","):
        m = re.fullmatch(r"(\d{1,3}):(\d{1,3})", part)
        if not m or not 1 <= int(m.group(1)) <= 254 or int(m.group(2)) > 254:
            return None
        out.append((int(m.group(1)), int(m.group(2))))
    return out if 0 < len(out) <= 32 else None


# -------------------------------------------------------------------------------------------------
# one host
# -------------------------------------------------------------------------------------------------

def host_from_files(name_hint: str, ifcfgs: list[IfConfig], myname: tuple[str, Origin] | None,
                    sysctl: list, files: tuple[str, ...]) -> HostConfig:
    """An OpenBSD host from its hostname.if files, its myname (host name) and its sysctl.conf
    assignments (``rcconf.parse_sysctl_conf``)."""
    problems: list[ConfigError] = []
    notes: list[str] = []
    fqdn = myname[0] if myname else None
    name = fqdn.split(".", 1)[0] if fqdn else name_hint
    host = Host(name=name, fqdn=fqdn if fqdn and fqdn != name else None, kind="openbsd", files=files)
    host.where["host"] = Origin(files[0], 1)
    if myname:
        host.where["name"] = myname[1]
    for a in sysctl:
        if a.name == "net.inet.carp.preempt":
            if not re.fullmatch(r"-?\d+", a.value.strip()):
                problems.append(ConfigError("net.inet.carp.preempt needs an integer value", a.path, a.line))
                continue
            host.preempt = int(a.value) != 0
            host.where["preempt"] = a.origin

    phys = {c.ifname: c for c in ifcfgs if not c.ifname.startswith("carp")}
    own: list[str] = []
    for c in phys.values():
        own += [str(ia) if ia.network.prefixlen < ia.max_prefixlen else str(ia.ip) for ia, _ in c.addresses]
    host.addresses = tuple(dict.fromkeys(own))

    declared: list[Declared] = []
    for c in ifcfgs:
        problems += c.problems
        notes += c.notes
        has_vhid = any(v for v, _ in c.vhids)
        if not c.ifname.startswith("carp"):
            if has_vhid:
                problems.append(ConfigError(f"{c.ifname}: vhid on an interface that is not carpN "
                                            "(OpenBSD runs CARP on carp interfaces)", c.path,
                                            c.where["vhid"].line))
            continue
        if not has_vhid:
            if c.addresses or c.passphrase:
                problems.append(ConfigError(f"{c.ifname}: no vhid (or carpnodes): the carp interface does "
                                            "not run", c.path, (c.addresses[0][1] if c.addresses else
                                                                 c.where["passphrase"]).line))
            continue
        vips = [ia for ia, _ in c.addresses if not ia.ip.is_link_local]
        if not vips:
            problems.append(ConfigError(f"{c.ifname}: vhid {c.vhids[0][0]} has no address", c.path,
                                        c.where["vhid"].line))
            continue
        parent = c.carpdev or _parent_by_subnet(vips, phys)
        pnets = [ia.network for ia, _ in phys[parent].addresses
                 if ia.network.prefixlen < ia.max_prefixlen] if parent in phys else []
        network = next((str(n) for n in pnets if n.version == 4), None) or next(
            (str(n) for n in pnets if not n.is_link_local), None)
        if network is None:
            # the carp line's own netmask (inet ADDR 255.255.255.0 ...) names the subnet
            network = next((str(ia.network) for ia in vips if ia.network.prefixlen < ia.max_prefixlen), None)
        if c.lladdr:
            notes.append(f"{c.where['lladdr']}: {c.ifname} has its own lladdr: OpenBSD then puts that MAC into "
                         "the HMAC of its first vhid (protocol.md §2.4), which FreeBSD and ucarp peers do not")
        if c.balancing and c.balancing != "none":
            notes.append(f"{Origin(c.path)}: {c.ifname} balances ({c.balancing}) over vhids "
                         f"{', '.join(str(v) for v, _ in c.vhids)}: each vhid elects its own master")
        link = Link(interface=c.ifname, parent=parent, network=network,
                    networks=tuple(dict.fromkeys(str(n) for n in pnets)))
        for vhid, skew in c.vhids:
            label = f"{name}:vhid{vhid}"
            secret = Secret(label, value=c.passphrase, origin=c.where["passphrase"]) if c.passphrase else None
            m = Member(host=name, advskew=skew, advbase=c.advbase,
                       vips=tuple(dict.fromkeys(str(ia.ip) for ia in vips)), passphrase=secret,
                       interface=c.ifname, peers=(c.peer,) if c.peer else (),
                       master=c.state == "master", implementation="openbsd")
            m.where = dict(c.where)
            m.where["vips"] = next(o for ia, o in c.addresses if not ia.ip.is_link_local)
            if host.preempt is not None:
                m.where.setdefault("preempt", host.where["preempt"])
            declared.append(Declared(CARP, vhid, link, m))
    return HostConfig(host=host, declared=declared, problems=problems, notes=notes)


def _parent_by_subnet(vips, phys: dict[str, IfConfig]) -> str | None:
    """Without carpdev the kernel picks the interface that has an address in the VIP's subnet."""
    for ia in vips:
        for name, c in phys.items():
            if any(ia.ip in own.network for own, _ in c.addresses if own.version == ia.version):
                return name
    return None


def read_myname(text: str, path: str) -> tuple[str, Origin] | None:
    for no, raw in enumerate(text.splitlines(), 1):
        s = raw.split("#", 1)[0].strip()
        if s:
            return s, Origin(path, no)
    return None
