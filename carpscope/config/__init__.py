"""The operator's intent, read from configuration: FreeBSD rc.conf (+ sysctl.conf, loader.conf),
pfSense/OPNsense config.xml, OpenBSD hostname.if (+ myname, sysctl.conf), keepalived.conf, ucarp
command lines / systemd units / ifupdown stanzas, and the TOML inventory.

Public API (used by the CLI and the capture pipeline)::

    config.lint.lint(paths) -> LintResult(findings, inventory, errors)
    inventory_from_configs(paths) -> Inventory
    load_inventory(path) -> Inventory
    inventory_to_toml(inv) -> str
    ConfigError(ValueError)  with .path and .line

`inventory_from_configs` detects each file's kind, reads one host per rc.conf (with the sysctl.conf
and loader.conf of the same host), per set of OpenBSD hostname.if files (with the myname and
sysctl.conf of the same host), per config.xml, keepalived.conf, ucarp file or interfaces file, and places every
membership in a group keyed by (segment, protocol, id). The segment is the IP network of the
host's address on that interface (e.g. 192.168.1.0/24); when a host does not say (keepalived and
ucarp rarely do), a known network containing its VIPs or source address is used, else the
interface name and VLAN (``em0.30``).
"""
from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path

from carpscope.files import head, read_text_limited, text_error
from carpscope.config.inventory import (
    CARP, PROTOCOLS, VRRP2, VRRP3, ConfigError, Declared, Group, Host, HostConfig, Inventory,
    Member, Origin, Secret, Segment, bsd_key, group_name, inventory_to_toml, load_inventory,
    parse_inventory,
)

__all__ = [
    "CARP", "VRRP2", "VRRP3", "PROTOCOLS", "ConfigError", "Group", "Host", "Inventory", "Member",
    "Origin", "Secret", "Segment", "bsd_key", "detect_kind", "inventory_from_configs",
    "inventory_to_toml", "load_inventory", "parse_inventory",
]

KINDS = ("inventory", "rcconf", "sysctl", "loader", "keepalived", "ucarp", "interfaces", "configxml",
         "hostname.if", "myname")

# file stems that say nothing about the host
_GENERIC = {"", "rc", "sysctl", "loader", "keepalived", "interfaces", "ucarp", "etc", "network",
            "boot", "conf", "config", "configs", "system", "systemd", "default", "local", "inventory"}
_SUFFIXES = (".rc.conf", ".sysctl.conf", ".loader.conf", ".keepalived.conf", ".interfaces",
             ".service", ".conf", ".toml", ".sh", ".cmd", ".txt", ".xml", "_rc.conf", "-rc.conf")


def host_name_from_path(path: str | os.PathLike) -> str:
    """A host name from a file path: ``hosta.rc.conf`` -> hosta, ``lb1/etc/keepalived/keepalived.conf``
    -> lb1, ``ucarp@vip.service`` -> the directory. Used when the file does not name its host."""
    p = Path(path)
    stem = p.name
    for suf in _SUFFIXES:
        if stem.endswith(suf) and len(stem) > len(suf):
            stem = stem[: -len(suf)]
            break
    else:
        if stem in ("rc.conf", "sysctl.conf", "loader.conf", "keepalived.conf", "interfaces"):
            stem = ""
    if "@" in stem or stem.lower() in _GENERIC:
        stem = ""
    if stem:
        return stem
    for parent in p.resolve().parents:
        if parent.name.lower() not in _GENERIC and parent.name:
            return parent.name
    return "host"


def detect_kind(path: str | os.PathLike, text: str | None = None) -> str:
    """What kind of configuration a file is (one of KINDS), from its name first, then its content.

    Raises ConfigError when neither tells.
    """
    from carpscope.config import configxml, openbsd

    p = Path(path)
    name = p.name.lower()
    if name.endswith(".xml"):
        return "configxml"
    if openbsd.is_hostname_file(p):
        return "hostname.if"
    if openbsd.is_myname(p):
        return "myname"
    if text is None:
        text = _read(path)
    if configxml.looks_like(text[:4096].encode("utf-8", "replace")):
        return "configxml"
    if name.endswith(".toml"):
        return "inventory"
    if name.endswith("sysctl.conf"):
        return "sysctl"
    if name.endswith("loader.conf"):
        return "loader"
    if name.endswith("rc.conf") or name.endswith("rc.conf.local"):
        return "rcconf"
    if re.search(r"^\s*(vrrp_instance|global_defs|vrrp_sync_group|virtual_server)\b", text, re.M):
        return "keepalived"
    if "keepalived" in name:
        return "keepalived"
    if re.search(r"^\s*iface\s+\S+", text, re.M) or name == "interfaces":
        return "interfaces"
    if re.search(r"(^|[\s=/])ucarp\s", text, re.M) or name.endswith(".service"):
        return "ucarp"
    if re.search(r"^\s*\[\[(group|host|segment)\]\]", text, re.M):
        return "inventory"
    meaningful = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    meaningful = [ln for ln in meaningful if ln]
    if meaningful and all(re.match(r"[a-z0-9_]+\.[A-Za-z0-9_.%\-]+\s*=", ln) for ln in meaningful):
        return "sysctl"
    if re.search(r"^\s*(ifconfig_|hostname=|cloned_interfaces=|vlans_)", text, re.M):
        return "rcconf"
    if meaningful and all(re.match(r"[A-Za-z_][A-Za-z0-9_]*_(load|type|name|flags)=", ln) for ln in meaningful):
        return "loader"
    raise ConfigError("cannot tell what kind of configuration this is (expected rc.conf, sysctl.conf, "
                      "loader.conf, a pfSense/OPNsense config.xml, an OpenBSD hostname.carpN, "
                      "keepalived.conf, a ucarp command line or unit, an interfaces file, or an "
                      "inventory .toml)", str(path))


def _read(path: str | os.PathLike) -> str:
    try:
        return read_text_limited(path)
    except IsADirectoryError:
        raise ConfigError("is a directory, not a configuration file", str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", str(path)) from None
    except UnicodeDecodeError as e:
        raise ConfigError(text_error(e), str(path), getattr(e, "line", None)) from None


# -------------------------------------------------------------------------------------------------
# Reading every file into host configs
# -------------------------------------------------------------------------------------------------

def read_configs(paths, problems: list[ConfigError] | None = None
                 ) -> tuple[list[HostConfig], list[Inventory]]:
    """Parse every file. With ``problems`` given, errors are collected there and the rest is read;
    without it the first error is raised."""
    from carpscope.config import configxml, keepalived, openbsd, rcconf, ucarp

    def trouble(exc: ConfigError):
        if problems is None:
            raise exc
        problems.append(exc)

    hosts: list[HostConfig] = []
    inventories: list[Inventory] = []
    bsd: dict[str, list[tuple[str, str, object]]] = {}   # host key -> [(kind, path, what was read)]
    for path in map(str, paths):
        try:
            if _is_configxml(path):
                hosts.append(configxml.host_from_configxml(path, host_name_from_path(path)))
                continue
            text = _read(path)
            kind = detect_kind(path, text)
            if kind == "inventory":
                inventories.append(parse_inventory(text, path))
            elif kind in ("rcconf", "loader"):
                bsd.setdefault(host_name_from_path(path), []).append(
                    (kind, path, rcconf.lex_assignments(text, path)))
            elif kind == "sysctl":
                bsd.setdefault(host_name_from_path(path), []).append(
                    (kind, path, rcconf.parse_sysctl_conf(text, path)))
            elif kind == "hostname.if":
                bsd.setdefault(openbsd.host_key(path) or "openbsd", []).append(
                    (kind, path, openbsd.parse_hostname_if(text, path, openbsd.interface_of(path))))
            elif kind == "myname":
                bsd.setdefault(openbsd.host_key(path) or "openbsd", []).append(
                    (kind, path, openbsd.read_myname(text, path)))
            elif kind == "keepalived":
                hosts.append(keepalived.host_from_keepalived(path, host_name_from_path(path)))
            elif kind == "ucarp":
                runs = ucarp.find_ucarp_commands(text, path)
                if not runs:
                    raise ConfigError("no ucarp command line found", path)
                hosts.append(ucarp.host_from_runs(runs, host_name_from_path(path), path))
            elif kind == "interfaces":
                runs, addrs, probs = ucarp.find_interfaces_ucarp(text, path)
                hc = ucarp.host_from_runs(runs, host_name_from_path(path), path, addrs, kind="interfaces")
                hc.problems.extend(probs)
                if not runs and not probs:
                    hc.notes.append(f"{path}: no ucarp-vid stanza found")
                hosts.append(hc)
        except ConfigError as exc:
            trouble(exc)
        except (ValueError, OSError, RecursionError) as exc:    # last guard: one line, no traceback
            trouble(ConfigError(f"cannot read this file ({type(exc).__name__}: {exc})", path))

    hosts += _bsd_hosts(bsd, trouble)
    # a keepalived file that another given file includes is part of that host, not a host of its own
    included = {os.path.realpath(f) for hc in hosts if hc.host.kind == "keepalived" for f in hc.host.files[1:]}
    for hc in [hc for hc in hosts if hc.host.kind == "keepalived"]:
        if os.path.realpath(hc.host.files[0]) in included:
            hosts.remove(hc)
    # keep the order the files were given in (messages and group order follow it)
    position = {p: i for i, p in enumerate(map(str, paths))}
    hosts.sort(key=lambda hc: min((position.get(f, len(position)) for f in hc.host.files), default=0))
    for hc in hosts:
        for exc in hc.problems:
            trouble(exc)
    return hosts, inventories


def _is_configxml(path: str) -> bool:
    """A pfSense/OPNsense config.xml (or its encrypted form), by name or by its first bytes."""
    from carpscope.config import configxml

    if path.lower().endswith(".xml"):
        return True
    return configxml.looks_like(head(path, 4096))     # not a regular file: _read reports it


def _bsd_hosts(bsd: dict[str, list[tuple[str, str, object]]], trouble) -> list[HostConfig]:
    """One FreeBSD host = its rc.conf with the sysctl.conf / loader.conf of the same name or
    directory; one OpenBSD host = its hostname.if files with the myname / sysctl.conf of the same
    name or directory. A lone sysctl.conf, loader.conf or myname joins the only host given."""
    from carpscope.config import openbsd, rcconf

    def kinds(key):
        return {kind for kind, _, _ in bsd[key]}

    main = [k for k in bsd if kinds(k) & {"rcconf", "hostname.if"}]
    for key in list(bsd):
        if key in main:
            continue
        files = bsd.pop(key)
        if len(main) == 1:
            bsd[main[0]].extend(files)
            continue
        for _, path, _ in files:
            trouble(ConfigError("cannot tell which host this belongs to: name it like its rc.conf or "
                                "hostname.if files (hosta.sysctl.conf next to hosta.rc.conf) or put them "
                                "in the host's directory", path))
    out: list[HostConfig] = []
    order = {"loader": 0, "rcconf": 1, "sysctl": 2, "hostname.if": 1, "myname": 0}
    for key in main:
        files = sorted(bsd[key], key=lambda f: order[f[0]])
        if "rcconf" in kinds(key):
            for kind, path, _ in files:
                if kind in ("hostname.if", "myname"):
                    trouble(ConfigError("an OpenBSD file next to a FreeBSD rc.conf of the same host: "
                                        "ignored", path))
            files = [f for f in files if f[0] not in ("hostname.if", "myname")]
            assignments = [a for _, _, alist in files for a in alist]
            out.append(rcconf.host_from_assignments(
                assignments, key, tuple(p for k, p, _ in files if k == "rcconf") + tuple(
                    p for k, p, _ in files if k != "rcconf")))
            continue
        for kind, path, _ in files:
            if kind == "loader":
                trouble(ConfigError("loader.conf is FreeBSD's; this host is OpenBSD (hostname.if files): "
                                    "ignored", path))
        myname = next((m for k, _, m in files if k == "myname" and m), None)
        sysctl = [a for k, _, alist in files if k == "sysctl" for a in alist]
        ifcfgs = [c for k, _, c in files if k == "hostname.if"]
        paths = tuple(p for k, p, _ in files if k == "hostname.if") + tuple(
            p for k, p, _ in files if k in ("myname", "sysctl"))
        out.append(openbsd.host_from_files(key, ifcfgs, myname, sysctl, paths))
    return out


# -------------------------------------------------------------------------------------------------
# Merging host configs into one inventory
# -------------------------------------------------------------------------------------------------

def _net(text: str | None):
    try:
        return ipaddress.ip_network(text, strict=False) if text else None
    except ValueError:
        return None


def _contains(net, addr: str) -> bool:
    try:
        ip = ipaddress.ip_interface(addr).ip
    except ValueError:
        return False
    return net is not None and ip.version == net.version and ip in net


def merge(hosts: list[HostConfig], inventories: list[Inventory]) -> Inventory:
    """One inventory from parsed hosts and inventory files.

    Inventory files come first and keep their segments, groups and intent (VIPs, passphrase,
    primary); a config-derived membership joins the inventory group with the same
    (segment, protocol, id), replacing that host's inventory membership (the config is what runs).
    """
    inv = Inventory()
    for other in inventories:
        _absorb_inventory(inv, other)
    inv.source = inventories[0].source if inventories else None

    # host names must be unique: when several files name the same host (two firewalls restored
    # from one backup keep its host name), each is called <name>@<file name>, whatever the order
    # the files were given in; -2, -3 only when that is still ambiguous
    used = {h.name for h in inv.hosts}
    count: dict[str, int] = {}
    for hc in hosts:
        count[hc.host.name] = count.get(hc.host.name, 0) + 1
    config_names: set[str] = set()
    for hc in hosts:
        name = hc.host.name
        if count[name] > 1:
            new = f"{name}@{_file_stem(hc.host.files[0])}"
            n = 2
            while new in used | config_names:
                new = f"{name}@{_file_stem(hc.host.files[0])}-{n}"
                n += 1
            _rename(hc, new)
            inv.notes.append(f"{hc.host.files[0]}: host name {name!r} is given by {count[name]} files; "
                             f"called {hc.host.name!r} here")
        config_names.add(hc.host.name)

    known_nets = [(_net(s.network), s.name) for s in inv.segments if _net(s.network)]
    for hc in hosts:
        for d in hc.declared:
            if d.link.network and _net(d.link.network) not in [n for n, _ in known_nets]:
                known_nets.append((_net(d.link.network), str(_net(d.link.network))))

    for hc in hosts:
        existing = inv.host(hc.host.name)
        if existing is None:
            inv.hosts.append(hc.host)
        else:
            _merge_host(existing, hc.host)
        inv.notes.extend(hc.notes)
        for d in hc.declared:
            seg = _segment_for(inv, d, known_nets)
            g = inv.find_group(seg, d.protocol, d.id)
            if g is None:
                g = Group(name=group_name(d.protocol, d.id, seg), protocol=d.protocol, id=d.id, segment=seg)
                g.where["group"] = d.member.where.get("member") or Origin(hc.host.files[0])
                inv.groups.append(g)
            old = g.member(d.member.host)
            if old is not None:
                if old.where.get("member") and old.where["member"].path in hc.host.files:
                    # the same host declares the id twice on one segment (two interfaces)
                    inv.notes.append(f"{d.member.where.get('member')}: {d.member.host} declares "
                                     f"{g.describe()} more than once; the first is used")
                    continue
                g.members.remove(old)
            g.members.append(d.member)
    return inv


def _file_stem(path: str) -> str:
    """``Carp_example_master`` for ``.../Carp_example_master.xml``; the directory for a file whose
    name says nothing (``fw1/conf/config.xml`` -> fw1)."""
    stem = host_name_from_path(path)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem)[:24] or "file"


def _segment_for(inv: Inventory, d: Declared, known_nets) -> str:
    net = _net(d.link.network)
    if net is not None:
        for s in inv.segments:
            sn = _net(s.network)
            if sn is not None and sn.version == net.version and (net == sn or net.subnet_of(sn)):
                return s.name
        name = str(net)
        if inv.segment(name) is None:
            inv.segments.append(Segment(name=name, interface=d.link.interface, vlan=d.link.vlan,
                                        network=name))
        else:
            s = inv.segment(name)
            if s.interface != d.link.interface:
                s.interface = None
        return name
    # no network on this host: a known network that holds its VIPs or source address
    probe = list(d.member.vips or ()) + ([d.member.source] if d.member.source else [])
    for n, segname in known_nets:
        if any(_contains(n, a) for a in probe):
            if inv.segment(segname) is None:
                inv.segments.append(Segment(name=segname, network=str(n)))
            return segname
    name = d.link.fallback_name()
    if inv.segment(name) is None:
        inv.segments.append(Segment(name=name, interface=d.link.parent or d.link.interface,
                                    vlan=d.link.vlan))
    return name


def _rename(hc: HostConfig, new: str) -> None:
    old = hc.host.name
    hc.host.name = new
    for d in hc.declared:
        d.member.host = new
        s = d.member.passphrase
        if s is not None and s.label.startswith(old + ":"):
            s.label = new + s.label[len(old):]


def _merge_host(into: Host, other: Host) -> None:
    for k in ("fqdn", "preempt", "demotion", "carp_load", "kind"):
        if getattr(other, k) is not None:
            setattr(into, k, getattr(other, k))
            if k in other.where:
                into.where[k] = other.where[k]
    if other.addresses:
        into.addresses = tuple(dict.fromkeys(into.addresses + other.addresses))
    into.files = tuple(dict.fromkeys(into.files + other.files))


def _absorb_inventory(inv: Inventory, other: Inventory) -> None:
    inv.allow_inline_secret = inv.allow_inline_secret or other.allow_inline_secret
    for s in other.segments:
        if inv.segment(s.name) is None:
            inv.segments.append(s)
    for g in other.groups:
        mine = inv.find_group(*g.key)
        if mine is None and inv.group(g.name) is None:
            inv.groups.append(g)
        elif mine is None:
            g.name = f"{g.name}@{Path(other.source or 'inventory').name}"
            inv.groups.append(g)
        else:
            # the same group in two inventories: keep the first, add members it lacks
            for m in g.members:
                if mine.member(m.host) is None:
                    mine.members.append(m)
    for h in other.hosts:
        existing = inv.host(h.name)
        if existing is None:
            inv.hosts.append(h)
        else:
            _merge_host(existing, h)
    inv.notes.extend(other.notes)


def inventory_from_configs(paths, problems: list[ConfigError] | None = None) -> Inventory:
    """Read configuration files of any supported kind into one inventory.

    Raises the first ConfigError (file and line) unless ``problems`` is a list, in which case
    errors are appended to it and everything readable is still used.
    """
    hosts, inventories = read_configs(paths, problems)
    return merge(hosts, inventories)

