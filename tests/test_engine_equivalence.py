"""One engine, two builds, any chunking: the same report (issue 13, "How it is checked").

The engine's typed modules run compiled by mypyc when the package was built with a C compiler,
and as Python otherwise (or with ``CARPSCOPE_PURE_PYTHON=1``): both are the same source, and
both must give byte-identical reports. Checked on every bundled and recorded capture, and on
random scripts of copies, storms, reflections, flaps, pauses, split brains and resignations.
Within one build, how the frames are cut into chunks (a file read in 1 MiB pieces, a pipe, a
live batch) must not change anything either.

Outside CI these tests skip when no compiled build is installed; under CI=true that is a failure
(the CI machine has a compiler: tasks.py installs gcc and the Python headers).
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

try:
    from tests.scenarios import Capture, Carp, Vrrp
except ImportError:
    from scenarios import Capture, Carp, Vrrp

import carpscope

REPO = Path(__file__).resolve().parents[1]
CAPTURES = sorted([*REPO.glob("captures/*.pcap*"), *REPO.glob("captures/public/*.pcap*"),
                   *REPO.glob("tests/data/daemons/*.pcap")])
NET = "10.9.8"


def _compiled() -> None:
    if carpscope.engine_kind() != "compiled":
        if os.environ.get("CI") == "true":
            pytest.fail("the compiled engine is not installed (pip install -e . with a C compiler)")
        pytest.skip("no compiled engine installed here: nothing to compare the Python source with")


def _keys(tmp_path: Path) -> Path:
    """Every passphrase of the bundled captures and recordings, in one private file."""
    lines = []
    for i, f in enumerate(sorted([*REPO.glob("captures/*.keys"), *REPO.glob("tests/data/daemons/*.keys")])):
        for j, line in enumerate(f.read_text().splitlines()):
            if line.strip() and not line.startswith("#"):
                secret = line.split(":", 1)[1] if ":" in line else line
                lines.append(f"k{i}x{j}:{secret}")
    out = tmp_path / "all.keys"
    out.write_text("".join(f"{x}\n" for x in lines))
    os.chmod(out, 0o600)
    return out


def _analyze(paths: list[Path], pure: bool, *extra: str) -> bytes:
    env = dict(os.environ, NO_COLOR="1")
    env.pop("CARPSCOPE_PURE_PYTHON", None)
    if pure:
        env["CARPSCOPE_PURE_PYTHON"] = "1"
    p = subprocess.run([sys.executable, "-m", "carpscope", "analyze", *map(str, paths), "--format", "json",
                        "-q", "--exit-zero", "--isolated", *extra], capture_output=True, cwd=REPO, env=env,
                       timeout=600)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p.stdout


def _same(a: bytes, b: bytes) -> None:
    if a != b:
        ja, jb = json.loads(a), json.loads(b)
        for key in ja:
            assert ja[key] == jb.get(key), f"compiled and Python differ in {key!r}"
        assert a == b


def test_every_recorded_capture_same_report_compiled_and_python(tmp_path):
    _compiled()
    keys = _keys(tmp_path)
    args = ["--passphrase-file", str(keys), "--vip", "61=10.61.4.61", "--vip", "63=10.61.4.63",
            "--vip", "64=10.61.4.64", "--vip", "66=10.61.4.66"]
    compiled = _analyze(CAPTURES, False, *args)
    doc = json.loads(compiled)
    assert len(doc["sources"]) == len(CAPTURES) and sum(s["adverts"] for s in doc["sources"]) > 1000
    assert any(f["rule"] == "split-brain" for f in doc["findings"])
    _same(compiled, _analyze(CAPTURES, True, *args))


# ---------------------------------------------------------------------------- random scripts

def _script(seed: int) -> Capture:
    """A random mix of what the fast paths of an engine would be tempted to treat apart."""
    rng = random.Random(seed)
    cap = Capture()
    t = 0.0
    vhid = 1 + seed % 200
    kind = rng.choice(["freebsd", "ucarp", "openbsd"])
    a = Carp(f"{NET}.2", vhid, advskew=rng.choice([0, 0, 10]), vips=(f"{NET}.{vhid}",), kind=kind)
    b = Carp(f"{NET}.3", vhid, advskew=rng.choice([100, 0, 200]), vips=(f"{NET}.{vhid}",), kind=kind)
    v2 = Vrrp(f"{NET}.12", vhid, rng.choice([100, 150, 255]), (f"{NET}.{vhid}",), version=2)
    v3 = Vrrp(f"{NET}.13", vhid, rng.choice([100, 200]), (f"{NET}.{vhid}",), version=rng.choice([2, 3]))
    for _ in range(rng.randint(6, 14)):
        step = rng.choice(["steady", "copies", "storm", "reflect", "flap", "pause", "split", "resign",
                           "vrrp", "bowout"])
        if step == "steady":
            t = cap.advertise(a, cap.at(t), count=rng.randint(2, 8)) - cap.t0 + a.interval
        elif step == "copies":
            for _ in range(rng.randint(2, 6)):
                fr = a.advert()
                cap.add(cap.at(t), fr)
                cap.add(cap.at(t) + rng.choice([0.00002, 0.0004, 0.003]), fr, ifindex=rng.choice([2, 3]))
                t += a.interval
        elif step == "storm":
            fr = a.advert()
            for k in range(rng.randint(10, 120)):
                cap.add(cap.at(t) + k * 0.0001, fr)
            t += a.interval
        elif step == "reflect":
            fr = a.advert()
            cap.add(cap.at(t), fr)
            cap.add(cap.at(t) + 0.001, a.advert(counter=a.counter - 1, ttl=254))
            t += a.interval
        elif step == "flap":
            for _ in range(rng.randint(1, 4)):
                t = cap.become_master(b, cap.at(t + b.master_down), count=rng.randint(1, 3)) - cap.t0
                t = cap.become_master(a, cap.at(t + a.master_down), count=rng.randint(1, 3)) - cap.t0
        elif step == "pause":
            t += rng.choice([0.5, 2.9, 3.2, 4.0, 12.0])
        elif step == "split":
            end = t + rng.uniform(1, 8)
            cap.advertise(a, cap.at(t), until=cap.at(end))
            cap.become_master(b, cap.at(t + rng.uniform(0, 1)), until=cap.at(end))
            t = end
        elif step == "resign":
            cap.add(cap.at(t), dataclasses.replace(v2, priority=0).advert())
            t += 0.3
        elif step == "vrrp":
            end = t + rng.uniform(2, 6)
            cap.become_master(v2, cap.at(t), until=cap.at(end))
            if rng.random() < 0.5:
                cap.become_master(v3, cap.at(t + rng.uniform(0, 3)), until=cap.at(end))
            t = end
        elif step == "bowout":
            cap.add(cap.at(t), a.advert(advbase=255, advskew=255))
            t += 0.5
    return cap


@pytest.mark.parametrize("batch", range(3))
def test_random_scripts_same_report_compiled_and_python(tmp_path, batch):
    _compiled()
    keys = tmp_path / "k"
    keys.write_text("site:tr4nsit-k3y\n")
    os.chmod(keys, 0o600)
    paths = [_script(batch * 100 + i).write(tmp_path / f"s{i}.pcap") for i in range(8)]
    compiled = _analyze(paths, False, "--passphrase-file", str(keys))
    assert sum(s["adverts"] for s in json.loads(compiled)["sources"]) > 50
    _same(compiled, _analyze(paths, True, "--passphrase-file", str(keys)))


# ---------------------------------------------------------------------------- chunking

def _report(frames, cut: list[int]) -> dict:
    """The JSON report of ``frames`` fed to one engine in the chunks ``cut`` makes."""
    from carpscope.engine import Engine
    from carpscope.model import SourceInfo
    from carpscope.report.jsonreport import report_json
    eng = Engine()
    info = SourceInfo("s.pcap")
    eng.sources.append(info)
    eng.numberings["s.pcap"] = "all"
    lo = 0
    for hi in [*cut, len(frames)]:
        eng.chunk(frames[lo:hi], "s.pcap", info)
        lo = hi
    return report_json(eng.finish())


@pytest.mark.parametrize("seed", range(4))
def test_chunking_never_changes_the_report(tmp_path, seed):
    """Whatever the chunk boundaries (a read buffer, a pipe's pieces, a live batch), the same
    frames give the same report."""
    from carpscope.capture import open_source
    path = _script(500 + seed).write(tmp_path / "s.pcap")
    src = open_source(str(path))
    frames = [f for ch in src.chunks() for f in ch]
    src.close()
    rng = random.Random(seed)
    whole = _report(frames, [])
    assert whole["groups"] and whole["sources"][0]["adverts"] > 0
    assert _report(frames, list(range(1, len(frames)))) == whole
    assert _report(frames, sorted(rng.sample(range(1, len(frames)), min(7, len(frames) - 1)))) == whole
