"""``carpscope docs [GUIDE]``: the guides shipped in the package (the repository's docs/), listed,
or one printed whole, so an installed copy carries its manual."""
from __future__ import annotations

import sys
from importlib import resources

from carpscope.commands import EXIT_OK, UsageError

DOCS = "docs"
UNIT = "carpscope-sensor.service"


def guides() -> dict:
    """Guide name -> its file (a package resource), for every guide shipped."""
    root = resources.files("carpscope").joinpath(DOCS)
    return {p.name[:-3]: p for p in sorted(root.iterdir(), key=lambda p: p.name) if p.name.endswith(".md")}


def run(args) -> int:
    if args.unit:
        sys.stdout.write(resources.files("carpscope").joinpath(DOCS, UNIT).read_text(encoding="utf-8"))
        return EXIT_OK
    known = guides()
    if not args.guide:
        for name, path in known.items():       # the title: the first line, its heading
            title = path.read_text(encoding="utf-8").split("\n", 1)[0].lstrip("# ").strip()
            print(f"{name:16} {title}")
        print("\nrule pages: carpscope rules SLUG; a sensor's systemd unit: carpscope docs --unit")
        return EXIT_OK
    name = args.guide.removesuffix(".md")
    if name not in known:
        raise UsageError(f"no guide named {args.guide!r} (see: carpscope docs)")
    sys.stdout.write(known[name].read_text(encoding="utf-8"))
    return EXIT_OK
