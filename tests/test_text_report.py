"""The text report a person reads (issue 16), on the bundled captures.

Properties rather than byte-exact snapshots (they survive wording changes):
- at 80, 120 and 200 columns no line is longer than the width, nothing is cut (no ellipsis), and
  every VHID, every speaker address and every MAC of the JSON report appears whole in the text;
- piped (no terminal, no $COLUMNS): plain text, no colour, no width (the table, rows unwrapped);
- the timeline has a time axis whose labels sit under their ticks, and shows a 0.3 s overlap;
- the event list is dated (ISO 8601, UTC by default, ``--tz local``), says the failover time;
- host names and VIPs from configs appear beside the addresses.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from carpscope.report import text
from carpscope.report.view import Clock, annotate, left_out, packets_total
from tests.harness.sidecar import sidecar_args

REPO = Path(__file__).resolve().parents[1]
CAPTURES = REPO / "captures"
SIDECARS = sorted(p for p in CAPTURES.glob("*.json") if (CAPTURES / json.loads(p.read_text())["pcap"]).exists())
HANDBOOK = REPO / "tests" / "fixtures" / "configs" / "handbook"
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}"


def carpscope(*args, columns: int | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ, NO_COLOR="1", PYTHONPATH=str(REPO))
    for k in ("FORCE_COLOR", "COLUMNS", "TZ"):
        e.pop(k, None)
    if columns:
        e["COLUMNS"] = str(columns)
    e.update(env or {})
    p = subprocess.run([sys.executable, "-m", "carpscope", *map(str, args)], capture_output=True, text=True,
                       cwd=REPO, env=e, timeout=120, stdin=subprocess.DEVNULL)
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    assert p.returncode in (0, 1), p.stderr
    return p


def analyze(name: str, tmp_path: Path, *extra, columns: int | None = None, env=None) -> tuple[str, dict]:
    side = json.loads((CAPTURES / f"{name}.json").read_text())
    args = [f"captures/{side['pcap']}", *sidecar_args(side, tmp_path), "--isolated", *extra]
    out = carpscope("analyze", *args, columns=columns, env=env).stdout
    doc = json.loads(carpscope("analyze", *args, "-f", "json").stdout)
    return out, doc


def whole(token: str, out: str) -> bool:
    """``token`` appears with no address or word character glued to either side."""
    return re.search(r"(?<![\w:.])" + re.escape(token) + r"(?![\w:])", out) is not None


@pytest.mark.parametrize("columns", [80, 120, 200])
@pytest.mark.parametrize("sidecar", SIDECARS, ids=lambda p: p.stem)
def test_every_vhid_and_address_whole_at_any_width(sidecar, columns, tmp_path):
    out, doc = analyze(sidecar.stem, tmp_path, columns=columns)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= columns, [line for line in lines if len(line) > columns][:3]
    assert "…" not in out and "..." not in out
    for g in doc["groups"]:
        name = {"carp": "CARP", "vrrp2": "VRRPv2", "vrrp3": "VRRPv3"}[g["protocol"]]
        assert re.search(rf"{name}(/v6)?\s+{g['vhid']}\b", out), f"{name} {g['vhid']} missing"
        for s in g["speakers"]:
            assert whole(s["ip"], out), f"{s['ip']} not whole at {columns} columns"
            if s["mac"]:
                assert whole(s["mac"], out), f"{s['mac']} not whole at {columns} columns"
        for m in g["masters_at_end"]:
            assert whole(m, out)


@pytest.mark.parametrize("sidecar", SIDECARS, ids=lambda p: p.stem)
def test_piped_is_plain_text_without_a_width(sidecar, tmp_path):
    out, doc = analyze(sidecar.stem, tmp_path)
    assert "\x1b[" not in out
    assert re.search(r"proto +id +speaker", out)            # the table: nothing forces a narrow layout
    for g in doc["groups"]:
        for s in g["speakers"]:
            row = next(line for line in out.splitlines() if whole(s["ip"], line) and (s["mac"] or "") in line)
            assert str(s["adverts"]) in row.split()         # the whole row on one line


def test_dated_events_and_the_failover_time(tmp_path):
    out, doc = analyze("failover", tmp_path, columns=200)
    g = doc["groups"][0]
    runs = g["masters"]
    gap = runs[1]["from"] - runs[0]["to"]
    assert re.search(rf"{ISO}Z  10\.20\.30\.2 sends its last advert", out)
    assert re.search(rf"{ISO}Z  10\.20\.30\.3 master after {gap:.1f} s without a master", out), out
    assert "times UTC, 2026-11-25" in out
    # the split brain of another capture: its window, its cause, both masters at the end
    out, doc = analyze("passphrase-mismatch", tmp_path, columns=200)
    f = next(f for f in doc["findings"] if f["rule"] == "split-brain")
    w = f["evidence"]["windows"][0]
    assert re.search(rf"{Clock().iso(w['from'])}  SPLIT BRAIN: 10\.20\.30\.2 and 10\.20\.30\.3 both master for "
                     rf"{w['to'] - w['from']:.1f} s \(likely cause: passphrase\)", out), out


def test_local_time_zone(tmp_path):
    out, _ = analyze("failover", tmp_path, "--tz", "local", columns=200, env={"TZ": "Asia/Kolkata"})
    assert re.search(rf"{ISO}\+05:30  10\.20\.30\.2 master", out), out
    assert "times UTC+05:30" in out
    out, _ = analyze("failover", tmp_path, columns=200, env={"TZ": "Asia/Kolkata"})
    assert re.search(rf"{ISO}Z  10\.20\.30\.2 master", out)    # UTC unless asked


@pytest.mark.parametrize("columns", [80, 120, 200])
def test_timeline_axis_and_a_short_overlap(columns, tmp_path):
    out, doc = analyze("failover-preempt", tmp_path, columns=columns)
    lines = out.splitlines()
    i = next(k for k, line in enumerate(lines) if "┬" in line)
    rule, labels = lines[i], lines[i + 1]
    ticks = [m.start() for m in re.finditer("┬", rule)]
    starts = [m.start() for m in re.finditer(r"\d\d:\d\d:\d\d", labels)]
    assert len(starts) >= 2 and set(starts) <= set(ticks)      # each label under its tick
    times = [labels[s:s + 8] for s in starts]
    assert times == sorted(times)
    # the preempting master overlaps the old one for about 0.3 s: marked even at 80 columns
    marker = lines[i - 1]
    assert "x" in marker and "·" in marker                    # overlap, and the time without a master
    assert re.search(r"takes over from 10\.20\.30\.3; both advertise for 3\d\d ms", " ".join(out.split()))


def test_names_and_vips_from_configs(tmp_path):
    confs = []
    for h in ("hosta", "hostb", "hostc"):
        confs += ["--rc-conf", HANDBOOK / f"{h}.rc.conf"]
    out, doc = analyze("handbook", tmp_path, *confs, columns=80)
    flat = " ".join(out.split())
    assert "192.168.1.3 (hosta)" in flat and "192.168.1.4 (hostb)" in flat
    assert "hostc (192.168.1.5): backup of both CARP 1 and CARP 2, silent, as intended" in flat
    assert "VIP 192.168.1.50" in flat and "VIP 192.168.1.51" in flat
    assert doc["hosts"]["192.168.1.5"] == "hostc"
    g1 = next(g for g in doc["groups"] if g["vhid"] == 1)
    assert g1["speakers"][0]["host"] == "hosta"
    assert {m["host"]: (m["role"], m["heard"]) for m in g1["intent"]["members"]} == {
        "hosta": ("primary", True), "hostc": ("backup", False)}


def test_findings_say_how_many_frames_were_left_out():
    f = {"rule": "bad-ttl", "code": "CS104", "severity": "error", "message": "TTL 254 from 10.0.0.3",
         "first_seen": 1.0, "last_seen": 9.0, "packets": list(range(1, 11)), "evidence": {"count": 31}}
    assert packets_total(f) == 31 and left_out(10, 31) == " (+21 more)"
    lines = [t.plain for t in text.finding_lines([f], Clock(), 200, {"10.0.0.3": "fw2"})]
    assert "TTL 254 from 10.0.0.3 (fw2)" in lines[1]
    assert "frames 1,2,3,4,5,6,7,8,9,10 (+21 more)" in lines[2] and "31 times" in lines[2]
    assert "1970-01-01T00:00:01.000Z to 1970-01-01T00:00:09.000Z" in lines[2]


def test_annotate_only_whole_known_addresses():
    hosts = {"10.0.0.3": "fw2", "fe80::3": "r2"}
    assert annotate("10.0.0.3 and 10.0.0.30 and fe80::3", hosts) == "10.0.0.3 (fw2) and 10.0.0.30 and fe80::3 (r2)"
    assert annotate("10.0.0.3 (fw2) twice", hosts) == "10.0.0.3 (fw2) twice"


def test_file_output_is_plain_and_unwrapped(tmp_path):
    side = json.loads((CAPTURES / "ttl.json").read_text())
    out = tmp_path / "r.txt"
    carpscope("analyze", f"captures/{side['pcap']}", *sidecar_args(side, tmp_path), "-o", out, columns=80)
    body = out.read_text()
    assert "\x1b[" not in body and re.search(r"proto +id +speaker", body)


def test_layout_switches_to_blocks_and_keeps_fields_whole():
    g = {"segment": "s", "protocol": "vrrp3", "family": 6, "vhid": 12, "masters_at_end": ["2001:db8:ffff:ffff:ffff:ffff:ffff:1"],
         "speakers": [{"ip": "2001:db8:ffff:ffff:ffff:ffff:ffff:1", "mac": "02:00:00:30:00:03", "adverts": 7,
                       "first_seen": 1.0, "last_seen": 2.0, "priority": 150, "interval_cs": 100,
                       "auth": {"status": "none"}, "period": None}], "masters": [], "changes": []}
    rows = [text.group_rows(g, {"2001:db8:ffff:ffff:ffff:ffff:ffff:1": "a-rather-long-host-name"}, Clock())]
    wide = text.layout(rows, text.REPORT_COLUMNS, None)
    assert wide[0].plain.split() == text.REPORT_COLUMNS[:-1] + ["last", "seen"]
    for width in (80, 100):
        narrow = [t.plain for t in text.layout(rows, text.REPORT_COLUMNS, width)]
        assert max(len(x) for x in narrow) <= width
        assert any("2001:db8:ffff:ffff:ffff:ffff:ffff:1 (a-rather-long-host-name)" in x for x in narrow)
        assert any(x.strip().startswith("VRRPv3/v6 12") for x in narrow)


def test_render_on_a_terminal_uses_its_width():
    doc = {"sources": [], "groups": [], "findings": []}
    c = Console(record=True, width=80, force_terminal=True, color_system=None)
    text.render(doc, c)
    assert "no CARP or VRRP advertisements found" in c.export_text()
