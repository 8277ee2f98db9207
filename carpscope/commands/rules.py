"""``carpscope rules [SLUG|CODE]``: the rule catalogue, or one rule's page (shipped in the package)."""
from __future__ import annotations

import sys

from carpscope.commands import EXIT_OK, UsageError


def run(args) -> int:
    from carpscope.rules import catalogue, lookup, page
    if not args.rule:
        for r in sorted(catalogue().values(), key=lambda r: r.code):
            print(f"{r.code}  {r.slug:24} {r.severity.value:8} {r.title}")
        return EXIT_OK
    rule = lookup(args.rule)
    if rule is None:
        raise UsageError(f"no rule named {args.rule!r} (see: carpscope rules)")
    text = page(rule)
    if text is not None:
        sys.stdout.write(text)
    else:
        print(f"{rule.code} {rule.slug} ({rule.severity.value}): {rule.title}")
    return EXIT_OK
