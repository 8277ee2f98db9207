"""A day of adverts through `carpscope sniff`'s loop at speed (tests/test_soak.py runs this as a
separate process, so its memory is the sensor's alone, and reads the JSON line it prints).

Two interfaces: em0 with 200 CARP groups, em1 with 100 VRRPv3 groups, a master each advertising
every second for 24 hours (25.9 million adverts, CARP counters counting up as a kernel's do).
Every hour three CARP groups fail over (the master silent 10 s, the backup master 20 minutes,
then the primary back), one VRRP group has a 30 s split brain, and at hour 12 a flood of 3000
spoofed speakers hits one CARP group. The loop is the real one (Sniffer: select, drain, tick,
findings each second of real time, the exporter on 127.0.0.1 with a thread scraping it all the
time, evidence files written for each split brain); only its clock is the capture's, advanced
one second per turn, so a day takes a few minutes.

Prints {"rss": [kB at the end of each hour], "seconds": ..., "frames": ..., "metrics": text of
the last scrape, "expected": ..., "evidence": [...], "stop": ...}.
"""
from __future__ import annotations

import json
import os
import struct
import sys
import tempfile
import threading
import time
import urllib.request

from carpscope import evidence
from carpscope.capture.taps import Tap
from carpscope.commands import sniff as sniff_cmd
from carpscope.engine import Engine
from carpscope.evidence import Evidence
from carpscope.exporter import Exporter
from carpscope.synth import carp_frame, vrrp_frame
from carpscope.wire.checksum import ones_sum

T0 = 1_700_000_000.0
HOURS = int(os.environ.get("SOAK_HOURS", "24"))
CARP_GROUPS, VRRP_GROUPS = 200, 100
FLOOD_VHID, FLOOD_SPEAKERS, FLOOD_HOUR = 199, 3000, 12
CARP_OFF = 14 + 20            # Ethernet + IPv4 header: the CARP header
CK = CARP_OFF + 6             # checksum (2 bytes), then the counter (8 bytes)


class CarpSpeaker:
    """One CARP speaker's adverts: a template whose counter and checksum are rewritten."""

    def __init__(self, src: str, vhid: int, advskew: int) -> None:
        f = carp_frame(src, vhid, advskew=advskew, counter=0, passphrase="soak")
        self.head, self.tail = f[:CK], f[CK + 10:]
        body = bytearray(f[CARP_OFF:])
        body[6:8] = b"\0\0"
        self.base = ones_sum(bytes(body))          # counter 0, checksum 0
        self.counter = 0x5A5A_0000_0000_0000 + vhid * 1_000_000

    def frame(self) -> bytes:
        self.counter += 1
        c = self.counter
        s = self.base + (c >> 48) + ((c >> 32) & 0xFFFF) + ((c >> 16) & 0xFFFF) + (c & 0xFFFF)
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        return self.head + struct.pack("!HQ", ~s & 0xFFFF, c) + self.tail


def schedule(h: int) -> tuple[set[int], int]:
    """The CARP groups failing over in hour h, and the VRRP group with a split brain."""
    return {(h * 7 + j) % CARP_GROUPS + 1 for j in range(3)}, h % VRRP_GROUPS + 1


class Day:
    """The day's frames, second by second, for both interfaces; ``expected`` counts them."""

    def __init__(self) -> None:
        self.carp_a = {v: CarpSpeaker(f"10.0.{v}.2", v, 0) for v in range(1, CARP_GROUPS + 1)}
        self.carp_b = {v: CarpSpeaker(f"10.0.{v}.3", v, 100) for v in range(1, CARP_GROUPS + 1)}
        self.vrrp_a = {v: vrrp_frame(f"10.1.{v}.2", v, 200, [f"10.1.{v}.1"], version=3)
                       for v in range(1, VRRP_GROUPS + 1)}
        self.vrrp_b = {v: vrrp_frame(f"10.1.{v}.3", v, 100, [f"10.1.{v}.1"], version=3)
                       for v in range(1, VRRP_GROUPS + 1)}
        self.adverts = {"em0": 0, "em1": 0}
        self.speakers: dict[tuple[str, int], set[str]] = {}
        for v in range(1, CARP_GROUPS + 1):
            self.speakers[("em0", v)] = {f"10.0.{v}.2"}
        for v in range(1, VRRP_GROUPS + 1):
            self.speakers[("em1", v)] = {f"10.1.{v}.2"}

    def second(self, s: int) -> tuple[list[tuple[float, bytes]], list[tuple[float, bytes]]]:
        h, r = divmod(s, 3600)
        failing, split = schedule(h)
        t = T0 + s
        em0, em1 = [], []
        for v in range(1, CARP_GROUPS + 1):
            ts = t + v * 0.001
            if v in failing and 600 <= r < 1800:
                if r >= 604:                       # the backup took over after its master-down
                    em0.append((ts + 0.4, self.carp_b[v].frame()))
                    self.speakers[("em0", v)].add(f"10.0.{v}.3")
            else:
                em0.append((ts, self.carp_a[v].frame()))
        if h == FLOOD_HOUR and r == 100:
            spoof = self.speakers[("em0", FLOOD_VHID)]
            for i in range(FLOOD_SPEAKERS):
                ip = f"10.200.{i // 250}.{i % 250 + 1}"
                em0.append((t + 0.5 + i * 1e-4, carp_frame(ip, FLOOD_VHID, advskew=50, counter=i + 1,
                                                            passphrase="spoof")))
                if len(spoof) < 64:               # the tracker follows at most 64 per group
                    spoof.add(ip)
        for v in range(1, VRRP_GROUPS + 1):
            em1.append((t + 0.5 + v * 0.001, self.vrrp_a[v]))
            if v == split and 2000 <= r < 2030:
                em1.append((t + 0.7 + v * 0.001, self.vrrp_b[v]))
                self.speakers[("em1", v)].add(f"10.1.{v}.3")
        em0.sort(key=lambda f: f[0])
        em1.sort(key=lambda f: f[0])
        self.adverts["em0"] += len(em0)
        self.adverts["em1"] += len(em1)
        return em0, em1


class Feed:
    """A fake interface: the frames of the capture clock's past, as libpcap batches."""

    linktype, linktype_name, filter, fd, file_linktype = 1, "EN10MB", "soak", 0, 1

    def __init__(self, name: str) -> None:
        self.name = name
        self.pending: list[tuple[float, bytes]] = []
        self.n = 0

    def chunk(self, n: int = 4096):
        out, self.pending = self.pending[:n], self.pending[n:]
        first = self.n + 1
        self.n += len(out)
        return [(first + i, ts, 1, data, -1, len(data)) for i, (ts, data) in enumerate(out)]

    def check(self) -> None:
        pass

    def stats(self):
        return (self.n, 0, 0)


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> None:
    day = Day()
    feeds = [Feed("em0"), Feed("em1")]
    taps = [Tap(f) for f in feeds]
    clock = {"now": T0 - 1, "s": 0}
    rss: list[int] = []
    exp = Exporter("127.0.0.1", 0, clock=lambda: clock["now"])
    evdir = tempfile.mkdtemp(prefix="carpscope-soak-")
    # a day compressed into minutes sees its findings end only once a real second: files would
    # run to the size bound; a smaller bound keeps the disk out of a memory test
    evidence.FILE_BYTES = 2 << 20
    ev = Evidence(evdir, "error", taps, window=60, max_files=5)
    engine = Engine()
    sn = sniff_cmd.Sniffer(engine, taps, clock=lambda: clock["now"], evidence=ev, metrics=exp)
    total = HOURS * 3600

    def wait(r, w, x, timeout):
        s = clock["s"]
        if s >= total:
            sn.request_stop("end")
            return [], [], []
        em0, em1 = day.second(s)
        feeds[0].pending += em0
        feeds[1].pending += em1
        clock["now"] = T0 + s + 1
        clock["s"] = s + 1
        if (s + 1) % 3600 == 0:
            rss.append(rss_kb())
        return r, [], []

    sn.wait = wait
    scrapes = {"n": 0, "errors": 0}
    done = threading.Event()

    def scraper():
        while not done.is_set():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{exp.port}/metrics", timeout=5) as r:
                    r.read()
                scrapes["n"] += 1
            except Exception:
                scrapes["errors"] += 1
            done.wait(0.2)

    th = threading.Thread(target=scraper, daemon=True)
    th.start()
    t = time.monotonic()
    sn.run()
    seconds = time.monotonic() - t
    done.set()
    th.join(5)
    with urllib.request.urlopen(f"http://127.0.0.1:{exp.port}/metrics", timeout=5) as r:
        text = r.read().decode()
    exp.close()
    files = sorted(os.listdir(evdir))
    sizes = [os.path.getsize(os.path.join(evdir, f)) for f in files]
    for f in files:
        os.unlink(os.path.join(evdir, f))
    os.rmdir(evdir)
    speakers = {f"{k[0]}/{k[1]}": sorted(v) for k, v in day.speakers.items()}
    print(json.dumps({"rss": rss, "seconds": seconds, "frames": sn.frames, "adverts": day.adverts,
                      "metrics": text, "speakers": speakers, "evidence": files, "evidence_sizes": sizes,
                      "evidence_written": ev.n_written, "scrapes": scrapes, "stop": sn.stop_reason,
                      "hours": HOURS, "window_frames": {n: len(w.frames) for n, w in ev.windows.items()}}))


if __name__ == "__main__":
    sys.exit(main())
