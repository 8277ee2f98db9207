"""Golden tests: every bundled capture, analysed as a user would (its keys file and VIP sets),
gives the masters and findings its sidecar states (recorded from real ucarp/keepalived)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = ROOT / "captures"
SIDECARS = sorted(p for p in CAPTURES.glob("*.json"))


def analyze(side: dict, tmp_path: Path, *extra: str) -> tuple[int, dict]:
    args = [sys.executable, "-m", "carpscope", "analyze", str(CAPTURES / side["pcap"]), "--format", "json", *extra]
    ana = side.get("analyze") or {}
    if side.get("keys_file"):
        keys = tmp_path / "keys"
        keys.write_text((CAPTURES / side["keys_file"]).read_text())
        os.chmod(keys, 0o600)
        args += ["--passphrase-file", str(keys)]
    for ident, sets in (ana.get("vip_sets") or {}).items():
        vhid = ident.split(":")[1]
        for vips in sets:
            args += ["--vip", f"{vhid}=" + ",".join(vips)]
    p = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode, json.loads(p.stdout)


def ident(g: dict) -> str:
    return f"{'carp' if g['protocol'] == 'carp' else 'vrrp'}:{g['vhid']}"


@pytest.mark.skipif(not SIDECARS, reason="no bundled captures")
@pytest.mark.parametrize("sidecar", SIDECARS, ids=lambda p: p.stem)
def test_bundled_capture_golden(sidecar, tmp_path):
    side = json.loads(sidecar.read_text())
    exp = side["expect"]
    rc, rep = analyze(side, tmp_path)
    groups = {ident(g): g for g in rep["groups"]}
    assert rep["sources"][0]["malformed"] == 0
    # who is master at the end, per protocol:id (two or more = split brain)
    for gid, masters in exp["masters"].items():
        assert gid in groups, f"{gid} not seen; groups: {sorted(groups)}"
        assert groups[gid]["masters_at_end"] == sorted(masters), gid
    rules = {f["rule"] for f in rep["findings"]}
    missing = set(exp["findings_present"]) - rules
    assert not missing, f"expected findings missing: {missing}; got {sorted(rules)}"
    unwanted = set(exp["findings_absent"]) & rules
    assert not unwanted, f"findings that must not appear: {unwanted}"
    split = [f for f in rep["findings"] if f["rule"] == "split-brain"]
    if exp["split_brain"]:
        assert split, "split brain expected"
    errors = [f for f in rep["findings"] if f["severity"] == "error"]
    if not exp["split_brain"] and not any(r in exp["findings_present"] for r in ("vhid-conflict",)):
        assert not errors, f"healthy capture with error findings: {[f['rule'] for f in errors]}"
    assert rc == (1 if errors else 0)


def _cause(sidecar: str, tmp_path) -> str:
    side = json.loads((CAPTURES / f"{sidecar}.json").read_text())
    _, rep = analyze(side, tmp_path)
    (f,) = [f for f in rep["findings"] if f["rule"] == "split-brain"]
    return f["cause"]


@pytest.mark.skipif(not (CAPTURES / "passphrase-mismatch.json").exists(), reason="capture missing")
def test_split_brain_causes_on_real_captures(tmp_path):
    assert _cause("passphrase-mismatch", tmp_path) == "passphrase"
    assert _cause("vip-mismatch", tmp_path) == "vip-set"
    assert _cause("ttl", tmp_path) == "ttl"


@pytest.mark.skipif(not (CAPTURES / "failover.json").exists(), reason="capture missing")
def test_failover_timeline(tmp_path):
    """fw1 master, stopped, fw2 takes over after its master-down interval: two runs, no overlap."""
    side = json.loads((CAPTURES / "failover.json").read_text())
    _, rep = analyze(side, tmp_path)
    (g,) = rep["groups"]
    runs = g["masters"]
    assert [r["ip"] for r in runs][:2] == ["10.20.30.2", "10.20.30.3"]
    assert runs[1]["from"] - runs[0]["to"] > 3.0       # fw2 waited its master-down interval
    assert g["changes"][0]["kind"] == "initial" and g["changes"][1]["to"] == "10.20.30.3"
    assert not any(f["rule"] in ("split-brain", "master-gap") for f in rep["findings"])


PUBLIC = CAPTURES / "public"


@pytest.mark.skipif(not (PUBLIC / "tcpdump-vrrp.pcap").exists(), reason="capture missing")
def test_public_tcpdump_vrrp_capture(tmp_path):
    """tcpdump's vrrp.pcap: five VRIDs, each handed over seven times by preemption (.91 -> .97)."""
    p = subprocess.run([sys.executable, "-m", "carpscope", "analyze", str(PUBLIC / "tcpdump-vrrp.pcap"),
                        "--format", "json"], capture_output=True, text=True, timeout=60)
    rep = json.loads(p.stdout)
    assert p.returncode == 0 and rep["sources"][0]["adverts"] == 165
    ids = {(g["protocol"], g["family"], g["vhid"]) for g in rep["groups"]}
    assert ids == {("vrrp2", 4, 42), ("vrrp2", 4, 43), ("vrrp3", 4, 44), ("vrrp3", 6, 45), ("vrrp3", 6, 46)}
    for g in rep["groups"]:
        order = [r["ip"] for r in g["masters"]]
        assert len(order) == 7 and len(set(order)) == 7, order
        if g["family"] == 4:
            assert order == [f"10.0.0.{n}" for n in range(91, 98)]
            assert g["masters_at_end"] == ["10.0.0.97"]
        prios = [next(s["priority"] for s in g["speakers"] if s["ip"] == ip) for ip in order]
        assert prios == sorted(prios)          # each hand-over goes to a higher priority
    assert {f["rule"] for f in rep["findings"]} == {"vrrp-cleartext-auth"}
