"""Record the real-daemon cases (daemon_cases.py), each with its ground truth.

    python -m tests.harness.record_daemons [CASE...] --out tests/data/daemons [--attempts N] [--logs DIR]

For each case: build the lab, capture, run the daemons, tear down; then derive the ground truth
(truth.py: the daemons' own state changes and the wire, read without carpscope) and check the
case's ``require``. A recording that does not show what the case needs is made again (at most
``--attempts`` runs); only one that does is written: <out>/<case>.pcap, <case>.json and, when
the case has keys, <case>.keys (``label:passphrase`` lines, mode 600; the JSON names labels
only). Needs root.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from .daemon_cases import CASES, Case
from .netns import Lab, LabError, live_problems
from .pcapread import read_adverts, read_arps
from .record import _hosts, _transitions, _versions
from .truth import (advert_summary, carp_counter_repeats, copies, dual_master_windows, garps,
                    interface_copies, master_intervals)

ORIGIN = "harness: real ucarp/keepalived in network namespaces (tests/harness/daemon_cases.py)"
LINKTYPES = {None: "EN10MB", "any": "LINUX_SLL2"}


def record_once(case: Case, pcap: Path, workdir: Path | None) -> dict:
    """Run the case once into `pcap`; returns its ground truth (not yet checked)."""
    began = time.monotonic()
    with Lab(case.hosts, workdir=workdir) as lab:
        lab.start_capture(pcap, interface=case.interface)
        extra = case.run(lab) or {}
        lab.stop_capture()
        transitions = _transitions(lab)
        instances = {k: dict(v) for k, v in lab.instances.items()}
        timeline = [{k: v for k, v in a.items() if k not in ("pid", "netns")} for a in lab.timeline]
        t0, stop = lab.t0, lab.capture_stop
        hosts = _hosts(lab)
        capture_if = lab.capture_interface
    end_s = round(stop - t0, 3)
    adverts, arps = read_adverts(pcap), read_arps(pcap)
    intervals = master_intervals(transitions, timeline, instances, end_s)
    mac_host = {h["mac"]: h["name"] for h in hosts}
    return {
        "case": case.name,
        "description": case.description,
        "origin": ORIGIN,
        "recorded": dt.datetime.fromtimestamp(t0, dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "pcap": f"{case.name}.pcap",
        "keys_file": f"{case.name}.keys" if case.keys else None,
        "capture": {"tool": f"tcpdump -i {capture_if} -U -s 0 --immediate-mode", "netns": "switch",
                    "interface": capture_if, "linktype": LINKTYPES[case.interface],
                    "start_epoch": round(t0, 6), "duration_s": end_s, "bytes": pcap.stat().st_size},
        "hosts": hosts,
        "instances": list(instances.values()),
        "timeline": timeline,
        "analyze": {"keys_file": f"{case.name}.keys" if case.keys else None,
                    "vips": {str(k): v for k, v in case.vips.items()}},
        "daemons": {"transitions": transitions, "master_intervals": intervals,
                    "dual_master": dual_master_windows(intervals)},
        "wire": {"adverts": advert_summary(adverts, t0),
                 "carp_counters": carp_counter_repeats(adverts, t0),
                 "copies": copies(adverts, t0),
                 "garps": garps(arps, t0, mac_host),
                 "interfaces": interface_copies(adverts)},
        "extra": extra,
        "expect": case.expect,
        "wall_clock_s": round(time.monotonic() - began, 2),
    }


def problems(case: Case, truth: dict) -> list[str]:
    """Why this recording does not serve the case (empty when it does)."""
    out = list(case.require(truth))
    if truth["capture"]["bytes"] > case.max_bytes:
        out.append(f"pcap is {truth['capture']['bytes']} bytes (limit {case.max_bytes})")
    return out


def record(case: Case, out: Path, *, attempts: int = 3, logs: Path | None = None) -> tuple[dict | None, list[str]]:
    """Record until the case's requirements hold (at most `attempts` runs); write the files on
    success. Returns (truth, problems of the last attempt)."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{case.name}.recording.pcap"
    found: list[str] = []
    try:
        for attempt in range(1, attempts + 1):
            workdir = logs / case.name if logs else None
            if workdir:
                shutil.rmtree(workdir, ignore_errors=True)
            try:
                truth = record_once(case, tmp, workdir)
                found = problems(case, truth)
            except LabError as e:
                truth, found = None, [f"lab: {e}"]
            _say(f"{case.name}: attempt {attempt}: " + ("ok" if not found else "; ".join(found)))
            if not found:
                truth["attempt"] = attempt
                _write(case, out, tmp, truth)
                return truth, []
        return None, found
    finally:
        tmp.unlink(missing_ok=True)


def _write(case: Case, out: Path, tmp: Path, truth: dict) -> None:
    shutil.copyfile(tmp, out / f"{case.name}.pcap")
    (out / f"{case.name}.json").write_text(json.dumps(truth, indent=1) + "\n")
    keys = out / f"{case.name}.keys"
    if case.keys:
        keys.write_text("".join(f"{label}:{pw}\n" for label, pw in case.keys.items()))
        os.chmod(keys, 0o600)
    else:
        keys.unlink(missing_ok=True)


def _say(msg: str) -> None:
    print(f"[record-daemons {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _sigterm(_num, _frame):
    raise KeyboardInterrupt("SIGTERM")   # unwinds through Lab.__exit__: clean teardown


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.harness.record_daemons",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("cases", nargs="*", metavar="CASE", help="default: all")
    ap.add_argument("--out", type=Path, default=Path("tests/data/daemons"))
    ap.add_argument("--logs", type=Path, help="keep daemon logs, configs and events here")
    ap.add_argument("--attempts", type=int, help="runs per case (default: the case's own)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    args = ap.parse_args(argv)
    if args.list:
        for c in CASES.values():
            print(f"{c.name:22} {c.description.split('. ')[0][:100]}")
        return 0
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        ap.error(f"unknown case(s) {', '.join(unknown)}; try --list")
    if found := live_problems():
        print("record-daemons: " + "; ".join(found), file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    began, failed = time.monotonic(), []
    try:
        for name in args.cases or list(CASES):
            case = CASES[name]
            truth, found = record(case, args.out, attempts=args.attempts or case.attempts, logs=args.logs)
            if truth is None:
                failed.append(name)
    except KeyboardInterrupt:
        _say("interrupted: lab torn down, nothing written for the case in progress")
        return 130
    _say(f"done in {time.monotonic() - began:.1f} s" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
