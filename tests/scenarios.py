"""Realistic synthetic captures for the rule tests, built with carpscope.synth.

A ``Capture`` collects timestamped frames and writes them as pcap (or pcapng). Speakers know
their protocol's timing (protocol.md §5.1, RFC 3768/5798):

* a CARP master sends every ``advbase + advskew/256`` s; a backup is silent and takes over
  ``3*advbase + advskew/256`` s (its *own* values) after the last advert it heard;
* a VRRP master sends every Advertisement_Interval; a backup takes over after
  ``3*interval + skew`` (v2: ``(256-prio)/256`` s, v3: ``(256-prio)*interval/256`` s);
* a new master sends its first advert and a gratuitous ARP for each virtual address at once
  (from the virtual MAC; ucarp from the host's own MAC);
* a preempting primary takes over as soon as it hears the slower master, which may still send
  ``late`` adverts before it processes the better one (ucarp reads its socket up to 1 s late).

The builders (``steady``, ``failover``, ``preemption``, ``dual_master``, ``flapping``) return a
``Capture``; ``.write(tmp_path / "x.pcap")`` writes it and returns the path.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from carpscope import synth

T0 = 1_764_000_000.0          # 2025-11-24, a fixed start so failures are reproducible
_counters = itertools.count(0x5EED_0000_0000_0001, 0x1_0000_0001)


def host_mac(ip: str) -> str:
    """A locally administered MAC derived from the address (02:00:<last four bytes>)."""
    if ":" in ip:
        tail = int(ip.rsplit(":", 1)[1] or "0", 16) & 0xFFFF
        return f"02:00:00:06:{tail >> 8:02x}:{tail & 0xFF:02x}"
    a, b, c, d = (int(x) for x in ip.split("."))
    return f"02:00:{a:02x}:{b:02x}:{c:02x}:{d:02x}"


# ----------------------------------------------------------------------------- speakers

@dataclass
class Carp:
    """A CARP speaker. ``kind``: freebsd (counter +1 per advert, virtual MAC 00:00:5e:00:01:NN),
    ucarp (the same counter, adverts from 00:00:5e:00:00:NN, GARP from its own MAC) or openbsd
    (one constant counter per vhid)."""

    ip: str
    vhid: int
    advbase: int = 1
    advskew: int = 0
    passphrase: str | None = "tr4nsit-k3y"
    vips: tuple[str, ...] = ()
    ttl: int = 255
    kind: str = "freebsd"
    mac: str | None = None        # Ethernet source of adverts (default by kind)
    demote: int = 0
    counter: int = field(default_factory=lambda: next(_counters))

    @property
    def protocol(self) -> str:
        return "carp"

    @property
    def interval(self) -> float:
        # OpenBSD: advbase = advskew = 0 advertises every 1/256 s
        return (self.advbase + self.advskew / 256) or 1 / 256

    @property
    def master_down(self) -> float:
        if self.advbase == 0:        # OpenBSD: 3/256 s, or 3*advskew/256 s
            return 3 * (self.advskew or 1) / 256
        return 3 * self.advbase + self.advskew / 256

    @property
    def advert_mac(self) -> str:
        if self.mac:
            return self.mac
        return synth.vmac(self.vhid, 4 if ":" not in self.ip else 6, ucarp=self.kind == "ucarp")

    def advert(self, **over) -> bytes:
        kw = dict(advbase=self.advbase, advskew=self.advskew, counter=self.counter,
                  passphrase=self.passphrase, vips=list(self.vips), ttl=self.ttl,
                  eth_src=self.advert_mac, demote=self.demote)
        kw.update(over)
        if self.kind != "openbsd" and "counter" not in over:
            self.counter += 1
        return synth.carp_frame(self.ip, self.vhid, **kw)

    def garps(self) -> list[bytes]:
        src = host_mac(self.ip) if self.kind == "ucarp" else synth.vmac(self.vhid)
        return [synth.garp_frame(src, v, synth.vmac(self.vhid) if self.kind != "ucarp" else None)
                for v in self.vips if ":" not in v]


@dataclass
class Vrrp:
    """A VRRPv2/v3 speaker (keepalived: adverts from the real MAC unless ``vmac``)."""

    ip: str
    vrid: int
    priority: int = 100
    addresses: tuple[str, ...] = ()
    version: int = 2
    interval_cs: int = 100
    auth_type: int = 0
    auth_data: bytes = b""
    ttl: int = 255
    vmac: bool = True
    mac: str | None = None
    variant: str = "pseudo"
    dst: str | None = None

    @property
    def protocol(self) -> str:
        return f"vrrp{self.version}"

    @property
    def vhid(self) -> int:
        return self.vrid

    @property
    def interval(self) -> float:
        return self.interval_cs / 100

    @property
    def master_down(self) -> float:
        if self.version == 2:
            return 3 * self.interval + (256 - self.priority) / 256
        return 3 * self.interval + (256 - self.priority) * self.interval / 256

    @property
    def advert_mac(self) -> str:
        if self.mac:
            return self.mac
        return synth.vmac(self.vrid, 6 if ":" in self.ip else 4) if self.vmac else host_mac(self.ip)

    def advert(self, **over) -> bytes:
        kw = dict(version=self.version, interval_cs=self.interval_cs, auth_type=self.auth_type,
                  auth_data=self.auth_data, ttl=self.ttl, eth_src=self.advert_mac, variant=self.variant,
                  dst=self.dst)
        kw.update(over)
        return synth.vrrp_frame(self.ip, self.vrid, self.priority, list(self.addresses), **kw)

    def garps(self) -> list[bytes]:
        return [synth.garp_frame(self.advert_mac, a) for a in self.addresses if ":" not in a]


# ----------------------------------------------------------------------------- a capture

class Capture:
    """Frames with their times, written as pcap (Ethernet), pcapng, or Linux cooked v2
    (``linktype=276``: each Ethernet frame re-framed with the interface it was recorded on)."""

    def __init__(self, t0: float = T0, linktype: int = 1):
        self.t0 = t0
        self.linktype = linktype
        self.records: list[tuple[float, bytes]] = []

    def add(self, ts: float, frame: bytes, ifindex: int = 2) -> None:
        if self.linktype == 276:
            frame = synth.sll2(frame[6:12].hex(":"), int.from_bytes(frame[12:14], "big"),
                               frame[14:], ifindex=ifindex)
        self.records.append((ts, frame))

    def advertise(self, sp, start: float, *, count: int | None = None, until: float | None = None,
                  **over) -> float:
        """``sp`` is master from ``start``: adverts every ``sp.interval`` s, ``count`` of them or
        while before ``until``. Returns the time of the last advert."""
        assert count is not None or until is not None
        t, last, n = start, start, 0
        while (count is None or n < count) and (until is None or t < until - 1e-9):
            self.add(t, sp.advert(**over))
            last, n, t = t, n + 1, t + sp.interval
        return last

    def become_master(self, sp, t: float, **kw) -> float:
        """``sp`` takes over at ``t``: first advert and its gratuitous ARPs, then steady adverts."""
        for i, g in enumerate(sp.garps()):
            self.add(t + 0.0005 * (i + 1), g)
        return self.advertise(sp, t, **kw)

    def at(self, seconds: float) -> float:
        return self.t0 + seconds

    def write(self, path: Path, fmt: str = "pcap") -> Path:
        path = Path(path)
        recs = sorted(self.records, key=lambda r: r[0])
        with open(path, "wb") as f:
            if fmt == "pcapng":
                w = synth.PcapngWriter(f)
                w.add_interface(1)
            else:
                w = synth.PcapWriter(f, linktype=self.linktype)
            for ts, data in recs:
                w.write(ts, data)
        return path


# ----------------------------------------------------------------------------- scenarios

def steady(master, adverts: int = 10, *, cap: Capture | None = None, start: float = 0.0,
           garp: bool = True) -> Capture:
    """One master advertising undisturbed (its backups silent)."""
    cap = cap or Capture()
    t = cap.at(start)
    if garp:
        cap.become_master(master, t, count=adverts)
    else:
        cap.advertise(master, t, count=adverts)
    return cap


def failover(master, backup, *, before: int = 5, after: int = 5, extra_silence: float = 0.0,
             cap: Capture | None = None, start: float = 0.0) -> tuple[Capture, float]:
    """``master`` advertises ``before`` adverts and dies; ``backup`` takes over its own
    master-down interval after the last advert it heard (plus ``extra_silence``, e.g. the
    backup was itself down). Returns the capture and the silence in seconds."""
    cap = cap or Capture()
    last = cap.become_master(master, cap.at(start), count=before)
    take = last + backup.master_down + extra_silence
    cap.become_master(backup, take, count=after)
    return cap, take - last


def preemption(current, primary, *, before: int = 5, after: int = 5, late: int = 1,
               cap: Capture | None = None, start: float = 0.0) -> Capture:
    """``current`` (slower) is master; ``primary`` (better, preempt on) boots, hears its advert
    and takes over 10 ms later; ``current`` sends ``late`` more adverts before it yields."""
    cap = cap or Capture()
    last = cap.become_master(current, cap.at(start), count=before)
    cap.become_master(primary, last + 0.01, count=after)
    if late:
        cap.advertise(current, last + current.interval, count=late)
    return cap


def dual_master(a, b, *, intervals: float = 5, offset: float = 0.3, lead: int = 3,
                cap: Capture | None = None, start: float = 0.0) -> Capture:
    """``a`` is master; ``b`` does not hear it and becomes master too after its master-down
    interval; both then advertise for ``intervals`` of the longer interval."""
    cap = cap or Capture()
    t = cap.at(start)
    cap.become_master(a, t, count=lead)
    tb = t + b.master_down + offset
    end = tb + intervals * max(a.interval, b.interval) + 0.01
    cap.advertise(a, t + lead * a.interval, until=end)
    cap.become_master(b, tb, until=end)
    return cap


def flapping(a, b, changes: int, *, hold: int = 3, cap: Capture | None = None) -> Capture:
    """Mastership moves between ``a`` and ``b`` ``changes`` times after the initial election:
    each master holds ``hold`` adverts, then stops (demoted or link down) and the other takes
    over after its own master-down interval."""
    cap = cap or Capture()
    who = [a, b]
    t = cap.at(0)
    for i in range(changes + 1):
        sp = who[i % 2]
        last = cap.become_master(sp, t, count=hold)
        t = last + who[(i + 1) % 2].master_down
    return cap
