"""Live capture: a libpcap handle (pcapy-ng) on an interface, with the capture filter in the
kernel, a buffer sized for bursts, non-blocking batches for the engine, kernel drop counts;
and the interface facts the sniff command shows and checks (list, up/down, addresses).
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import struct
import sys

import pcapy

from carpscope.capture.filters import NO_BPF, SNAPLEN, live_filter_texts
from carpscope.capture.reader import Frame
from carpscope.wire.link import UnsupportedLinkType, check_linktype, linktype_name

TIMEOUT_MS = 50         # libpcap read timeout = longest delay before a frame is delivered
BATCH = 4096            # frames handed over per call at most
BUFFER = 32 << 20       # the kernel ring: a burst of 100,000 frames/s for a third of a second
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


def list_interfaces(fmt: str) -> int:
    try:
        import pcapy
        names = list(pcapy.findalldevs())
    except Exception:      # no libpcap device list: the kernel's
        names = [n for _, n in socket.if_nameindex()]
    infos = [iface_info(n) for n in names]
    if fmt in ("json", "jsonl"):
        if fmt == "json":
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


_AGAIN = os.strerror(errno.EAGAIN)


def pseudo_interface(name: str) -> bool:
    """libpcap's devices that are no kernel interface, so never down nor gone: 'any', and a
    Linux NFLOG group ('nflog', 'nflog:N')."""
    return name == "any" or name == "nflog" or name.startswith("nflog:")


def check_interface(name: str) -> None:
    """Fail early, in words, for a missing or down interface."""
    if pseudo_interface(name):
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

def set_live_filter(pc, linktype: int) -> tuple[str | None, str | None]:
    """Set the widest filter that compiles; returns (filter, libpcap's complaint or None).

    libpcap prints "Warning: Kernel filter failed" on file descriptor 2 itself: that is caught
    here and returned, so the user gets one carpscope warning instead of a stray line."""
    import tempfile

    for text in live_filter_texts(linktype):
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
        self.name = iface
        self.frames = 0
        self.promisc = promisc and not pseudo_interface(iface)
        self.warning: str | None = None
        self._pcapy = pcapy
        try:
            pc = pcapy.create(iface)
            pc.set_snaplen(SNAPLEN)
            pc.set_promisc(self.promisc)
            pc.set_timeout(timeout_ms)
            pc.set_buffer_size(BUFFER)
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
        if self.linktype in NO_BPF:     # a firewall log (nflog:N, pflog0): only what a rule logged
            self.filter, complaint = None, None
        else:
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

    def chunk(self, n: int = BATCH) -> list[Frame]:
        """The frames available now (``reader.Frame`` tuples, numbered from 1 in arrival
        order); [] when there are none."""
        try:
            buf, meta = self._pc.next_batch(n)
        except self._pcapy.PcapError as e:
            if _AGAIN in str(e):    # libpcap's NFLOG reader reports a non-blocking read's EAGAIN as an error
                return []
            raise InterfaceLost(self.lost_message(str(e))) from None
        if not meta:
            return []
        mv = memoryview(meta).cast("I")
        lt, first = self.linktype, self.frames + 1
        out = []
        for k, i in enumerate(range(0, len(mv), 4)):
            off, length = mv[i + 2], mv[i + 3]
            out.append((first + k, mv[i] + mv[i + 1] * 1e-6, lt, buf[off:off + length], -1, length))
        self.frames += len(out)
        return out

    def lost_message(self, why: str | None = None) -> str:
        flags = None
        try:
            flags = iface_flags(self.name) if not pseudo_interface(self.name) else IFF_UP
        except OSError:
            pass
        if not pseudo_interface(self.name) and flags is None:
            what = "the interface disappeared"
        elif flags is not None and not flags & IFF_UP:
            what = "the interface went down"
        else:
            what = why or "the capture stopped"
        return f"{self.name}: {what} during the capture"

    def check(self) -> None:
        """Raise InterfaceLost when the interface is gone or down (libpcap may not notice)."""
        if pseudo_interface(self.name):
            return
        try:
            flags = iface_flags(self.name)
        except OSError:
            return
        if flags is None or not flags & IFF_UP:
            raise InterfaceLost(self.lost_message())

    def number_after(self, n: int) -> None:
        """Number the next frame n + 1 (a handle reopened after a loss goes on counting)."""
        self.frames = n

    def up(self) -> bool:
        """The interface is there and up (a pseudo-interface always is)."""
        if pseudo_interface(self.name):
            return True
        try:
            flags = iface_flags(self.name)
        except OSError:
            return True
        return flags is not None and bool(flags & IFF_UP)

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


