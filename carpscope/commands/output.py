"""From findings to what the user gets: the policy applied (policy.py), the report rendered in
the format asked for, written to stdout or safely to --output, and the exit status."""
from __future__ import annotations

import os
import sys

TYPE_CHECKING = False     # typing.TYPE_CHECKING without importing typing at run time (start-up)
if TYPE_CHECKING:
    from typing import Iterable, Union

    Text = Union[str, Iterable[str]]      # a report: whole, or in pieces written as they come

from carpscope import __version__
from carpscope.commands import EXIT_ERROR, EXIT_OK, EXIT_SIGNAL, UsageError, say
from carpscope.files import Output, OutputError

FORMATS = ["text", "json", "jsonl", "html", "sarif", "junit", "github", "gitlab"]
CI_FORMATS = ("sarif", "junit", "github", "gitlab")


def prepare_outputs(args) -> None:
    """Check every file the command will write, before it reads or captures anything (and
    before a privilege drop): ``args.output_file`` (an ``Output`` or None), and the baseline."""
    try:
        args.output_file = Output(args.output, "--output") if getattr(args, "output", None) else None
        wb = getattr(getattr(args, "policy", None), "write_baseline", None)
        args.baseline_file = Output(wb, "--write-baseline") if wb else None
    except OutputError as e:
        raise UsageError(str(e)) from None


def console(args, stderr: bool = False):
    """A rich console for text on the terminal; plain text (no colour, no forced width) when
    the output is not a terminal."""
    from rich.console import Console
    force = {"always": True, "never": False}.get(getattr(args, "color", "auto"))
    return Console(stderr=stderr, force_terminal=force, no_color=getattr(args, "color", "auto") == "never",
                   highlight=False)


def run_policy(args, findings, files: list[str], errors=(), filtered=None, kind: str = "capture"):
    """Severity overrides, selection, fingerprints and the baseline: (placed findings, context)."""
    from carpscope import policy
    pol = args.policy
    placed = policy.place(policy.apply(pol, findings, files), files, pol.root)
    accepted = None
    if pol.baseline:
        if pol.baseline_optional and not os.path.exists(pol.baseline):
            say(f"carpscope: note: baseline {pol.baseline} does not exist yet: no finding accepted")
        else:
            accepted = policy.load_baseline(pol.baseline)
    if pol.write_baseline:
        out = getattr(args, "baseline_file", None) or Output(pol.write_baseline, "--write-baseline")
        policy.write_baseline(out, placed, __version__)
        say(f"carpscope: note: wrote {len(placed)} finding(s) to the baseline {pol.write_baseline}")
    if accepted is not None:
        placed, hit, stale = policy.filter_baseline(placed, accepted)
        if hit or stale:
            say(f"carpscope: note: baseline {pol.baseline}: {hit} known finding(s) accepted"
                + (f", {stale} no longer seen (rewrite it with --write-baseline)" if stale else ""))
    ctx = policy.Context(files=list(files), root=pol.root, errors=list(errors), filtered=dict(filtered or {}),
                         overrides=policy.rule_overrides(pol), baseline=accepted is not None, kind=kind)
    return placed, ctx


def final_status(args, status: int, findings, interrupted: str | None = None) -> int:
    from carpscope import policy
    if status == EXIT_ERROR:
        return EXIT_ERROR
    if interrupted in EXIT_SIGNAL:
        return EXIT_SIGNAL[interrupted]
    if args.policy.write_baseline:
        return EXIT_OK       # every finding is now accepted
    return max(status, policy.exit_status(findings, args.policy.fail_on))


def body(args, placed, ctx, json_doc=None, jsonl_tail=None) -> Text | None:
    """The report in a machine format (None for text): a string, or its pieces (JSON, SARIF:
    written as they are encoded). ``json_doc`` is the JSON report whose findings get their
    fingerprints; jsonl is one finding per line, then the tail."""
    import json
    fmt = args.format
    if fmt == "json":
        for d, p in zip(json_doc["findings"], placed):
            d["fingerprint"] = p.fingerprint
        from carpscope.report import jsonreport
        return jsonreport.chunks(json_doc)
    if fmt == "jsonl":
        lines = [json.dumps({"type": "finding", **p.finding.to_json(), "fingerprint": p.fingerprint})
                 for p in placed]
        if jsonl_tail is not None:
            lines.append(json.dumps(jsonl_tail))
        return "".join(line + "\n" for line in lines)
    if fmt == "html":
        from carpscope.report import html
        return html.pieces(json_doc, clock(args))
    if fmt == "junit":
        from carpscope.report import junit
        return junit.render(placed, ctx, doc=json_doc, fail_on=args.policy.fail_on)
    if fmt == "sarif":
        from carpscope.report import jsonreport, sarif
        return jsonreport.chunks(sarif.sarif_json(placed, ctx))
    if fmt in CI_FORMATS:
        import importlib
        return importlib.import_module(f"carpscope.report.{fmt}").render(placed, ctx)
    return None


def clock(args):
    """How the times people read are written (report/view.py): UTC or local (--tz)."""
    from carpscope.report.view import Clock
    return Clock(getattr(args, "tz", None) or "utc")


def write(args, text: Text) -> None:
    """The report to --output (whole or not at all: after what was streamed into it, see
    ``stream``) or to stdout."""
    out = getattr(args, "output_file", None)
    if out is None:
        stdout_write(text)
        return
    stream = getattr(args, "output_stream", None)
    try:
        if stream is None:
            out.write(text)
        else:
            for piece in [text] if isinstance(text, str) else text:
                stream.write(piece)
            args.output_stream = None
            out.commit()
    except OutputError as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        out.abort()
        raise UsageError(f"--output {out.name}: {e.strerror or e}") from None


class Lines:
    """Lines written as they come (per-advert lines, sniff's events) to the --output file being
    written or to stdout: a write error (a full disk, /dev/full) is one clear line naming the
    output (exit 2; the --output file is then not put in place); a closed pipe stays a
    BrokenPipeError (the reader went away: exit quietly)."""

    def __init__(self, args, to_stdout: bool = False) -> None:
        out = None if to_stdout else getattr(args, "output_file", None)
        self.f = sys.stdout if out is None else stream(args)
        self.name = "standard output" if out is None else f"--output {out.name}"

    def write(self, text: str) -> None:
        try:
            self.f.write(text)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise UsageError(f"cannot write to {self.name}: {e.strerror or e}") from None

    def flush(self) -> None:
        try:
            self.f.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise UsageError(f"cannot write to {self.name}: {e.strerror or e}") from None


def stream(args):
    """Where per-advert lines go before the report: the --output file being written (put in
    place with the report at the end), or stdout."""
    out = getattr(args, "output_file", None)
    if out is None:
        return sys.stdout
    try:
        args.output_stream = out.begin()
    except OutputError as e:
        raise UsageError(str(e)) from None
    return args.output_stream


def stdout_write(text: Text) -> None:
    try:
        for piece in [text] if isinstance(text, str) else text:
            sys.stdout.write(piece)
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as e:
        raise UsageError(f"cannot write the report to standard output: {e.strerror or e}") from None


def step_summary(args, placed, ctx) -> None:
    """--format github inside GitHub Actions: also a Markdown table for the job summary."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if args.format != "github" or not path:
        return
    from carpscope.report import github
    try:
        with open(path, "a") as f:
            f.write(github.step_summary(placed, ctx))
    except OSError as e:
        say(f"carpscope: warning: $GITHUB_STEP_SUMMARY {path}: {e.strerror or e}")


def render_report(args, report, placed=None, ctx=None, intent=None, summary: bool = True) -> None:
    """The analysis report in the format asked for; with --output, the text summary still goes
    to the terminal (``summary`` False: not, when stdout carries JSON lines)."""
    from carpscope.report import jsonreport
    if placed is None:      # a caller that did not run the policy: fingerprints only
        from carpscope import policy
        names = [s.name for s in report.sources]
        root = getattr(getattr(args, "policy", None), "root", None)
        placed = policy.place(report.findings, names, root)
        ctx = policy.Context(files=names, root=root or os.getcwd(),
                             filtered={n: n in report.filters for n in names})
    doc = jsonreport.report_json(report, intent)
    tail = {"type": "summary", **{k: v for k, v in doc.items() if k != "findings"}} if args.format == "jsonl" else None
    text_body = body(args, placed, ctx, json_doc=doc, jsonl_tail=tail)
    show_timeline = not getattr(args, "no_timeline", False)
    if text_body is None:
        when = clock(args)
        from carpscope.report import text    # rich: only for the text report
        if args.output_file is not None:
            import io

            from rich.console import Console
            buf = io.StringIO()
            text.render(doc, Console(file=buf, no_color=True, highlight=False), show_timeline, when, width=None)
            write(args, buf.getvalue())
        text.render(doc, console(args), show_timeline, when)
    else:
        write(args, text_body)
        if args.output_file is not None and summary:
            from carpscope.report import text
            text.render(doc, console(args), show_timeline, clock(args))
    step_summary(args, placed, ctx)
