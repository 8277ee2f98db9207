"""Copy protocol-112 frames from one bridge port into another (run by impair.replicate).

    python replicate.py --listen p-a --inject inj0 --copies 300 --spacing 0.0001 --adverts 3

Reads the frames a host sends into the bridge (AF_PACKET on its port, outgoing direction
skipped, so copies flooded back to the host are never copied again), and for each of the next
`--adverts` IPv4/IPv6 protocol-112 frames writes `--copies` identical copies into `--inject`:
the first `--delay` s after the original was read, then every `--spacing` s (busy-waited: sleep
is too coarse for 0.1 ms). Stops after `--adverts` frames or `--max-seconds`. Writes one JSON
line per copied frame to `--log`. Standard library only; it runs as root in the lab's switch
namespace, started and stopped by the Lab like any speaker.
"""
from __future__ import annotations

import argparse
import json
import socket
import struct
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def is_advert(frame: bytes) -> bool:
    if len(frame) < 34:
        return False
    etype = struct.unpack("!H", frame[12:14])[0]
    if etype == 0x0800:
        return frame[23] == 112
    if etype == 0x86DD and len(frame) >= 54:
        return frame[20] == 112
    return False


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--inject", required=True)
    ap.add_argument("--copies", type=int, required=True)
    ap.add_argument("--spacing", type=float, required=True)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--adverts", type=int, default=1)
    ap.add_argument("--max-seconds", type=float, default=30.0)
    ap.add_argument("--log", required=True)
    a = ap.parse_args()

    rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    rx.bind((a.listen, ETH_P_ALL))
    tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    tx.bind((a.inject, 0))
    end = time.monotonic() + a.max_seconds
    done = 0
    with open(a.log, "w") as log:
        while done < a.adverts and time.monotonic() < end:
            rx.settimeout(max(0.01, end - time.monotonic()))
            try:
                frame, addr = rx.recvfrom(65535)
            except socket.timeout:
                break
            if addr[2] == PACKET_OUTGOING or not is_advert(frame):
                continue
            seen = time.time()
            due = time.perf_counter() + a.delay
            first = last = None
            for _ in range(a.copies):
                while time.perf_counter() < due:
                    pass
                tx.send(frame)
                last = time.time()
                first = first or last
                due += a.spacing
            done += 1
            log.write(json.dumps({"original": seen, "first_copy": first, "last_copy": last,
                                  "copies": a.copies, "bytes": len(frame)}) + "\n")
            log.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
