"""GitLab Code Quality (``--format gitlab``, for ``artifacts:reports:codequality``): a JSON array
of issues with ``description``, ``check_name``, ``fingerprint``, ``severity`` and
``location.path`` / ``location.lines.begin``. Severity: error -> major, warning -> minor,
info -> info. Fingerprints are unique within a report (GitLab shows only the first of equal
ones); a capture has no lines, so ``begin`` is 1 (configuration findings give their line).
"""
from __future__ import annotations

import json

from carpscope.model import Severity
from carpscope.policy import Context, Placed, finding_text

SEVERITY = {Severity.ERROR: "major", Severity.WARNING: "minor", Severity.INFO: "info"}


def issue(p: Placed) -> dict:
    f = p.finding
    return {"description": f"{f.code} {finding_text(f)}", "check_name": f.code,
            "fingerprint": p.fingerprint, "severity": SEVERITY[f.severity],
            "location": {"path": p.path or "", "lines": {"begin": f.line or 1}}}


def render(placed: list[Placed], ctx: Context) -> str:
    return json.dumps([issue(p) for p in placed], indent=2) + "\n"
