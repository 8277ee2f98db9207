"""Record the bundled captures with real speakers, each with a ground-truth sidecar.

    python -m tests.harness.record [SCENARIO...] --out captures/ [--logs DIR] [--attempts N]

For each scenario: build the lab, capture the bridge, run the scenario, tear down; then read
the recording back and check it against the scenario's expectations (final masters from the
adverts and from the speakers' own state reports, TTLs, source MACs, checksums, size). Only a
recording that passes is written: <out>/<s>.pcap, <s>.json and, when the scenario has keys,
<s>.keys (``label:passphrase`` lines; the sidecar names labels only). Needs root.
"""
from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import os
import platform
import shutil
import signal
import sys
import time
from pathlib import Path

from .netns import Lab, LabError, clean_stale, live_problems, package_version
from .pcapread import Advert, count_frames, read_adverts, summarize, ucarp_hmac_ok, vrrp2_password
from .scenarios import SCENARIOS, Scenario

ORIGIN = "harness: real ucarp/keepalived in network namespaces"
MAX_PCAP_BYTES = 100_000


def _versions() -> dict:
    v = {pkg: package_version(pkg) for pkg in ("ucarp", "keepalived", "tcpdump")}
    v["kernel"] = platform.release()
    return v


def _transitions(lab: Lab) -> list[dict]:
    stop = lab.capture_stop or time.time()
    return [{"t_s": ev["t_s"], "host": ev.get("host"), "id": ev.get("id"), "state": ev.get("state"),
             **({"priority": int(ev["priority"])} if ev.get("priority", "").isdigit() else {})}
            for ev in lab.events() if ev["epoch"] <= stop]


def _event_masters(transitions: list[dict], instances: list[dict]) -> dict[str, list[str]]:
    """protocol:id -> source addresses of the speakers whose last reported state is MASTER."""
    last = {}
    for tr in transitions:
        last[(tr["host"], tr["id"])] = tr["state"]
    src = {(i["host"], f"{i['protocol']}:{i['vhid']}"): i["src_ip"] for i in instances}
    out: dict[str, list[str]] = {}
    for (host, ident), state in last.items():
        if state == "MASTER":
            out.setdefault(ident, []).append(src[(host, ident)])
    return {k: sorted(v, key=_ip_key) for k, v in sorted(out.items())}


def _ip_key(ip: str):
    a = ipaddress.ip_address(ip)
    return (a.version, int(a))


def _norm(masters: dict) -> dict:
    return {k: sorted(v, key=_ip_key) for k, v in sorted(masters.items()) if v}


def _auth(adverts: list[Advert], instances: list[dict], keys: dict[str, str]) -> dict:
    """Per (protocol:id, source): does every advert authenticate under that speaker's own key?
    CARP: ucarp's HMAC with the instance's passphrase and VIP; VRRPv2: the PASS string."""
    inst = {(f"{i['protocol']}:{i['vhid']}", i["src_ip"]): i for i in instances}
    out: dict = {}
    for a in adverts:
        i = inst.get((a.ident, a.src))
        label = i.get("passphrase_label") if i else None
        if label is None or (a.kind == "vrrp2" and a.auth_type == 0):
            continue
        if a.kind == "carp":
            ok = ucarp_hmac_ok(a, keys[label], i["vips"][0])
        elif a.kind == "vrrp2":
            ok = vrrp2_password(a) == keys[label]
        else:
            continue
        r = out.setdefault((a.ident, a.src), {"label": label, "verified": 0, "of": 0})
        r["of"] += 1
        r["verified"] += ok
    return out


def check(scn: Scenario, observed: dict, instances: list[dict], pcap_bytes: int) -> list[str]:
    """Everything the recording must show; an empty list when it does."""
    problems = []
    exp = scn.expect
    if exp["split_brain"] != any(len(v) > 1 for v in exp["masters"].values()):
        problems.append("scenario inconsistent: split_brain vs masters")
    groups = observed["groups"]
    final = _norm({k: g["final_advertisers"] for k, g in groups.items()})
    if final != _norm(exp["masters"]):
        problems.append(f"final advertisers {final} != expected masters {exp['masters']}")
    if _norm(observed["masters_reported"]) != _norm(exp["masters"]):
        problems.append(f"speakers report masters {observed['masters_reported']} != {exp['masters']}")
    for ident, srcs in scn.must_advertise.items():
        seen = set(groups.get(ident, {}).get("speakers", {}))
        if missing := set(srcs) - seen:
            problems.append(f"{ident}: expected adverts from {sorted(missing)}")
    mac_of = {(f"{i['protocol']}:{i['vhid']}", i["src_ip"]): i["advert_src_mac"] for i in instances}
    for ident, g in groups.items():
        for src, sp in g["speakers"].items():
            want_ttl = scn.ttl_by_source.get(src, 255)
            if sp["ttl"] != [want_ttl]:
                problems.append(f"{ident} {src}: TTL {sp['ttl']}, expected {want_ttl}")
            if not sp["checksum_ok"]:
                problems.append(f"{ident} {src}: bad checksum")
            auth = sp.get("auth")
            if sp["kind"] == "carp" and auth is None:
                problems.append(f"{ident} {src}: no key to check its HMAC")
            if auth and auth["verified"] != auth["of"]:
                problems.append(f"{ident} {src}: only {auth['verified']}/{auth['of']} adverts "
                                f"authenticate under key {auth['label']!r}")
            want_mac = mac_of.get((ident, src))
            if want_mac is None:
                problems.append(f"{ident} {src}: advertiser not among the instances")
            elif sp["src_mac"] != [want_mac]:
                problems.append(f"{ident} {src}: source MAC {sp['src_mac']}, expected {want_mac}")
    if observed["unclassified"]:
        problems.append(f"{observed['unclassified']} protocol-112 packets not classified")
    if pcap_bytes > MAX_PCAP_BYTES:
        problems.append(f"pcap is {pcap_bytes} bytes (limit {MAX_PCAP_BYTES})")
    return problems


def _vip_sets(instances: list[dict]) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    for i in instances:
        sets = out.setdefault(f"{i['protocol']}:{i['vhid']}", [])
        if i["vips"] not in sets:
            sets.append(i["vips"])
    return out


def _hosts(lab: Lab) -> list[dict]:
    return [{"name": h.name, "ip": h.addr4, "ipv6": [str(ipaddress.IPv6Interface(a).ip) for a in h.ipv6],
             "mac": lab.macs[h.name]} for h in lab.hosts.values()]


def record_once(scn: Scenario, pcap: Path, workdir: Path | None) -> tuple[dict, list[str]]:
    """Run the scenario once into `pcap`; returns (sidecar, problems)."""
    began = time.monotonic()
    with Lab(scn.hosts, workdir=workdir) as lab:
        lab.start_capture(pcap)
        scn.run(lab)
        lab.stop_capture()
        transitions = _transitions(lab)
        instances = [{k: v for k, v in i.items()} for i in lab.instances.values()]
        timeline = [{k: v for k, v in a.items() if k not in ("pid", "netns")} for a in lab.timeline]
        t0, stop = lab.t0, lab.capture_stop
        hosts = _hosts(lab)
    adverts = read_adverts(pcap)
    groups = summarize(adverts, t0, stop, scn.final_window)
    for (ident, src), auth in _auth(adverts, instances, scn.keys).items():
        groups[ident]["speakers"][src]["auth"] = auth
    observed = {
        "frames": count_frames(pcap),
        "adverts": sum(1 for a in adverts if a.kind != "unknown"),
        "unclassified": sum(1 for a in adverts if a.kind == "unknown"),
        "final_window_s": scn.final_window,
        "groups": groups,
        "masters_reported": _event_masters(transitions, instances),
        "transitions": transitions,
        "wall_clock_s": round(time.monotonic() - began, 2),
    }
    size = pcap.stat().st_size
    sidecar = {
        "scenario": scn.name,
        "description": scn.description,
        "origin": ORIGIN,
        "recorded": dt.datetime.fromtimestamp(t0, dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "pcap": f"{scn.name}.pcap",
        "keys_file": f"{scn.name}.keys" if scn.keys else None,
        "capture": {"tool": "tcpdump -i br0 -U -s 0 --immediate-mode", "netns": "switch",
                    "interface": "br0", "linktype": "EN10MB", "start_epoch": round(t0, 6),
                    "duration_s": round(stop - t0, 3), "bytes": size},
        "hosts": hosts,
        "instances": instances,
        "timeline": timeline,
        "analyze": {"passphrase_file": f"{scn.name}.keys" if scn.keys else None,
                    "vip_sets": _vip_sets(instances)},
        "expect": scn.expect,
        "observed": observed,
    }
    return sidecar, check(scn, observed, instances, size)


def record(scn: Scenario, out: Path, *, attempts: int = 2, logs: Path | None = None) -> list[str]:
    """Record until the checks pass (at most `attempts` runs); write the files on success."""
    tmp = out / f".{scn.name}.recording.pcap"
    problems: list[str] = []
    try:
        for attempt in range(1, attempts + 1):
            workdir = logs / scn.name if logs else None
            if workdir:
                shutil.rmtree(workdir, ignore_errors=True)
            try:
                sidecar, problems = record_once(scn, tmp, workdir)
            except LabError as e:
                sidecar, problems = None, [f"lab: {e}"]
            _say(f"{scn.name}: attempt {attempt}: " + ("ok" if not problems else "; ".join(problems)))
            if not problems:
                _write(scn, out, tmp, sidecar)
                _say(f"{scn.name}: {sidecar['capture']['bytes']} bytes, "
                     f"{sidecar['observed']['adverts']} adverts, "
                     f"{sidecar['observed']['wall_clock_s']} s wall clock")
                return []
        return problems
    finally:
        tmp.unlink(missing_ok=True)


def _write(scn: Scenario, out: Path, tmp: Path, sidecar: dict) -> None:
    shutil.copyfile(tmp, out / f"{scn.name}.pcap")
    (out / f"{scn.name}.json").write_text(json.dumps(sidecar, indent=1) + "\n")
    keys = out / f"{scn.name}.keys"
    if scn.keys:
        keys.write_text("".join(f"{label}:{pw}\n" for label, pw in scn.keys.items()))
    else:
        keys.unlink(missing_ok=True)


def _say(msg: str) -> None:
    print(f"[record {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _sigterm(_num, _frame):
    raise KeyboardInterrupt("SIGTERM")   # unwinds through Lab.__exit__: clean teardown


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.harness.record", description=__doc__.split("\n\n")[0])
    ap.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="default: all")
    ap.add_argument("--out", type=Path, default=Path("captures"))
    ap.add_argument("--logs", type=Path, help="keep daemon logs, configs and events here")
    ap.add_argument("--attempts", type=int, default=2)
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    ap.add_argument("--clean-stale", action="store_true",
                    help="delete the namespaces (and processes in them) left by harness runs "
                         "that were killed, then exit")
    args = ap.parse_args(argv)
    if args.list:
        for s in SCENARIOS.values():
            print(f"{s.name:22} {s.description.split(': ')[0].split('. ')[0][:90]}")
        return 0
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(unknown)}; try --list")
    if problems := live_problems():
        print("record: " + "; ".join(problems), file=sys.stderr)
        return 2
    if args.clean_stale:
        for ns in clean_stale():
            _say(f"deleted stale namespace {ns}")
        return 0
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)   # even when started with it ignored
    args.out.mkdir(parents=True, exist_ok=True)
    began, failed = time.monotonic(), []
    try:
        for name in args.scenarios or list(SCENARIOS):
            if record(SCENARIOS[name], args.out, attempts=args.attempts, logs=args.logs):
                failed.append(name)
    except KeyboardInterrupt:
        _say("interrupted: lab torn down, nothing written for the scenario in progress")
        return 130
    _say(f"done in {time.monotonic() - began:.1f} s" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
