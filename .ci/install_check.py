#!/usr/bin/env python3
"""Is the package complete when installed? Build a fresh venv OUTSIDE the repository, `pip
install` the repository into it (not editable), and from a directory outside the repository:

- `carpscope rules split-brain` prints the whole page (equal to the page in the source tree);
- `carpscope docs GUIDE` prints each guide of docs/ whole, `docs --unit` the sensor's unit;
- `carpscope analyze CAPTURE --format sarif` gives every rule its help text and helpUri;
- the LICENSE file is in the installed distribution's metadata;
- the alert rules (carpscope/data/alerts.yml) are installed, equal to the source, and pass
  `promtool check rules` (when promtool is there);
- without the 'metrics' extra, `sniff --metrics` says what to install (one line, exit 2).

    python3 .ci/install_check.py [--keep]      # exit 0 when complete, 1 otherwise

Used by .ci/run and by tests/test_install.py (under CI=true).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=900, **kw)


def check(tmp: Path) -> list[str]:
    problems: list[str] = []
    venv = tmp / "venv"
    p = run([sys.executable, "-m", "venv", venv])
    if p.returncode:
        return [f"python -m venv failed: {p.stderr.strip()[-300:]}"]
    py = venv / "bin" / "python"
    p = run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(ROOT)], cwd=tmp)
    if p.returncode:
        return [f"pip install {ROOT} failed: {p.stderr.strip()[-500:]}"]
    exe = venv / "bin" / "carpscope"
    work = tmp / "work"
    work.mkdir()
    # the installed copy, not the source tree: nothing on the path points into the repository
    where = run([py, "-c", "import carpscope, sys; print(carpscope.__file__)"], cwd=work).stdout.strip()
    if not where.startswith(str(venv)):
        problems.append(f"carpscope imported from {where}, not from the venv")
    p = run([exe, "rules", "split-brain"], cwd=work)
    page = (ROOT / "carpscope" / "rules" / "pages" / "split-brain.md").read_text(encoding="utf-8")
    if p.returncode or p.stdout != page:
        problems.append(f"`carpscope rules split-brain` printed {len(p.stdout)} characters, the page has {len(page)}")
    for guide in sorted((ROOT / "docs").glob("*.md")):
        p = run([exe, "docs", guide.stem], cwd=work)
        if p.returncode or p.stdout != guide.read_text(encoding="utf-8"):
            problems.append(f"`carpscope docs {guide.stem}` printed {len(p.stdout)} characters, "
                            f"docs/{guide.name} has {len(guide.read_text(encoding='utf-8'))}")
    unit = (ROOT / "docs" / "carpscope-sensor.service").read_text(encoding="utf-8")
    p = run([exe, "docs", "--unit"], cwd=work)
    if p.returncode or p.stdout != unit:
        problems.append("`carpscope docs --unit` does not print docs/carpscope-sensor.service")
    cap = work / "passphrase-mismatch.pcap"
    shutil.copy(ROOT / "captures" / "passphrase-mismatch.pcap", cap)
    p = run([exe, "analyze", cap.name, "--format", "sarif", "--isolated"], cwd=work)
    try:
        doc = json.loads(p.stdout)
        rules = doc["runs"][0]["tool"]["driver"]["rules"]
    except (ValueError, KeyError, IndexError):
        return problems + [f"SARIF run exit {p.returncode}: not SARIF: {p.stderr.strip()[-300:]}"]
    no_help = [r["name"] for r in rules if len((r.get("help") or {}).get("text", "")) < 200]
    no_uri = [r["name"] for r in rules if not str(r.get("helpUri", "")).startswith("https://")]
    if no_help:
        problems.append(f"SARIF rules without their help text: {', '.join(no_help)}")
    if no_uri:
        problems.append(f"SARIF rules without helpUri: {', '.join(no_uri)}")
    split = next((r for r in rules if r["name"] == "split-brain"), None)
    if split is None or split["help"]["text"] != page:
        problems.append("SARIF help of split-brain differs from its page")
    lic = run([py, "-c", "import importlib.metadata as m; d = m.distribution('carpscope'); "
                         "print(any(str(f).endswith('LICENSE') for f in d.files or []))"], cwd=work)
    if lic.stdout.strip() != "True":
        problems.append("no LICENSE file in the installed distribution")
    alerts = run([py, "-c", "import carpscope, os; print(os.path.join(os.path.dirname(carpscope.__file__), "
                            "'data', 'alerts.yml'))"], cwd=work).stdout.strip()
    source = (ROOT / "carpscope" / "data" / "alerts.yml").read_text(encoding="utf-8")
    if not Path(alerts).is_file() or Path(alerts).read_text(encoding="utf-8") != source:
        problems.append(f"the alert rules are not installed as in the source ({alerts})")
    elif shutil.which("promtool"):
        p = run(["promtool", "check", "rules", alerts], cwd=work)
        if p.returncode:
            problems.append(f"promtool check rules {alerts}: {(p.stdout + p.stderr).strip()[-300:]}")
    p = run([exe, "sniff", "lo", "--metrics", "9417", "--duration", "1"], cwd=work)
    want = "carpscope: error: --metrics needs the Prometheus client library: pip install 'carpscope[metrics]'"
    if p.returncode != 2 or not p.stderr.startswith(want) or p.stderr.count("\n") != 1:
        problems.append(f"sniff --metrics without the 'metrics' extra: exit {p.returncode}, {p.stderr.strip()[-300:]}")
    return problems


def main(argv: list[str]) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="carpscope-install-"))
    try:
        problems = check(tmp)
    finally:
        if "--keep" not in argv:
            shutil.rmtree(tmp, ignore_errors=True)
    for line in problems:
        print(f"FAIL install: {line}")
    if not problems:
        print("PASS install: pip install . into a fresh venv: the rule pages, the guides, SARIF help text and helpUri, "
              "LICENSE, the alert rules, the metrics extra")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
