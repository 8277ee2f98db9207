"""carpscope against what real daemons do (issue 14): recordings of ucarp and keepalived.

Every case of tests/harness/daemon_cases.py is checked twice:

* ``test_fixture``: on its saved recording in tests/data/daemons/ (pcap + ground truth JSON,
  made by ``python -m tests.harness.record_daemons``): fast, no root;
* ``test_live``: recorded now, in network namespaces, from the real daemons (needs root; skips
  otherwise, fails under CI=true). Each case is recorded once per session and all its checks
  read that recording; a run that does not show what the case needs is recorded again.

The ground truth never comes from carpscope: who was MASTER when comes from the daemons' own
state scripts, the wire facts from tests/harness/pcapread.py (see tests/harness/truth.py).

Checks, per case (from its ``expect``):

* ``present:<rule>`` / ``absent:<rule>``: a finding of that rule for the case's VHIDs/VRIDs;
* ``no-error``: no finding at error severity (the near misses);
* ``split-brain-windows``: the split brain of the expected pair is reported in windows that
  match the daemons' dual-master windows (below), and their sum;
* ``split-brain-cause``: its cause is the expected one;
* ``message-not:<text>``: no finding of the case says <text>;
* ``groups-once`` / ``findings-once``: one group and at most one finding of each rule per id
  (``tcpdump -i any`` copies of one frame);
* ``storm``: a finding for the copied speaker gives the copies' rate and the factor over the
  advert interval, in its evidence, as numbers under keys named ``rate...`` and ``factor...``
  (e.g. ``rate_per_s``, ``factor``), each within 30 % of what the recording shows.

Window tolerance. carpscope sees adverts, the daemons report states. Both daemons send an
advert the moment they become master (ucarp carp_master_down, keepalived
vrrp_state_goto_master), ucarp sends one more when it yields to a preferred master, keepalived
a priority-0 advert when it stops (docs/implementations.md), and their state scripts run
within milliseconds of that; what the wire cannot show more finely than about one
advertisement interval is a master that goes quiet. So each endpoint of a reported window must be within one advertisement interval
of the pair (the longer) plus 0.5 s of the daemons' (scheduling, script start-up), and the
sum within that tolerance times the number of windows. Daemon windows no longer than 1.5
intervals (a preempting handover: ucarp reads packets up to 1 s late) may be reported or
not; longer ones must be.

xfail(strict=True) marks exactly the checks that fail today because of the analysis logic,
with the issue item; they turn into failures (XPASS) when the logic is fixed, and the mark is
then removed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

try:
    from tests.harness import Lab, Ucarp, require_root, tool
    from tests.harness.daemon_cases import CASES, UC_NET, Case
    from tests.harness.record_daemons import record
except ImportError:          # pytest's rootdir-less import mode puts tests/ itself on sys.path
    from harness import Lab, Ucarp, require_root, tool
    from harness.daemon_cases import CASES, UC_NET, Case
    from harness.record_daemons import record

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "daemons"
SLACK = 0.5              # s, added to the advert interval for each window endpoint
OPTIONAL_INTERVALS = 1.5  # daemon windows this short (in intervals) need not be reported
STORM_TOLERANCE = 0.3

ITEM = {
    1: "issue 14 item 1: a priority-0 resignation is taken as the speaker's priority",
    2: "issue 14 item 2: counter adoption by ucarp is reported as a replay",
    3: "issue 14 item 3: split brain across VRRP versions is missed",
    4: "issue 14 item 4: split brain with an almost silent second master is missed",
    5: "issue 14 item 5: split-brain windows are overstated",
    6: "issue 14 item 6: a storm of copies has no finding with its rate and factor",
    7: "issue 14 item 7: live split-brain-end when the capture stops while both are still master",
    8: "issue 14 item 8: tcpdump -i any copies of one frame triple groups and findings",
    9: "issue 14 item 9: the same capture given twice is merged and raises counter-replay",
}

# (case, check) -> issue item whose analysis logic makes it fail today
XFAIL: dict[tuple[str, str], int] = {}     # every check passes since the issue-14 fixes


# ---------------------------------------------------------------------------- running carpscope

def analyze(pcap: Path, truth: dict, keys_dir: Path, work: Path, *extra: str) -> dict:
    """``carpscope analyze --format json`` with the case's keys (a private copy, mode 600) and
    VIPs; returns the report."""
    args = [sys.executable, "-m", "carpscope", "analyze", str(pcap), *extra, "--format", "json",
            "--exit-zero", "-q", "--isolated"]
    if truth["analyze"]["keys_file"]:
        keys = work / f"{truth['case']}.keys"
        keys.write_text((keys_dir / truth["analyze"]["keys_file"]).read_text())
        os.chmod(keys, 0o600)
        args += ["--passphrase-file", str(keys)]
    for vhid, vips in truth["analyze"]["vips"].items():
        args += ["--vip", f"{vhid}=" + ",".join(vips)]
    p = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=120,
                       env=dict(os.environ, NO_COLOR="1"))
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


# ---------------------------------------------------------------------------- checks

def _ids(truth: dict) -> set[int]:
    return {int(k.split(":")[1]) for k in truth["wire"]["adverts"]}


def _findings(report: dict, truth: dict, rule: str | None = None) -> list[dict]:
    ids = _ids(truth)
    return [f for f in report["findings"] if f.get("vhid") in ids and (rule is None or f["rule"] == rule)]


def _interval(truth: dict, ident: str, speakers: list[str]) -> float:
    """The longer advertisement interval of the pair, from their adverts (priority 0 aside)."""
    out = 0.0
    for ip in speakers:
        for p in truth["wire"]["adverts"].get(ident, {}).get(ip, {}).get("params", []):
            if "advbase" in p:
                out = max(out, p["advbase"] + p["advskew"] / 256)
            elif p.get("priority"):
                out = max(out, p["interval_cs"] / 100)
    return out or 1.0


def _split_brain(report: dict, truth: dict) -> tuple[dict | None, list[str]]:
    exp = truth["expect"]["split_brain"]
    vhid = int(exp["id"].split(":")[1])
    for f in report["findings"]:
        if f["rule"] == "split-brain" and f.get("vhid") == vhid and \
                set(exp["speakers"]) <= set((f.get("evidence") or {}).get("speakers", [])):
            return f, []
    return None, [f"no split-brain finding for {exp['id']} naming {exp['speakers']}"]


def check_present(report, truth, rule):
    return [] if _findings(report, truth, rule) else [f"no {rule} finding for ids {sorted(_ids(truth))}"]


def check_absent(report, truth, rule):
    return [f"unexpected {rule}: {f['message']}" for f in _findings(report, truth, rule)]


def check_no_error(report, truth, _):
    return [f"error {f['rule']}: {f['message']}" for f in report["findings"] if f["severity"] == "error"]


def check_message_not(report, truth, text):
    return [f"{f['rule']} says {text!r}: {f['message']}" for f in _findings(report, truth)
            if text in f["message"] or text in json.dumps(f.get("evidence"))]


def check_split_brain_cause(report, truth, _):
    f, problems = _split_brain(report, truth)
    if f is None:
        return problems
    want = truth["expect"]["split_brain"]["cause"]
    return [] if f.get("cause") == want else [f"cause {f.get('cause')!r}, expected {want!r}: {f['message']}"]


def check_split_brain_windows(report, truth, _):
    f, problems = _split_brain(report, truth)
    if f is None:
        return problems
    exp = truth["expect"]["split_brain"]
    t0 = truth["capture"]["start_epoch"]
    tol = _interval(truth, exp["id"], exp["speakers"]) + SLACK
    optional_below = OPTIONAL_INTERVALS * (tol - SLACK)
    got = [(w["from"] - t0, w["to"] - t0) for w in f["evidence"]["windows"]]
    daemon = [w for w in truth["daemons"]["dual_master"].get(exp["id"], [])
              if set(exp["speakers"]) <= set(w["src_ips"])]
    out = []
    for lo, hi in got:
        if not any(lo <= w["to_s"] + tol and hi >= w["from_s"] - tol for w in daemon):
            out.append(f"reported window {lo:.2f}-{hi:.2f} s matches no dual-master window of the daemons")
    required = [w for w in daemon if w["seconds"] > optional_below]
    for w in required:
        mine = [(lo, hi) for lo, hi in got if lo <= w["to_s"] + tol and hi >= w["from_s"] - tol]
        if not mine:
            out.append(f"daemons' window {w['from_s']:.2f}-{w['to_s']:.2f} s not reported")
            continue
        lo, hi = min(m[0] for m in mine), max(m[1] for m in mine)
        if abs(lo - w["from_s"]) > tol or abs(hi - w["to_s"]) > tol:
            out.append(f"reported {lo:.2f}-{hi:.2f} s for the daemons' {w['from_s']:.2f}-{w['to_s']:.2f} s "
                       f"(tolerance {tol:.2f} s per end)")
    total = f["evidence"].get("seconds", sum(hi - lo for lo, hi in got))
    n = max(1, len(daemon))
    most = sum(w["seconds"] for w in daemon) + tol * n
    least = sum(w["seconds"] for w in required) - tol * max(1, len(required))
    if not least <= total <= most:
        out.append(f"reported {total:.2f} s in all; the daemons were both master for "
                   f"{sum(w['seconds'] for w in daemon):.2f} s in {len(daemon)} window(s)")
    return out


def check_groups_once(report, truth, _):
    counts: dict[int, int] = {}
    for g in report["groups"]:
        if g["vhid"] in _ids(truth):
            counts[g["vhid"]] = counts.get(g["vhid"], 0) + 1
    return [f"id {k} reported as {n} groups (segments " +
            ", ".join(g["segment"] for g in report["groups"] if g["vhid"] == k) + ")"
            for k, n in counts.items() if n != 1]


def check_findings_once(report, truth, _):
    counts: dict[tuple, int] = {}
    for f in _findings(report, truth):
        counts[(f["rule"], f["vhid"])] = counts.get((f["rule"], f["vhid"]), 0) + 1
    return [f"{rule} for id {vhid} reported {n} times" for (rule, vhid), n in counts.items() if n > 1]


def _numbers(evidence, word: str) -> list[float]:
    out = []
    if isinstance(evidence, dict):
        for k, v in evidence.items():
            if word in k.lower() and isinstance(v, (int, float)) and not isinstance(v, bool):
                out.append(float(v))
            else:
                out += _numbers(v, word)
    elif isinstance(evidence, list):
        for v in evidence:
            out += _numbers(v, word)
    return out


def check_storm(report, truth, _):
    bursts = [b for b in truth["wire"]["copies"]["bursts"] if b["rate_per_s"] and b["frames"] >= 100]
    if not bursts:
        return ["the recording has no burst of 100 copies or more"]
    rates = sorted(b["rate_per_s"] for b in bursts)
    factors = sorted(b["factor"] for b in bursts)
    rate, factor = rates[len(rates) // 2], factors[len(factors) // 2]
    near = lambda x, want: abs(x - want) <= STORM_TOLERANCE * want  # noqa: E731
    for f in _findings(report, truth):
        ev = f.get("evidence") or {}
        if any(near(r, rate) for r in _numbers(ev, "rate")) and any(near(x, factor) for x in _numbers(ev, "factor")):
            return []
    return [f"no finding gives the copies' rate (~{rate:.0f}/s) and factor (~{factor}) in its evidence; "
            f"findings: {[(f['rule'], f['message'][:80]) for f in _findings(report, truth)]}"]


CHECKS = {"present": check_present, "absent": check_absent, "no-error": check_no_error,
          "message-not": check_message_not, "split-brain-cause": check_split_brain_cause,
          "split-brain-windows": check_split_brain_windows, "groups-once": check_groups_once,
          "findings-once": check_findings_once, "storm": check_storm}


def checks_of(case: Case) -> list[str]:
    exp = case.expect
    out = [f"present:{r}" for r in exp.get("findings_present", [])]
    out += [f"absent:{r}" for r in exp.get("findings_absent", [])]
    if exp.get("no_error"):
        out.append("no-error")
    if exp.get("split_brain"):
        out += ["split-brain-windows", "split-brain-cause"]
    out += [f"message-not:{t}" for t in exp.get("message_not", [])]
    if exp.get("groups_once"):
        out += ["groups-once", "findings-once"]
    if exp.get("storm"):
        out.append("storm")
    return out


def run_check(report: dict, truth: dict, check: str) -> list[str]:
    name, _, arg = check.partition(":")
    return CHECKS[name](report, truth, arg)


def _params():
    for case in CASES.values():
        for check in checks_of(case):
            item = XFAIL.get((case.name, check))
            marks = [pytest.mark.xfail(strict=True, reason=ITEM[item])] if item else []
            yield pytest.param(case.name, check, marks=marks, id=f"{case.name}::{check}")


PARAMS = list(_params())


# ---------------------------------------------------------------------------- the table itself

def test_every_xfail_names_a_check_that_exists():
    names = {(c, k) for c in CASES for k in checks_of(CASES[c])}
    assert set(XFAIL) <= names, set(XFAIL) - names


@pytest.mark.parametrize("name", sorted(CASES))
def test_expectations_use_known_rules(name):
    from carpscope.rules import catalogue
    exp = CASES[name].expect
    rules = exp.get("findings_present", []) + exp.get("findings_absent", [])
    assert set(rules) <= set(catalogue()), set(rules) - set(catalogue())
    assert not set(exp.get("findings_present", [])) & set(exp.get("findings_absent", []))


# ---------------------------------------------------------------------------- fixtures

_FIXTURE_REPORTS: dict[str, tuple[dict, dict]] = {}


def fixture_report(name: str, tmp_path_factory) -> tuple[dict, dict]:
    if name not in _FIXTURE_REPORTS:
        path = DATA / f"{name}.json"
        if not path.exists():
            pytest.fail(f"no saved recording of {name}: python -m tests.harness.record_daemons {name}")
        truth = dict(json.loads(path.read_text()), expect=CASES[name].expect)   # the code's, not the saved copy
        work = tmp_path_factory.mktemp(f"fx-{name}")
        _FIXTURE_REPORTS[name] = (truth, analyze(DATA / truth["pcap"], truth, DATA, work))
    return _FIXTURE_REPORTS[name]


@pytest.mark.parametrize("name,check", PARAMS)
def test_fixture(name, check, tmp_path_factory):
    truth, report = fixture_report(name, tmp_path_factory)
    assert CASES[name].require(truth) == [], "the saved recording no longer shows what the case needs"
    problems = run_check(report, truth, check)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", sorted(CASES))
def test_saved_recording_is_consistent(name):
    """The saved ground truth matches its pcap and holds no passphrase."""
    try:
        from tests.harness.pcapread import read_adverts
    except ImportError:
        from harness.pcapread import read_adverts
    truth = json.loads((DATA / f"{name}.json").read_text())
    pcap = DATA / truth["pcap"]
    assert pcap.stat().st_size == truth["capture"]["bytes"] <= CASES[name].max_bytes
    counts: dict = {}
    for a in read_adverts(pcap):
        counts[(a.ident, a.src)] = counts.get((a.ident, a.src), 0) + 1
    for ident, speakers in truth["wire"]["adverts"].items():
        for src, sp in speakers.items():
            assert counts.get((ident, src)) == sp["adverts"], (ident, src)
    text = (DATA / f"{name}.json").read_text()
    for pw in CASES[name].keys.values():
        assert pw not in text
    if truth["keys_file"]:
        assert (DATA / truth["keys_file"]).read_text() == "".join(
            f"{k}:{v}\n" for k, v in CASES[name].keys.items())


def test_same_capture_twice_is_refused_or_counted_once(tmp_path):
    """Naming one file twice is either refused (exit 2, one line) or read once: the same
    adverts, no counter-replay."""
    truth = json.loads((DATA / "ucarp-takeover.json").read_text())
    pcap = DATA / truth["pcap"]
    once = analyze(pcap, truth, DATA, tmp_path)
    args = [sys.executable, "-m", "carpscope", "analyze", str(pcap), str(pcap), "--format", "json",
            "--exit-zero", "-q", "--isolated", "--vip", "61=10.61.4.61"]
    keys = tmp_path / "k"
    keys.write_text((DATA / truth["keys_file"]).read_text())
    os.chmod(keys, 0o600)
    p = subprocess.run(args + ["--passphrase-file", str(keys)], capture_output=True, text=True,
                       cwd=REPO, timeout=120)
    if p.returncode == 2:
        assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
        return
    twice = json.loads(p.stdout)
    assert not [f for f in twice["findings"] if f["rule"] == "counter-replay"]
    adverts = lambda r: sum(s["adverts"] for g in r["groups"] for s in g["speakers"])  # noqa: E731
    assert adverts(twice) == adverts(once)


# ---------------------------------------------------------------------------- live

_LIVE: dict[str, tuple[dict, dict] | str] = {}


def live_report(name: str, tmp_path_factory) -> tuple[dict, dict]:
    if name not in _LIVE:
        out = tmp_path_factory.mktemp(f"live-{name}")
        truth, problems = record(CASES[name], out, attempts=CASES[name].attempts)
        if truth is None:
            _LIVE[name] = f"{name}: no recording showed what the case needs: {'; '.join(problems)}"
        else:
            _LIVE[name] = (truth, analyze(out / truth["pcap"], truth, out, out))
    got = _LIVE[name]
    if isinstance(got, str):
        pytest.fail(got)
    return got


@pytest.mark.live
@pytest.mark.parametrize("name,check", PARAMS)
def test_live(name, check, tmp_path_factory):
    require_root(("ip", "ucarp", "keepalived", "tcpdump", "nft"))
    truth, report = live_report(name, tmp_path_factory)
    problems = run_check(report, truth, check)
    assert not problems, "\n".join(problems)


@pytest.mark.live
@pytest.mark.xfail(strict=True, reason=ITEM[7])
def test_live_sniff_stopping_during_a_split_brain_does_not_end_it(tmp_path):
    """`carpscope sniff` stopped (--duration) while two ucarp masters (different passphrases)
    are both still MASTER: the split brain did not end; no split-brain-end event may say so."""
    require_root(("ip", "ucarp", "tcpdump"))
    keys = tmp_path / "keys"
    keys.write_text("p:split71-p\nq:split71-q\n")
    os.chmod(keys, 0o600)
    a = Ucarp("fa", 71, "split71-p", "10.61.4.71", label="p")
    b = Ucarp("fb", 71, "split71-q", "10.61.4.71", advskew=100, label="q")
    with Lab(UC_NET) as lab:
        lab.start(a)
        lab.start(b)
        lab.wait_state("fa", a.ident, "MASTER", 9)
        lab.wait_state("fb", b.ident, "MASTER", 9)
        p = subprocess.run([tool("ip"), "netns", "exec", lab.switch_netns, sys.executable, "-m", "carpscope",
                            "sniff", lab.bridge, "--duration", "8", "-f", "jsonl", "--exit-zero",
                            "--passphrase-file", str(keys), "--vip", "71=10.61.4.71"],
                           capture_output=True, text=True, cwd=REPO, timeout=60,
                           env=dict(os.environ, PYTHONPATH=str(REPO), NO_COLOR="1"))
        still = [lab.state(h, a.ident) for h in ("fa", "fb")]
    assert p.returncode == 0, p.stderr
    assert still == ["MASTER", "MASTER"], f"the daemons did not stay master: {still}"
    events = [json.loads(ln) for ln in p.stdout.splitlines() if ln.startswith("{")]
    kinds = [e.get("type") for e in events]
    assert "split-brain" in kinds, kinds
    assert "split-brain-end" not in kinds, [e for e in events if e.get("type") == "split-brain-end"]
