"""A network-namespace lab with real CARP/VRRP speakers (ucarp, keepalived).

Topology: one switch namespace holding a Linux bridge, one namespace per host, each host's
``eth0`` a veth whose peer ``p-<host>`` is a bridge port. Everything is named with a prefix
unique to the run (``cst<pid>-<n>-``), so parallel or leftover runs never clash. Nothing is
done in the root namespace except creating and deleting these namespaces.

    with Lab([Host("a", "10.0.0.2/24"), Host("b", "10.0.0.3/24")]) as lab:
        lab.start_capture("out.pcap")
        lab.start_ucarp(Ucarp("a", vhid=7, passphrase="pw", vip="10.0.0.1"))
        ...

The lab tracks every process it starts and on exit (also on exceptions, KeyboardInterrupt or
SIGTERM turned into an exception) stops them by PID — SIGTERM, then SIGKILL after a bound —
and deletes only its own namespaces. Every wait is bounded.
"""
from __future__ import annotations

import atexit
import contextlib
import ipaddress
import itertools
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .speakers import Keepalived, Speaker, Ucarp

SBIN_PATH = "/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin"
PREFIX_BASE = "cst"
PREFIX_RE = re.compile(rf"^{PREFIX_BASE}(\d+)-(\d+)-")
CMD_TIMEOUT = 15.0        # any single short command (ip, sysctl, nft)
STOP_TIMEOUT = 5.0        # SIGTERM -> SIGKILL bound per process
KILL_TIMEOUT = 3.0        # wait after SIGKILL
READY_TIMEOUT = 5.0       # tcpdump "listening on"
HOST_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,12}$")   # p-<name> must fit IFNAMSIZ (15)

_run_counter = itertools.count()
# start_together's gate: sleep until the common start time, then exec the daemon (same PID)
_GATE = ("import os, sys, time; t = float(sys.argv[1]); time.sleep(max(0.0, t - time.time())); "
         "os.execv(sys.argv[2], sys.argv[2:])")


class LabError(RuntimeError):
    """The lab could not be built or a bounded wait ran out."""


def tool(name: str) -> str | None:
    """Absolute path of a tool, also looking in the sbin directories (non-root PATHs lack them)."""
    return shutil.which(name) or shutil.which(name, path=SBIN_PATH)


def package_version(pkg: str) -> str | None:
    """Installed Debian package version (dpkg-query), or None."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True,
                             text=True, timeout=CMD_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


# ---------------------------------------------------------------------------- hosts


@dataclass(frozen=True)
class Host:
    """A host namespace: name, addresses with prefix length, fixed MAC (derived if not given)."""

    name: str
    ipv4: str | None = None              # "192.168.1.3/24"
    ipv6: tuple[str, ...] = ()           # ("fe80::3/64", "2001:db8::3/64"), added with nodad
    mac: str | None = None

    def __post_init__(self) -> None:
        if not HOST_NAME_RE.match(self.name):
            raise ValueError(f"host name {self.name!r}: lowercase letters/digits, at most 13")
        if self.ipv4:
            ipaddress.IPv4Interface(self.ipv4)
        for a in self.ipv6:
            ipaddress.IPv6Interface(a)

    @property
    def addr4(self) -> str | None:
        return str(ipaddress.IPv4Interface(self.ipv4).ip) if self.ipv4 else None

    @property
    def link_local6(self) -> str | None:
        for a in self.ipv6:
            ip = ipaddress.IPv6Interface(a).ip
            if ip.is_link_local:
                return str(ip)
        return None

    def mac_for(self, index: int) -> str:
        """The given MAC, else 02:00:<IPv4 bytes> (locally administered), else by index."""
        if self.mac:
            return self.mac.lower()
        if self.ipv4:
            b = ipaddress.IPv4Interface(self.ipv4).ip.packed
            return "02:00:" + ":".join(f"{x:02x}" for x in b)
        return f"02:00:00:00:ff:{index + 1:02x}"


# ---------------------------------------------------------------------------- processes


@dataclass
class Proc:
    """A process the lab started, in one namespace."""

    tag: str
    netns: str
    popen: subprocess.Popen
    log_path: Path
    spec: Speaker | None = None
    child_pidfile: Path | None = None    # keepalived's VRRP child
    started: float = field(default_factory=time.time)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def _netns_inode(name: str) -> int | None:
    try:
        return os.stat(f"/run/netns/{name}").st_ino
    except OSError:
        return None


def _pid_in_netns(pid: int, inode: int | None) -> bool:
    """True when pid lives in the namespace with this inode (guards against PID reuse)."""
    if inode is None:
        return False
    try:
        return os.readlink(f"/proc/{pid}/ns/net") == f"net:[{inode}]"
    except OSError:
        return False


def _wait_pid_gone(pid: int, inode: int | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_in_netns(pid, inode):
            return True
        time.sleep(0.05)
    return not _pid_in_netns(pid, inode)


@contextlib.contextmanager
def _signals_deferred():
    """Hold SIGINT/SIGTERM while tearing down; deliver the first one afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    sigs = (signal.SIGINT, signal.SIGTERM)
    old = {s: signal.getsignal(s) for s in sigs}
    for s in sigs:
        signal.signal(s, lambda num, _frame: caught.append(num))
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if caught:
            signal.raise_signal(caught[0])


# ---------------------------------------------------------------------------- keepalived's state changes


class _NotifyFifos:
    """Reads keepalived's ``vrrp_notify_fifo`` of each instance and appends its state changes to
    the events log, stamped when read.

    keepalived writes one line per change, ``INSTANCE "VI_25" MASTER 255``, from its VRRP
    process, in the order of the changes. Its notify scripts are no substitute: it forks them
    without waiting, so a MASTER and a BACKUP a millisecond apart (an owner that hears another
    owner) could reach the log in either order. The FIFO is made here and opened read-write, so
    keepalived never blocks on it and a line written just before it exits is still read.
    """

    _LINE = re.compile(r'INSTANCE "[^"]*" (\S+) (-?\d+)$')

    def __init__(self, events_path: Path):
        self._events_path = events_path
        self._fds: dict[int, tuple[str, int]] = {}     # fd -> (host, vrid)
        self._partial: dict[int, bytes] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, path: Path, host: str, vrid: int) -> None:
        path.unlink(missing_ok=True)
        os.mkfifo(path, 0o600)
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        with self._lock:
            self._fds[fd] = (host, vrid)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="keepalived-fifos", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._drain(0.05)

    def _drain(self, timeout: float) -> None:
        with self._lock:
            fds = dict(self._fds)
        if not fds:
            self._stop.wait(timeout)
            return
        ready, _, _ = select.select(fds, [], [], timeout)
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            now = time.time()
            *lines, self._partial[fd] = (self._partial.get(fd, b"") + data).split(b"\n")
            host, vrid = fds[fd]
            with open(self._events_path, "a") as log:
                for raw in lines:
                    m = self._LINE.match(raw.decode(errors="replace").strip())
                    if m:
                        log.write(f"{now:.9f} impl=keepalived host={host} id=vrrp:{vrid} "
                                  f"state={m[1]} priority={m[2]}\n")

    def close(self) -> None:
        """After the speakers have stopped: read what is left, then close the FIFOs."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        with contextlib.suppress(OSError):
            self._drain(0.0)
        with self._lock:
            for fd in self._fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._fds.clear()


# ---------------------------------------------------------------------------- the lab


class Lab:
    """Bridge namespace + one namespace per host, real speakers, a capture on the bridge."""

    def __init__(self, hosts: list[Host], *, ipv6: bool | None = None, bridge: str = "br0",
                 workdir: str | os.PathLike | None = None, prefix: str | None = None):
        names = [h.name for h in hosts]
        if len(set(names)) != len(names):
            raise ValueError("duplicate host names")
        self.hosts = {h.name: h for h in hosts}
        self.macs = {h.name: h.mac_for(i) for i, h in enumerate(hosts)}
        self.ipv6 = any(h.ipv6 for h in hosts) if ipv6 is None else ipv6
        self.bridge = bridge
        self.prefix = prefix or f"{PREFIX_BASE}{os.getpid()}-{next(_run_counter)}-"
        if not PREFIX_RE.match(self.prefix):
            raise ValueError(f"prefix must look like {PREFIX_BASE}<pid>-<n>-")
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else None   # a temporary one is made by up()
        self.namespaces: list[str] = []
        self.procs: list[Proc] = []
        self.timeline: list[dict] = []
        self.instances: dict[str, dict] = {}
        self.t0: float | None = None           # epoch when the capture started listening
        self.capture: Proc | None = None
        self.capture_path: Path | None = None
        self.capture_stop: float | None = None
        self.capture_interface: str = bridge
        self._closed = False
        self._up_at = time.time()
        self._tools: dict[str, str] = {}
        self._settle = 0.02   # pause after starting a speaker, to catch an immediate exit
        self._gate_at: float | None = None   # start_together: common start time
        self._fifos: _NotifyFifos | None = None

    # ------------------------------------------------------------ names
    @property
    def switch_netns(self) -> str:
        return self.prefix + "sw"

    def netns(self, host: str) -> str:
        if host not in self.hosts:
            raise KeyError(f"unknown host {host!r}")
        return self.prefix + host

    @staticmethod
    def port(host: str) -> str:
        """The switch-side veth of a host (a port of the bridge)."""
        return f"p-{host}"

    def src_ip(self, host: str, family: int = 4) -> str:
        h = self.hosts[host]
        ip = h.addr4 if family == 4 else h.link_local6
        if ip is None:
            raise LabError(f"host {host} has no IPv{family} source address")
        return ip

    def t(self) -> float:
        """Seconds since the capture started (or since the lab came up)."""
        return round(time.time() - (self.t0 or self._up_at), 3)

    # ------------------------------------------------------------ context manager
    def __enter__(self) -> "Lab":
        try:
            self.up()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    # ------------------------------------------------------------ commands
    def _tool(self, name: str) -> str:
        if name not in self._tools:
            path = tool(name)
            if path is None:
                raise LabError(f"{name} not found (apt-get install {name})")
            self._tools[name] = path
        return self._tools[name]

    def _cmd(self, argv: list[str], *, timeout: float = CMD_TIMEOUT, check: bool = True,
             input: str | None = None) -> subprocess.CompletedProcess:
        argv = [self._tool(argv[0]), *argv[1:]]
        try:
            res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input,
                                 stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise LabError(f"timed out after {timeout}s: {' '.join(argv)}") from e
        if check and res.returncode != 0:
            raise LabError(f"failed ({res.returncode}): {' '.join(argv)}: {res.stderr.strip()}")
        return res

    def _in_ns(self, ns: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", ns, self._tool(argv[0]) if "/" not in argv[0] else argv[0],
                *argv[1:]]

    def run_in(self, host: str, argv: list[str], **kw) -> subprocess.CompletedProcess:
        """Run a short command in a host namespace (bounded; output captured)."""
        return self._cmd(self._in_ns(self.netns(host), argv), **kw)

    def exec_in_switch(self, argv: list[str], **kw) -> subprocess.CompletedProcess:
        """Run a command in the switch namespace, e.g. a sniffer on ``lab.bridge``."""
        return self._cmd(self._in_ns(self.switch_netns, argv), **kw)

    def spawn_in(self, host: str, argv: list[str], tag: str) -> Proc:
        """Start a long-running process in a host namespace; the lab stops it on exit."""
        return self._spawn(self.netns(host), argv, tag)

    def spawn_in_switch(self, argv: list[str], tag: str) -> Proc:
        return self._spawn(self.switch_netns, argv, tag)

    def _spawn(self, ns: str, argv: list[str], tag: str, **extra) -> Proc:
        if self._closed:
            raise LabError("lab is closed")
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        n = sum(1 for p in self.procs if p.tag == tag)
        log_path = logs / f"{tag}.{n}.log"
        with open(log_path, "wb") as log:
            # ip netns exec execs the command: the PID is the daemon's own.
            # A new session keeps a terminal's Ctrl-C away from it: the lab stops it in order.
            popen = subprocess.Popen([self._tool("ip"), *self._in_ns(ns, argv)[1:]],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=self.workdir)
        proc = Proc(tag=tag, netns=ns, popen=popen, log_path=log_path, **extra)
        self.procs.append(proc)
        return proc

    # ------------------------------------------------------------ topology
    @property
    def events_path(self) -> Path:
        return self.workdir / "events.log"

    def up(self) -> None:
        self._up_at = time.time()
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="carpscope-lab-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.events_path.touch()
        self._write_scripts()
        existing = self._list_netns()
        clash = [n for n in existing if n.startswith(self.prefix)]
        if clash:
            raise LabError(f"namespaces with prefix {self.prefix} already exist: {clash}")
        _ACTIVE.add(self)
        self._add_netns(self.switch_netns, ipv6=False)
        sw = self.switch_netns
        self._cmd(["ip", "-n", sw, "link", "add", self.bridge, "type", "bridge", "stp_state", "0",
                   "forward_delay", "0", "mcast_snooping", "0"])
        self._cmd(["ip", "-n", sw, "link", "set", self.bridge, "up"])
        for name in self.hosts:
            self._attach(name)

    def _list_netns(self) -> list[str]:
        out = self._cmd(["ip", "netns", "list"]).stdout
        return [ln.split()[0] for ln in out.splitlines() if ln.strip()]

    def _add_netns(self, ns: str, *, ipv6: bool) -> None:
        self._cmd(["ip", "netns", "add", ns])
        self.namespaces.append(ns)
        self._cmd(["ip", "-n", ns, "link", "set", "lo", "up"])
        self._sysctl(ns, self._ipv6_sysctls("default", ipv6) + self._ipv6_sysctls("all", ipv6))

    @staticmethod
    def _ipv6_sysctls(dev: str, on: bool) -> list[str]:
        base = f"net.ipv6.conf.{dev}."
        if not on:   # IPv4 runs: no MLD, RS or DAD noise in the capture
            return [base + "disable_ipv6=1"]
        # fixed addresses only (addr_gen_mode 1 = none), no DAD, no router solicitations
        return [base + "disable_ipv6=0", base + "accept_dad=0", base + "router_solicitations=0",
                base + "addr_gen_mode=1"]

    def _sysctl(self, ns: str, settings: list[str]) -> None:
        self._cmd(self._in_ns(ns, ["sysctl", "-q", "-w", *settings]))

    def _attach(self, name: str) -> None:
        host, ns, sw, port = self.hosts[name], self.netns(name), self.switch_netns, self.port(name)
        v6 = self.ipv6 and bool(host.ipv6)
        self._add_netns(ns, ipv6=v6)
        self._cmd(["ip", "-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0",
                   "netns", ns])
        self._sysctl(ns, self._ipv6_sysctls("eth0", v6))
        self._cmd(["ip", "-n", ns, "link", "set", "eth0", "address", self.macs[name]])
        self._cmd(["ip", "-n", sw, "link", "set", port, "master", self.bridge])
        self._cmd(["ip", "-n", sw, "link", "set", port, "up"])
        if host.ipv4:
            self._cmd(["ip", "-n", ns, "addr", "add", host.ipv4, "dev", "eth0"])
        for a in host.ipv6 if v6 else ():
            self._cmd(["ip", "-n", ns, "-6", "addr", "add", a, "dev", "eth0", "nodad"])
        self._cmd(["ip", "-n", ns, "link", "set", "eth0", "up"])

    def set_ttl(self, host: str, ttl: int = 254) -> None:
        """Rewrite the TTL / hop limit of every protocol-112 packet the host sends.

        An nftables netdev ingress rule on the host's switch port (this kernel has no tc
        pedit); nft fixes the IPv4 header checksum. The capture on the bridge sees the
        rewritten packets, and so do the other hosts.
        """
        table = f"cst_ttl_{host}"
        rules = (f"table netdev {table} {{\n"
                 f"  chain in_{host} {{\n"
                 f'    type filter hook ingress device "{self.port(host)}" priority 0; policy accept;\n'
                 f"    ip protocol 112 ip ttl set {ttl}\n"
                 f"    ip6 nexthdr 112 ip6 hoplimit set {ttl}\n"
                 f"  }}\n}}\n")
        self._cmd(self._in_ns(self.switch_netns, ["nft", "-f", "-"]), input=rules)
        self._action("ttl", host=host, ttl=ttl, how="nftables netdev ingress on " + self.port(host))

    # ------------------------------------------------------------ capture
    def start_capture(self, path: str | os.PathLike, bpf: str | None = None, *,
                      interface: str | None = None) -> Proc:
        """tcpdump -i <bridge> -U -s 0 -w path, in the switch namespace; returns when listening.

        ``interface="any"`` records every interface of the switch namespace (Linux cooked v2:
        one copy of a frame per bridge port it crosses, as ``tcpdump -i any`` on a bridge host).
        """
        if self.capture is not None:
            raise LabError("a capture is already running")
        path = Path(path).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        self.capture_interface = interface or self.bridge
        argv = ["tcpdump", "-i", self.capture_interface, "-n", "-U", "-s", "0", "--immediate-mode",
                "-Z", "root", "-w", str(path)] + ([bpf] if bpf else [])
        proc = self._spawn(self.switch_netns, argv, "tcpdump")
        deadline = time.monotonic() + READY_TIMEOUT
        while "listening on" not in proc.output():
            if not proc.alive() or time.monotonic() > deadline:
                self._stop_proc(proc, signal.SIGTERM)
                raise LabError(f"tcpdump did not start: {proc.output().strip()}")
            time.sleep(0.05)
        self.capture, self.capture_path = proc, path
        self.t0 = time.time()
        self._action("capture_start", interface=self.capture_interface, netns=self.switch_netns)
        return proc

    def stop_capture(self) -> Path | None:
        """Stop tcpdump (SIGINT: it flushes and exits); returns the pcap path."""
        if self.capture is None:
            return self.capture_path
        self.capture_stop = time.time()
        self._action("capture_stop")
        self._stop_proc(self.capture, signal.SIGINT)
        self.capture = None
        return self.capture_path

    # ------------------------------------------------------------ speakers
    def start_ucarp(self, spec: Ucarp) -> Proc:
        src = self.src_ip(spec.host, 4)
        argv = spec.argv(iface="eth0", src_ip=src, upscript=str(self.workdir / "ucarp-up.sh"),
                         downscript=str(self.workdir / "ucarp-down.sh"))
        return self._start_speaker(spec, argv, src)

    def start_keepalived(self, spec: Keepalived) -> Proc:
        n = sum(1 for p in self.procs if p.tag == spec.tag)
        base = self.workdir / f"{spec.tag}.{n}"
        conf = base.with_suffix(".conf")
        fifo = base.with_suffix(".fifo")
        if self._fifos is None:
            self._fifos = _NotifyFifos(self.events_path)
        self._fifos.add(fifo, spec.host, spec.vrid)
        conf.write_text(spec.config(iface="eth0", fifo=str(fifo)))
        child_pid = base.with_suffix(".vrrp.pid")
        # /run is shared between namespaces: separate pid files, or the second instance
        # exits with "daemon is already running"
        argv = ["keepalived", "-n", "-l", "-D", "-G", "-R", "-P", "-f", str(conf),
                "-p", str(base.with_suffix(".pid")), "-r", str(child_pid)]
        src = spec.unicast_src or self.src_ip(spec.host, spec.family)
        return self._start_speaker(spec, argv, src, child_pidfile=child_pid)

    def start(self, spec: Speaker) -> Proc:
        return self.start_ucarp(spec) if isinstance(spec, Ucarp) else self.start_keepalived(spec)

    def start_together(self, *specs: Speaker, lead: float = 0.5) -> list[Proc]:
        """Start several speakers at the same instant: each process is spawned behind a gate
        (a tiny Python that sleeps until a common time `lead` s ahead, then execs the daemon,
        keeping its PID), so their timers start within a fraction of a millisecond."""
        self._gate_at = time.time() + lead
        self._settle = 0.0
        try:
            procs = [self.start(s) for s in specs]
        finally:
            self._settle, self._gate_at = 0.02, None
        time.sleep(max(0.0, lead) + 0.05)
        dead = [p for p in procs if not p.alive()]
        if dead:
            raise LabError(f"{dead[0].tag} exited at once: {dead[0].output().strip()}")
        return procs

    def _start_speaker(self, spec: Speaker, argv: list[str], src: str, **extra) -> Proc:
        if self._gate_at is not None:
            argv = [sys.executable, "-c", _GATE, repr(self._gate_at), self._tool(argv[0]), *argv[1:]]
        proc = self._spawn(self.netns(spec.host), argv, spec.tag, spec=spec, **extra)
        desc = spec.describe(src_ip=src, host_mac=self.macs[spec.host])
        changes = {}
        if spec.tag in self.instances:   # a restart: note what differs from the first start
            first = self.instances[spec.tag]
            changes = {k: v for k, v in desc.items() if first.get(k) != v}
        else:
            self.instances[spec.tag] = dict(desc, id=spec.tag, start_t_s=self.t())
        self._action("start", instance=spec.tag, host=spec.host, pid=proc.pid,
                     **({"changes": changes} if changes else {}))
        if self._settle:
            time.sleep(self._settle)
            if not proc.alive():
                raise LabError(f"{spec.tag} exited at once: {proc.output().strip()}")
        return proc

    def stop(self, proc: Proc, sig: int = signal.SIGTERM) -> None:
        """Stop one process (mid-run, e.g. a failover); recorded in the timeline."""
        self._action("stop", instance=proc.tag, pid=proc.pid, signal=signal.Signals(sig).name[3:])
        self._stop_proc(proc, sig)

    def stop_together(self, procs: list[Proc], sig: int = signal.SIGTERM) -> None:
        """Signal several processes at the same instant, then wait for each (bounded)."""
        for p in procs:
            self._action("stop", instance=p.tag, pid=p.pid, signal=signal.Signals(sig).name[3:])
        for p in procs:
            if p.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, sig)
        for p in procs:
            self._stop_proc(p, sig)

    def running(self, tag: str) -> Proc | None:
        """The live process with this tag, if any."""
        for p in reversed(self.procs):
            if p.tag == tag and p.alive():
                return p
        return None

    # ------------------------------------------------------------ events (state changes)
    def events(self) -> list[dict]:
        """State changes written by the ucarp up/down scripts and read from keepalived's FIFOs."""
        out: list[dict] = []
        if self.workdir is None:
            return out
        try:
            text = self.events_path.read_text()
        except OSError:
            return out
        for line in text.splitlines():
            parts = line.split()
            if not parts:
                continue
            try:
                ev = {"epoch": float(parts[0])}
            except ValueError:
                continue
            ev.update(kv.split("=", 1) for kv in parts[1:] if "=" in kv)
            if self.t0:
                ev["t_s"] = round(ev["epoch"] - self.t0, 3)
            out.append(ev)
        return out

    def state(self, host: str, ident: str, since: float | None = None) -> str | None:
        """The latest state the speaker for (host, 'carp:7'/'vrrp:51') reported."""
        last = None
        for ev in self.events():
            if ev.get("host") == host and ev.get("id") == ident and (since is None or ev["epoch"] >= since):
                last = ev.get("state")
        return last

    def wait_state(self, host: str, ident: str, state: str, timeout: float, *,
                   since: float | None = None, check: bool = True) -> float | None:
        """Wait (bounded) until that speaker reports `state`; returns seconds waited."""
        start = time.time()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state(host, ident, since) == state:
                return round(time.time() - start, 3)
            time.sleep(0.05)
        if check:
            raise LabError(f"{host} {ident} did not reach {state} within {timeout}s")
        return None

    def _write_scripts(self) -> None:
        ev = self.events_path
        stamp = "$(date +%s.%N)"
        scripts = {
            # ucarp calls up/down with: interface VIP xparam(host:vhid)
            "ucarp-up.sh": f'h="${{3%%:*}}"; v="${{3##*:}}"\n'
                           f'echo "{stamp} impl=ucarp host=$h id=carp:$v state=MASTER vip=$2" >> "{ev}"\n',
            "ucarp-down.sh": f'h="${{3%%:*}}"; v="${{3##*:}}"\n'
                             f'echo "{stamp} impl=ucarp host=$h id=carp:$v state=BACKUP vip=$2" >> "{ev}"\n',
        }
        for name, body in scripts.items():
            p = self.workdir / name
            p.write_text("#!/bin/sh\n" + body)
            p.chmod(0o755)

    def _action(self, action: str, **kw) -> None:
        self.timeline.append({"t_s": self.t(), "action": action, **kw})

    # ------------------------------------------------------------ teardown
    def _stop_proc(self, proc: Proc, sig: int = signal.SIGTERM) -> None:
        child = self._child_pid(proc)
        inode = _netns_inode(proc.netns)
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            try:
                proc.popen.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(timeout=KILL_TIMEOUT)
        if child and not _wait_pid_gone(child, inode, 1.0):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
            _wait_pid_gone(child, inode, KILL_TIMEOUT)

    @staticmethod
    def _child_pid(proc: Proc) -> int | None:
        try:
            return int(proc.child_pidfile.read_text().split()[0]) if proc.child_pidfile else None
        except (OSError, ValueError, IndexError):
            return None

    def close(self) -> None:
        """Stop the capture, then every process (by PID), then delete the namespaces."""
        if self._closed:
            return
        self._closed = True
        with _signals_deferred():
            try:
                self._teardown()
            finally:
                _ACTIVE.discard(self)

    def _teardown(self) -> None:
        with contextlib.suppress(Exception):
            self.stop_capture()
        live = [p for p in self.procs if p.alive()]
        for p in live:      # all at once: a stopping keepalived master must not promote a backup
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGTERM)
        for p in live:
            self._stop_proc(p)
        if self._fifos is not None:
            self._fifos.close()
        for ns in reversed(self.namespaces):
            self._kill_leftovers(ns)
            res = self._cmd(["ip", "netns", "del", ns], check=False)
            if res.returncode != 0 and ns in self._list_netns_safe():
                raise LabError(f"could not delete namespace {ns}: {res.stderr.strip()}")
        self.namespaces.clear()
        if self._own_workdir and self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _list_netns_safe(self) -> list[str]:
        try:
            return self._list_netns()
        except LabError:
            return []

    def _kill_leftovers(self, ns: str) -> None:
        """Anything still inside one of our namespaces descends from what we started."""
        inode = _netns_inode(ns)
        res = self._cmd(["ip", "netns", "pids", ns], check=False)
        for pid in (int(x) for x in res.stdout.split() if x.isdigit()):
            if _pid_in_netns(pid, inode):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _wait_pid_gone(pid, inode, KILL_TIMEOUT)


# ---------------------------------------------------------------------------- safety nets

_ACTIVE: set[Lab] = set()


@atexit.register
def _close_active() -> None:
    for lab in list(_ACTIVE):
        with contextlib.suppress(Exception):
            lab.close()


def lab_namespaces(prefix: str = PREFIX_BASE) -> list[str]:
    """Namespaces whose names this harness uses (``cst<pid>-<n>-...``)."""
    out = subprocess.run([tool("ip") or "ip", "netns", "list"], capture_output=True, text=True,
                         timeout=CMD_TIMEOUT).stdout
    names = [ln.split()[0] for ln in out.splitlines() if ln.strip()]
    return [n for n in names if n.startswith(prefix) and PREFIX_RE.match(n)]


def stale_namespaces() -> list[str]:
    """Harness namespaces whose creating process is gone (a run that was SIGKILLed)."""
    return [n for n in lab_namespaces() if not Path(f"/proc/{PREFIX_RE.match(n).group(1)}").exists()]


def clean_stale() -> list[str]:
    """Delete stale harness namespaces (and the processes left inside them)."""
    ip = tool("ip") or "ip"
    removed = []
    for ns in stale_namespaces():
        inode = _netns_inode(ns)
        pids = subprocess.run([ip, "netns", "pids", ns], capture_output=True, text=True,
                              timeout=CMD_TIMEOUT).stdout.split()
        for pid in (int(p) for p in pids if p.isdigit()):
            if _pid_in_netns(pid, inode):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _wait_pid_gone(pid, inode, KILL_TIMEOUT)
        if subprocess.run([ip, "netns", "del", ns], capture_output=True, timeout=CMD_TIMEOUT).returncode == 0:
            removed.append(ns)
    return removed


# ---------------------------------------------------------------------------- pytest helpers

LIVE_TOOLS = ("ip", "ucarp", "keepalived", "tcpdump")


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def live_problems(tools: tuple[str, ...] = LIVE_TOOLS) -> list[str]:
    """Why live tests cannot run here (empty when they can)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("needs root for network namespaces")
    missing = [t for t in tools if tool(t) is None]
    if missing:
        problems.append(f"missing {', '.join(missing)} (apt-get install {' '.join(missing)})")
    return problems


def require_root(tools: tuple[str, ...] = LIVE_TOOLS) -> None:
    """Skip a live test with the reason when not root or tools are missing; under CI=true, fail."""
    import pytest

    problems = live_problems(tools)
    if not problems:
        return
    reason = "live harness: " + "; ".join(problems)
    if _ci():
        pytest.fail(reason + " (CI=true: a skipped live test is a failure)", pytrace=False)
    pytest.skip(reason)


__all__ = ["Host", "Lab", "LabError", "Proc", "Ucarp", "Keepalived", "require_root", "live_problems",
           "lab_namespaces", "stale_namespaces", "clean_stale", "package_version", "tool"]
