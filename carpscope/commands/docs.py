"""``carpscope docs [GUIDE]``: the guides shipped in the package (the repository's docs/), listed,
or one printed whole, so an installed copy carries its manual."""
from __future__ import annotations

import sys
from importlib import resources

from carpscope.commands import EXIT_OK, UsageError

DOCS = "docs"
UNIT = "carpscope-sensor.service"


def guides() -> dict[str, str]:
    """Guide name -> its title (the first heading), for every guide shipped."""
    out = {}
    for p in sorted(resources.files("carpscope").joinpath(DOCS).iterdir(), key=lambda p: p.name):
        if p.name.endswith(".md"):
            first = p.read_text(encoding="utf-8").split("\n", 1)[0]
            out[p.name[:-3]] = first.lstrip("# ").strip()
    return out


def run(args) -> int:
    root = resources.files("carpscope").joinpath(DOCS)
    if args.unit:
        sys.stdout.write(root.joinpath(UNIT).read_text(encoding="utf-8"))
        return EXIT_OK
    known = guides()
    if not args.guide:
        for name, title in known.items():
            print(f"{name:16} {title}")
        print("\nrule pages: carpscope rules SLUG; a sensor's systemd unit: carpscope docs --unit")
        return EXIT_OK
    name = args.guide.removesuffix(".md")
    if name not in known:
        raise UsageError(f"no guide named {args.guide!r} (see: carpscope docs)")
    sys.stdout.write(root.joinpath(f"{name}.md").read_text(encoding="utf-8"))
    return EXIT_OK
