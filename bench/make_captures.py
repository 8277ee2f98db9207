"""Build the benchmark captures with carpscope's own frame builders (carpscope.synth).

Every capture is streamed to disk frame by frame (``synth.PcapWriter``): nothing holds a
capture in memory, so the 10M-frame file costs the same RAM as the 20k-frame test one.

    python bench/make_captures.py                  # every capture into bench/out/
    python bench/make_captures.py mixed dense      # only these
    python bench/make_captures.py --out DIR --force

Captures (see bench/README.md):

  mixed     2,000,000 frames (~1.5 GB): background TCP/UDP/IPv6/ARP, 1 % CARP plus some
            VRRP. CARP vhids 1-3 and 6 (IPv6) steady, vhid 4 fails over once (no finding),
            vhid 5 has a split brain whose cause is two passphrases; VRRPv3 20, VRRPv2 21.
  mixed1m   the same generator at scale 0.5 (1,000,000 frames): peak RSS vs large
  large     the same generator at scale 5 (10,000,000 frames, ~7.5 GB)
  dense     300,000 back-to-back CARP adverts from 20 groups (three keys, all verify)
  groups250 300,000 adverts of 250 steady masters (20 minutes)
  storm     one master whose adverts are copied every 0.1 ms (300,000 frames)
  loop      250 masters, every advert 20 times within 1 ms (300,000 frames)
  flap      250 pairs changing master every 1-6 adverts (300,000 adverts)
  flap1m    the same at 1,000,000 adverts: peak RSS vs flap
  flapslow  the same 250 pairs changing master every 50-60 adverts: flap's control, the same
            speakers and adverts with few changes (what flap's changes cost)

Beside each NAME.pcap the builder writes NAME.keys (the three candidate passphrases,
``label:passphrase``, mode 0600) and NAME.json (a manifest: frame counts, the ``--vip``
arguments, what was planted and the generator version). ``mixed(path, scale=...)`` is the
function the unit test calls on a small scale.
"""
from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import sys
from collections import Counter
from pathlib import Path

from carpscope import synth

# per generator: bump when its traffic or its manifest changes (a capture is rebuilt when its
# manifest holds another version; the others are kept: the 7 GB one takes a while)
VERSIONS = {"mixed": 1, "dense": 1, "groups250": 2, "storm": 2, "loop": 2, "flap": 2, "flapslow": 1}
BASE_TS = 1_700_000_000.0
FLAPSLOW_RUNS = (50, 60)     # adverts per run of master in flap's control (flap: 1-6)
OUT = Path(__file__).resolve().parent / "out"

# the three candidate passphrases: prod signs most groups, dmz one, lab the rogue split-brain
# member (and a third of the dense groups)
KEYS = {"prod": "Kx9-prod-carp-2024", "dmz": "dmz/vhid3#secret", "lab": "lab-box-default"}


def write_keys(path: Path) -> None:
    """label:passphrase lines, created 0600 (never readable by group or others)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        for label, secret in KEYS.items():
            f.write(f"{label}:{secret}\n")
    os.chmod(path, 0o600)


# ---------------------------------------------------------------------------- background

def _background_pool(rng: random.Random) -> list[tuple[bytes, float]]:
    """Distinct non-CARP frames with their share of the background (sizes avg. ~730 bytes)."""
    pool: list[tuple[bytes, float]] = []

    def tcp4(size, i):
        ip = synth.ip4(f"10.{i}.0.{10 + i}", f"172.16.{i}.{20 + i}", bytes(max(0, size - 34)),
                       ttl=64, proto=6, tos=0)
        return synth.ether(f"02:00:00:00:01:{i:02x}", f"02:00:00:00:02:{i:02x}", 0x0800, ip)

    def udp4(size, i):
        ip = synth.ip4(f"10.{i}.1.{30 + i}", f"10.{i}.2.{40 + i}", bytes(max(0, size - 34)),
                       ttl=63, proto=17, tos=0)
        return synth.ether(f"02:00:00:00:03:{i:02x}", f"02:00:00:00:04:{i:02x}", 0x0800, ip)

    def tcp6(size, i):
        ip = synth.ip6(f"2001:db8:{i}::10", f"2001:db8:{i}::20", bytes(max(0, size - 54)), hlim=64, nxt=6)
        return synth.ether(f"02:00:00:00:05:{i:02x}", f"02:00:00:00:06:{i:02x}", 0x86DD, ip)

    # (size, weight): bare ACKs, small requests, medium, full-size segments
    for size, share in ((66, 0.37), (200, 0.12), (590, 0.08), (1514, 0.42)):
        for i in range(4):
            pool.append((tcp4(size, i), share * 0.7 / 4))
            pool.append((udp4(size, i), share * 0.2 / 4))
            pool.append((tcp6(size, i), share * 0.1 / 4))
    # ARP requests pass the capture filter (ARP replies and GARPs reveal VIPs) but are ignored
    for i in range(4):
        pool.append((synth.ether(f"02:00:00:00:07:{i:02x}", "ff:ff:ff:ff:ff:ff", 0x0806,
                                 _arp_request(f"02:00:00:00:07:{i:02x}", f"10.{i}.0.{50 + i}",
                                              f"10.{i}.0.1")), 0.005 / 4))
    total = sum(w for _, w in pool)
    return [(f, w / total) for f, w in pool]


def _arp_request(sha: str, spa: str, tpa: str) -> bytes:
    import struct
    from socket import AF_INET, inet_pton
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, synth.mac_bytes(sha), inet_pton(AF_INET, spa),
                       bytes(6), inet_pton(AF_INET, tpa))


# ---------------------------------------------------------------------------- protocol 112

class Speaker:
    """One CARP or VRRP speaker's schedule: adverts at its own period while it is master."""

    def __init__(self, rng, vhid, src, *, proto="carp", advskew=0, advbase=1, key="prod",
                 vips=(), runs=((0.0, None),), priority=100, eth_src=None, vrrp_auth=0):
        self.rng, self.vhid, self.src, self.proto = rng, vhid, src, proto
        self.advskew, self.advbase, self.key, self.vips = advskew, advbase, key, list(vips)
        self.runs, self.priority, self.eth_src, self.vrrp_auth = runs, priority, eth_src, vrrp_auth
        self.rng = random.Random(rng.getrandbits(32))     # own stream: schedules can be replayed
        self.counter = self.rng.getrandbits(63)
        self.vlans: tuple[int, ...] = ()

    def _times(self, rng: random.Random, end: float):
        for start, stop in self.runs:
            stop = end if stop is None else min(stop, end)
            t = start
            while t < stop:
                yield t, t == start
                t += self.period + rng.uniform(-0.002, 0.002)

    def last_advert(self, end: float) -> float:
        """Time of this speaker's last advert (replays its random stream, consumes nothing)."""
        r = random.Random()
        r.setstate(self.rng.getstate())
        last = None
        for last, _ in self._times(r, end):
            pass
        return last

    @property
    def period(self) -> float:
        if self.proto == "carp":
            return self.advbase + self.advskew / 256
        return 1.0

    def frames(self, end: float):
        """(ts, frame) for every advert of every run (a run is (start, stop or None))."""
        for t, first in self._times(self.rng, end):
            yield t, self._advert()
            if first and self.proto == "carp":
                # a new CARP master announces its VIPs from the virtual MAC (gratuitous ARP)
                for i, vip in enumerate(a for a in self.vips if ":" not in a):
                    yield t + 0.0002 * (i + 1), synth.garp_frame(synth.vmac(self.vhid), vip)

    def _advert(self) -> bytes:
        if self.proto == "carp":
            self.counter += 1
            return synth.carp_frame(self.src, self.vhid, advbase=self.advbase, advskew=self.advskew,
                                    counter=self.counter, passphrase=KEYS[self.key], vips=self.vips,
                                    vlans=self.vlans)
        if self.proto == "vrrp3":
            return synth.vrrp_frame(self.src, self.vhid, self.priority, self.vips, version=3,
                                    eth_src=self.eth_src)
        return synth.vrrp_frame(self.src, self.vhid, self.priority, self.vips, version=2,
                                auth_type=self.vrrp_auth, eth_src=self.eth_src)


def _mixed_speakers(rng: random.Random, duration: float):
    """The planted groups; times are fractions of the duration (at least 60 s)."""
    D = duration
    t_fail = round(0.40 * D, 3)                  # vhid 4: master stops here ...
    md_b = 3 * 1 + 100 / 256                     # ... backup (advskew 100) takes over after its master-down
    sb_from, sb_len = round(0.60 * D, 3), min(max(12.0, 0.02 * D), 60.0)
    sps = [
        Speaker(rng, 1, "10.0.1.2", vips=["10.0.1.1"]),
        Speaker(rng, 2, "10.0.2.2", vips=["10.0.2.1", "10.0.2.10"], advskew=20),
        Speaker(rng, 3, "10.0.3.2", vips=["192.0.2.1"], key="dmz", advskew=10),
        Speaker(rng, 6, "fe80::6:2", vips=["2001:db8:6::1"], advskew=30),
        # failover: A advertises until t_fail, B starts one master-down interval after A's last advert
        Speaker(rng, 4, "10.0.4.2", vips=["10.0.4.1"], runs=((0.1, t_fail),)),
        Speaker(rng, 4, "10.0.4.3", vips=["10.0.4.1"], advskew=100, runs=()),   # set by _resolve_failover
        # split brain: the backup is configured with another passphrase, so it never hears the master
        Speaker(rng, 5, "10.0.5.2", vips=["10.0.5.1"], runs=((0.2, None),)),
        Speaker(rng, 5, "10.0.5.3", vips=["10.0.5.1"], key="lab", advskew=50,
                runs=((sb_from, sb_from + sb_len),)),
        Speaker(rng, 20, "10.0.20.2", proto="vrrp3", priority=200, vips=["10.0.20.1"],
                eth_src="52:54:00:20:00:02"),
        Speaker(rng, 21, "10.0.21.2", proto="vrrp2", priority=150, vips=["10.0.21.1"]),
    ]
    return sps, {"failover_at": t_fail, "master_down_b": md_b, "split_brain": [sb_from, sb_from + sb_len]}


def _resolve_failover(sps, end: float) -> None:
    """Start vhid 4's backup one master-down interval (+10 ms) after A's last advert."""
    a, b = [s for s in sps if s.vhid == 4]
    b.runs = ((a.last_advert(end) + 3 * b.advbase + b.advskew / 256 + 0.01, None),)


# ---------------------------------------------------------------------------- writers

def _events(sps, end):
    return heapq.merge(*(s.frames(end) for s in sps), key=lambda e: e[0])


def _write(path: Path, frames: int, duration: float, sps, rng: random.Random) -> dict:
    """Stream ``frames`` frames: background at a steady rate with the protocol-112 adverts and
    GARPs of ``sps`` merged in at their timestamps."""
    pool = _background_pool(rng)
    frames_pool = [f for f, _ in pool]
    # a fixed random pattern of background picks, cycled (cheaper than a draw per frame)
    pattern = rng.choices(range(len(pool)), weights=[w for _, w in pool], k=65_521)
    plen = len(pattern)
    events = _events(sps, duration)
    nxt = next(events, None)
    expo, rate = rng.expovariate, frames / duration
    written = background = proto = garp = 0
    t = BASE_TS
    with open(path, "wb", buffering=1 << 22) as f:
        write = synth.PcapWriter(f).write
        while written < frames:
            t += expo(rate)
            while nxt is not None and BASE_TS + nxt[0] <= t and written < frames:
                ts, data = nxt
                write(BASE_TS + ts, data)
                written += 1
                if data[12:14] == b"\x08\x06":
                    garp += 1
                else:
                    proto += 1
                nxt = next(events, None)
            if written < frames:
                write(t, frames_pool[pattern[background % plen]])
                background += 1
                written += 1
    return {"frames": written, "protocol112": proto, "garp": garp, "background": background}


def mixed(path: str | os.PathLike, scale: float = 1.0, seed: int = 1) -> dict:
    """The mixed capture at ``scale`` (1.0 = 2,000,000 frames); returns its manifest."""
    path = Path(path)
    rng = random.Random(seed)
    frames = int(2_000_000 * scale)
    carp_rate = 1 / 1.0 + 1 / (1 + 20 / 256) + 1 / (1 + 10 / 256) + 1 / (1 + 30 / 256) + 1 + 1
    duration = max(60.0, 0.01 * frames / carp_rate)
    sps, planted_times = _mixed_speakers(rng, duration)
    _resolve_failover(sps, duration)
    stats = _write(path, frames, duration, sps, rng)
    vips = {}
    for s in sps:
        if s.proto == "carp":
            vips[s.vhid] = s.vips
    manifest = {
        "name": path.stem, "kind": "mixed", "scale": scale, "seed": seed, "version": VERSIONS["mixed"],
        "duration_s": round(duration, 3), **stats,
        "keys": str(path.with_suffix(".keys")),
        "vip_args": [f"{v}={','.join(a)}" for v, a in sorted(vips.items())],
        "planted": {
            "split-brain": {"vhid": 5, "speakers": ["10.0.5.2", "10.0.5.3"], "cause": "passphrase",
                            "from_to": planted_times["split_brain"]},
            "passphrase-mismatch": {"vhid": 5, "keys": ["lab", "prod"]},
            "failover": {"vhid": 4, "from": "10.0.4.2", "to": "10.0.4.3", "finding": None,
                         "at": planted_times["failover_at"]},
            "auth": {"1": "prod", "2": "prod", "3": "dmz", "4": "prod", "6": "prod"},
        },
    }
    write_keys(path.with_suffix(".keys"))
    path.with_suffix(".json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def dense(path: str | os.PathLike, adverts: int = 300_000, groups: int = 20, seed: int = 2) -> dict:
    """Back-to-back CARP adverts from ``groups`` steady masters (keys prod/dmz/lab in turn)."""
    path = Path(path)
    rng = random.Random(seed)
    labels = list(KEYS)
    sps = []
    for g in range(groups):
        vhid = 10 + g
        vips = [f"10.1.{vhid}.1"] + ([f"10.1.{vhid}.2"] if g % 4 == 3 else [])
        sps.append(Speaker(rng, vhid, f"10.1.{vhid}.3", vips=vips, key=labels[g % 3],
                           advskew=g * 5, runs=((g * 0.01, None),)))
    # adverts only (no GARP): each group sends its share, the first ``adverts % groups`` one more
    quota = [adverts // groups + (i < adverts % groups) for i in range(groups)]
    written = 0
    with open(path, "wb", buffering=1 << 22) as f:
        w = synth.PcapWriter(f)
        heap = [(s.runs[0][0], i) for i, s in enumerate(sps)]
        heapq.heapify(heap)
        while heap:
            t, i = heapq.heappop(heap)
            s = sps[i]
            w.write(BASE_TS + t, s._advert())
            written += 1
            quota[i] -= 1
            if quota[i]:
                heapq.heappush(heap, (t + s.period + s.rng.uniform(-0.002, 0.002), i))
    manifest = {
        "name": path.stem, "kind": "dense", "seed": seed, "version": VERSIONS["dense"], "frames": written,
        "protocol112": written, "groups": groups,
        "keys": str(path.with_suffix(".keys")),
        "vip_args": [f"{s.vhid}={','.join(s.vips)}" for s in sps],
        "planted": {"auth": {str(s.vhid): s.key for s in sps}},
    }
    write_keys(path.with_suffix(".keys"))
    path.with_suffix(".json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _many_groups(rng: random.Random, groups: int, first_vhid: int = 1):
    """``groups`` CARP groups on one segment (vhids 1-255 on 10.2.N.0/24, then on 802.1Q
    VLANs 2, 3, ... as a trunk carries them), keys prod/dmz/lab in turn. Two speakers each:
    .2 (advskew 0) and .3 (advskew 100); whoever advertises is master."""
    labels = list(KEYS)
    out = []
    for g in range(groups):
        vlan, vhid = divmod(g, 255)
        vhid += first_vhid
        net = f"10.{2 + vlan}.{vhid}"
        key = labels[g % 3]
        a = Speaker(rng, vhid, f"{net}.2", vips=[f"{net}.1"], key=key)
        b = Speaker(rng, vhid, f"{net}.3", vips=[f"{net}.1"], key=key, advskew=100)
        a.vlans = b.vlans = (vlan + 1,) if vlan else ()
        out.append((a, b))
    return out


def _write_heap(path: Path, starts: list[float], quota: int, step) -> tuple[int, Counter]:
    """Write ``quota`` frames in time order. A heap of (time, speaker index) says whose turn is
    next; ``step(i, t)`` returns the frames of speaker i from t on as (ts, bytes, tag), ts >= t,
    and the time of its next turn (None: done). A step's frames wait in a second heap until no
    turn comes before them, so the bursts of several speakers interleave as they would on the
    wire. Returns the frames written and how many of each tag were (what was planted, counted
    after the cut at ``quota``)."""
    written, seq = 0, 0
    tags: Counter = Counter()
    pending: list[tuple[float, int, bytes, object]] = []
    with open(path, "wb", buffering=1 << 22) as f:
        w = synth.PcapWriter(f)
        heap = [(s0, i) for i, s0 in enumerate(starts)]
        heapq.heapify(heap)
        while (heap or pending) and written < quota:
            if pending and (not heap or pending[0][0] <= heap[0][0]):
                ts, _, data, tag = heapq.heappop(pending)
                w.write(BASE_TS + ts, data)
                tags[tag] += 1
                written += 1
                continue
            t, i = heapq.heappop(heap)
            frames, nxt = step(i, t)
            for ts, data, tag in frames:
                heapq.heappush(pending, (ts, seq, data, tag))
                seq += 1
            if nxt is not None:
                heapq.heappush(heap, (nxt, i))
    return written, tags


def _manifest(path: Path, kind: str, seed: int, written: int, pairs, planted: dict, **extra) -> dict:
    m = {"name": path.stem, "kind": kind, "seed": seed, "version": VERSIONS[kind], "frames": written,
         "protocol112": written, "keys": str(path.with_suffix(".keys")),
         "vip_args": sorted({f"{a.vhid}={','.join(a.vips)}" for a, _ in pairs},
                            key=lambda v: int(v.split("=")[0])) if len(pairs) <= 255 else [],
         "planted": planted, **extra}
    write_keys(path.with_suffix(".keys"))
    path.with_suffix(".json").write_text(json.dumps(m, indent=2) + "\n")
    return m


def group_key(vhid: int, vlan: int | None) -> str:
    """How a manifest names a group: "7", or "vlan2/7" on an 802.1Q VLAN (as carpscope's
    segment names it)."""
    return str(vhid) if vlan is None else f"vlan{vlan}/{vhid}"


def _per_group(pairs, tags: Counter, runs: bool = False) -> dict:
    """What the builder wrote per group: each speaker's adverts (copies apart), the copies, and
    (``runs``) the runs of adverts of one master (every run after the first a change)."""
    out: dict = {}
    for i, pair in enumerate(pairs):
        sps = [s for s in pair if s is not None]
        entry: dict = {"speakers": {s.src: tags[(i, k, "advert")] + tags[(i, k, "first")]
                                    for k, s in enumerate(sps)}}
        entry["speakers"] = {ip: n for ip, n in entry["speakers"].items() if n}
        entry["copies"] = tags[(i, 0, "copy")]
        if runs:
            entry["runs"] = tags[(i, 0, "first")] + tags[(i, 1, "first")]
        out[group_key(sps[0].vhid, sps[0].vlans[0] if sps[0].vlans else None)] = entry
    return out


def groups250(path: str | os.PathLike, adverts: int = 300_000, groups: int = 250, seed: int = 3) -> dict:
    """``groups`` steady CARP masters for as long as ``adverts`` take (250 groups: 20 minutes at
    advbase 1); the backups stay silent, as they should."""
    path = Path(path)
    rng = random.Random(seed)
    pairs = _many_groups(rng, groups)

    def step(i, t):
        a = pairs[i][0]
        return [(t, a._advert(), (i, 0, "advert"))], t + a.period + a.rng.uniform(-0.002, 0.002)
    sps = [rng.uniform(0, 1) for _ in pairs]
    written, tags = _write_heap(path, sps, adverts, step)
    return _manifest(path, "groups250", seed, written, pairs,
                     {"auth": "all verify", "findings": [], "groups": _per_group(pairs, tags)},
                     groups=groups)


def storm(path: str | os.PathLike, frames: int = 300_000, seed: int = 4, every: float = 0.0001) -> dict:
    """One master (advbase 1) whose every advert a switching loop replicates every ``every``
    seconds until its next advert: byte-identical copies 10,000 times per interval."""
    path = Path(path)
    rng = random.Random(seed)
    a, _ = _many_groups(rng, 1, first_vhid=7)[0]
    state = {"frame": None, "next": 0.0}

    def step(i, t):
        tag = "copy"
        if t >= state["next"]:
            state["frame"] = a._advert()
            state["next"] = t + a.period
            tag = "advert"
        return [(t, state["frame"], tag)], t + every
    written, tags = _write_heap(path, [0.0], frames, step)
    return _manifest(path, "storm", seed, written, [(a, None)],
                     {"storm": {"vhid": a.vhid, "speaker": a.src, "copy_every_s": every,
                                "adverts": tags["advert"], "copies": tags["copy"]}})


def loop(path: str | os.PathLike, frames: int = 300_000, groups: int = 250, copies: int = 20,
         seed: int = 5) -> dict:
    """``groups`` steady masters on a segment with a switching loop: every advert arrives
    ``copies`` times within 1 ms (byte-identical), the bursts of the groups interleaved in
    time order."""
    path = Path(path)
    rng = random.Random(seed)
    pairs = _many_groups(rng, groups)

    def step(i, t):
        a = pairs[i][0]
        data = a._advert()
        return ([(t + k * (0.001 / copies), data, (i, 0, "copy" if k else "advert")) for k in range(copies)],
                t + a.period + a.rng.uniform(-0.002, 0.002))
    written, tags = _write_heap(path, [rng.uniform(0, 1) for _ in pairs], frames, step)
    return _manifest(path, "loop", seed, written, pairs,
                     {"loop": {"copies": copies, "within_s": 0.001}, "groups": _per_group(pairs, tags)},
                     groups=groups)


def flap(path: str | os.PathLike, adverts: int = 300_000, groups: int = 250, seed: int = 6,
         runs: tuple[int, int] = (1, 6), kind: str = "flap") -> dict:
    """``groups`` pairs whose mastership changes every ``runs`` (1-6) adverts: the master falls
    silent, the backup takes over after its master-down interval, and so on (each advert a new
    run or a change). ``kind`` "flapslow" with ``runs`` FLAPSLOW_RUNS is its control: the same
    speakers and as many adverts, few changes and no flapping."""
    path = Path(path)
    rng = random.Random(seed)
    pairs = _many_groups(rng, groups)
    state = [[0, rng.randint(*runs), True] for _ in pairs]   # (who advertises, adverts left, first of its run)

    def step(i, t):
        who, left, first = state[i]
        s = pairs[i][who]
        frame = (t, s._advert(), (i, who, "first" if first else "advert"))
        left -= 1
        if left:
            state[i][1:] = [left, False]
            return [frame], t + s.period + s.rng.uniform(-0.002, 0.002)
        other = pairs[i][1 - who]
        state[i] = [1 - who, rng.randint(*runs), True]
        # the other takes over after its master-down interval, measured from this last advert
        return [frame], t + 3 * other.advbase + other.advskew / 256 + 0.01
    written, tags = _write_heap(path, [rng.uniform(0, 1) for _ in pairs], adverts, step)
    return _manifest(path, kind, seed, written, pairs,
                     {"flapping": "every group" if kind == "flap" else "none",
                      "groups": _per_group(pairs, tags, runs=True)},
                     groups=groups)


CAPTURES = {
    "mixed": lambda p: mixed(p, 1.0),
    "mixed1m": lambda p: mixed(p, 0.5),
    "large": lambda p: mixed(p, 5.0),
    "dense": lambda p: dense(p),
    "groups250": lambda p: groups250(p),
    "storm": lambda p: storm(p),
    "loop": lambda p: loop(p),
    "flap": lambda p: flap(p),
    "flap1m": lambda p: flap(p, adverts=1_000_000),
    "flapslow": lambda p: flap(p, runs=FLAPSLOW_RUNS, kind="flapslow"),
}


def ensure(name: str, out: Path = OUT, force: bool = False) -> dict:
    """Build ``out/NAME.pcap`` unless an up-to-date one is there; returns its manifest."""
    out.mkdir(parents=True, exist_ok=True)
    pcap, man = out / f"{name}.pcap", out / f"{name}.json"
    if not force and pcap.exists() and man.exists():
        m = json.loads(man.read_text())
        if m.get("version") == VERSIONS.get(m.get("kind")):
            return m
    tmp = out / f"{name}.tmp.pcap"
    m = CAPTURES[name](tmp)
    for suffix in (".pcap", ".keys", ".json"):
        os.replace(tmp.with_suffix(suffix), pcap.with_suffix(suffix))
    m["keys"] = str(pcap.with_suffix(".keys"))
    m["name"] = name
    man.write_text(json.dumps(m, indent=2) + "\n")
    return m


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", choices=[[], *CAPTURES], metavar="NAME",
                    help=f"captures to build ({', '.join(CAPTURES)}; default all)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = ap.parse_args(argv)
    for name in args.names or list(CAPTURES):
        m = ensure(name, args.out, args.force)
        size = (args.out / f"{name}.pcap").stat().st_size
        print(f"{name}: {m['frames']:,} frames, {m['protocol112']:,} protocol-112, "
              f"{size / 1e6:,.0f} MB -> {args.out / (name + '.pcap')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
