"""The alerting rules shipped with the package (carpscope/data/alerts.yml): valid for
Prometheus (`promtool check rules`), unit-tested (`promtool test rules` with
tests/data/alerts_test.yml, against the file of the installed package), each with a summary, a
description and a runbook link to a page that exists, every alert covered by the unit test,
and every carpscope metric they use one the exporter exports.

promtool comes with Debian's `prometheus` package (python3 tasks.py test installs it as root):
without it these tests skip, and under CI=true they fail.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest
import yaml

from carpscope import rules
from carpscope.capture.taps import Tap
from carpscope.metrics import Metrics

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "tests" / "data" / "alerts_test.yml"
FLEET_DOC = "https://github.com/carpscope/carpscope/blob/main/docs/fleet.md#"


def shipped() -> Path:
    return Path(str(resources.files("carpscope").joinpath("data", "alerts.yml")))


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("promtool is not installed but CI=true (apt-get install prometheus)", pytrace=False)
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return path


def alerts() -> list[dict]:
    doc = yaml.safe_load(shipped().read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_check_rules():
    r = subprocess.run([promtool(), "check", "rules", str(shipped())], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in r.stdout


def test_promtool_test_rules(tmp_path):
    """The unit test, run on the rules file the package installs."""
    unit = yaml.safe_load(UNIT.read_text())
    unit["rule_files"] = [str(shipped())]
    path = tmp_path / "alerts_test.yml"
    path.write_text(yaml.safe_dump(unit, sort_keys=False))
    r = subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_promtool_test_rules_fails_on_a_wrong_expectation(tmp_path):
    """The unit test can fail: the split-brain alert expected for the healthy sensor is not met."""
    unit = yaml.safe_load(UNIT.read_text())
    unit["rule_files"] = [str(shipped())]
    first = unit["tests"][0]["alert_rule_test"][1]["exp_alerts"][0]["exp_labels"]
    first["instance"] = "s1:9417"
    first["vhid"] = "7"
    path = tmp_path / "alerts_test.yml"
    path.write_text(yaml.safe_dump(unit, sort_keys=False))
    r = subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "FAILED" in (r.stdout + r.stderr)


def test_every_alert_has_summary_description_runbook():
    got = alerts()
    names = [a["alert"] for a in got]
    assert len(names) == len(set(names)) and len(names) >= 10
    fleet = (REPO / "docs" / "fleet.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", fleet, re.M)}
    catalogue = rules.catalogue()
    for a in got:
        ann = a["annotations"]
        assert ann.get("summary") and ann.get("description") and a["labels"]["severity"] in ("critical", "warning")
        url = ann["runbook_url"]
        if url.startswith(FLEET_DOC):
            assert url[len(FLEET_DOC):] in anchors, (a["alert"], url)
        else:
            slug = next((s for s, rule in catalogue.items() if rule.help_uri == url), None)
            assert slug is not None, (a["alert"], url)
            assert rules.page(catalogue[slug]), slug


def test_the_wanted_alerts_are_there():
    by_name = {a["alert"]: a for a in alerts()}
    want = {"CarpscopeSplitBrain": "split-brain.md", "CarpscopeNoMaster": "master-gap.md",
            "CarpscopeAuthFailures": "hmac-mismatch.md", "CarpscopeMasterFlapping": "flapping.md",
            "CarpscopePrimaryDemoted": "demoted.md", "CarpscopeDroppingFrames": "#dropping-frames",
            "CarpscopeSensorSilent": "#sensor-silent", "CarpscopeSensorDown": "#sensor-down"}
    for name, page in want.items():
        assert by_name[name]["annotations"]["runbook_url"].endswith(page)


def test_every_alert_is_unit_tested():
    unit = yaml.safe_load(UNIT.read_text())
    tested = {t["alertname"] for case in unit["tests"] for t in case.get("alert_rule_test", [])
              if t.get("exp_alerts")}
    assert tested == {a["alert"] for a in alerts()}


class _Source:
    name, fd, linktype_name = "em0", 0, "EN10MB"

    def stats(self):
        return (1, 0, 0)


def test_alerts_use_only_metrics_the_exporter_exports():
    exported = set()
    for fam in Metrics().sample(0.0, [], [], [Tap(_Source())]):
        suffix = {"counter": "_total", "info": "_info"}.get(fam.kind, "")
        exported.add(fam.name + suffix)
    used = {m for a in alerts() for m in re.findall(r"\bcarpscope_[a-z_]+", a["expr"])}
    assert used and used <= exported, used - exported
