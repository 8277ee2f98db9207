"""Long runs stay flat: a day of adverts for 300 groups on two interfaces through the sniff loop
at speed (tests/soak_day.py, in a process of its own), with the exporter scraped all along and
evidence kept. Memory at the end of each hour must not grow after the first hours, and the
metrics at the end must count exactly what was sent (series per family, adverts, changes), with
the flood of spoofed speakers capped. The measurements are printed (pytest -s).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
import soak_day  # noqa: E402

GROWTH_KB = 12 * 1024        # RSS growth allowed from the end of hour 2 to the end of the day
LATE_KB = 2 * 1024           # ... and over the last ten hours (after the flood of hour 12)
PEAK_KB = 300 * 1024


def test_a_day_of_adverts_stays_flat():
    r = subprocess.run([sys.executable, str(REPO / "tests" / "soak_day.py")], capture_output=True, text=True,
                       timeout=1500, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    d = json.loads(r.stdout)
    rss, hours = d["rss"], d["hours"]
    assert hours == 24 and len(rss) == 24 and d["stop"] == "end"
    print(f"\nsoak: {d['frames']} frames in {d['seconds']:.0f} s ({d['frames'] / d['seconds']:.0f}/s); "
          f"RSS by hour (MiB): {' '.join(f'{x / 1024:.1f}' for x in rss)}; "
          f"{d['scrapes']['n']} scrapes; {d['evidence_written']} evidence files written, {len(d['evidence'])} kept")
    assert rss[-1] - rss[1] <= GROWTH_KB, rss
    assert rss[-1] - rss[13] <= LATE_KB, rss
    assert max(rss) <= PEAK_KB, rss
    assert d["scrapes"]["errors"] == 0 and d["scrapes"]["n"] > 10

    m: dict[str, list[tuple[dict, float]]] = {}
    for fam in text_string_to_metric_families(d["metrics"]):
        for s in fam.samples:
            m.setdefault(s.name, []).append((s.labels, s.value))
    groups = soak_day.CARP_GROUPS + soak_day.VRRP_GROUPS
    # every frame counted, per interface
    sent = d["adverts"]
    assert d["frames"] == sent["em0"] + sent["em1"]
    assert {lab["interface"]: v for lab, v in m["carpscope_adverts_total"]} == sent
    assert {lab["interface"]: v for lab, v in m["carpscope_frames_total"]} == sent
    # one series per group, one master each at the end (the primaries are back), no split brain now
    for fam in ("carpscope_masters", "carpscope_split_brain", "carpscope_mastership_changes_total",
                "carpscope_master_advert_age_seconds", "carpscope_speakers"):
        assert len(m[fam]) == groups, fam
    assert all(v == 1 for _, v in m["carpscope_masters"])
    assert all(v == 0 for _, v in m["carpscope_split_brain"])
    assert sorted(lab["address"] for lab, _ in m["carpscope_master_info"]) == sorted(
        [f"10.0.{v}.2" for v in range(1, soak_day.CARP_GROUPS + 1)]
        + [f"10.1.{v}.2" for v in range(1, soak_day.VRRP_GROUPS + 1)])
    assert len(m["carpscope_hmac_verdicts_total"]) == 3 * soak_day.CARP_GROUPS
    # speakers: what was sent, at most 8 series a group; the flood is capped and says so
    speakers = d["speakers"]
    assert {(lab["segment"], lab["vhid"]): v for lab, v in m["carpscope_speakers"]} == {
        tuple(k.split("/")): len(v) for k, v in speakers.items()}
    assert len(m["carpscope_speaker_adverts_total"]) == sum(min(len(v), 8) for v in speakers.values())
    assert len(speakers[f"em0/{soak_day.FLOOD_VHID}"]) == 64
    dropped = {lab["kind"]: v for lab, v in m["carpscope_series_dropped"]}
    assert dropped == {"group": 0, "speaker": 64 - 8, "finding": 0}
    # a group that never failed over: its master's every advert; a failing one: two changes a time
    failing = {}
    for h in range(hours):
        carp, _ = soak_day.schedule(h)
        for v in carp:
            failing[v] = failing.get(v, 0) + 1
    steady = next(v for v in range(1, soak_day.CARP_GROUPS + 1) if v not in failing and v != soak_day.FLOOD_VHID)
    adverts = {(lab["segment"], lab["vhid"], lab["address"]): v for lab, v in m["carpscope_speaker_adverts_total"]}
    assert adverts[("em0", str(steady), f"10.0.{steady}.2")] == 24 * 3600
    changes = {(lab["segment"], lab["vhid"]): v for lab, v in m["carpscope_mastership_changes_total"]}
    for v in range(1, soak_day.CARP_GROUPS + 1):
        if v != soak_day.FLOOD_VHID:
            assert changes[("em0", str(v))] == 2 * failing.get(v, 0), v
    # each of the 63 spoofed speakers the tracker follows advertised once: a new master each
    assert changes[("em0", str(soak_day.FLOOD_VHID))] == 63
    # the split brains happened and are findings; evidence bounded in count and size
    sb = [lab for lab, v in m["carpscope_findings"] if lab["rule"] == "split-brain" and v]
    assert sorted(int(lab["vhid"]) for lab in sb) == sorted({soak_day.schedule(h)[1] for h in range(hours)})
    assert d["evidence_written"] >= 2 and len(d["evidence"]) <= 5
    assert max(d["evidence_sizes"]) <= (2 << 20) + 4096
    # the rolling window: 60 s of each interface's frames, no more
    assert d["window_frames"]["em0"] <= 61 * soak_day.CARP_GROUPS
    assert d["window_frames"]["em1"] <= 61 * soak_day.VRRP_GROUPS + 60
