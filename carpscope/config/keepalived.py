"""keepalived.conf: the VRRP instances a Linux host runs, with file and line for every value.

keepalived's grammar is line based: a keyword and its arguments on one line, ``{ ... }`` blocks
(the ``{`` may also stand alone on the next line), comments from a ``#`` or ``!`` that starts a
word, ``"..."`` quoting, and ``include <glob>`` anywhere, resolved here relative to the including
file. Tokens keep the file and line they came from, so an error inside an included file points
into that file.

Only what matters for the election, its authentication and the delivery of adverts is
interpreted: ``vrrp_instance`` blocks (with ``unicast_peer`` entries and their ``min_ttl``/``max_ttl``,
``unicast_ttl``, ``check_unicast_src``), ``vrrp_sync_group`` blocks, and the ``vrrp_version`` and
``vrrp_check_unicast_src`` defaults in ``global_defs``; the rules are keepalived's own
(``keepalived/vrrp/vrrp_parser.c``, ``vrrp_data.c`` ``alloc_vrrp_unicast_peer``, ``vrrp_sync.c``
``vrrp_sync_set_group``, ``vrrp.c`` ``vrrp_check_packet``). keepalived has hundreds of other keywords;
they are skipped, like keepalived itself skips unknown ones with a warning. Structure errors
(unbalanced braces, missing or bad values of the keywords read here) are errors with file:line.
"""
from __future__ import annotations

import glob
import ipaddress
import os
import re
from dataclasses import dataclass, field

from carpscope.files import read_text_limited, text_error
from carpscope.config.inventory import (
    VRRP2, VRRP3, ConfigError, Declared, Host, HostConfig, Link, Member, Origin, Secret, SyncGroup,
)

MAX_INCLUDE_DEPTH = 16


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    path: str
    line: int
    quoted: bool = False

    @property
    def origin(self) -> Origin:
        return Origin(self.path, self.line)


@dataclass
class Node:
    """``keyword arg... [{ children }]``"""

    keyword: str
    args: list[Token]
    origin: Origin
    children: list[Node] | None = None

    def find(self, keyword: str) -> list[Node]:
        return [c for c in self.children or [] if c.keyword == keyword]


def tokenize_file(path: str, _depth: int = 0, _stack: tuple[str, ...] = (),
                  included: list[str] | None = None) -> list[Token]:
    """Tokens of a file with its includes spliced in place (their paths appended to ``included``)."""
    real = os.path.realpath(path)
    if real in _stack:
        raise ConfigError("include loop: the file includes itself", path)
    try:
        text = read_text_limited(path)
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", path) from None
    except UnicodeDecodeError as e:
        raise ConfigError(text_error(e), path, getattr(e, "line", None)) from None
    out: list[Token] = []
    for line_tokens in _lex_lines(text, path):
        first = line_tokens[0]
        if first.text == "include" and not first.quoted:
            if len(line_tokens) != 2:
                raise ConfigError("include needs exactly one file or pattern", path, first.line)
            if _depth >= MAX_INCLUDE_DEPTH:
                raise ConfigError(f"includes nested deeper than {MAX_INCLUDE_DEPTH}", path, first.line)
            pattern = line_tokens[1].text
            if not os.path.isabs(pattern):
                pattern = os.path.join(os.path.dirname(path) or ".", pattern)
            try:
                matches = sorted(glob.glob(pattern))
            except ValueError:      # e.g. a NUL byte in the pattern
                raise ConfigError("include pattern is not a valid path", path, first.line) from None
            if not matches:
                if glob.has_magic(pattern):
                    continue          # keepalived only warns about a pattern matching nothing
                raise ConfigError(f"included file {line_tokens[1].text!r} does not exist", path, first.line)
            for inc in matches:
                if included is not None:
                    included.append(inc)
                out.extend(tokenize_file(inc, _depth + 1, _stack + (real,), included))
            continue
        out.extend(line_tokens)
    return out


def _lex_lines(text: str, path: str) -> list[list[Token]]:
    """Split into per-line token lists; braces are tokens of their own."""
    lines: list[list[Token]] = []
    for no, raw in enumerate(text.splitlines(), 1):
        toks: list[Token] = []
        i, n = 0, len(raw)
        while i < n:
            c = raw[i]
            if c.isspace():
                i += 1
                continue
            if c in "#!":
                break
            if c in "{}":
                toks.append(Token(c, path, no))
                i += 1
                continue
            if c == '"':
                k = raw.find('"', i + 1)
                if k < 0:
                    raise ConfigError("unterminated double quote", path, no)
                toks.append(Token(raw[i + 1:k], path, no, quoted=True))
                i = k + 1
                continue
            j = i
            while j < n and not raw[j].isspace() and raw[j] not in '{}"':
                j += 1
            toks.append(Token(raw[i:j], path, no))
            i = j
        if toks:
            lines.append(toks)
    return lines


def parse_tree(tokens: list[Token]) -> list[Node]:
    """Group tokens into statements (one per line) and ``{ }`` blocks."""
    pos = 0

    def block(opener: Token | None) -> list[Node]:
        nonlocal pos
        nodes: list[Node] = []
        while pos < len(tokens):
            t = tokens[pos]
            if t.text == "}" and not t.quoted:
                if opener is None:
                    raise ConfigError("'}' without a matching '{'", t.path, t.line)
                pos += 1
                return nodes
            if t.text == "{" and not t.quoted:
                # a '{' alone on its line opens the block of the previous statement
                if not nodes or nodes[-1].children is not None:
                    raise ConfigError("'{' without a keyword before it", t.path, t.line)
                pos += 1
                nodes[-1].children = block(t)
                continue
            node = Node(t.text, [], t.origin)
            pos += 1
            while pos < len(tokens) and (tokens[pos].path, tokens[pos].line) == (t.path, t.line):
                a = tokens[pos]
                if a.text in "{}" and not a.quoted:
                    break
                node.args.append(a)
                pos += 1
            if pos < len(tokens) and tokens[pos].text == "{" and not tokens[pos].quoted and (
                    tokens[pos].path, tokens[pos].line) == (t.path, t.line):
                opened = tokens[pos]
                pos += 1
                node.children = block(opened)
            nodes.append(node)
        if opener is not None:
            raise ConfigError("'{' is never closed (missing '}')", opener.path, opener.line)
        return nodes

    return block(None)


# -------------------------------------------------------------------------------------------------
# Interpretation
# -------------------------------------------------------------------------------------------------

@dataclass
class Instance:
    name: str
    origin: Origin
    interface: str | None = None
    vrid: int | None = None
    priority: int | None = None
    advert_int: float | None = None
    version: int | None = None
    state: str | None = None
    nopreempt: bool = False
    auth_type: str | None = None
    auth_pass: str | None = None
    vips: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface] = field(default_factory=list)
    unicast_src: str | None = None
    peers: list[str] = field(default_factory=list)
    peer_ttl: dict[str, tuple[int, int]] = field(default_factory=dict)    # min_ttl, max_ttl per peer
    unicast_ttl: int | None = None
    check_source: bool = False
    where: dict[str, Origin] = field(default_factory=dict)


def _arg(node: Node, what: str = "a value") -> Token:
    if not node.args:
        raise ConfigError(f"{node.keyword} needs {what}", node.origin.path, node.origin.line)
    return node.args[0]


def _intarg(node: Node, lo: int, hi: int) -> int:
    t = _arg(node, "a number")
    if not re.fullmatch(r"\d{1,6}", t.text) or not lo <= int(t.text) <= hi:
        raise ConfigError(f"{node.keyword} must be a number {lo}-{hi}", t.path, t.line)
    return int(t.text)


def _addr(t: Token, what: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    try:
        return ipaddress.ip_interface(t.text)
    except ValueError:
        raise ConfigError(f"{what}: {t.text!r} is not an IP address", t.path, t.line) from None


def read_instances(nodes: list[Node], problems: list[ConfigError]) -> tuple[list[Instance], dict]:
    """The vrrp_instance blocks and the global settings that shape them."""
    glob_: dict = {}
    for gd in (n for n in nodes if n.keyword == "global_defs"):
        for c in gd.children or []:
            try:
                if c.keyword == "vrrp_version":
                    glob_["version"] = _intarg(c, 2, 3)
                    glob_["version_origin"] = c.origin
                elif c.keyword == "vrrp_check_unicast_src":
                    glob_["check_unicast_src"] = True
                elif c.keyword == "router_id":
                    glob_["router_id"] = _arg(c).text
            except ConfigError as exc:
                problems.append(exc)
    out: list[Instance] = []
    for n in nodes:
        if n.keyword != "vrrp_instance":
            continue
        if n.children is None:
            problems.append(ConfigError("vrrp_instance needs a { ... } block", n.origin.path, n.origin.line))
            continue
        name = n.args[0].text if n.args else "?"
        inst = Instance(name, n.origin)
        try:
            _read_instance(n, inst)
        except ConfigError as exc:
            problems.append(exc)
            continue
        if inst.vrid is None:
            problems.append(ConfigError(f"vrrp_instance {name} has no virtual_router_id",
                                        n.origin.path, n.origin.line))
            continue
        if inst.interface is None:
            problems.append(ConfigError(f"vrrp_instance {name} has no interface", n.origin.path, n.origin.line))
            continue
        out.append(inst)
    return out, glob_


def _read_instance(n: Node, inst: Instance) -> None:
    for c in n.children or []:
        k = c.keyword
        if k == "interface":
            inst.interface = _arg(c, "an interface name").text
        elif k == "virtual_router_id":
            inst.vrid = _intarg(c, 1, 255)
        elif k == "priority":
            inst.priority = _intarg(c, 1, 255)
        elif k == "advert_int":
            t = _arg(c, "a number of seconds")
            try:
                v = float(t.text)
            except ValueError:
                v = -1.0
            if not 0.01 <= v <= 255:
                raise ConfigError("advert_int must be a number of seconds (0.01-255)", t.path, t.line)
            inst.advert_int = v
        elif k in ("version", "vrrp_version"):
            inst.version = _intarg(c, 2, 3)
        elif k == "state":
            t = _arg(c, "MASTER or BACKUP")
            if t.text.upper() not in ("MASTER", "BACKUP"):
                raise ConfigError("state must be MASTER or BACKUP", t.path, t.line)
            inst.state = t.text.upper()
        elif k == "nopreempt":
            inst.nopreempt = True
        elif k == "preempt":
            inst.nopreempt = False
        elif k == "authentication":
            for a in c.children or []:
                if a.keyword == "auth_type":
                    t = _arg(a, "PASS or AH")
                    if t.text.upper() not in ("PASS", "AH"):
                        raise ConfigError("auth_type must be PASS or AH", t.path, t.line)
                    inst.auth_type = t.text.upper()
                    inst.where["auth_type"] = a.origin
                elif a.keyword == "auth_pass":
                    inst.auth_pass = _arg(a, "a password").text
                    inst.where["passphrase"] = a.origin
        elif k == "virtual_ipaddress":
            if c.children is None:
                raise ConfigError("virtual_ipaddress needs a { ... } block", c.origin.path, c.origin.line)
            for a in c.children:
                if a.children is not None:
                    raise ConfigError("unexpected block inside virtual_ipaddress", a.origin.path, a.origin.line)
                tok = Token(a.keyword, a.origin.path, a.origin.line)
                inst.vips.append(_addr(tok, "virtual_ipaddress"))
                inst.where.setdefault("vips", a.origin)
                # trailing words (brd, dev, scope, label, ...) do not change what is advertised
        elif k == "unicast_src_ip":
            inst.unicast_src = str(_addr(_arg(c, "an address"), "unicast_src_ip").ip)
        elif k == "unicast_peer":
            for a in c.children or []:
                _unicast_peer(inst, a)
            inst.where["peers"] = c.origin
        elif k == "unicast_ttl":
            inst.unicast_ttl = _intarg(c, 1, 255)
        elif k == "check_unicast_src":
            inst.check_source = True
        else:
            continue
        inst.where.setdefault(k, c.origin)


def _unicast_peer(inst: Instance, a: Node) -> None:
    """``ADDRESS [min_ttl N] [max_ttl N]``: keepalived drops adverts from that peer whose TTL is
    outside the window, and a TTL option turns on the check that the source is a listed peer."""
    addr = str(_addr(Token(a.keyword, a.origin.path, a.origin.line), "unicast_peer").ip)
    lo, hi = 0, 255
    args = [t.text for t in a.args]
    if len(args) % 2:
        raise ConfigError(f"unicast_peer {addr}: {args[-1]} is missing a value", a.origin.path, a.origin.line)
    for opt, val in zip(args[::2], args[1::2]):
        if opt not in ("min_ttl", "max_ttl"):
            raise ConfigError(f"unicast_peer {addr}: unknown option {opt!r} (min_ttl, max_ttl)",
                              a.origin.path, a.origin.line)
        if not re.fullmatch(r"\d{1,3}", val) or int(val) > 255:
            raise ConfigError(f"unicast_peer {addr}: {opt} must be a number 0-255", a.origin.path, a.origin.line)
        lo, hi = (int(val), hi) if opt == "min_ttl" else (lo, int(val))
        inst.check_source = True
    if addr in inst.peers:
        raise ConfigError(f"unicast_peer {addr} is listed twice (keepalived: duplicate unicast_peer)",
                          a.origin.path, a.origin.line)
    inst.peers.append(addr)
    if (lo, hi) != (0, 255):
        inst.peer_ttl[addr] = (lo, hi)


def read_sync_groups(nodes: list[Node], instances: list[Instance], problems: list[ConfigError],
                     notes: list[str]) -> list[SyncGroup]:
    """``vrrp_sync_group NAME { group { INSTANCE ... } }``, checked as keepalived does: an unknown
    instance or one already in another sync group is ignored (a configuration error)."""
    names = {i.name for i in instances}
    taken: dict[str, str] = {}
    out: list[SyncGroup] = []
    for n in nodes:
        if n.keyword != "vrrp_sync_group":
            continue
        if not n.args:
            problems.append(ConfigError("vrrp_sync_group must have a name", n.origin.path, n.origin.line))
            continue
        sg = SyncGroup(n.args[0].text, n.origin)
        for grp in (c for c in n.children or [] if c.keyword == "group"):
            for member in grp.children or []:
                for word in [member.keyword, *(t.text for t in member.args)]:
                    if word not in names:
                        problems.append(ConfigError(f"vrrp_sync_group {sg.name}: virtual router {word} doesn't "
                                                    "exist - ignored", member.origin.path, member.origin.line))
                    elif word in taken:
                        problems.append(ConfigError(f"vrrp_sync_group {sg.name}: {word} is already in sync group "
                                                    f"{taken[word]} (an instance can be in one only) - ignored",
                                                    member.origin.path, member.origin.line))
                    else:
                        taken[word] = sg.name
                        sg.instances.append(word)
        if len(sg.instances) == 1:
            notes.append(f"{sg.origin}: sync group {sg.name} has only 1 virtual router (keepalived: "
                         "\"this probably isn't what you want\")")
        if sg.instances:
            out.append(sg)
    return out


def host_from_keepalived(path: str, name_hint: str) -> HostConfig:
    """Parse a keepalived.conf (and its includes) into a host with one membership per instance."""
    included: list[str] = []
    nodes = parse_tree(tokenize_file(path, included=included))
    problems: list[ConfigError] = []
    notes: list[str] = []
    instances, glob_ = read_instances(nodes, problems)
    name = name_hint
    rid = glob_.get("router_id")
    if name_hint in ("keepalived", "host", "") and rid and rid != "LVS_DEVEL":
        name = rid
    host = Host(name=name, kind="keepalived", files=(path, *dict.fromkeys(included)))
    host.where["host"] = Origin(path, 1)
    addrs: list[str] = []
    declared: list[Declared] = []
    for inst in instances:
        version = inst.version or glob_.get("version") or 2
        if any(v.version == 6 for v in inst.vips):
            version = 3          # keepalived runs IPv6 instances as VRRPv3
        protocol = VRRP3 if version == 3 else VRRP2
        label = f"{name}:vrid{inst.vrid}"
        secret = None
        if inst.auth_pass is not None and protocol == VRRP2:
            secret = Secret(label, value=inst.auth_pass, origin=inst.where.get("passphrase"))
        elif inst.auth_pass is not None:
            notes.append(f"{inst.where['passphrase']}: authentication is ignored with VRRPv3 "
                         f"(vrrp_instance {inst.name})")
        if inst.nopreempt and (inst.state == "MASTER" or inst.priority == 255):
            why = "initial state MASTER" if inst.state == "MASTER" else "priority 255"
            notes.append(f"{inst.where['nopreempt']}: keepalived clears nopreempt with {why} "
                         f"(vrrp_instance {inst.name}): it preempts")
            inst.nopreempt = False
        network = next((str(v.network) for v in inst.vips
                        if v.network.prefixlen < v.max_prefixlen), None)
        m = Member(host=name, priority=inst.priority, advert_int=inst.advert_int,
                   preempt=False if inst.nopreempt else None,
                   vips=tuple(dict.fromkeys(str(v.ip) for v in inst.vips)),
                   passphrase=secret, auth_type=inst.auth_type if secret else None,
                   interface=inst.interface, source=inst.unicast_src, peers=tuple(inst.peers),
                   master=inst.state == "MASTER", implementation="keepalived")
        m.where = {"member": inst.origin, **inst.where}
        if "nopreempt" in inst.where:
            m.where["preempt"] = inst.where["nopreempt"]
        if "virtual_router_id" in inst.where:
            m.where["member"] = inst.where["virtual_router_id"]
        if inst.unicast_src:
            addrs.append(inst.unicast_src)
        if inst.unicast_ttl is not None and not inst.peers:
            notes.append(f"{inst.where['unicast_ttl']}: unicast_ttl without unicast peers is reset by keepalived "
                         f"(vrrp_instance {inst.name})")
        declared.append(Declared(protocol, inst.vrid, Link(interface=inst.interface, network=network), m,
                                 instance=inst.name, accept_ttl=dict(inst.peer_ttl),
                                 send_ttl=inst.unicast_ttl if inst.peers else None,
                                 check_source=bool(inst.peers) and (inst.check_source
                                                                    or bool(glob_.get("check_unicast_src")))))
    host.addresses = tuple(dict.fromkeys(addrs))
    if not instances and not problems:
        notes.append(f"{path}: no vrrp_instance found")
    sync = read_sync_groups(nodes, instances, problems, notes)
    return HostConfig(host=host, declared=declared, problems=problems, notes=notes, sync_groups=sync)
