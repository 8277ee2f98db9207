"""ucarp, as started from a command line, a systemd unit or a Debian /etc/network/interfaces stanza.

ucarp takes everything on its command line (getopt_long, so ``--vhid=3``, ``--vhid 3``, ``-v 3``,
``-v3`` and unambiguous prefixes such as ``--adv=1`` all work); the option table here is
ucarp's own (src/ucarp_p.h). Debian's ifupdown hook builds that command line from ``ucarp-*``
options of an ``iface`` stanza: ``ucarp-vid``, ``ucarp-vip``, ``ucarp-password``,
``ucarp-advskew``, ``ucarp-advbase``, and ``ucarp-master yes`` which becomes ``-P`` (preempt),
with the stanza's ``address`` as ``--srcip``.

ucarp refuses a password of 20 characters or more and an empty one (protocol.md §2.2); those are
linted, not rejected here, so the report can say so with the line.
"""
from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from carpscope.config.inventory import (
    CARP, ConfigError, Declared, Host, HostConfig, Link, Member, Origin, Secret,
)

# long name -> (short letter, takes an argument)
_OPTIONS: dict[str, tuple[str, bool]] = {
    "interface": ("i", True), "srcip": ("s", True), "vhid": ("v", True), "pass": ("p", True),
    "preempt": ("P", False), "neutral": ("n", False), "addr": ("a", True), "help": ("h", False),
    "advbase": ("b", True), "advskew": ("k", True), "upscript": ("u", True),
    "downscript": ("d", True), "deadratio": ("r", True), "shutdown": ("z", False),
    "facility": ("f", True), "daemonize": ("B", False), "ignoreifstate": ("S", False),
    "nomcast": ("M", False), "passfile": ("o", True), "xparam": ("x", True), "mcast": ("m", True),
}
_SHORT = {short: (long, arg) for long, (short, arg) in _OPTIONS.items()}


@dataclass
class UcarpRun:
    """The settings of one ucarp process."""

    origin: Origin
    interface: str | None = None
    srcip: str | None = None
    vhid: int | None = None
    passphrase: str | None = None
    passfile: str | None = None
    pass_env: str | None = None
    addr: str | None = None
    advbase: int | None = None
    advskew: int | None = None
    preempt: bool = False
    master: bool = False
    network: str | None = None
    where: dict[str, Origin] = field(default_factory=dict)


def parse_ucarp_argv(argv: list[str], origin: Origin, env: dict[str, str] | None = None) -> UcarpRun:
    """Read ucarp's options (argv[0] may be the program). Raises ConfigError at ``origin``."""
    run = UcarpRun(origin)
    env = env or {}

    def fail(msg: str) -> ConfigError:
        return ConfigError(msg, origin.path, origin.line)

    args = list(argv)
    if args and Path(args[0]).name == "ucarp":
        args = args[1:]
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if a == "--":
            break
        if a.startswith("--"):
            name, eq, value = a[2:].partition("=")
            matches = [n for n in _OPTIONS if n.startswith(name)] if name not in _OPTIONS else [name]
            if len(matches) != 1:
                what = "ambiguous" if matches else "unknown"
                raise fail(f"{what} ucarp option '--{name}'")
            long, takes = matches[0], _OPTIONS[matches[0]][1]
            if takes and not eq:
                if i >= len(args):
                    raise fail(f"ucarp option --{long} needs a value")
                value, i = args[i], i + 1
            elif not takes and eq:
                raise fail(f"ucarp option --{long} takes no value")
            _set(run, long, value if takes else None, fail, env)
        elif a.startswith("-") and len(a) > 1:
            j = 1
            while j < len(a):
                ch = a[j]
                if ch not in _SHORT:
                    raise fail(f"unknown ucarp option '-{ch}'")
                long, takes = _SHORT[ch]
                if takes:
                    value = a[j + 1:]
                    if not value:
                        if i >= len(args):
                            raise fail(f"ucarp option -{ch} needs a value")
                        value, i = args[i], i + 1
                    _set(run, long, value, fail, env)
                    break
                _set(run, long, None, fail, env)
                j += 1
        else:
            raise fail("unexpected word on the ucarp command line (ucarp takes options only)")
    for req, flag in (("interface", "--interface"), ("srcip", "--srcip"), ("vhid", "--vhid"), ("addr", "--addr")):
        if getattr(run, req) is None:
            raise fail(f"ucarp needs {flag}")
    return run


def _set(run: UcarpRun, long: str, value: str | None, fail, env: dict[str, str]) -> None:
    var = None
    if value is not None:
        m = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", value)
        if m:
            var = m.group(1)
            value = env.get(var, value)
    if var is not None and value.startswith("$"):
        if long == "pass":
            run.pass_env = var
            run.where["passphrase"] = run.origin
            return
        raise fail(f"--{long} comes from ${var}, which is not set here")
    if long == "interface":
        run.interface = value
    elif long == "srcip":
        run.srcip = _ip(value, "--srcip", fail)
    elif long == "addr":
        run.addr = _ip(value, "--addr", fail)
    elif long == "vhid":
        run.vhid = _num(value, 1, 255, "--vhid", fail)
    elif long == "advbase":
        run.advbase = _num(value, 1, 255, "--advbase", fail)
    elif long == "advskew":
        run.advskew = _num(value, 0, 255, "--advskew", fail)
    elif long == "pass":
        run.passphrase = value
        run.where["passphrase"] = run.origin
        return
    elif long == "passfile":
        run.passfile = value
        run.where["passphrase"] = run.origin
        return
    elif long == "preempt":
        run.preempt = True
        run.where["preempt"] = run.origin
        return
    else:
        return
    run.where[long] = run.origin


def _ip(value: str, what: str, fail) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise fail(f"{what} {value!r} is not an IP address") from None


def _num(value: str, lo: int, hi: int, what: str, fail) -> int:
    if not re.fullmatch(r"\d{1,6}", value) or not lo <= int(value) <= hi:
        raise fail(f"{what} must be a number {lo}-{hi}")
    return int(value)


# -------------------------------------------------------------------------------------------------
# Files holding ucarp command lines
# -------------------------------------------------------------------------------------------------

def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join backslash-continued lines; keep the first line's number."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    for no, raw in enumerate(text.splitlines(), 1):
        if not buf:
            start = no
        if raw.endswith("\\"):
            buf.append(raw[:-1])
            continue
        buf.append(raw)
        out.append((start, " ".join(buf)))
        buf = []
    if buf:
        out.append((start, " ".join(buf)))
    return out


def find_ucarp_commands(text: str, path: str) -> list[UcarpRun]:
    """ucarp invocations in a systemd unit (``ExecStart=``), a shell script or a bare command line.

    A unit's ``Environment=`` assignments are used to expand ``$VAR`` in the command line.
    """
    env: dict[str, str] = {}
    runs: list[UcarpRun] = []
    for no, line in _logical_lines(text):
        s = line.strip()
        if not s or s.startswith(("#", ";")):
            continue
        origin = Origin(path, no)
        if s.startswith("Environment="):
            try:
                for item in shlex.split(s[len("Environment="):]):
                    k, eq, v = item.partition("=")
                    if eq:
                        env[k] = v
            except ValueError:
                raise ConfigError("unbalanced quotes in Environment=", path, no) from None
            continue
        if s.startswith(("ExecStart=", "ExecStartPre=", "ExecStartPost=")):
            s = s.split("=", 1)[1].lstrip("-@:+!")
        try:
            words = shlex.split(s, comments=True)
        except ValueError:
            raise ConfigError("unbalanced quotes on this line", path, no) from None
        # skip prefixes such as 'exec', 'sudo', 'nohup', VAR=value assignments
        k = 0
        while k < len(words) and (words[k] in ("exec", "sudo", "nohup", "env", "command")
                                  or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[k])):
            k += 1
        if k < len(words) and Path(words[k]).name == "ucarp":
            runs.append(parse_ucarp_argv(words[k:], origin, env))
    return runs


def find_interfaces_ucarp(text: str, path: str) -> tuple[list[UcarpRun], list[str], list[ConfigError]]:
    """ucarp settings from /etc/network/interfaces stanzas, plus the host's own addresses.

    Options belong to the ``iface`` stanza above them; an option line before any stanza is an
    error. ``source`` lines are not followed (give the sourced files on the command line too).
    """
    runs: list[UcarpRun] = []
    addresses: list[str] = []
    problems: list[ConfigError] = []
    top = ("iface", "mapping", "auto", "source", "source-directory", "rename", "no-auto-down",
           "no-scripts", "template")
    stanza: dict | None = None

    def close():
        if stanza is None:
            return
        opts: dict[str, tuple[str, int]] = stanza["opts"]
        iface = stanza["iface"]
        addr_net = None
        if "address" in opts:
            value, no = opts["address"]
            if not value.split():
                problems.append(ConfigError(f"iface {iface}: address needs a value", path, no))
                return
            try:
                ia = ipaddress.ip_interface(value.split()[0])
            except ValueError:
                problems.append(ConfigError(f"iface {iface}: address is not an IP address", path, no))
                return
            if "/" not in value and "netmask" in opts:
                mask, mno = opts["netmask"]
                try:
                    ia = ipaddress.ip_interface(f"{ia.ip}/{mask.split()[0]}")
                except (ValueError, IndexError):
                    problems.append(ConfigError(f"iface {iface}: netmask is not a netmask or prefix length",
                                                path, mno))
                    return
            if ia.network.prefixlen < ia.max_prefixlen:
                addr_net = str(ia.network)
                addresses.append(str(ia))
            else:
                addresses.append(str(ia.ip))
        if "ucarp-vid" not in opts:
            return
        origin = Origin(path, opts["ucarp-vid"][1])
        argv = ["ucarp", "-i", iface.split(":", 1)[0]]
        if "address" in opts:
            argv += ["-s", str(ipaddress.ip_interface(opts["address"][0].split()[0]).ip)]
        for opt, flag in (("ucarp-vid", "-v"), ("ucarp-vip", "-a"), ("ucarp-password", "-p"),
                          ("ucarp-advskew", "-k"), ("ucarp-advbase", "-b")):
            if opt in opts:
                argv += [flag, opts[opt][0].split()[0] if opts[opt][0].split() else ""]
        master = "ucarp-master" in opts and not re.match(r"(no|off|false|0)", opts["ucarp-master"][0])
        if master:
            argv.append("-P")
        try:
            if "address" not in opts:
                raise ConfigError(f"iface {iface}: ucarp needs the stanza's address (its --srcip)",
                                  origin.path, origin.line)
            run = parse_ucarp_argv(argv, origin)
        except ConfigError as exc:
            problems.append(exc)
            return
        run.master = master
        run.network = addr_net
        for opt, key in (("ucarp-vip", "addr"), ("ucarp-password", "passphrase"),
                         ("ucarp-advskew", "advskew"), ("ucarp-advbase", "advbase"), ("ucarp-master", "preempt")):
            if opt in opts:
                run.where[key] = Origin(path, opts[opt][1])
        runs.append(run)

    for no, line in _logical_lines(text):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        word, _, rest = s.partition(" ")
        if word in top or word.startswith("allow-"):
            close()
            stanza = None
            if word == "iface":
                parts = rest.split()
                if not parts:
                    problems.append(ConfigError("iface needs an interface name", path, no))
                    continue
                stanza = {"iface": parts[0], "opts": {}, "line": no}
            elif word == "mapping":
                stanza = {"iface": "mapping", "opts": {}, "line": no, "ignore": True}
            continue
        if stanza is None:
            problems.append(ConfigError(f"option {word!r} outside an iface stanza", path, no))
            continue
        stanza["opts"][word] = (rest.strip(), no)
    close()
    return runs, addresses, problems


def host_from_runs(runs: list[UcarpRun], name: str, path: str, addresses: list[str] | None = None,
                   kind: str = "ucarp") -> HostConfig:
    """One host running these ucarp processes."""
    host = Host(name=name, kind=kind, files=(path,))
    host.where["host"] = Origin(path, 1)
    own = list(addresses or [])
    declared: list[Declared] = []
    seen: set[str] = set()
    for r in runs:
        label = f"{name}:vhid{r.vhid}"
        if label in seen:
            label = f"{name}:{r.interface}:vhid{r.vhid}"
        seen.add(label)
        origin = r.where.get("passphrase", r.origin)
        secret = None
        if r.passphrase is not None:
            secret = Secret(label, value=r.passphrase, origin=origin)
        elif r.passfile is not None:
            secret = Secret(label, file=r.passfile, base=str(Path(path).resolve().parent), origin=origin)
        elif r.pass_env is not None:
            secret = Secret(label, env=r.pass_env, origin=origin)
        m = Member(host=name, advskew=r.advskew, advbase=r.advbase, preempt=r.preempt,
                   vips=(r.addr,), passphrase=secret, interface=r.interface, source=r.srcip,
                   master=r.master, implementation="ucarp")
        m.where = {"member": r.origin, **r.where}
        if "addr" in r.where:
            m.where["vips"] = r.where["addr"]
        m.where.setdefault("preempt", r.origin)
        if r.srcip and r.srcip not in [a.split("/")[0] for a in own]:
            own.append(r.srcip)
        declared.append(Declared(CARP, r.vhid, Link(interface=r.interface, network=r.network,
                                                    networks=(r.network,) if r.network else ()), m))
    host.addresses = tuple(dict.fromkeys(own))
    return HostConfig(host=host, declared=declared)
