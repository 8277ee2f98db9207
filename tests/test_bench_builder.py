"""The benchmark's captures, built small, yield exactly what was planted in them, and the
benchmark's checks tell a right report from a wrong one.

bench/make_captures.py builds the 2M-frame benchmark capture with ``mixed(path, scale)``; here
the same generator runs at scale 0.01 (20,000 frames), so a benchmark number always measures
an analysis that finds the split brain with its cause, keeps quiet about the failover and
verifies every CARP group with the key it was signed with. The dense kinds (dense, groups250,
storm, loop, flap) are built with a few thousand frames and analysed; bench/run.py's checks
must accept those reports and reject each one altered, and its targets must follow the
measurements.
"""
from __future__ import annotations

import copy
import json
import shutil
import stat
import struct
import sys

import pytest

from conftest import REPO, run_cli

sys.path.insert(0, str(REPO / "bench"))
import make_captures  # noqa: E402
import run as bench  # noqa: E402

SCALE = 0.01


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    man = make_captures.mixed(d / "mixed.pcap", scale=SCALE)
    args = [str(d / "mixed.pcap"), "--passphrase-file", man["keys"], "--format", "json", "--fail-on", "never"]
    for v in man["vip_args"]:
        args += ["--vip", v]
    rc, out, err = run_cli("analyze", *args)
    assert rc == 0, err
    return d, man, json.loads(out), err


def test_capture_shape(built):
    d, man, rep, _ = built
    assert man["frames"] == int(2_000_000 * SCALE)
    assert rep["sources"][0]["adverts"] == man["protocol112"]
    assert rep["sources"][0]["malformed"] == 0
    # CARP is about 1 % of the frames (plus VRRP and the GARPs of new masters)
    assert 0.01 <= man["protocol112"] / man["frames"] <= 0.03
    assert man["garp"] > 0 and man["background"] > 0.95 * man["frames"]


def test_keys_file(built):
    d, man, _, err = built
    keys = d / "mixed.keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    labels = [line.split(":", 1)[0] for line in keys.read_text().splitlines()]
    assert labels == ["prod", "dmz", "lab"]
    assert "readable by group" not in err


def test_exactly_the_planted_findings(built):
    _, _, rep, _ = built
    found = sorted((f["rule"], f["vhid"], f["cause"]) for f in rep["findings"])
    assert found == [("passphrase-mismatch", 5, "passphrase"), ("split-brain", 5, "passphrase")]


def test_split_brain_and_its_cause(built):
    _, man, rep, _ = built
    sb = next(f for f in rep["findings"] if f["rule"] == "split-brain")
    assert sb["evidence"]["speakers"] == ["10.0.5.2", "10.0.5.3"]
    assert "10.0.5.2 verifies with key 'prod', 10.0.5.3 with 'lab'" in sb["evidence"]["why"]
    start, stop = man["planted"]["split-brain"]["from_to"]
    base = make_captures.BASE_TS
    # the window opens with the rogue's third advert at the latest and closes when the rogue
    # has been silent for its master-down interval
    assert base + start <= sb["first_seen"] <= base + start + 3 * 1.2
    assert base + stop - 1.2 <= sb["last_seen"] <= base + stop + 3.5 * 1.2
    pm = next(f for f in rep["findings"] if f["rule"] == "passphrase-mismatch")
    assert pm["evidence"]["key_labels"] == ["lab", "prod"]


def test_failover_without_finding(built):
    _, man, rep, _ = built
    g = next(g for g in rep["groups"] if g["protocol"] == "carp" and g["vhid"] == 4)
    # the backup takes over one master-down interval (3 x 1 s + 100/256 s) after the master's
    # last advert: a change of master after a short silence, not an outage (no master-gap)
    assert [(c["from"], c["to"], c["kind"]) for c in g["changes"]] == [
        (None, "10.0.4.2", "initial"), (None, "10.0.4.3", "after-gap")]
    a, b = g["masters"]
    assert (a["ip"], b["ip"]) == ("10.0.4.2", "10.0.4.3") and g["master"] == "10.0.4.3"
    assert 3 + 100 / 256 <= b["from"] - a["to"] <= 3 + 100 / 256 + 0.02
    assert abs(a["to"] - (make_captures.BASE_TS + man["planted"]["failover"]["at"])) <= 1.01
    assert not [f for f in rep["findings"] if f["vhid"] == 4]


def test_every_carp_group_verifies_with_its_key(built):
    _, man, rep, _ = built
    want = man["planted"]["auth"] | {"5": {"prod", "lab"}}
    got = {}
    for g in rep["groups"]:
        if g["protocol"] != "carp":
            continue
        for s in g["speakers"]:
            assert s["auth"]["status"] == "ok", (g["vhid"], s)
            assert s["auth"]["inferred_vips"] is False
            got.setdefault(str(g["vhid"]), set()).add(s["auth"]["key"])
    assert {k: (v if isinstance(v, set) else {v}) for k, v in want.items()} == got
    protos = sorted((g["protocol"], g["vhid"]) for g in rep["groups"])
    assert protos == [("carp", 1), ("carp", 2), ("carp", 3), ("carp", 4), ("carp", 5), ("carp", 6),
                      ("vrrp2", 21), ("vrrp3", 20)]


def test_builder_is_deterministic(built, tmp_path):
    d, man, _, _ = built
    again = make_captures.mixed(tmp_path / "mixed.pcap", scale=SCALE)
    assert (tmp_path / "mixed.pcap").read_bytes() == (d / "mixed.pcap").read_bytes()
    assert {k: v for k, v in again.items() if k != "keys"} == {k: v for k, v in man.items() if k != "keys"}


# ---------------------------------------------------------------------------- the dense kinds

SMALL = {
    "dense": lambda p: make_captures.dense(p, adverts=3000),
    "groups250": lambda p: make_captures.groups250(p, adverts=2000, groups=20),
    "storm": lambda p: make_captures.storm(p, frames=20_000),
    "loop": lambda p: make_captures.loop(p, frames=4000, groups=10),
    "flap": lambda p: make_captures.flap(p, adverts=1500, groups=10),
    "flapslow": lambda p: make_captures.flap(p, adverts=1500, groups=10, runs=make_captures.FLAPSLOW_RUNS, kind="flapslow"),
}


def analyse(path, man) -> dict:
    args = [str(path), "--passphrase-file", man["keys"], "--format", "json", "--fail-on", "never"]
    for v in man["vip_args"]:
        args += ["--vip", v]
    rc, out, err = run_cli("analyze", *args)
    assert rc == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Each dense kind built small under its benchmark name (so make_captures.ensure and
    bench_capture take it as built), with carpscope's report."""
    d = tmp_path_factory.mktemp("bench-small")
    out = {}
    for name, build in SMALL.items():
        man = build(d / f"{name}.pcap")
        out[name] = (man, analyse(d / f"{name}.pcap", man))
    return d, out


@pytest.mark.parametrize("name", list(SMALL))
def test_small_kind_is_as_planted(small, name):
    _, built = small
    man, rep = built[name]
    assert man["kind"] == name and man["frames"] == man["protocol112"]
    assert bench.check_report(rep, man) == []


def test_storm_manifest_and_finding(small):
    man, rep = small[1]["storm"]
    st = man["planted"]["storm"]
    # one advert a second, copied every 0.1 ms until the next: 20,000 frames are 2 adverts
    assert st["adverts"] == 2 and st["adverts"] + st["copies"] == man["frames"]
    (f,) = rep["findings"]
    assert (f["rule"], f["severity"], f["vhid"], f["evidence"]["speakers"]) == (
        "advert-storm", "error", st["vhid"], [st["speaker"]])


def test_loop_is_a_storm_on_every_group(small):
    man, rep = small[1]["loop"]
    groups = man["planted"]["groups"]
    assert len(groups) == 10
    for key, g in groups.items():
        (n,) = g["speakers"].values()
        assert g["copies"] == 19 * n          # 20 frames per advert, the last burst may be cut
    assert sorted(f["vhid"] for f in rep["findings"]) == list(range(1, 11))
    assert {f["rule"] for f in rep["findings"]} == {"advert-storm"}


def test_loop_frames_in_time_order(small):
    """The bursts of the groups interleave as on the wire: timestamps never go back."""
    d, _ = small
    data = (d / "loop.pcap").read_bytes()
    pos, last, n = 24, 0.0, 0
    while pos < len(data):
        sec, usec, incl, _ = struct.unpack_from("<IIII", data, pos)
        ts = sec + usec / 1e6
        assert ts >= last, f"frame {n + 1} goes back in time"
        last, pos, n = ts, pos + 16 + incl, n + 1
    assert n == 4000


def test_flap_runs_counted(small):
    man, rep = small[1]["flap"]
    for g in rep["groups"]:
        want = man["planted"]["groups"][str(g["vhid"])]
        assert len(g["masters"]) + g["runs_dropped"] == want["runs"] > 10
        assert {s["ip"]: s["adverts"] for s in g["speakers"]} == want["speakers"]
    assert {(f["rule"], f["severity"]) for f in rep["findings"]} == {("flapping", "warning")}


def _wrong(name, rep, man, change) -> list[str]:
    rep = copy.deepcopy(rep)
    change(rep, man)
    return bench.check_report(rep, man)


def _finding(rule, severity, vhid, segment):
    return {"rule": rule, "severity": severity, "vhid": vhid, "segment": segment, "cause": None, "evidence": {}}


def test_checks_reject_wrong_reports(small):
    """A fast wrong answer must not pass: each alteration of a right report is caught."""
    built = small[1]

    def seg(rep):
        return rep["groups"][0]["segment"]

    def fewer_adverts(rep, man):
        rep["sources"][0]["adverts"] -= 1

    def extra_finding(rep, man):
        rep["findings"].append(_finding("vhid-conflict", "error", rep["groups"][0]["vhid"], seg(rep)))

    def as_copies(rep, man):
        rep["findings"][0]["rule"], rep["findings"][0]["severity"] = "advert-copies", "info"

    def other_speaker(rep, man):
        rep["findings"][0]["evidence"]["speakers"] = ["10.2.7.3"]

    def copies_lost(rep, man):
        rep["findings"][0]["evidence"]["copies"] -= 1

    def one_group_unflagged(rep, man):
        rep["findings"].pop()

    def error_on_flap(rep, man):
        rep["findings"].append(_finding("split-brain", "error", rep["groups"][0]["vhid"], seg(rep)))

    def run_lost(rep, man):
        rep["groups"][0]["masters"].pop()

    def speaker_adverts(rep, man):
        rep["groups"][0]["speakers"][0]["adverts"] += 1

    def group_lost(rep, man):
        rep["groups"].pop()

    def hmac_failed(rep, man):
        rep["groups"][0]["speakers"][0]["auth"]["status"] = "mismatch"

    cases = [
        ("dense", fewer_adverts), ("dense", extra_finding),
        ("groups250", extra_finding), ("groups250", speaker_adverts), ("groups250", group_lost),
        ("groups250", hmac_failed),
        ("storm", as_copies), ("storm", other_speaker), ("storm", copies_lost), ("storm", extra_finding),
        ("loop", as_copies), ("loop", copies_lost), ("loop", one_group_unflagged), ("loop", speaker_adverts),
        ("flap", one_group_unflagged), ("flap", error_on_flap), ("flap", run_lost), ("flap", speaker_adverts),
    ]
    for name, change in cases:
        man, rep = built[name]
        assert _wrong(name, rep, man, change), f"{name}: {change.__name__} passed the check"


def test_mixed_check_rejects_a_missing_split_brain(built):
    _, man, rep, _ = built
    assert bench.check_report(rep, man) == []
    rep = copy.deepcopy(rep)
    rep["findings"] = [f for f in rep["findings"] if f["rule"] != "split-brain"]
    assert bench.check_report(rep, man)


def test_check_tshark(tmp_path):
    man = {"kind": "storm", "protocol112": 3}
    ok = bench.Measure(1.0, 1.0, 1000, 0)
    out = tmp_path / "t.txt"
    out.write_text("1\t10.2.7.2\t7\t0x01\n2\t10.2.7.2\t7\t0x01\n3\t10.2.7.2\t7\t0x02\n")
    assert bench.check_tshark(out, man, ok).startswith("ok")
    out.write_text("1\t10.2.7.2\t7\t0x01\n2\t10.2.7.2\t7\t0x01\n")
    assert bench.check_tshark(out, man, ok).startswith("WRONG")          # a line short
    out.write_text("1\t10.2.7.2\t\t\n2\t10.2.7.2\t\t\n3\t10.2.7.2\t\t\n")
    assert bench.check_tshark(out, man, ok).startswith("WRONG")          # not decoded as CARP
    assert bench.check_tshark(out, man, bench.Measure(1.0, 1.0, 1000, 0, True)).startswith("stopped")


def test_compare_reports(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text('{"findings": [], "groups": [1]}')
    b.write_text('{"findings": [], "groups": [1]}')
    assert bench.compare_reports(a, b) == ""
    b.write_text('{"findings": [], "groups": [2]}')
    assert "DIFFERS" in bench.compare_reports(a, b) and "groups" in bench.compare_reports(a, b)


def _tool(wall, rss=30.0, check="ok: as planted", timed_out=False):
    return {"wall": wall, "wall_min": wall, "cpu": wall, "rss_mb": rss, "timed_out": timed_out, "check": check,
            "failed": False}


def test_targets_follow_the_measurements():
    def dense(c, ts, check="ok: as planted", rss=30.0):
        return {"kind": "dense", "protocol112": 300_000,
                "tools": {"carpscope": _tool(c, rss, check), "tshark": _tool(ts, 150.0)}}
    rows = bench.targets({"dense": dense(0.5, 3.0)})
    assert rows[0][2].startswith("met (stretch 10x not met)")
    assert bench.targets({"dense": dense(0.25, 3.0)})[0][2] == "met (stretch 10x met)"
    assert bench.targets({"dense": dense(1.0, 3.0)})[0][2] == "NOT met"
    # fast but wrong: not met
    assert bench.targets({"dense": dense(0.1, 3.0, "WRONG: unexpected findings")})[0][2].startswith("NOT met")
    # memory: every kind, and flatness between sizes
    res = {"flap": dense(0.5, 3.0, rss=60.0), "flap1m": {"kind": "flap", "protocol112": 10 ** 6,
                                                       "tools": {"carpscope": _tool(2.0, 63.0)}}}
    rows = {r[0]: r[2] for r in bench.targets(res)}
    assert rows["peak RSS <= 100 MB on every kind"] == "met"
    assert [v for k, v in rows.items() if k.startswith("peak RSS flat")] == ["met"]
    res["flap1m"]["tools"]["carpscope"]["rss_mb"] = 120.0
    rows = {r[0]: r[2] for r in bench.targets(res)}
    assert rows["peak RSS <= 100 MB on every kind"] == "NOT met"
    assert [v for k, v in rows.items() if k.startswith("peak RSS flat")] == ["NOT met"]
    # mixed against tcpdump, start-up against python -c pass
    mixed = {"kind": "mixed", "protocol112": 26_000, "tools": {"carpscope": _tool(0.5), "tcpdump": _tool(0.45)}}
    start = {"ratio": 3.0, "carpscope": 0.06, "python": 0.02, "runs": 5, "check": "ok: 10 adverts"}
    rows = bench.targets({"mixed": mixed}, start)
    assert [r[2] for r in rows if r[0].startswith("mixed")] == ["met"]
    assert [r[2] for r in rows if r[0].startswith("start-up")] == ["NOT met"]
    mixed["tools"]["carpscope"]["wall"] = 0.6
    assert [r[2] for r in bench.targets({"mixed": mixed}) if r[0].startswith("mixed")] == ["NOT met"]
    assert [r[2] for r in bench.targets({}, dict(start, ratio=1.8)) if r[0].startswith("start-up")] == ["met"]


def test_control_row_prices_the_changes():
    """flapslow is flap's control: the row gives its ratio to tshark (no target) and what each of
    flap's extra changes of master costs; it is absent when the control was not run."""
    def kind(c, ts, changes, check="ok: as planted"):
        return {"kind": "flap", "protocol112": 300_000, "changes": changes,
                "tools": {"carpscope": _tool(c, check=check), "tshark": _tool(ts, 150.0)}}
    rows = bench.targets({"flap": kind(1.0, 3.0, 85_000), "flapslow": kind(0.6, 3.0, 5_000)})
    (row,) = [r for r in rows if r[0].startswith("flapslow")]
    assert row[1] == "5.00x (3.000 s vs 0.600 s); flap takes +0.400 s more for 80,000 more changes of master (5.0 µs each)"
    assert row[2] == "control"
    rows = bench.targets({"flapslow": kind(0.6, 3.0, 5_000, "WRONG: unexpected findings")})
    assert [r[2] for r in rows if r[0].startswith("flapslow")] == ["control (wrong output)"]
    assert not [r for r in bench.targets({"flap": kind(1.0, 3.0, 85_000)}) if r[0].startswith("flapslow")]


def test_flapslow_is_flap_with_few_changes(small):
    """The control has flap's speakers and advert count, far fewer changes and no finding."""
    (fman, frep), (sman, srep) = small[1]["flap"], small[1]["flapslow"]
    assert sman["kind"] == "flapslow" and sman["protocol112"] == fman["protocol112"]
    assert {s["ip"] for g in srep["groups"] for s in g["speakers"]} == {s["ip"] for g in frep["groups"] for s in g["speakers"]}
    runs = lambda man: sum(g["runs"] for g in man["planted"]["groups"].values())   # noqa: E731
    assert runs(sman) * 10 < runs(fman)
    assert srep["findings"] == []


def test_engine_probe(tmp_path):
    installed = bench.engine_probe(bench.python_env(tmp_path))
    assert installed["engine"] in ("compiled", "python")
    pure = bench.engine_probe(bench.python_env(tmp_path, pure=True))
    assert (pure["engine"], pure["sha1"]) == ("python", "none: CPython's sha1 objects")


@pytest.mark.skipif(not all(shutil.which(t) for t in ("tcpdump", "tshark")), reason="needs tcpdump and tshark")
def test_bench_capture_end_to_end(small):
    """One benchmark round on the small storm capture: every tool runs and every output checks."""
    d, _ = small
    res = bench.bench_capture("storm", d, repeat=1, tshark_timeout=60, with_tshark=True, with_pure=True)
    checks = {t: v["check"] for t, v in res["tools"].items()}
    assert set(checks) == {"carpscope", "tcpdump", "carpscope (pure Python)", "tshark"}
    assert all(c.startswith("ok") for c in checks.values()), checks
    assert "protochain 112" in res["filter"]
    assert "-e carp.counter" in res["tools"]["tshark"]["cmd"]


def test_unknown_capture_is_refused(capsys):
    assert bench.main(["--captures", "nosuch", "--no-write"]) == 2
    assert "unknown capture nosuch" in capsys.readouterr().err


def test_startup_measure(tmp_path):
    """The start-up row: carpscope's machine-readable run on a tiny capture against python -c
    pass, the ratio of the medians, the report checked."""
    st = bench.startup(tmp_path, runs=2)
    assert st["check"].startswith("ok: 10 adverts")
    assert st["carpscope"] > st["python"] > 0
    assert st["ratio"] == pytest.approx(st["carpscope"] / st["python"])
    # the floor (python -m, argparse, json) is measured beside them, and shown with the ratio
    assert st["carpscope"] > st["floor"] > st["python"]
    assert f"floor (`python -m`, argparse and json alone, bench/startup_floor.py) {st['floor'] * 1000:.1f} ms" \
        in bench.targets({}, st)[-1][1]
    assert (tmp_path / "pycache").is_dir()          # bytecode cached outside the source tree
    # which carpscope ran is stated: an editable install's finder slows both sides
    assert st["install"] in ("editable install", "regular install", "not installed")
    assert st["engine"] in ("compiled", "python")
    assert st["install"] in bench.targets({}, st)[-1][1]
