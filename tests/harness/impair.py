"""Faults of the lab's switch, for scenarios that need a faulty network.

* ``drop_adverts``: a lossy link. An nftables ``bridge`` table in the switch namespace drops a
  random share of the protocol-112 frames that enter the bridge from one host's port, on the
  forward path only: the other hosts miss them, the capture on the bridge device (local
  delivery, not forward) still records every frame the host sent.
* ``replicate``: copies of one host's adverts, made in user space (this kernel has no tc
  pedit/mirred-with-delay, see the lab README): ``replicate.py`` runs in the switch namespace,
  reads the host's port and writes copies into an injection port of the bridge (learning
  off, so the copies do not move the host's MAC in the bridge's table). Many copies close
  together are a storm / switching loop; one copy a millisecond later is a reflection.

Every process is started through the Lab (tracked by PID, stopped on teardown); every rule and
interface lives in the lab's own namespaces.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from .netns import Lab, Proc

INJECT_PORT = "p-inj"      # bridge port the copies enter through
INJECT_DEV = "inj0"        # its peer, where replicate.py writes
REPLICATOR = Path(__file__).with_name("replicate.py")


def drop_adverts(lab: Lab, host: str, percent: int) -> None:
    """Drop `percent` % (random, per frame) of the protocol-112 frames `host` sends, towards
    every other port; the bridge device (the capture) still sees them all."""
    if not 0 < percent < 100:
        raise ValueError("percent must be 1-99")
    port = lab.port(host)
    table = f"cst_loss_{host}"
    rules = (f"table bridge {table} {{\n"
             f"  chain lossy {{\n"
             f"    type filter hook forward priority 0; policy accept;\n"
             f'    iifname "{port}" ip protocol 112 numgen random mod 100 < {percent} drop\n'
             f"  }}\n}}\n")
    lab._cmd(lab._in_ns(lab.switch_netns, ["nft", "-f", "-"]), input=rules)
    lab._action("lossy", host=host, percent=percent,
                how=f"nftables bridge forward: random drop of protocol 112 entering from {port}")


def add_injection_port(lab: Lab) -> str:
    """A veth pair in the switch namespace: INJECT_PORT joins the bridge (no MAC learning),
    INJECT_DEV is where copies are written. Returns INJECT_DEV."""
    sw = lab.switch_netns
    lab._cmd(["ip", "-n", sw, "link", "add", INJECT_PORT, "type", "veth", "peer", "name", INJECT_DEV])
    lab._cmd(["ip", "-n", sw, "link", "set", INJECT_PORT, "master", lab.bridge])
    lab._cmd(["ip", "-n", sw, "link", "set", INJECT_PORT, "type", "bridge_slave", "learning", "off"])
    for dev in (INJECT_PORT, INJECT_DEV):
        lab._cmd(["ip", "-n", sw, "link", "set", dev, "up"])
    return INJECT_DEV


@dataclass
class Replicator:
    proc: Proc
    log: Path

    def records(self) -> list[dict]:
        """One record per copied advert: the original's time, the first and last copy's time
        and how many copies were written (see replicate.py)."""
        try:
            return [json.loads(ln) for ln in self.log.read_text().splitlines() if ln.strip()]
        except OSError:
            return []


def replicate(lab: Lab, host: str, *, copies: int, spacing: float, delay: float = 0.0,
              adverts: int = 1, max_seconds: float = 30.0) -> Replicator:
    """Copy the next `adverts` protocol-112 frames `host` sends: each `copies` times, the
    first `delay` s after the original, then every `spacing` s."""
    dev = add_injection_port(lab) if not _has_injection_port(lab) else INJECT_DEV
    log = lab.workdir / f"replicate-{host}.jsonl"
    argv = [sys.executable, str(REPLICATOR), "--listen", lab.port(host), "--inject", dev,
            "--copies", str(copies), "--spacing", repr(spacing), "--delay", repr(delay),
            "--adverts", str(adverts), "--max-seconds", repr(max_seconds), "--log", str(log)]
    proc = lab.spawn_in_switch(argv, f"replicate-{host}")
    lab._action("replicate", host=host, copies=copies, spacing_s=spacing, delay_s=delay,
                adverts=adverts, how=f"user-space copies from {lab.port(host)} into {INJECT_PORT}")
    return Replicator(proc, log)


def _has_injection_port(lab: Lab) -> bool:
    res = lab.exec_in_switch(["ip", "-o", "link", "show", "dev", INJECT_DEV], check=False)
    return res.returncode == 0
