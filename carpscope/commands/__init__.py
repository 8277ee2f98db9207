"""The commands (analyze, sniff, lint, inventory, rules): each a thin module that wires the
engine, the policy and a report together. What they share is here: exit statuses, the error a
user can act on, and the one way a diagnostic line reaches stderr.

Exit status: 0 no finding at or above --fail-on; 1 such findings; 2 usage, input, output or
permission error (one line on stderr, never a traceback unless --debug); 130 / 143 when
SIGINT / SIGTERM stopped a run whose report of what was read was still written.
"""
from __future__ import annotations

import sys

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}


class UsageError(Exception):
    """A problem with what the user asked for: one line, exit 2."""


def say(line: str) -> None:
    """A diagnostic on stderr: always one line, and never a secret, whatever text reached it."""
    from carpscope.auth.secrets import scrub
    text = scrub(line).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def split_list(values: list[str]) -> list[str]:
    """Comma-separated option values (repeatable options) as one list."""
    return [x.strip() for v in values for x in v.split(",") if x.strip()]
