"""`carpscope sniff` keeps up with a storm: 100,000 frames/s for 10 s replayed into a veth.

The storm capture of bench/ (one master's advert copied every 0.1 ms) is replayed by tcpreplay
at 100,000 frames/s for 10 s into one end of a veth pair inside a network namespace this test
creates; first tcpdump (its default buffer, writing to /dev/null), then carpscope sniff, each
reads the other end of the same pair, one after the other in the same run. Where tcpdump drops
nothing, sniff must drop nothing and read every frame tcpreplay sent; and the engine must still
call it a storm at the rate it was sent (copies/s within a factor of two of 100,000).

Needs root, ip, tcpdump and tcpreplay (Debian's package): skipped with the reason otherwise,
failed under CI=true. Traffic stays inside the namespace; every process is ended by PID and the
namespace is deleted at the end. The figures are printed (pytest -s shows them).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

try:
    from tests.harness import require_root, tool
except ImportError:          # rootdir-less import mode puts tests/ itself on sys.path
    from harness import require_root, tool

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
import make_captures  # noqa: E402

pytestmark = pytest.mark.live

PPS = 100_000
SECONDS = 10
FRAMES = 100_000          # 10 s of storm at 0.1 ms; tcpreplay loops it (CARP then sees a replay)


def _ns(*argv: str, ns: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([tool("ip"), "netns", "exec", ns, *argv], capture_output=True, text=True,
                          timeout=60, **kw)


@pytest.fixture
def veth():
    """A namespace of our own with a veth pair (sender, receiver), deleted at the end."""
    require_root(("ip", "tcpdump", "tcpreplay"))
    ns = f"csrate-{uuid.uuid4().hex[:8]}"
    ip = tool("ip")
    subprocess.run([ip, "netns", "add", ns], check=True, timeout=30)
    try:
        for cmd in (["link", "add", "rs", "type", "veth", "peer", "name", "rr"],
                    ["link", "set", "rs", "up"], ["link", "set", "rr", "up"], ["link", "set", "lo", "up"]):
            subprocess.run([ip, "-n", ns, *cmd], check=True, timeout=30)
        yield ns
    finally:
        subprocess.run([ip, "netns", "del", ns], timeout=30)


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """End a process we started, by its PID."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _replay(ns: str, pcap: Path) -> int:
    """Replay the storm at PPS for SECONDS; the number of frames tcpreplay says it sent."""
    out = _ns(tool("tcpreplay"), "-i", "rs", f"--pps={PPS}", f"--duration={SECONDS}", "--loop=0", str(pcap),
              ns=ns)
    m = re.search(r"Actual: (\d+) packets", out.stdout + out.stderr)
    assert m, out.stdout + out.stderr
    failed = re.search(r"Failed packets:\s+(\d+)", out.stdout)
    assert failed is None or failed.group(1) == "0", out.stdout
    return int(m.group(1))


def _wait_ready(proc: subprocess.Popen, path: Path | None, seconds: float = 15.0) -> None:
    """Until the reader is capturing (tcpdump: its 'listening' line; sniff: its start event)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the reader ended before the replay"
        if path is not None and path.exists() and path.stat().st_size:
            return
        time.sleep(0.1)
    raise AssertionError("the reader did not start in time")


def test_sniff_keeps_up_with_100k_frames_per_second(veth, tmp_path):
    ns = veth
    pcap = tmp_path / "storm.pcap"
    make_captures.storm(pcap, frames=FRAMES)

    # tcpdump: the reference, on the same veth, in the same run
    td_err = tmp_path / "tcpdump.err"
    with open(td_err, "w") as err:
        td = subprocess.Popen([tool("ip"), "netns", "exec", ns, tool("tcpdump"), "-i", "rr", "-n", "-w", "/dev/null",
                               "ip proto 112 or ip6 proto 112 or vlan"],
                              stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    try:
        _wait_ready(td, td_err)
        sent_td = _replay(ns, pcap)
        time.sleep(1.0)                 # what is still in the ring reaches the file
    finally:
        _stop(td, signal.SIGINT)
    text = td_err.read_text()
    td_seen = int(re.search(r"(\d+) packets? captured", text).group(1))
    td_dropped = int(re.search(r"(\d+) packets? dropped by kernel", text).group(1))

    # carpscope sniff, its engine on libpcap batches
    events = tmp_path / "sniff.jsonl"
    env = dict(os.environ, PYTHONPATH=str(REPO), NO_COLOR="1")
    with open(events, "w") as out, open(tmp_path / "sniff.err", "w") as err:
        sn = subprocess.Popen([tool("ip"), "netns", "exec", ns, sys.executable, "-m", "carpscope", "sniff", "rr",
                               "--duration", str(SECONDS + 8), "-f", "jsonl", "--fail-on", "never"],
                              stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=REPO, env=env,
                              start_new_session=True)
    try:
        _wait_ready(sn, events)
        sent_sn = _replay(ns, pcap)
        rc = sn.wait(SECONDS + 30)
    finally:
        _stop(sn)
    stderr = (tmp_path / "sniff.err").read_text()
    assert rc == 0, stderr
    assert "Traceback" not in stderr
    records = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
    end = next(r for r in records if r.get("type") == "end")
    storms = [r for r in records if r.get("type") == "finding" and r.get("rule") == "advert-storm"]
    print(f"\ntcpreplay sent {sent_td:,} / {sent_sn:,} frames at {PPS:,}/s; tcpdump captured {td_seen:,}, "
          f"kernel dropped {td_dropped:,}; sniff read {end['frames']:,}, kernel dropped {end['kernel_dropped']}")

    assert end["kernel_dropped"] is not None, "sniff must report the kernel's drop count"
    if td_dropped == 0:
        assert end["kernel_dropped"] == 0, f"tcpdump dropped none, sniff dropped {end['kernel_dropped']}"
        assert end["frames"] == sent_sn, (end["frames"], sent_sn)
    else:
        assert end["kernel_dropped"] <= td_dropped
    assert end["adverts"] == end["frames"]          # every frame of the storm is an advert
    assert storms, [r.get("rule") for r in records if r.get("type") == "finding"]
    rate = storms[-1]["evidence"]["rate_per_s"]
    assert PPS / 2 <= rate <= PPS * 2, rate
