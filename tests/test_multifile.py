"""Several captures in one run: read in timestamp order without loading them; --segment joins
rotated files of one capture point into one segment."""
from __future__ import annotations

import json
import subprocess
import sys

from carpscope import synth


def _write_split(tmp_path, names=("late", "early")):
    """One failover timeline (.2 master for 10 s, then .3) dealt alternately into two files."""
    paths = []
    for part, name in enumerate(names):
        p = tmp_path / f"{name}.pcap"
        with open(p, "wb") as f:
            w = synth.PcapWriter(f)
            for i in range(20):
                if i % 2 == part:
                    src = "10.5.0.2" if i < 10 else "10.5.0.3"
                    w.write(1000.0 + i, synth.carp_frame(src, 5, advskew=0 if i < 10 else 50, counter=i,
                                                         passphrase="k", vips=["10.5.0.5"]))
        paths.append(str(p))
    return paths


def run(*args):
    p = subprocess.run([sys.executable, "-m", "carpscope", "analyze", *args, "--format", "json"],
                       capture_output=True, text=True, timeout=60)
    assert "Traceback" not in p.stderr
    return p.returncode, json.loads(p.stdout)


def test_segment_joins_files_in_time_order(tmp_path):
    late, early = _write_split(tmp_path)
    _, rep = run(late, early, "--segment", "fw-lan")     # given out of order on purpose
    (g,) = rep["groups"]
    assert g["segment"] == "fw-lan"
    assert [(r["ip"], r["adverts"]) for r in g["masters"]] == [("10.5.0.2", 10), ("10.5.0.3", 10)]
    # merged in time order the speakers alternate every second: a period of 1 s, not 2 s
    assert all(s["period"]["mean"] == 1.0 for s in g["speakers"])
    assert [s["adverts"] for s in rep["sources"]] == [10, 10]
    assert not {f["rule"] for f in rep["findings"]} & {"split-brain", "master-gap", "flapping"}


def test_each_file_is_its_own_segment_by_default(tmp_path):
    late, early = _write_split(tmp_path)
    _, rep = run(late, early)
    assert sorted(g["segment"] for g in rep["groups"]) == sorted([late, early])
    assert all(s["period"]["mean"] == 2.0 for g in rep["groups"] for s in g["speakers"])


def test_quoted_glob_is_expanded(tmp_path):
    _write_split(tmp_path)
    _, rep = run(str(tmp_path / "*.pcap"))
    assert len(rep["sources"]) == 2


def test_one_unreadable_file_among_good_ones(tmp_path):
    late, early = _write_split(tmp_path)
    bad = tmp_path / "notes.txt"
    bad.write_text("not a capture\n")
    p = subprocess.run([sys.executable, "-m", "carpscope", "analyze", late, str(bad), early, "--format", "json"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2                                    # some input could not be read
    assert p.stderr.count("carpscope: error:") == 1 and "notes.txt" in p.stderr and "text file" in p.stderr
    rep = json.loads(p.stdout)                                   # the others were analysed
    assert len(rep["sources"]) == 2 and sum(s["adverts"] for s in rep["sources"]) == 20


def test_endless_files_are_refused_not_read(tmp_path):
    """/dev/zero as a passphrase file or a config: a clear error, no hang, no memory blow-up (a
    device is refused before it is read)."""
    cap = _write_split(tmp_path)[0]
    p = subprocess.run([sys.executable, "-m", "carpscope", "analyze", cap, "--passphrase-file", "/dev/zero"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stderr.strip() == \
        "carpscope: error: --passphrase-file /dev/zero: a device, not a regular file"
    p = subprocess.run([sys.executable, "-m", "carpscope", "lint", "/dev/zero", "--format", "json"],
                       capture_output=True, text=True, timeout=60)
    (f,) = json.loads(p.stdout)["findings"]
    assert f["rule"] == "config-parse-error" and "not a regular file" in f["message"]
