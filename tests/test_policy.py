"""Policy for CI: --fail-on thresholds and exit codes on captures with known findings, rule
selection, severity overrides, settings files (carpscope.toml, pyproject [tool.carpscope]),
fingerprints and baselines (write, re-run: exit 0; a new finding: exit 1)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from carpscope import policy, synth
from carpscope.model import Severity
from carpscope.capture.reader import read_records
from carpscope.rules import lookup

REPO = Path(__file__).resolve().parents[1]
CAPTURES = REPO / "captures"
THRESHOLDS = ("error", "warning", "info", "never")


def run(*args, cwd=REPO):
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=str(REPO))
    for k in ("FORCE_COLOR", "COLUMNS", "GITHUB_STEP_SUMMARY"):
        env.pop(k, None)
    p = subprocess.run([sys.executable, "-m", "carpscope", *map(str, args)], capture_output=True, cwd=cwd,
                       env=env, timeout=120, stdin=subprocess.DEVNULL)
    out, err = p.stdout.decode(), p.stderr.decode()
    assert "Traceback" not in err and "internal error" not in err, err
    return p.returncode, out, err


def codes(out: str) -> list[str]:
    return [f["code"] for f in json.loads(out)["findings"]]


def one_error_line(err: str) -> str:
    lines = [x for x in err.strip().splitlines() if x.startswith("carpscope:")]
    assert len(lines) == 1 and lines[0].startswith("carpscope: error: "), err
    return lines[0]


# ------------------------------------------------------------------ thresholds

# without keys: equal-skew has skew-tie (warning) + hmac-unchecked (info); ttl adds errors
CASES = {
    "ttl (errors)": (["captures/ttl.pcap"], {"error": 1, "warning": 1, "info": 1, "never": 0}),
    "equal-skew (warning + info)": (["captures/equal-skew.pcap"], {"error": 0, "warning": 1, "info": 1, "never": 0}),
    "equal-skew (info only)": (["captures/equal-skew.pcap", "--ignore", "skew-tie"],
                               {"error": 0, "warning": 0, "info": 1, "never": 0}),
    "keepalived-vrrp3 (clean)": (["captures/keepalived-vrrp3.pcap"], {"error": 0, "warning": 0, "info": 0, "never": 0}),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("fmt", ["json", "sarif"])
def test_fail_on_thresholds(case, fmt):
    args, expected = CASES[case]
    for threshold in THRESHOLDS:
        rc, out, err = run("analyze", *args, "-f", fmt, "--fail-on", threshold)
        assert rc == expected[threshold], (case, threshold, err)
    rc, _, _ = run("analyze", *args, "-f", fmt)
    assert rc == expected["error"], "the default threshold is error"
    rc, _, _ = run("analyze", *args, "-f", fmt, "--fail-on", "info", "--exit-zero")
    assert rc == 0


def test_exit_two_beats_findings(tmp_path):
    rc, out, err = run("analyze", "captures/ttl.pcap", tmp_path / "nope.pcap", "-f", "json", "--exit-zero")
    assert rc == 2


def test_lint_thresholds():
    confs = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests/fixtures/configs/handbook").glob("*.rc.conf"))
    got = {t: run("lint", *confs, "-f", "json", "--fail-on", t)[0] for t in THRESHOLDS}
    # the handbook's testpass is config-weak-passphrase (warning); config-preempt is info
    assert got == {"error": 0, "warning": 1, "info": 1, "never": 0}


# ------------------------------------------------------------------ selection and severity

def test_select_ignore_by_slug_and_prefix():
    assert codes(run("analyze", "captures/ttl.pcap", "-f", "json")[1]) == ["CS104", "CS401", "CS304"]
    assert codes(run("analyze", "captures/ttl.pcap", "-f", "json", "--select", "CS4,bad-ttl")[1]) == ["CS104", "CS401"]
    assert codes(run("analyze", "captures/ttl.pcap", "-f", "json", "--ignore", "cs1", "--ignore", "hmac-unchecked")[1]) == ["CS401"]
    rc, out, _ = run("analyze", "captures/ttl.pcap", "-f", "json", "--select", "CS3", "--fail-on", "warning")
    assert codes(out) == ["CS304"] and rc == 0


@pytest.mark.parametrize("opt", ["--select", "--ignore", "--extend-select"])
def test_unknown_rule_is_a_usage_error(opt):
    rc, out, err = run("analyze", "captures/ttl.pcap", opt, "no-such-rule")
    assert rc == 2 and out == ""
    assert "no-such-rule" in one_error_line(err)


def test_severity_overrides():
    # skew-tie is a warning: raised to error it fails the default threshold
    assert run("analyze", "captures/equal-skew.pcap", "-f", "json")[0] == 0
    rc, out, _ = run("analyze", "captures/equal-skew.pcap", "-f", "json", "--severity", "skew-tie=error")
    assert rc == 1 and json.loads(out)["findings"][0]["severity"] == "error"
    # the most specific pattern wins, whatever the order
    rc, out, _ = run("analyze", "captures/equal-skew.pcap", "-f", "json", "--severity", "skew-tie=error,CS2=info")
    assert rc == 1
    rc, out, _ = run("analyze", "captures/ttl.pcap", "-f", "json", "--severity", "CS=info")
    assert rc == 0 and {f["severity"] for f in json.loads(out)["findings"]} == {"info"}
    rc, out, err = run("analyze", "captures/ttl.pcap", "--severity", "bad-ttl=fatal")
    assert rc == 2 and "bad-ttl=fatal" in one_error_line(err)


def test_severity_override_in_sarif():
    rc, out, _ = run("analyze", "captures/ttl.pcap", "-f", "sarif", "--severity", "bad-ttl=warning")
    doc = json.loads(out)
    inv = doc["runs"][0]["invocations"][0]
    assert inv["ruleConfigurationOverrides"][0]["descriptor"]["id"] == "CS104"
    assert inv["ruleConfigurationOverrides"][0]["configuration"]["level"] == "warning"
    assert [r["level"] for r in doc["runs"][0]["results"] if r["ruleId"] == "CS104"] == ["warning"]


# ------------------------------------------------------------------ settings files

@pytest.fixture
def project(tmp_path):
    """A CI project: a repository root with captures/ (copies of three bundled captures)."""
    (tmp_path / ".git").mkdir()
    cap = tmp_path / "captures" / "lab"
    cap.mkdir(parents=True)
    for name in ("ttl", "equal-skew", "keepalived-vrrp3"):
        shutil.copy(CAPTURES / f"{name}.pcap", cap / f"{name}.pcap")
    return tmp_path


def test_carpscope_toml_select_ignore_severity_fail_on(project):
    (project / "carpscope.toml").write_text(
        'ignore = ["hmac-unchecked"]\nfail-on = "warning"\nseverity = {"bad-ttl" = "warning"}\n')
    rc, out, err = run("analyze", "captures/lab/ttl.pcap", "-f", "json", cwd=project)
    assert codes(out) == ["CS401", "CS104"] and rc == 1
    assert [f["severity"] for f in json.loads(out)["findings"]] == ["error", "warning"]
    rc, out, _ = run("analyze", "captures/lab/equal-skew.pcap", "-f", "json", cwd=project)
    assert codes(out) == ["CS202"] and rc == 1, "fail-on warning from the file"
    rc, out, _ = run("analyze", "captures/lab/equal-skew.pcap", "-f", "json", "--fail-on", "error", cwd=project)
    assert rc == 0, "the command line beats the file"
    rc, out, _ = run("analyze", "captures/lab/ttl.pcap", "-f", "json", "--isolated", cwd=project)
    assert codes(out) == ["CS104", "CS401", "CS304"]
    # found from a subdirectory too; paths stay relative to the settings file's directory
    rc, out, _ = run("analyze", "lab/ttl.pcap", "-f", "gitlab", cwd=project / "captures")
    assert {i["location"]["path"] for i in json.loads(out)} == {"captures/lab/ttl.pcap"}


def test_pyproject_tool_carpscope(project):
    (project / "pyproject.toml").write_text('[project]\nname = "lab"\n\n[tool.carpscope]\nselect = ["CS4"]\n')
    rc, out, _ = run("analyze", "captures/lab/ttl.pcap", "-f", "json", cwd=project)
    assert codes(out) == ["CS401"]
    # carpscope.toml in the same directory wins over pyproject.toml
    (project / "carpscope.toml").write_text('select = ["CS1"]\n')
    rc, out, _ = run("analyze", "captures/lab/ttl.pcap", "-f", "json", cwd=project)
    assert codes(out) == ["CS104"]


def test_pyproject_without_table_is_skipped_and_search_stops_at_repo_root(project, tmp_path):
    (project / "pyproject.toml").write_text('[project]\nname = "lab"\n')
    rc, out, _ = run("analyze", "captures/lab/ttl.pcap", "-f", "json", cwd=project)
    assert codes(out) == ["CS104", "CS401", "CS304"]


def test_per_file_ignores(project):
    (project / "carpscope.toml").write_text('[per-file-ignores]\n"captures/**/ttl.pcap" = ["CS1", "CS3"]\n'
                                            '"equal-*.pcap" = ["skew-tie"]\n')
    rc, out, _ = run("analyze", "captures/lab/ttl.pcap", "captures/lab/equal-skew.pcap", "-f", "json", cwd=project)
    assert sorted(codes(out)) == ["CS304", "CS401"]


def test_settings_inventory_paths_are_relative_to_the_file(project):
    inv = REPO / "tests/fixtures/configs/inventory/site.toml"
    sub = project / "ci"
    sub.mkdir()
    shutil.copytree(inv.parent, sub / "inv")
    (sub / "carpscope.toml").write_text('inventory = ["inv/site.toml"]\nselect = ["CS4"]\n')
    rc, out, err = run("analyze", str(project / "captures/lab/ttl.pcap"), "-f", "json", "--settings",
                       sub / "carpscope.toml", cwd=project)
    assert rc in (0, 1), err
    # the inventory was loaded: intent rules can fire (missing-group for its groups)
    assert "missing-group" in {f["rule"] for f in json.loads(out)["findings"]}
    # named in the settings and on the command line: loaded once, same report
    rc2, out2, err2 = run("analyze", str(project / "captures/lab/ttl.pcap"), "-f", "json", "--settings",
                          sub / "carpscope.toml", "--inventory", sub / "inv" / "site.toml", cwd=project)
    assert (rc2, json.loads(out2)["findings"]) == (rc, json.loads(out)["findings"]), err2


@pytest.mark.parametrize("content, needle", [
    ('selct = ["CS1"]\n', "unknown setting 'selct'"),
    ('select = "CS9"\n', "'CS9'"),
    ('fail-on = "sometimes"\n', "fail-on"),
    ('severity = {"bad-ttl" = "loud"}\n', "bad-ttl=loud"),
    ("select = [\n", "not valid TOML"),
    ('per-file-ignores = ["x"]\n', "per-file-ignores"),
])
def test_bad_settings_are_one_line_usage_errors(project, content, needle):
    (project / "carpscope.toml").write_text(content)
    rc, out, err = run("analyze", "captures/lab/ttl.pcap", cwd=project)
    assert rc == 2 and out == ""
    line = one_error_line(err)
    assert needle in line and "carpscope.toml" in line


def test_missing_settings_file(project):
    rc, out, err = run("analyze", "captures/lab/ttl.pcap", "--settings", "nope.toml", cwd=project)
    assert rc == 2 and "nope.toml" in one_error_line(err)


# ------------------------------------------------------------------ fingerprints and baselines

def test_fingerprint_ignores_packets_and_times():
    f = lookup("split-brain").finding("m1", protocol="carp", vhid=1, segment="c.pcap", packets=[4, 5],
                          first_seen=1.0, last_seen=2.0, evidence={"speakers": ["10.0.0.2", "10.0.0.3"], "seconds": 1})
    g = lookup("split-brain").finding("m2 other text", protocol="carp", vhid=1, segment="c.pcap", packets=[40],
                          first_seen=100.0, last_seen=200.0, evidence={"speakers": ["10.0.0.3", "10.0.0.2"], "seconds": 9})
    assert policy.fingerprint(f, "c.pcap") == policy.fingerprint(g, "c.pcap")
    assert len(policy.fingerprint(f, "c.pcap")) == 32
    for other in (dict(vhid=2), dict(protocol="vrrp2"), dict(evidence={"speakers": ["10.0.0.2", "10.0.0.4"]})):
        h = lookup("split-brain").finding("m1", **{**dict(protocol="carp", vhid=1, segment="c.pcap",
                                                             evidence={"speakers": ["10.0.0.2", "10.0.0.3"]}), **other})
        assert policy.fingerprint(h, "c.pcap") != policy.fingerprint(f, "c.pcap")
    assert policy.fingerprint(f, "d.pcap") != policy.fingerprint(f, "c.pcap")
    k = lookup("flapping").finding("m1", protocol="carp", vhid=1, segment="c.pcap",
                          evidence={"speakers": ["10.0.0.2", "10.0.0.3"]})
    assert policy.fingerprint(k, "c.pcap") != policy.fingerprint(f, "c.pcap")


def test_speakers_from_every_evidence_shape():
    def f(slug, message, **kw):
        return lookup(slug).finding(message, **kw)
    assert policy.speakers(f("bad-ttl", "", evidence={"speaker": "10.0.0.1", "ttl": 254})) == ["10.0.0.1"]
    assert policy.speakers(f("hmac-mismatch", "", evidence={"speakers": [{"ip": "10.0.0.1", "key": None}]})) == ["10.0.0.1"]
    assert policy.speakers(f("vhid-conflict", "", evidence={"speakers": {"carp": ["10.0.0.4"], "vrrp2": ["10.0.0.3"]}})) \
        == ["10.0.0.3", "10.0.0.4", "carp", "vrrp2"]
    assert policy.speakers(f("advbase-mismatch", "", evidence={"values": {"10.0.0.1": 1, "10.0.0.2": 2}})) == ["10.0.0.1", "10.0.0.2"]
    assert policy.speakers(f("config-skew-order", "", evidence={"hosts": ["a", "b"], "tie": 0})) == ["a", "b"]
    assert policy.speakers(f("master-gap", "", evidence={"seconds": 3.2, "previous": "10.0.0.1", "next": "10.0.0.2"})) \
        == ["10.0.0.1", "10.0.0.2"]


def test_place_finds_the_capture_of_a_segment():
    fs = [lookup("skew-tie").finding("", segment="b.pcap/vlan10"),
          lookup("bad-ttl").finding("", segment="a.pcap", source="a.pcap"),
          lookup("speaker-limit").finding("")]
    placed = policy.place(fs, ["a.pcap", "b.pcap"], Path.cwd())
    assert [p.path for p in placed] == ["b.pcap", "a.pcap", "a.pcap"]


def test_display_path_is_what_pathlib_shows(tmp_path, monkeypatch):
    """display_path works on strings with os.path (pathlib is left off the start-up path): the
    same text as the pathlib form it replaced, inside the root, at it, outside it, through links."""
    def with_pathlib(path, root):
        p = Path(path)
        try:
            return p.resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            return p.as_posix()

    root = tmp_path / "proj"
    (root / "captures" / "old").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (root / "link").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "rootlink").symlink_to(root)
    monkeypatch.chdir(root / "captures")
    paths = ["a.pcap", "./a.pcap", "old/../a.pcap", "old//b.pcap", "../captures/a.pcap", "../x.pcap",
             "../../elsewhere/x.pcap", "../../elsewhere/../proj/y.pcap", str(root / "captures" / "c.pcap"),
             str(tmp_path / "rootlink" / "d.pcap"), "../link/e.pcap", str(tmp_path / "elsewhere/./f.pcap"),
             "//srv/share/g.pcap", "/", ".", "..", "..h.pcap", "em0", "stdin", "-"]
    for r in (root, str(root), str(tmp_path / "rootlink"), "/", str(root / "captures")):
        for path in paths:
            want = "stdin" if path in ("-", "stdin") else with_pathlib(path, r)
            assert policy.display_path(path, r) == want, (path, r)


def test_glob_match():
    g = policy.glob_match
    assert g("captures/**/*.pcap", "captures/a/b/x.pcap") and g("captures/**/*.pcap", "captures/x.pcap")
    assert not g("captures/*.pcap", "captures/a/x.pcap")
    assert g("x.pcap", "deep/dir/x.pcap") and g("*.pcap*", "a/b.pcapng")
    assert not g("lab/x.pcap", "other/lab/x.pcap")
    assert g("lab?/[ab].pcap", "lab1/a.pcap") and not g("lab?/[!ab].pcap", "lab1/a.pcap")


def test_baseline_round_trip(tmp_path):
    base = tmp_path / "baseline.json"
    rc, out, err = run("analyze", "captures/ttl.pcap", "-f", "json", "--write-baseline", base)
    assert rc == 0, "writing a baseline accepts every finding"
    data = json.loads(base.read_text())
    assert data["carpscope_baseline"] == 1
    assert [(e["code"], e["file"], e["vhid"]) for e in data["findings"]] == \
           [("CS104", "captures/ttl.pcap", 1), ("CS401", "captures/ttl.pcap", 1), ("CS304", "captures/ttl.pcap", 1)]
    assert all("message" not in e and "packets" not in e for e in data["findings"])
    # re-run: everything known, exit 0 at any threshold
    for fmt in ("json", "sarif", "gitlab"):
        rc, out, err = run("analyze", "captures/ttl.pcap", "-f", fmt, "--baseline", base, "--fail-on", "info")
        assert rc == 0, err
        assert "3 known finding(s) accepted" in err
    assert json.loads(run("analyze", "captures/ttl.pcap", "-f", "json", "--baseline", base)[1])["findings"] == []
    # writing again gives the same file
    run("analyze", "captures/ttl.pcap", "-f", "json", "--write-baseline", tmp_path / "again.json")
    assert (tmp_path / "again.json").read_text() == base.read_text()
    # a new finding (a second capture with a split brain): exit 1, only the new ones reported
    rc, out, err = run("analyze", "captures/ttl.pcap", "captures/passphrase-mismatch.pcap", "-f", "json",
                       "--baseline", base)
    assert rc == 1
    new = json.loads(out)["findings"]
    assert {f["segment"] for f in new} == {"captures/passphrase-mismatch.pcap"}
    assert "CS401" in {f["code"] for f in new}


def test_baseline_new_finding_in_the_same_capture(tmp_path):
    base = tmp_path / "b.json"
    assert run("analyze", "captures/ttl.pcap", "--ignore", "bad-ttl", "--write-baseline", base)[0] == 0
    rc, out, err = run("analyze", "captures/ttl.pcap", "-f", "json", "--baseline", base)
    assert rc == 1 and codes(out) == ["CS104"]
    # a finding gone from the capture is reported as stale
    rc, out, err = run("analyze", "captures/ttl.pcap", "-f", "json", "--baseline", base, "--select", "CS104")
    assert "2 no longer seen" in err


def test_earlier_reports_work_as_baselines(tmp_path):
    for fmt in ("json", "sarif", "gitlab"):
        rep = tmp_path / f"r.{fmt}"
        run("analyze", "captures/ttl.pcap", "-f", fmt, "-o", rep)
        rc, out, err = run("analyze", "captures/ttl.pcap", "-f", "json", "--baseline", rep)
        assert rc == 0 and codes(out) == [], fmt


def test_bad_baselines(tmp_path):
    rc, out, err = run("analyze", "captures/ttl.pcap", "--baseline", tmp_path / "missing.json")
    assert rc == 2 and "missing.json" in one_error_line(err)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    rc, out, err = run("analyze", "captures/ttl.pcap", "--baseline", bad)
    assert rc == 2 and "not JSON" in one_error_line(err)
    bad.write_text('{"findings": [{"code": "CS104"}]}')
    rc, out, err = run("analyze", "captures/ttl.pcap", "--baseline", bad)
    assert rc == 2 and "fingerprint" in one_error_line(err)


def test_baseline_survives_trimming_and_renumbering(tmp_path):
    """Same capture path in two checkouts, the second without its first five records: packet
    number and time changes, the fingerprints do not."""
    full, trimmed = tmp_path / "full", tmp_path / "trimmed"
    for d in (full, trimmed):
        (d / ".git").mkdir(parents=True)
        (d / "captures").mkdir()
    shutil.copy(CAPTURES / "ttl.pcap", full / "captures" / "ttl.pcap")
    with open(CAPTURES / "ttl.pcap", "rb") as f:
        recs = list(read_records(f))
    with open(trimmed / "captures" / "ttl.pcap", "wb") as f:
        w = synth.PcapWriter(f, linktype=recs[0].linktype)
        for rec in recs[5:]:
            w.write(rec.ts, rec.data)
    base = tmp_path / "base.json"
    assert run("analyze", "captures/ttl.pcap", "--write-baseline", base, cwd=full)[0] == 0
    a = json.loads(run("analyze", "captures/ttl.pcap", "-f", "json", cwd=full)[1])["findings"]
    b = json.loads(run("analyze", "captures/ttl.pcap", "-f", "json", cwd=trimmed)[1])["findings"]
    assert [f["packets"] for f in a] != [f["packets"] for f in b]
    assert [f["fingerprint"] for f in a] == [f["fingerprint"] for f in b]
    rc, out, err = run("analyze", "captures/ttl.pcap", "-f", "json", "--baseline", base, cwd=trimmed)
    assert rc == 0 and codes(out) == []


def test_baseline_counts_duplicates():
    a = lookup("master-gap").finding("one", segment="c.pcap", vhid=1, evidence={"previous": "x", "next": "y"})
    b = lookup("master-gap").finding("two", segment="c.pcap", vhid=1, evidence={"previous": "x", "next": "y"})
    one = policy.place([a], ["c.pcap"], Path.cwd())
    two = policy.place([a, b], ["c.pcap"], Path.cwd())
    accepted = policy.Counter(p.fingerprint for p in one)
    new, hit, stale = policy.filter_baseline(two, accepted)
    assert (len(new), hit, stale) == (1, 1, 0) and new[0].finding is b


def test_settings_baseline_may_not_exist_yet(project):
    (project / "carpscope.toml").write_text('baseline = "ci/baseline.json"\n')
    rc, out, err = run("analyze", "captures/lab/ttl.pcap", "-f", "json", cwd=project)
    assert rc == 1 and "does not exist yet" in err
    (project / "ci").mkdir()
    assert run("analyze", "captures/lab/ttl.pcap", "--write-baseline", "ci/baseline.json", cwd=project)[0] == 0
    rc, out, err = run("analyze", "captures/lab/ttl.pcap", "-f", "json", cwd=project)
    assert rc == 0 and codes(out) == []


def test_lint_baseline(tmp_path):
    confs = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests/fixtures/configs/handbook").glob("*.rc.conf"))
    base = tmp_path / "lint.json"
    assert run("lint", *confs, "--fail-on", "info", "--write-baseline", base)[0] == 0
    assert run("lint", *confs, "--fail-on", "info", "--baseline", base)[0] == 0
    assert run("lint", *confs, "--fail-on", "info")[0] == 1


def test_policy_level_specificity():
    pol = policy.Policy(severity={"CS": Severity.INFO, "CS30": Severity.WARNING, "hmac-mismatch": Severity.ERROR})
    assert pol.level(lookup("hmac-mismatch").finding("")) is Severity.ERROR
    assert pol.level(lookup("passphrase-mismatch").finding("")) is Severity.WARNING
    assert pol.level(lookup("split-brain").finding("")) is Severity.INFO
