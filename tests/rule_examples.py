"""The "Example output" of each rule page, made by carpscope itself (so pages cannot drift).

For every capture rule, the first trigger case of tests/test_rules.py is run; the first finding
of that rule it produces is rendered as the text report renders a finding (width unlimited, no
colour, times in UTC) and must equal the block under "Example output:" in the rule's page.
``tests/test_rule_docs.py`` checks it; after a deliberate change of a message, rewrite the
blocks with

    python -m tests.rule_examples --write

Config rules (``config-*``) keep hand-written examples; their layout is checked by the same test.
"""
from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGES = REPO / "carpscope" / "rules" / "pages"
SECTION = re.compile(r"^## Example\n(.*?)(?=^## )", re.S | re.M)
FENCE = re.compile(r"^```[a-z]*\n(.*?)\n```$", re.S | re.M)
FINDING = re.compile(r"^(ERROR|WARNING|INFO) +CS\d{3} ", re.M)


def _span(text: str) -> tuple[int, int] | None:
    """Where, in a page, the example finding block's content is: the first fenced block of
    the Example section holding a finding line."""
    sec = SECTION.search(text)
    if sec is None:
        return None
    for m in FENCE.finditer(text, sec.start(1), sec.end(1)):
        if FINDING.search(m.group(1)):
            return m.start(1), m.end(1)
    return None


def _rules_module():
    try:
        from tests import test_rules
    except ImportError:
        import test_rules            # type: ignore[no-redef]
    return test_rules


def rendered(slug: str, tmp: Path) -> str | None:
    """The text lines of the first ``slug`` finding of its first trigger case (None: no case)."""
    tr = _rules_module()
    cases = tr.TRIGGERS.get(slug)
    if not cases:
        return None
    seen: list[dict] = []
    a, aj = tr.analyze, tr.analyze_json

    def analyze(path, *args):
        out = a(path, *args)
        seen.extend(out)
        return out

    def analyze_json(path, *args):
        out = aj(path, *args)
        seen.extend(out["findings"])
        return out
    tr.analyze, tr.analyze_json = analyze, analyze_json
    # speakers draw their CARP counters from one sequence: start it afresh, so the example
    # does not depend on which tests ran before in this process
    import itertools
    scenarios = sys.modules[tr.Carp.__module__]
    scenarios._counters = itertools.count(0x5EED_0000_0000_0001, 0x1_0000_0001)
    try:
        cases[0](tmp)
    finally:
        tr.analyze, tr.analyze_json = a, aj
    hit = next((f for f in seen if f["rule"] == slug), None)
    if hit is None:
        return None
    from carpscope.report.text import finding_lines
    from carpscope.report.view import Clock
    lines = [t.plain for t in finding_lines([hit], Clock("utc"), None, {})][1:]     # not the count line
    text = "\n".join(line.rstrip() for line in lines)
    return text.replace(str(tmp) + "/", "")


def page_block(slug: str) -> str | None:
    text = (PAGES / f"{slug}.md").read_text()
    span = _span(text)
    return text[span[0]:span[1]] if span else None


def write(slug: str, block: str) -> bool:
    page = PAGES / f"{slug}.md"
    text = page.read_text()
    span = _span(text)
    if span is None or text[span[0]:span[1]] == block:
        return False
    page.write_text(text[:span[0]] + block + text[span[1]:])
    return True


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(REPO / "tests"))
    tr = _rules_module()
    changed = 0
    for slug in sorted(tr.CAPTURE_RULES):
        with tempfile.TemporaryDirectory() as d:
            block = rendered(slug, Path(d))
        if block is None:
            print(f"{slug}: no trigger finding", file=sys.stderr)
            continue
        if block != page_block(slug):
            if "--write" in argv and write(slug, block):
                changed += 1
            print(f"{slug}: {'rewritten' if '--write' in argv else 'differs'}", file=sys.stderr)
    print(f"{changed} page(s) rewritten", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
