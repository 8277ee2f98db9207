"""``carpscope lint CONFIG...``: configuration checks without a capture (config/lint.py)."""
from __future__ import annotations

import io
import os

from carpscope import __version__
from carpscope.commands import EXIT_OK, UsageError, say
from carpscope.commands.output import body, clock, console, final_status, prepare_outputs, run_policy, step_summary, write
from carpscope.files import display_name


def run(args) -> int:
    from carpscope.config.lint import lint
    from carpscope.report import text
    for path in args.configs:
        if not os.path.exists(path):
            raise UsageError(f"{display_name(path)}: no such file")
    prepare_outputs(args)
    res = lint(args.configs)
    placed, ctx = run_policy(args, res.findings, list(args.configs), kind="config")
    findings = [p.finding for p in placed]
    for note in res.notes:
        say(f"carpscope: note: {note}")
    doc = {"carpscope": __version__, "configs": list(args.configs), "findings": [f.to_json() for f in findings]}
    out = body(args, placed, ctx, json_doc=doc)
    groups = res.inventory.groups if res.inventory else []
    head = f"{len(args.configs)} file(s), {len(groups)} group(s)"
    if out is None and args.output_file is not None:
        from rich.console import Console
        buf = io.StringIO()
        c = Console(file=buf, no_color=True, highlight=False)
        c.print(head, highlight=False)
        text.render_findings(findings, c, clock(args))
        out = buf.getvalue()
        write(args, out)
        out = None
    elif out is not None:
        write(args, out)
    if out is None or args.output_file is not None:
        c = console(args)
        c.print(head, highlight=False)
        text.render_findings(findings, c, clock(args))
    step_summary(args, placed, ctx)
    return final_status(args, EXIT_OK, findings)
