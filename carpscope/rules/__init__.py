"""The rule registry: every rule is declared once, in the module of its detector.

A detector module declares its rules at import (``declare``) and builds findings with the
returned ``Rule`` object, never by a string. The catalogue is what the detector modules
declare: ``catalogue()`` imports each of them (``DETECTORS``) and returns every rule, so a rule
cannot exist without a detector nor a detector report a rule the catalogue lacks.

Codes follow the linter convention CS + 3 digits, stable and never reused:
CS1xx capture and decoding, CS2xx protocol and group consistency, CS3xx authentication,
CS4xx behaviour over time and intent, CS5xx configuration (lint).

Each rule has a one-page document shipped inside the package (``carpscope/rules/pages/<slug>.md``,
``page(rule)``), which ``carpscope rules SLUG`` prints and SARIF embeds.
"""
from __future__ import annotations

import importlib

from carpscope.model import Finding, Severity

ERROR, WARNING, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO

# the modules that declare (and detect) rules; catalogue() imports them all
DETECTORS = (
    "carpscope.rules.packet",
    "carpscope.rules.group",
    "carpscope.rules.splitbrain",
    "carpscope.rules.auth",
    "carpscope.intent",
    "carpscope.repeats",
    "carpscope.engine",
    "carpscope.config.lint",
    "carpscope.config.lint_address",
    "carpscope.config.lint_unicast",
    "carpscope.config.lint_syncgroup",
)
PAGES = "pages"          # package directory of the rule pages, beside this module
HELP_URI = "https://github.com/carpscope/carpscope/blob/main/carpscope/rules/pages/{slug}.md"


class Rule:
    """One rule, immutable once declared. A plain class: a NamedTuple needs ``typing`` (2.5 ms
    of every start) and a frozen dataclass ten times that."""

    __slots__ = ("slug", "code", "severity", "title", "detector")

    def __init__(self, slug: str, code: str, severity: Severity, title: str, detector: str) -> None:
        self.slug = slug              # the stable name
        self.code = code              # CSnnn, stable
        self.severity = severity      # default severity (the policy may change it)
        self.title = title
        self.detector = detector      # the module that declares and detects it

    def _fields(self) -> tuple[str, str, Severity, str, str]:
        return (self.slug, self.code, self.severity, self.title, self.detector)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rule) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return f"Rule({self.slug!r}, {self.code!r}, {self.severity!r})"

    def finding(self, message: str, **kw) -> Finding:
        """A finding of this rule with its code and default severity."""
        return Finding(rule=self.slug, code=self.code, severity=self.severity, message=message, **kw)

    @property
    def page_name(self) -> str:
        return f"{self.slug}.md"

    @property
    def help_uri(self) -> str:
        return HELP_URI.format(slug=self.slug)


RULES: dict[str, Rule] = {}
BY_CODE: dict[str, Rule] = {}


def declare(slug: str, code: str, severity: Severity, title: str, detector: str) -> Rule:
    """Register a rule; called once per rule at import of its detector module (``detector`` is
    that module's ``__name__``). A slug or code declared twice is a programming error."""
    rule = Rule(slug, code, severity, title, detector)
    old = RULES.get(slug) or BY_CODE.get(code)
    if old is not None:
        if old == rule:           # the module was imported again (importlib.reload in a test)
            return old
        raise ValueError(f"rule {slug}/{code} declared twice ({old.detector} and {detector})")
    RULES[slug] = BY_CODE[code] = rule
    return rule


def catalogue() -> dict[str, Rule]:
    """Every rule, by slug (imports every detector module once)."""
    for name in DETECTORS:
        importlib.import_module(name)
    return RULES


def lookup(name: str) -> Rule | None:
    """A rule by slug or by code (case-insensitive for codes)."""
    rules = catalogue()
    return rules.get(name) or BY_CODE.get(name.upper())


def page(rule: Rule) -> str | None:
    """The rule's page (Markdown), read from the installed package; None if it is missing."""
    from importlib import resources      # its imports (tempfile, zipfile...) cost a run that shows no page
    try:
        return resources.files(__name__).joinpath(PAGES, rule.page_name).read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        return None


def page_names() -> list[str]:
    """Every page shipped (file names), for the check that each page has its rule."""
    from importlib import resources
    return sorted(p.name for p in resources.files(__name__).joinpath(PAGES).iterdir()
                  if p.name.endswith(".md"))
