"""Live capture: `carpscope sniff IFACE`.

libpcap (pcapy-ng) opens the interface with ``create()`` + ``set_timeout(50)`` + ``activate()``:
this pcapy-ng has no ``set_immediate_mode``, and with TPACKET_V3 the read timeout is the block
retire timeout, so a 50 ms timeout bounds the delivery delay (measured: a few milliseconds on an
idle bridge) where the usual 1 s would hold adverts back. The handle is non-blocking and
``select``-ed together with a self-pipe woken by SIGINT/SIGTERM, so the loop also wakes up for
signals, dashboard refreshes and the silence timers of the tracker.

The same pipeline as ``analyze``: the capture filter of capture.py (protocol 112 plus ARP and
IPv6 neighbour advertisements for VIP inference), decode_frame, Analysis.record (verify, track,
rules). Once a second (and on each split brain) ``Analysis.snapshot()`` gives the findings as of
now; they are compared with the previous ones by (rule, segment, vhid, speakers) to announce
findings raised and cleared. At the end (duration, count, Ctrl-C, SIGTERM, interface lost) the
final report is the one ``analyze`` prints, with the same policy and exit status.

Output: a rich dashboard when stdout is a terminal (``--format text``); otherwise, or with
``--format jsonl``, one flushed JSON object per event (see docs/sniff.md for the schema).
"""
from __future__ import annotations

import argparse
import datetime as dt
import errno
import fcntl
import json
import os
import select
import signal
import socket
import struct
import sys
import time

SCHEMA = 1              # version of the JSON lines event schema (docs/sniff.md)
TIMEOUT_MS = 50         # libpcap read timeout = longest delay before a frame is delivered
WAIT_S = 0.1            # longest select() wait: ticks, deadlines and refreshes stay on time
SNAPSHOT_S = 1.0        # findings recomputed this often (and on each split brain)
HOLD_S = 3.0            # a warning/info finding is announced once it has held this long (errors
                        # at once): a VIP set inferred from the second gratuitous ARP, or a
                        # group that just appeared, do not raise and clear within a second
REFRESH_S = 0.5         # dashboard redrawn at least this often
REFRESH_MIN_S = 0.2     # ...and at most this often, even when events pour in
CHECK_IFACE_S = 1.0     # interface state polled this often (libpcap reports most losses itself)
BATCH = 256

# libpcap pcap_activate() results
PCAP_ERRORS = {
    -1: "generic error", -2: "loop broken", -3: "not activated", -4: "already activated",
    -5: "no such device", -6: "monitor mode not supported", -7: "not in monitor mode",
    -8: "permission denied", -9: "interface not up", -10: "cannot set time stamp type",
    -11: "no permission for promiscuous mode", -12: "time stamp precision not supported",
}
PCAP_WARNINGS = {1: "libpcap warning", 2: "promiscuous mode not supported",
                 3: "time stamp type not supported"}
# LINKTYPE_ value written to a pcap file for a DLT_ value libpcap reports
DLT_TO_LINKTYPE = {12: 101, 14: 101}

SIOCGIFFLAGS, SIOCGIFHWADDR, SIOCGIFADDR = 0x8913, 0x8927, 0x8915
IFF_UP, IFF_RUNNING = 0x1, 0x40


class LiveError(Exception):
    """Capture cannot start or go on: one line for the user, exit status 2."""


class InterfaceLost(LiveError):
    """The interface went down or disappeared during the capture (final report still printed)."""


# ---------------------------------------------------------------------------- arguments

def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return v


def add_arguments(p) -> None:
    p.add_argument("interface", nargs="?", metavar="IFACE",
                   help="interface to watch (see --list; 'any' for all, without promiscuous mode)")
    c = p.add_argument_group("capture")
    c.add_argument("--list", action="store_true", help="list the interfaces and exit")
    c.add_argument("--duration", type=_positive_float, metavar="S", help="stop after S seconds")
    c.add_argument("-c", "--count", type=_positive_int, metavar="N", help="stop after N advertisements")
    c.add_argument("-w", "--write", metavar="FILE.pcap",
                   help="save the frames that passed the capture filter (adverts, ARP, neighbour "
                        "advertisements) for a later 'carpscope analyze'")
    c.add_argument("--no-promisc", action="store_true", help="do not put the interface in promiscuous mode")
    c.add_argument("-Z", "--user", metavar="NAME",
                   help="drop privileges to this user once the capture is open (like tcpdump -Z)")


# ---------------------------------------------------------------------------- interfaces

def _ioctl(name: str, req: int) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        return fcntl.ioctl(s.fileno(), req, struct.pack("16s240x", name.encode()[:15]))


def iface_flags(name: str) -> int | None:
    """SIOCGIFFLAGS of an interface, None when it does not exist (no privilege needed)."""
    try:
        return struct.unpack_from("H", _ioctl(name, SIOCGIFFLAGS), 16)[0]
    except OSError as e:
        if e.errno in (errno.ENODEV, errno.ENXIO):
            return None
        raise


def iface_info(name: str) -> dict:
    d = {"name": name, "index": None, "up": None, "running": None, "mac": None, "ipv4": None, "ipv6": []}
    try:
        d["index"] = socket.if_nametoindex(name)
    except OSError:
        return d
    try:
        flags = iface_flags(name)
    except OSError:
        flags = None
    if flags is not None:
        d["up"], d["running"] = bool(flags & IFF_UP), bool(flags & IFF_RUNNING)
    try:
        hw = _ioctl(name, SIOCGIFHWADDR)[18:24]
        if any(hw):
            d["mac"] = hw.hex(":")
    except OSError:
        pass
    try:
        d["ipv4"] = socket.inet_ntoa(_ioctl(name, SIOCGIFADDR)[20:24])
    except OSError:
        pass
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and parts[5] == name:
                    a = socket.inet_ntop(socket.AF_INET6, bytes.fromhex(parts[0]))
                    d["ipv6"].append(f"{a}/{int(parts[2], 16)}")
    except OSError:
        pass
    return d


def list_interfaces(args) -> int:
    try:
        import pcapy
        names = list(pcapy.findalldevs())
    except Exception:      # no libpcap device list: the kernel's
        names = [n for _, n in socket.if_nameindex()]
    infos = [iface_info(n) for n in names]
    if args.format in ("json", "jsonl"):
        if args.format == "json":
            sys.stdout.write(json.dumps({"interfaces": infos}, indent=2) + "\n")
        else:
            for d in infos:
                sys.stdout.write(json.dumps({"type": "interface", **d}) + "\n")
        return 0
    rows = []
    for d in infos:
        state = "-" if d["up"] is None else ("up" if d["up"] else "DOWN")
        if d["up"] and d["running"] is False:
            state = "up, no carrier"
        addrs = ([d["ipv4"]] if d["ipv4"] else []) + d["ipv6"]
        rows.append((d["name"], state, d["mac"] or "-", " ".join(addrs) or "-"))
    w = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(("interface", "state", "mac", ""))]
    print(f"{'interface':{w[0]}}  {'state':{w[1]}}  {'mac':{w[2]}}  addresses")
    for r in rows:
        print(f"{r[0]:{w[0]}}  {r[1]:{w[1]}}  {r[2]:{w[2]}}  {r[3]}")
    return 0


def check_interface(name: str) -> None:
    """Fail early, in words, for a missing or down interface ('any' is not a real one)."""
    if name == "any":
        return
    if not name or len(name.encode()) > 15 or "/" in name or name.strip() != name:
        raise LiveError(f"{name!r}: not a valid interface name (carpscope sniff --list shows them)")
    try:
        flags = iface_flags(name)
    except OSError as e:
        if e.errno == errno.EINVAL or len(name) > 15:
            raise LiveError(f"{name}: not a valid interface name (carpscope sniff --list shows them)") from None
        return      # cannot tell: let libpcap decide
    if flags is None:
        raise LiveError(f"{name}: no such interface (carpscope sniff --list shows them)")
    if not flags & IFF_UP:
        raise LiveError(f"{name}: the interface is down (bring it up: ip link set {name} up)")


def permission_hint() -> str:
    exe = sys.executable or "python3"
    return ("capture needs root or CAP_NET_RAW: run as root, or grant it to the interpreter with "
            f"'sudo setcap cap_net_raw,cap_net_admin=eip $(readlink -f {exe})'")


# ---------------------------------------------------------------------------- the capture

# The capture filters of capture.py, with `ip6 protochain 112` (a loop: the kernel refuses it,
# libpcap then filters every frame in user space and prints a warning, and it does not compile
# after `vlan`) replaced by a loop-free test: protocol 112 right after the IPv6 header or after
# one hop-by-hop, routing or destination options header.
_P6_LIVE = "(ip6 proto 112 or (ip6 and (ip6[6] == 0 or ip6[6] == 43 or ip6[6] == 60) and ip6[40] == 112))"


def live_filters(linktype: int = 1) -> list[str]:
    """Candidate filters for a live handle of this link type, widest first."""
    from carpscope import capture
    base = capture.filter_texts(linktype) if hasattr(capture, "filter_texts") else list(capture.FILTERS)
    out = [f.replace("ip6 protochain 112", _P6_LIVE) for f in base] + base
    return list(dict.fromkeys(out))


def set_live_filter(pc, linktype: int) -> tuple[str | None, str | None]:
    """Set the widest filter that compiles; returns (filter, libpcap's complaint or None).

    libpcap prints "Warning: Kernel filter failed" on file descriptor 2 itself: that is caught
    here and returned, so the user gets one carpscope warning instead of a stray line."""
    import tempfile

    import pcapy
    for text in live_filters(linktype):
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                pc.setfilter(text)
                ok = True
            except pcapy.PcapError:
                ok = False
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            tmp.seek(0)
            said = tmp.read().decode("utf-8", "replace").strip()
        if ok:
            return text, said.removeprefix("Warning: ").strip() or None
    return None, None

class LiveSource:
    """A libpcap live handle: filter set, non-blocking, selectable, 50 ms delivery bound."""

    def __init__(self, iface: str, promisc: bool = True, timeout_ms: int = TIMEOUT_MS):
        import pcapy

        from carpscope.capture import SNAPLEN
        from carpscope.wire.link import UnsupportedLinkType, check_linktype, linktype_name
        self.name = iface
        self.promisc = promisc and iface != "any"
        self.warning: str | None = None
        self._pcapy = pcapy
        try:
            pc = pcapy.create(iface)
            pc.set_snaplen(SNAPLEN)
            pc.set_promisc(self.promisc)
            pc.set_timeout(timeout_ms)
            rc = pc.activate()
        except pcapy.PcapError as e:
            raise LiveError(self._explain(iface, None, str(e))) from None
        if rc is not None and rc < 0:
            raise LiveError(self._explain(iface, rc, self._error_text(iface, promisc)))
        if rc:
            self.warning = f"{iface}: {PCAP_WARNINGS.get(rc, f'libpcap warning {rc}')}"
        self._pc = pc
        self.linktype = pc.datalink()
        self.linktype_name = linktype_name(self.linktype)
        try:
            check_linktype(self.linktype)
        except UnsupportedLinkType as e:
            raise LiveError(f"{iface}: {e}") from None
        self.filter, complaint = set_live_filter(pc, self.linktype)
        if self.filter is None:
            raise LiveError(f"{iface}: cannot set a capture filter for link type {self.linktype_name}")
        if complaint:
            self.warning = (f"{iface}: the kernel refused the capture filter ({complaint}); "
                            "frames are filtered in user space (slower on a busy interface)")
        pc.setnonblock(1)
        self.fd = pc.getfd()
        self.file_linktype = DLT_TO_LINKTYPE.get(self.linktype, self.linktype)

    def _error_text(self, iface: str, promisc: bool) -> str | None:
        """libpcap's own words for a failed activate(): open_live raises with them."""
        try:
            pc = self._pcapy.open_live(iface, 96, promisc, TIMEOUT_MS)
        except self._pcapy.PcapError as e:
            return str(e)
        pc.close()
        return None

    @staticmethod
    def _explain(iface: str, rc: int | None, text: str | None) -> str:
        low = (text or "").lower()
        if rc == -5 or "no such device" in low:
            return f"{iface}: no such interface (carpscope sniff --list shows them)"
        if rc == -9 or "not up" in low or "network is down" in low:
            return f"{iface}: the interface is down (bring it up: ip link set {iface} up)"
        if rc == -11:
            return f"{iface}: no permission to enable promiscuous mode (try --no-promisc); {permission_hint()}"
        if rc == -8 or "permission" in low or "not permitted" in low:
            return f"{iface}: permission denied: {permission_hint()}"
        what = text or PCAP_ERRORS.get(rc, f"libpcap error {rc}")
        return f"{iface}: cannot capture: {what}"

    def batch(self, n: int = BATCH) -> list[tuple[int, int, bytes]]:
        """Frames available now, as (seconds, microseconds, bytes); [] when none."""
        try:
            buf, meta = self._pc.next_batch(n)
        except self._pcapy.PcapError as e:
            raise InterfaceLost(self.lost_message(str(e))) from None
        if not meta:
            return []
        mv = memoryview(meta).cast("I")
        return [(mv[i], mv[i + 1], buf[mv[i + 2]:mv[i + 2] + mv[i + 3]]) for i in range(0, len(mv), 4)]

    def lost_message(self, why: str | None = None) -> str:
        flags = None
        try:
            flags = iface_flags(self.name) if self.name != "any" else IFF_UP
        except OSError:
            pass
        if self.name != "any" and flags is None:
            what = "the interface disappeared"
        elif flags is not None and not flags & IFF_UP:
            what = "the interface went down"
        else:
            what = why or "the capture stopped"
        return f"{self.name}: {what} during the capture"

    def check(self) -> None:
        """Raise InterfaceLost when the interface is gone or down (libpcap may not notice)."""
        if self.name == "any":
            return
        try:
            flags = iface_flags(self.name)
        except OSError:
            return
        if flags is None or not flags & IFF_UP:
            raise InterfaceLost(self.lost_message())

    def stats(self) -> tuple[int, int, int] | None:
        try:
            return tuple(self._pc.stats())
        except Exception:
            return None

    def close(self) -> None:
        try:
            self._pc.close()
        except Exception:
            pass


def lookup_user(name: str):
    import pwd
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise LiveError(f"--user {name}: no such user") from None


def preload() -> None:
    """Import, while still privileged, what the run needs after --user: the interpreter's own
    files may be unreadable to that user (a Python under /root), and both carpscope and rich
    import lazily. A small report and a dashboard frame are rendered to memory to pull in
    whatever rendering imports."""
    import importlib
    import io

    for m in ("carpscope.synth", "carpscope.report.text", "carpscope.report.jsonreport",
              "carpscope.report.dashboard", "carpscope.wire.frame", "rich.console", "rich.live",
              "rich.table", "rich.text", "unicodedata", "encodings.idna", "tempfile"):
        try:
            importlib.import_module(m)
        except ImportError:
            pass
    from rich.console import Console

    from carpscope.analysis import Analysis
    from carpscope.report import jsonreport, text
    from carpscope.report.dashboard import Dashboard
    from carpscope.synth import carp_frame
    from carpscope.wire.frame import decode_frame
    a = Analysis()
    for i in range(8):
        for src in ("192.0.2.1", "192.0.2.2"):
            a.record(decode_frame(1, carp_frame(src, 1, counter=i), i + 1, 1e9 + i, "preload"))
    report = a.finish()
    doc = jsonreport.report_json(report)
    for color in (True, False):
        c = Console(file=io.StringIO(), force_terminal=color, width=120)
        text.render(doc, c)
        d = Dashboard(c, "preload")
        d.update(report.groups, report.findings, 1e9 + 9)
        c.print(d.renderable())
    json.dumps(doc, default=str)
    rfc3339(0.0)


def drop_privileges(pw) -> None:
    """setgroups([]), setgid, setuid, as tcpdump -Z does; then check root cannot come back."""
    try:
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    except OSError as e:
        raise LiveError(f"--user {pw.pw_name}: cannot drop privileges: {e.strerror} "
                        "(switching user needs root)") from None
    if pw.pw_uid != 0:
        try:
            os.setuid(0)
        except OSError:
            pass
        else:
            raise LiveError(f"--user {pw.pw_name}: privileges could be regained after dropping them")


# ---------------------------------------------------------------------------- events

def rfc3339(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def finding_key(f) -> tuple:
    """Identity of a finding across snapshots: (rule, segment, vhid, speakers), the speakers
    read from the evidence as the baseline fingerprints read them."""
    from carpscope.policy import speakers
    return (f.rule, f.segment, f.vhid, tuple(speakers(f)))


class JsonLines:
    """One flushed JSON object per event: schema, ts (RFC 3339 UTC), type, then the rest."""

    def __init__(self, out, interface: str):
        self.out, self.interface = out, interface

    def __call__(self, etype: str, ts: float, **kw) -> None:
        d = {"schema": SCHEMA, "ts": rfc3339(ts), "type": etype, "interface": self.interface}
        for k, v in kw.items():
            d[k] = rfc3339(v) if k == "since" and isinstance(v, (int, float)) else v
        self.out.write(json.dumps(d, default=str) + "\n")
        self.out.flush()


class Sniffer:
    """The loop: read frames, feed the analysis, tick, diff findings, refresh, stop.

    ``source`` has ``fd``, ``batch()``, ``check()``, ``stats()``; ``clock``/``mono`` and
    ``wait`` are injectable so the loop runs on a fake clock in tests.
    """

    def __init__(self, analysis, source, *, emit=None, dashboard=None, policy=None, writer=None,
                 duration: float | None = None, count: int | None = None,
                 clock=time.time, mono=time.monotonic, wait=select.select, wake_fd: int | None = None):
        from carpscope.model import SourceInfo
        self.analysis, self.source = analysis, source
        self.emit, self.dashboard, self.writer = emit, dashboard, writer
        self.policy = policy or (lambda fs: fs)
        self.duration, self.count = duration, count
        self.clock, self.mono, self.wait, self.wake_fd = clock, mono, wait, wake_fd
        self.info = SourceInfo(source.name, linktype=getattr(source, "linktype_name", None))
        # tracker events come here (groups take the callback when they are created)
        analysis.tracker.on_event = self.on_event
        # the master of each group as of its last advert: what `analyze` reports for a group that
        # went silent before the end (ticks end such runs here, analyze only at the end of input)
        self._master_after_advert: dict[tuple, object] = {}
        chained = analysis.on_advert

        def on_advert(a, g, sp, result):
            self._master_after_advert[g.key] = g.master
            if chained is not None:
                chained(a, g, sp, result)
        analysis.on_advert = on_advert
        analysis.sources.append(self.info)
        if getattr(source, "filter", None):
            analysis.filters[source.name] = source.filter
        self.frames = 0
        self.stop_reason: str | None = None
        self.lost: str | None = None
        self.active: dict[tuple, object] = {}     # finding key -> Finding (as last announced)
        self.pending: dict[tuple, float] = {}     # finding key -> when first seen, not announced yet
        self.findings: list = []
        self._snapshot_due = False
        self.started = None
        self.first_split_brain: float | None = None

    # events from the tracker (called inside analysis.record)
    def on_event(self, ev: dict) -> None:
        if ev["type"] == "split-brain":
            self._snapshot_due = True
            if self.first_split_brain is None:
                self.first_split_brain = self.clock()
        if self.dashboard is not None:
            self.dashboard.event(ev)
        if self.emit is not None:
            kw = {k: v for k, v in ev.items() if k not in ("type", "ts")}
            self.emit(ev["type"], ev["ts"], **kw)

    def finish(self):
        """The final report, as ``analyze`` would compute it from the same frames."""
        report = self.analysis.finish()
        for g in report.groups:
            if g.key in self._master_after_advert:
                g.master = self._master_after_advert[g.key]
        return report

    def request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason

    def _feed(self, frames) -> None:
        from carpscope.wire.frame import decode_frame
        lt, name, info, record = self.source.linktype, self.source.name, self.info, self.analysis.record
        for sec, usec, data in frames:
            ts = sec + usec * 1e-6
            self.frames += 1
            info.packets = self.frames
            if self.writer is not None:
                self.writer.write(ts, bytes(data))
            rec = decode_frame(lt, data, self.frames, ts, name)
            if rec is not None:
                kind = record(rec)
                if kind == 1:
                    info.adverts += 1
                    if self.count and info.adverts >= self.count:
                        self.request_stop("count")
                        return
                elif kind == 2:
                    info.malformed += 1

    def _drain(self) -> None:
        while self.stop_reason is None:
            frames = self.source.batch(BATCH)
            if not frames:
                break
            self._feed(frames)
        if self.writer is not None:
            self.writer.f.flush()

    def update_findings(self, now: float) -> None:
        from carpscope.model import Severity
        report = self.analysis.snapshot()
        findings = self.policy(report.findings)
        current = {}
        for f in findings:
            current.setdefault(finding_key(f), f)
        raised, active = [], {}
        for k, f in current.items():
            if k in self.active:
                active[k] = f
            elif f.severity == Severity.ERROR or now - self.pending.setdefault(k, now) >= HOLD_S:
                active[k] = f
                raised.append(f)
                self.pending.pop(k, None)
        self.pending = {k: t for k, t in self.pending.items() if k in current and k not in active}
        cleared = [f for k, f in self.active.items() if k not in current]
        if self.emit is not None:
            for f in raised:
                self.emit("finding-raised", now, **f.to_json())
            for f in cleared:
                self.emit("finding-cleared", now, **{x: y for x, y in f.to_json().items()
                                                    if x in ("rule", "code", "severity", "protocol", "vhid",
                                                             "segment", "message", "evidence")})
        self.active = active
        self.findings = [f for f in findings if finding_key(f) in active]
        if self.dashboard is not None:
            self.dashboard.update(report.groups, self.findings, now, self.info, self.source.stats())

    def run(self) -> None:
        start = self.mono()
        self.started = self.clock()
        deadline = start + self.duration if self.duration else None
        last_snap = last_refresh = last_check = -1e9
        fds = [self.source.fd] + ([self.wake_fd] if self.wake_fd is not None else [])
        if self.dashboard is not None:
            self.dashboard.update([], [], self.started, self.info, None)
            self.dashboard.refresh()
        try:
            while self.stop_reason is None:
                t = self.mono()
                timeout = WAIT_S if deadline is None else max(0.0, min(WAIT_S, deadline - t))
                try:
                    ready, _, _ = self.wait(fds, [], [], timeout)
                except InterruptedError:
                    ready = []
                if self.wake_fd is not None and self.wake_fd in ready:
                    try:
                        os.read(self.wake_fd, 512)
                    except OSError:
                        pass
                self._drain()
                now, t = self.clock(), self.mono()
                self.analysis.tracker.tick(now)
                if t - last_check >= CHECK_IFACE_S:
                    last_check = t
                    self.source.check()
                if deadline is not None and t >= deadline:
                    self.request_stop("duration")
                if self._snapshot_due or t - last_snap >= SNAPSHOT_S:
                    self._snapshot_due = False
                    last_snap = t
                    self.update_findings(now)
                    if self.dashboard is not None:
                        last_refresh = t
                        self.dashboard.refresh()
                elif self.dashboard is not None and (
                        t - last_refresh >= REFRESH_S or (self.dashboard.dirty and t - last_refresh >= REFRESH_MIN_S)):
                    last_refresh = t
                    self.dashboard.update(self.analysis.tracker.groups.values(), self.findings, now,
                                          self.info, self.source.stats())
                    self.dashboard.refresh()
        except InterfaceLost as e:
            self.lost = str(e)
            self.request_stop("interface-lost")
        self.elapsed = self.mono() - start


# ---------------------------------------------------------------------------- the command

class _Signals:
    """SIGINT/SIGTERM set a stop reason and wake the select() through a self-pipe."""

    def __init__(self, on_signal):
        self.on_signal = on_signal
        self.r, self.w = os.pipe()
        for fd in (self.r, self.w):
            os.set_blocking(fd, False)
        self.old = {}
        self.old_wakeup = None

    def __enter__(self):
        self.old_wakeup = signal.set_wakeup_fd(self.w, warn_on_full_buffer=False)
        for s in (signal.SIGINT, signal.SIGTERM):
            self.old[s] = signal.signal(s, lambda num, _f: self.on_signal(num))
        return self

    def __exit__(self, *exc):
        for s, h in self.old.items():
            signal.signal(s, h)
        signal.set_wakeup_fd(self.old_wakeup if self.old_wakeup is not None else -1)
        for fd in (self.r, self.w):
            try:
                os.close(fd)
            except OSError:
                pass
        return False


def _err(msg: str) -> None:
    from carpscope.auth import scrub
    print(scrub(f"carpscope: {msg}"), file=sys.stderr, flush=True)


def run(args) -> int:
    from carpscope import cli
    try:
        return _run(args)
    except LiveError as e:
        _err(f"error: {e}")
        return cli.EXIT_ERROR


def _run(args) -> int:
    from carpscope.keys import build_auth

    if args.list:
        return list_interfaces(args)
    if not args.interface:
        raise LiveError("sniff needs an interface (carpscope sniff --list shows them)")
    iface = args.interface
    pw = lookup_user(args.user) if args.user else None
    verifier, vipinfer, auth_rules, intent, warnings = build_auth(args)
    for w in warnings:
        _err(f"warning: {w}")
    check_interface(iface)
    source = LiveSource(iface, promisc=not args.no_promisc)
    writer = wfile = None
    try:
        if source.warning:
            _err(f"warning: {source.warning}")
        if pw is not None:
            preload()
            drop_privileges(pw)
        if args.write:
            from carpscope.capture import SNAPLEN
            from carpscope.synth import PcapWriter
            try:
                wfile = open(args.write, "wb")
            except OSError as e:
                raise LiveError(f"--write {args.write}: {e.strerror}") from None
            writer = PcapWriter(wfile, linktype=source.file_linktype, snaplen=SNAPLEN)
            wfile.flush()
        return _sniff(args, source, writer, verifier, vipinfer, auth_rules, intent)
    finally:
        source.close()
        if wfile is not None:
            wfile.close()


def live_policy(args, sources: list[str]):
    """The policy of the final report (severity overrides, select/ignore, settings file,
    baseline) as a function on each snapshot's findings."""
    from carpscope import cli
    pol = getattr(args, "policy", None)
    if pol is None:          # called without cli.main (tests): select/ignore only
        sel, ign = cli._split(getattr(args, "select", [])), cli._split(getattr(args, "ignore", []))
        return lambda fs: cli.apply_policy(fs, sel, ign)
    from carpscope import policy
    accepted = None
    if pol.baseline and os.path.exists(pol.baseline):
        try:
            accepted = policy.load_baseline(pol.baseline)
        except Exception:
            accepted = None      # the final report says what is wrong with it

    def apply(findings):
        kept = policy.apply(pol, findings, sources)
        if accepted:
            placed, _, _ = policy.filter_baseline(policy.place(kept, sources, pol.root), accepted.copy())
            kept = [p.finding for p in placed]
        return kept
    return apply


def _sniff(args, source, writer, verifier, vipinfer, auth_rules, intent) -> int:
    from carpscope import cli
    from carpscope.analysis import Analysis

    # where the events go: --format jsonl (to --output when given), or text on a non-terminal
    events_out = None
    if args.format == "jsonl":
        events_out = args.output_stream = cli._open_output(args) if args.output else sys.stdout
    elif args.format == "text" and not sys.stdout.isatty():
        events_out = sys.stdout
        if not args.output:
            args.format = "jsonl"   # piped: JSON lines from start to end, the final report too
    dash_console = None
    if not args.quiet and events_out is not sys.stdout:
        for stderr in (False, True):     # the report replaces it at the end: stdout if a terminal
            c = cli._console(args, stderr=stderr)
            if c.is_terminal:
                dash_console = c
                break
    emit = JsonLines(events_out, source.name) if events_out is not None else None
    dashboard = None
    if dash_console is not None:
        from carpscope.report.dashboard import Dashboard
        dashboard = Dashboard(dash_console, source.name, source.linktype_name, source.promisc,
                              source.filter, writing=args.write, clock=cli._clock(args),
                              hosts=intent.addr_host if intent is not None else None)
    analysis = Analysis(verifier, vipinfer, auth_rules, intent)
    sniffer = Sniffer(analysis, source, emit=emit, dashboard=dashboard, policy=live_policy(args, [source.name]),
                      writer=writer, duration=args.duration, count=args.count)

    def on_signal(num):
        sniffer.request_stop(signal.Signals(num).name)

    with _Signals(on_signal) as sig:
        sniffer.wake_fd = sig.r
        if emit is not None:
            emit("start", time.time(), linktype=source.linktype_name, filter=source.filter,
                 promiscuous=source.promisc, user=args.user, write=args.write,
                 duration=args.duration, count=args.count)
        try:
            if dashboard is not None:
                with dashboard.live():
                    sniffer.run()
            else:
                sniffer.run()
        finally:
            stats = source.stats()
    report = sniffer.finish()
    names = [source.name]
    placed, ctx = cli.run_policy(args, report.findings, names, filtered={source.name: True})
    report.findings = [p.finding for p in placed]
    dropped = stats[1] if stats else None
    if emit is not None:
        emit("end", time.time(), reason=sniffer.stop_reason, seconds=round(sniffer.elapsed, 3),
             frames=sniffer.frames, adverts=sniffer.info.adverts, malformed=sniffer.info.malformed,
             kernel_dropped=dropped, groups=len(report.groups), findings=len(report.findings))
    if sniffer.lost:
        _err(f"error: {sniffer.lost}; the report covers what was seen until then")
    elif not args.quiet and events_out is not sys.stdout:
        why = {"duration": "duration reached", "count": f"{args.count} adverts seen",
               "SIGINT": "interrupted", "SIGTERM": "terminated"}.get(sniffer.stop_reason, sniffer.stop_reason)
        _err(f"sniffed {source.name} for {sniffer.elapsed:.1f} s: {sniffer.frames} frames, "
             f"{sniffer.info.adverts} adverts ({why})")
    if dropped:
        _err(f"warning: {source.name}: the kernel dropped {dropped} frames (the report may miss adverts)")
    cli.render_report(args, report, placed, ctx, analysis.intent, summary=events_out is not sys.stdout)
    return cli._final_status(args, cli.EXIT_ERROR if sniffer.lost else cli.EXIT_OK, report.findings)
