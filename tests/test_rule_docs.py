"""Rule documentation stays in sync with the catalogue, and `carpscope rules` serves it.

Every rule in the catalogue has its page inside the package (``carpscope/rules/pages/<slug>.md``,
linked from ``docs/rules``); each page starts with a title naming the slug and the code, states
the catalogue's default severity, and has the standard sections in order; no page exists for a
slug that is not in the catalogue. Each rule is declared by the module that detects it.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from carpscope import rules as registry

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "carpscope" / "rules" / "pages"
SECTIONS = ["What it detects", "Why it matters", "Example", "Likely causes", "How to fix",
            "Exceptions", "References"]
FAMILIES = {"capture/decoding", "protocol", "authentication", "over time", "intent",
            "configuration", "configuration (lint)"}
NEEDS_INVENTORY = ("skew-order", "unexpected-master", "unknown-speaker", "missing-group")
SEVERITY_RE = re.compile(r"^Severity:\s*(\w+)", re.M)
FAMILY_RE = re.compile(r"·\s*Family:\s*([^·\n]+?)\s*(?:·|$)", re.M)

CATALOGUE = registry.catalogue()
RULES = sorted(CATALOGUE.values(), key=lambda r: r.code)


def _page(rule: registry.Rule) -> str:
    text = registry.page(rule)
    if text is None:
        pytest.fail(f"{rule.code} {rule.slug}: no page at carpscope/rules/pages/{rule.slug}.md")
    assert text == (DOCS / f"{rule.slug}.md").read_text(encoding="utf-8")
    return text


def test_docs_link_points_into_the_package():
    assert (ROOT / "docs" / "rules").resolve() == DOCS.resolve()


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.slug)
def test_rule_is_declared_by_a_detector_module(rule):
    assert rule.detector in registry.DETECTORS
    module = sys.modules[rule.detector]
    declared = [v for v in vars(module).values() if v is rule]
    assert declared, f"{rule.slug}: not a module-level name of {rule.detector}"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.slug)
def test_page_title_names_slug_and_code(rule):
    first = _page(rule).splitlines()[0]
    assert first.startswith("# "), f"{rule.slug}: first line is not a level-1 title: {first!r}"
    assert re.search(rf"(?<![\w-]){re.escape(rule.slug)}(?![\w-])", first), first
    assert re.search(rf"\b{rule.code}\b", first), first


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.slug)
def test_page_states_catalogue_severity(rule):
    text = _page(rule)
    m = SEVERITY_RE.search(text)
    assert m, f"{rule.slug}: no 'Severity: ...' line"
    assert m.group(1).lower() == rule.severity.value, (
        f"{rule.slug}: page says {m.group(1)!r}, catalogue says {rule.severity.value!r}")
    fam = FAMILY_RE.search(text[m.start():].splitlines()[0])
    if fam:
        assert fam.group(1) in FAMILIES, f"{rule.slug}: unknown family {fam.group(1)!r}"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.slug)
def test_page_has_sections_in_order(rule):
    headings = [line[3:].strip() for line in _page(rule).splitlines() if line.startswith("## ")]
    missing = [s for s in SECTIONS if s not in headings]
    assert not missing, f"{rule.slug}: missing sections {missing}"
    positions = [headings.index(s) for s in SECTIONS]
    assert positions == sorted(positions), f"{rule.slug}: sections out of order: {headings}"


IMPLEMENTATIONS = ("FreeBSD", "OpenBSD", "ucarp", "keepalived")
IMPL_HEADING = "## What each implementation does"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.slug)
def test_page_says_what_each_implementation_does(rule):
    """Issue 14: every page states, per implementation, the behaviour the rule relies on (or
    that it is not involved), with where that was read ([src]) or seen ([obs]), between what
    the rule detects and why it matters."""
    text = _page(rule)
    assert IMPL_HEADING in text, f"{rule.slug}: no '{IMPL_HEADING}' section"
    section = text.split(IMPL_HEADING, 1)[1].split("\n## ", 1)[0]
    missing = [name for name in IMPLEMENTATIONS if name not in section]
    assert not missing, f"{rule.slug}: the implementations section does not name {missing}"
    assert "[src]" in section or "[obs]" in section or "not involved" in section, \
        f"{rule.slug}: the implementations section names no source, recording or non-involvement"
    assert text.index("## What it detects") < text.index(IMPL_HEADING) < text.index("## Why it matters")


@pytest.mark.parametrize("slug", NEEDS_INVENTORY)
def test_intent_pages_say_they_need_an_inventory(slug):
    rule = CATALOGUE[slug]
    assert "inventory" in _page(rule).split("## Why it matters")[0].lower()


def test_no_page_without_a_rule():
    orphans = sorted(n for n in registry.page_names() if n[:-3] not in CATALOGUE)
    assert not orphans, f"pages for rules not in the catalogue: {orphans}"


# ------------------------------------------------------------------ the CLI serves the pages

def _carpscope(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "carpscope", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_rules_lists_every_code_and_slug():
    r = _carpscope("rules")
    assert r.returncode == 0, r.stderr
    listed = {line.split()[0]: line.split()[1] for line in r.stdout.splitlines() if line.strip()}
    for rule in RULES:
        assert listed.get(rule.code) == rule.slug, f"{rule.code} {rule.slug} not listed"


@pytest.mark.parametrize("name", ["split-brain", "CS401", "cs401"])
def test_rules_prints_the_page(name):
    page = (DOCS / "split-brain.md").read_text(encoding="utf-8")
    r = _carpscope("rules", name)
    assert r.returncode == 0, r.stderr
    assert r.stdout == page


def test_rules_unknown_name_is_a_usage_error():
    r = _carpscope("rules", "no-such-rule")
    assert r.returncode == 2
    assert "no-such-rule" in r.stderr


# ---------------------------------------------------------------------------- example output

try:
    from tests import rule_examples
except ImportError:
    import rule_examples      # type: ignore[no-redef]

_EXAMPLE_HEAD = re.compile(r"^(ERROR  |WARNING|INFO   ) (CS\d{3}) ([a-z0-9-]+)  \S")


@pytest.mark.parametrize("slug", sorted(s for s in CATALOGUE if not s.startswith("config-")))
def test_example_output_is_what_carpscope_prints(slug, tmp_path):
    """The page's "Example output" is the finding of the rule's first trigger case, rendered as
    the text report renders it (regenerate: python -m tests.rule_examples --write)."""
    want = rule_examples.rendered(slug, tmp_path)
    if want is None:
        pytest.fail(f"{slug}: its first trigger case produced no {slug} finding")
    assert rule_examples.page_block(slug) == want, "stale example: python -m tests.rule_examples --write"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.slug)
def test_example_output_has_the_report_layout(rule):
    """Every example (config rules' too) starts with severity, code and slug as the report
    prints them, followed by the indented evidence line ending with the rule's command."""
    block = rule_examples.page_block(rule.slug)
    assert block is not None, f"{rule.slug}: no 'Example output:' block"
    lines = [x for x in block.splitlines() if x.strip() and not x.startswith("$ ")]   # not the command
    assert _EXAMPLE_HEAD.match(lines[0]), lines[0]
    heads = [m for m in map(_EXAMPLE_HEAD.match, lines) if m]
    assert all(m.group(2) == rule.code and m.group(3) == rule.slug for m in heads), lines[0]
    # the default severity (a detector may raise one finding above it, as the page then shows)
    assert rule.severity.value in {m.group(1).strip().lower() for m in heads}
    assert lines[-1].startswith("        ") and lines[-1].endswith(f"carpscope rules {rule.slug}"), lines[-1]
