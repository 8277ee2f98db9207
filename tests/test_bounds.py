"""Resource bounds: a capture of a hundred thousand distinct fake speakers, or of tens of
thousands of groups, cannot make carpscope's memory grow with it. The caps (track.MAX_SPEAKERS
per group, track.MAX_GROUPS, and those of the verifier, VIP inference and the packet rules)
hold, and speaker-limit says that tracking was capped.

The captures are generated here and streamed to disk record by record (never held in memory);
carpscope runs in a subprocess whose peak RSS is measured by a small parent process
(resource.getrusage(RUSAGE_CHILDREN).ru_maxrss: the peak of its only child). Memory is judged
by growth between a smaller and a larger flood of the same kind: past the caps, a bounded
pipeline does not grow.
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
import time

import pytest

from carpscope import synth
from conftest import REPO

REC = struct.Struct("<IIII")


def write_flood(path, speakers=0, groups=0, hints=0) -> int:
    """Stream a pcap of: ``speakers`` CARP adverts of vhid 1, each from a new (IP, MAC);
    ``groups`` CARP adverts each in a new (VLAN, VHID) group (one speaker each); ``hints``
    gratuitous ARPs for distinct addresses. The IPv4 header checksum is left as built
    (carpscope does not check it); the CARP checksums are right. Returns the frame count."""
    n, t = 0, 1_700_000_000
    with open(path, "wb", buffering=1 << 20) as f:
        synth.PcapWriter(f)
        fr = bytearray(synth.carp_frame("10.0.0.1", 1, md=bytes(20)))
        for i in range(speakers):
            fr[6:12] = struct.pack("!HI", 0x0200, i)              # Ethernet source
            fr[26:30] = struct.pack("!I", 0x0A000000 + i + 2)     # IPv4 source
            f.write(REC.pack(t + i // 1000, (i % 1000) * 1000, len(fr), len(fr)) + fr)
        t, n = t + speakers // 1000 + 1, n + speakers
        by_vhid = [bytearray(synth.carp_frame("10.1.0.2", v, md=bytes(20), vlans=(1,))) for v in range(1, 256)]
        for i in range(groups):
            fr = by_vhid[i % 255]
            fr[14:16] = struct.pack("!H", 1 + (i // 255) % 4094)  # 802.1Q TCI: the VLAN
            f.write(REC.pack(t + i // 1000, (i % 1000) * 1000, len(fr), len(fr)) + fr)
        t, n = t + groups // 1000 + 1, n + groups
        for i in range(hints):
            fr = synth.garp_frame("02:01:00:%02x:%02x:%02x" % (i >> 16, (i >> 8) & 255, i & 255),
                                  f"10.{2 + i // 65536}.{(i // 256) % 256}.{i % 256}")
            f.write(REC.pack(t + i // 1000, (i % 1000) * 1000, len(fr), len(fr)) + fr)
        n += hints
    return n


PEAK = textwrap.dedent("""
    import json, resource, subprocess, sys
    p = subprocess.run(sys.argv[1:], capture_output=True)
    print(json.dumps({"rc": p.returncode, "maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                      "out": p.stdout.decode("utf-8", "replace"), "err": p.stderr.decode("utf-8", "replace")}))
""")


def peak_run(*args) -> dict:
    """Run carpscope; its exit status, peak RSS (KiB), stdout and stderr."""
    p = subprocess.run([sys.executable, "-c", PEAK, sys.executable, "-m", "carpscope", *map(str, args)],
                       capture_output=True, cwd=REPO, timeout=120, env=dict(os.environ, NO_COLOR="1"))
    assert p.returncode == 0, p.stderr.decode()
    r = json.loads(p.stdout)
    assert r["rc"] in (0, 1) and "internal error" not in r["err"], r["err"]
    return r


def limits(rep: dict) -> list[dict]:
    return [f for f in rep["findings"] if f["rule"] == "speaker-limit"]




def test_distinct_speakers_memory_bounded(tmp_path):
    """200k distinct sources in one group (and 10k announced addresses): speaker-limit for the
    group, and peak RSS within 15 MB of the run on 2k sources (with the packet rules capped
    too, the growth measured was 1 MB; without, 46 MB)."""
    small, large = tmp_path / "small.pcap", tmp_path / "large.pcap"
    write_flood(small, speakers=2_000, hints=1_000)
    n = write_flood(large, speakers=200_000, hints=10_000)
    a = peak_run("analyze", small, "--format", "json", "-q")
    b = peak_run("analyze", large, "--format", "json", "-q")
    rep = json.loads(b["out"])
    assert rep["sources"][0]["packets"] == n
    lim = [f for f in limits(rep) if f.get("vhid") == 1]
    assert lim and lim[0]["evidence"]["dropped_adverts"] == 200_000 - 64, limits(rep)
    assert all(len(g["speakers"]) <= 64 for g in rep["groups"])
    growth = (b["maxrss_kb"] - a["maxrss_kb"]) / 1024
    assert growth < 15, f"peak RSS {a['maxrss_kb'] // 1024} MB -> {b['maxrss_kb'] // 1024} MB from 2k to 200k sources"


def test_distinct_groups_memory_bounded(tmp_path):
    """6k then 40k distinct (VLAN, VHID) groups, both past MAX_GROUPS (4096): speaker-limit
    for the groups not tracked, and the peak RSS within 10 MB (measured with the packet rules
    capped: 2 MB; without: 36 MB)."""
    small, large = tmp_path / "small.pcap", tmp_path / "large.pcap"
    write_flood(small, groups=6_000)
    write_flood(large, groups=40_000)
    a = peak_run("analyze", small, "--format", "json", "-q")
    b = peak_run("analyze", large, "--format", "json", "-q")
    rep = json.loads(b["out"])
    assert len(rep["groups"]) == 4096
    lim = [f for f in limits(rep) if f.get("vhid") is None]
    assert lim and lim[0]["evidence"]["dropped_adverts"] == 40_000 - 4096, limits(rep)
    growth = (b["maxrss_kb"] - a["maxrss_kb"]) / 1024
    assert growth < 10, f"peak RSS {a['maxrss_kb'] // 1024} MB -> {b['maxrss_kb'] // 1024} MB from 6k to 40k groups"


def test_caps_report_speaker_limit(tmp_path):
    """Whatever the memory: both caps are reported, with what was dropped, and the report
    stays bounded (at most 4096 groups of at most 64 speakers)."""
    p = tmp_path / "flood.pcap"
    n = write_flood(p, speakers=5_000, groups=5_000, hints=2_000)
    r = peak_run("analyze", p, "--format", "json", "-q")
    rep = json.loads(r["out"])
    assert rep["sources"][0]["packets"] == n
    assert len(rep["groups"]) == 4096 and all(len(g["speakers"]) <= 64 for g in rep["groups"])
    lim = limits(rep)
    assert {f.get("vhid") for f in lim} >= {1, None}, lim
    assert all(f["severity"] == "warning" and (f["evidence"].get("dropped_adverts") or
                                               f["evidence"].get("dropped_pair_checks")) for f in lim)
    assert r["maxrss_kb"] < 400 * 1024, f"peak RSS {r['maxrss_kb'] // 1024} MB"


def write_masters(path, groups: int, speakers: int, rounds: int) -> int:
    """Every one of ``speakers`` speakers of each of ``groups`` groups advertising as master at
    once, ``rounds`` adverts each a second apart (group after group): the pairs of simultaneous
    masters (2,016 per full group) are what grew memory to 6 GB."""
    base = [bytearray(synth.carp_frame("10.0.0.1", v, md=bytes(20), vlans=(1,))) for v in (1, 2)]
    n = 0
    with open(path, "wb", buffering=1 << 20) as f:
        synth.PcapWriter(f)
        for r in range(rounds):
            k = 0
            for g in range(groups):
                fr = base[g // 4094]
                fr[14:16] = struct.pack("!H", 1 + g % 4094)              # the VLAN
                for s in range(speakers):
                    i = g * speakers + s
                    fr[6:12] = struct.pack("!HI", 0x0200, i)             # Ethernet source
                    fr[30:34] = struct.pack("!I", 0x0A000000 + i + 2)    # IPv4 source
                    f.write(REC.pack(1_700_000_000 + r, k * 3, len(fr), len(fr)) + fr)
                    k += 1
                    n += 1
    return n


BUDGET_MB = 200      # docs/performance.md, "Memory budget"


@pytest.mark.parametrize("fmt", ["json", "text", "sarif"])
def test_all_masters_at_once_within_budget(tmp_path, fmt):
    """4,096 groups x 64 speakers, all masters at once (a million adverts, 94 MB): peak RSS of
    the whole run, report included, within the budget, and speaker-limit says what was capped
    (speakers in all, pairs per group)."""
    p = tmp_path / "masters.pcap"
    n = write_masters(p, 4096, 64, 4)
    r = peak_run("analyze", p, "--format", fmt, "-q")
    assert r["maxrss_kb"] < BUDGET_MB * 1024, f"peak RSS {r['maxrss_kb'] // 1024} MB ({fmt})"
    if fmt != "json":
        return
    rep = json.loads(r["out"])
    assert rep["sources"][0]["packets"] == n
    assert sum(len(g["speakers"]) for g in rep["groups"]) == 8192
    lim = limits(rep)
    total = [f for f in lim if "max_speakers" in f["evidence"]]
    assert total and total[0]["evidence"]["dropped_adverts"] == n - 8192 * 4, total
    pairs = [f for f in lim if "max_pairs" in f["evidence"]]
    assert len(pairs) == 128 and all(f["evidence"]["dropped_pair_checks"] > 0 for f in pairs)


def test_all_masters_at_once_linear_in_frames(tmp_path):
    """Twice the adverts of the same flood cost about twice the time (not the square)."""
    times = []
    for rounds in (2, 8):
        p = tmp_path / f"m{rounds}.pcap"
        write_masters(p, 4096, 64, rounds)
        t = time.monotonic()
        peak_run("analyze", p, "--format", "json", "-q")
        times.append(time.monotonic() - t)
        p.unlink()
    assert times[1] < 4 * times[0] * 1.6, f"{times[0]:.1f} s for 0.5M adverts, {times[1]:.1f} s for 2M"
