"""Command line: argument parsing, wiring of the pipeline, exit status. Nothing else.

Exit status: 0 no finding at or above --fail-on; 1 such findings; 2 usage, input or
permission error (one line on stderr, never a traceback unless --debug).
"""
from __future__ import annotations

import argparse
import os
import sys

from carpscope import __version__
from carpscope.model import Severity

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
FAIL_ON = {"error": 3, "warning": 2, "info": 1, "never": 99}
FORMATS = ["text", "json", "jsonl", "sarif", "junit", "github", "gitlab"]
CI_FORMATS = ("sarif", "junit", "github", "gitlab")


class UsageError(Exception):
    """A problem with what the user asked for: one line, exit 2."""


def _common(p: argparse.ArgumentParser) -> None:
    k = p.add_argument_group("keys and intent (passphrases are never printed)")
    k.add_argument("--passphrase-file", action="append", default=[], metavar="FILE",
                   help="passphrases, one per line, optional 'label:' prefix, '#' comments")
    k.add_argument("--passphrase", action="append", default=[], metavar="SECRET",
                   help="a passphrase on the command line (visible to other users: prefer --passphrase-file)")
    k.add_argument("--vip", action="append", default=[], metavar="VHID=ADDR[,ADDR...]",
                   help="the virtual addresses of a VHID (they are inside the CARP HMAC)")
    k.add_argument("--inventory", action="append", default=[], metavar="FILE.toml")
    k.add_argument("--rc-conf", action="append", default=[], metavar="FILE",
                   help="FreeBSD rc.conf of a member (repeat per host)")
    k.add_argument("--config", action="append", default=[], metavar="FILE",
                   help="pfSense/OPNsense config.xml, OpenBSD hostname.carpN, keepalived.conf, ucarp command "
                        "line or unit, rc.conf, sysctl.conf (kind detected; repeatable)")
    k.add_argument("--no-weak-check", action="store_true", help="do not try the bundled default passphrases")
    o = p.add_argument_group("output and policy")
    _policy_options(o)
    o.add_argument("--color", default="auto", choices=["auto", "always", "never"])
    o.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    o.add_argument("--debug", action="store_true", help="show tracebacks on internal errors")


def _policy_options(o) -> None:
    """Report format and policy, shared by analyze, sniff and lint (see policy.py)."""
    o.add_argument("-f", "--format", default="text", choices=FORMATS,
                   help="text, json (the contract), jsonl, sarif (2.1.0), junit (XML), github (workflow "
                        "commands), gitlab (Code Quality)")
    o.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE (text summary still on the terminal)")
    o.add_argument("--fail-on", default=None, choices=list(FAIL_ON),
                   help="exit 1 when a finding is at least this severe (default: error, or the settings file's)")
    o.add_argument("--exit-zero", action="store_true", help="exit 0 even with findings (still 2 on errors)")
    o.add_argument("--select", action="append", default=[], metavar="RULES", help="only these rules (slugs or code prefixes, comma-separated)")
    o.add_argument("--extend-select", action="append", default=[], metavar="RULES", help="add to the settings file's select")
    o.add_argument("--ignore", action="append", default=[], metavar="RULES", help="drop these rules (slugs or code prefixes)")
    o.add_argument("--severity", action="append", default=[], metavar="RULE=LEVEL",
                   help="override a rule's severity (slug or code prefix = error|warning|info; comma-separated)")
    o.add_argument("--baseline", metavar="FILE", help="accept the findings recorded in FILE (by fingerprint)")
    o.add_argument("--write-baseline", metavar="FILE", help="record the current findings in FILE (and exit 0)")
    o.add_argument("--settings", metavar="FILE", help="settings file (default: nearest carpscope.toml or pyproject.toml [tool.carpscope])")
    o.add_argument("--isolated", action="store_true", help="ignore settings files")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; ``sniff``'s own options (carpscope.live, a large import) are added only when
    ``argv`` (default: all) asks for sniff."""
    p = argparse.ArgumentParser(prog="carpscope", description="Decode, verify and diagnose CARP and VRRP.")
    p.add_argument("--version", action="version", version=f"carpscope {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    a = sub.add_parser("analyze", help="analyze capture files (pcap, pcapng; - for stdin)")
    a.add_argument("captures", nargs="+", metavar="CAPTURE")
    a.add_argument("--adverts", action="store_true", help="print one line per advertisement")
    a.add_argument("--all-frames", action="store_true",
                   help="no capture filter: number frames as Wireshark does (slower on large captures)")
    a.add_argument("--no-timeline", action="store_true")
    a.add_argument("--segment", metavar="NAME",
                   help="treat all captures as one capture point NAME (rotated files of one capture); "
                        "by default each file is its own segment")
    _common(a)
    s = sub.add_parser("sniff", help="watch a live interface: dashboard of every VHID, alerts as they happen")
    if argv is None or "sniff" in argv:
        from carpscope import live
        live.add_arguments(s)
        _common(s)
    li = sub.add_parser("lint", help="check configurations (rc.conf, config.xml, hostname.carpN, keepalived.conf, ucarp, inventory) without a capture")
    li.add_argument("configs", nargs="+", metavar="CONFIG")
    _policy_options(li)
    li.add_argument("--color", default="auto", choices=["auto", "always", "never"])
    li.add_argument("--debug", action="store_true")
    inv = sub.add_parser("inventory", help="convert configurations into an inventory (TOML, secrets left as references)")
    inv.add_argument("configs", nargs="+", metavar="CONFIG")
    inv.add_argument("-o", "--output", metavar="FILE")
    inv.add_argument("--debug", action="store_true")
    r = sub.add_parser("rules", help="list the rules, or show one rule's page")
    r.add_argument("rule", nargs="?", metavar="SLUG|CODE")
    return p


def say(line: str) -> None:
    """A diagnostic on stderr: always one line (rich would wrap it at the terminal width), and
    never a secret, whatever text reached it."""
    from carpscope.auth import scrub
    print(scrub(line), file=sys.stderr, flush=True)


def _split(values: list[str]) -> list[str]:
    return [x.strip() for v in values for x in v.split(",") if x.strip()]


def rule_matches(f, patterns: list[str]) -> bool:
    return any(f.rule == p or f.code.upper().startswith(p.upper()) for p in patterns)


def apply_policy(findings, select: list[str], ignore: list[str]):
    if select:
        findings = [f for f in findings if rule_matches(f, select)]
    if ignore:
        findings = [f for f in findings if not rule_matches(f, ignore)]
    return findings


def exit_status(findings, fail_on: str) -> int:
    limit = FAIL_ON[fail_on]
    return EXIT_FINDINGS if any(f.severity.rank >= limit for f in findings) else EXIT_OK


def _console(args, stderr=False):
    from rich.console import Console
    force = {"always": True, "never": False}.get(args.color)
    c = Console(stderr=stderr, force_terminal=force, no_color=args.color == "never", highlight=False)
    if not c.is_terminal and "COLUMNS" not in os.environ:
        c.width = 160   # piped or redirected: wide enough for the group table, no wrapping mid-row
    return c


def cmd_rules(args) -> int:
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


def cmd_analyze(args) -> int:
    from carpscope.analysis import Analysis
    from carpscope.capture import CaptureError, open_source
    from carpscope.keys import build_auth
    from carpscope.report import jsonreport

    verifier, vipinfer, auth_rules, intent, warnings = build_auth(args)
    for w in warnings:
        say(f"carpscope: warning: {w}")
    on_advert = None
    out = sys.stdout
    if args.format == "jsonl" and args.output:
        out = args.output_stream = _open_output(args)   # adverts first, the findings follow
    if args.adverts or args.format == "jsonl":
        if args.format == "jsonl":
            import json

            def on_advert(a, g, sp, res):
                out.write(json.dumps(jsonreport.advert_json(a)) + "\n")
        else:
            from carpscope.report.text import advert_line

            def on_advert(a, g, sp, res):
                out.write(advert_line(a) + "\n")
    analysis = Analysis(verifier, vipinfer, auth_rules, intent, on_advert=on_advert)
    status = EXIT_OK
    errors: list[tuple[str, str]] = []
    sources = []
    for path in _expand(args.captures):
        try:
            sources.append(open_source(path, all_frames=args.all_frames))
        except CaptureError as e:
            say(f"carpscope: error: {e}")
            errors.append((path, str(e)))
            status = EXIT_ERROR
    if not sources and args.format not in CI_FORMATS:
        return EXIT_ERROR
    with _progress(args, sources):
        analysis.feed_sources(sources, args.segment)
    for src in sources:
        if src.info.error:
            say(f"carpscope: warning: {src.name}: {src.info.error}")
    report = analysis.finish()
    names = [s.name for s in report.sources]
    placed, ctx = run_policy(args, report.findings, names, errors,
                             filtered={n: n in report.filters for n in names})
    report.findings = [p.finding for p in placed]
    render_report(args, report, placed, ctx)
    return _final_status(args, status, report.findings)


def _expand(patterns: list[str]) -> list[str]:
    """Expand globs the shell left alone (quoted, or on Windows-like shells); keep order."""
    import glob
    out = []
    for p in patterns:
        hits = sorted(glob.glob(p, recursive=True)) if any(c in p for c in "*?[") else []
        out += hits or [p]
    return out


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _progress(args, sources):
    """A progress bar on stderr for long reads of regular files (never when piped or --quiet).
    rich is imported only when a bar is shown: machine-readable runs skip its start-up cost."""
    sizes = [s.size() for s in sources]
    if args.quiet or not sys.stderr.isatty() or None in sizes or sum(sizes) < (64 << 20):
        return _NoProgress()
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
    err = _console(args, stderr=True)
    if not err.is_terminal:
        return _NoProgress()
    prog = Progress("reading", BarColumn(), DownloadColumn(), TimeRemainingColumn(), console=err, transient=True)
    task = prog.add_task("read", total=sum(sizes))
    done = [0] * len(sources)

    def hook(i):
        def on_batch(pos):
            if pos is not None:
                done[i] = pos
                prog.update(task, completed=sum(done))
        return on_batch
    for i, s in enumerate(sources):
        s.on_batch = hook(i)
    return prog


def resolve_policy(args) -> None:
    """Put the settings file under the command line: ``args.policy`` is the merged policy, and
    select/ignore/fail-on and the key and intent lists carry the merged values (so every
    command, sniff included, sees the settings file through its usual arguments)."""
    from carpscope import policy
    settings = policy.load_settings(args.settings, args.isolated)
    pol = policy.build_policy(settings, select=args.select, extend_select=args.extend_select,
                              ignore=args.ignore, severity=args.severity,
                              fail_on="never" if args.exit_zero else args.fail_on,
                              baseline=args.baseline, write_baseline=args.write_baseline)
    args.policy, args.select, args.ignore, args.fail_on = pol, list(pol.select), list(pol.ignore), pol.fail_on
    for attr, extra in (("inventory", settings.inventory), ("rc_conf", settings.rc_conf),
                        ("config", settings.configs), ("passphrase_file", settings.passphrase_files),
                        ("vip", settings.vip)):
        if hasattr(args, attr):
            merged, seen = [], set()
            for v in extra + list(getattr(args, attr)):    # a file named in both places: once
                key = v if attr == "vip" else os.path.realpath(v)
                if key not in seen:
                    seen.add(key)
                    merged.append(v)
            setattr(args, attr, merged)


def run_policy(args, findings, files: list[str], errors=(), filtered=None, kind: str = "capture"):
    """Severity overrides, selection, fingerprints and the baseline: (placed findings, context)."""
    from carpscope import policy
    pol = getattr(args, "policy", None)
    if pol is None:
        pol = policy.build_policy(policy.Settings(), select=getattr(args, "select", []),
                                  ignore=getattr(args, "ignore", []))
    placed = policy.place(policy.apply(pol, findings, files), files, pol.root)
    accepted = None
    if pol.baseline:
        if pol.baseline_optional and not os.path.exists(pol.baseline):
            say(f"carpscope: note: baseline {pol.baseline} does not exist yet: no finding accepted")
        else:
            accepted = policy.load_baseline(pol.baseline)
    if pol.write_baseline:
        policy.write_baseline(pol.write_baseline, placed, __version__)
        say(f"carpscope: note: wrote {len(placed)} finding(s) to the baseline {pol.write_baseline}")
    if accepted is not None:
        placed, hit, stale = policy.filter_baseline(placed, accepted)
        if hit or stale:
            say(f"carpscope: note: baseline {pol.baseline}: {hit} known finding(s) accepted"
                + (f", {stale} no longer seen (rewrite it with --write-baseline)" if stale else ""))
    ctx = policy.Context(files=list(files), root=pol.root, errors=list(errors), filtered=dict(filtered or {}),
                         overrides=policy.rule_overrides(pol), baseline=accepted is not None, kind=kind)
    return placed, ctx


def _final_status(args, status: int, findings) -> int:
    if status == EXIT_ERROR:
        return EXIT_ERROR
    if getattr(getattr(args, "policy", None), "write_baseline", None):
        return EXIT_OK       # every finding is now accepted
    return max(status, exit_status(findings, args.fail_on))


def _body(args, placed, ctx, json_doc=None, jsonl_head=(), jsonl_tail=None) -> str | None:
    """The report in a machine format (None for text). ``json_doc`` is the JSON report whose
    findings get their fingerprints; jsonl is one finding per line between head and tail."""
    import json
    fmt = args.format
    if fmt == "json":
        for d, p in zip(json_doc["findings"], placed):
            d["fingerprint"] = p.fingerprint
        from carpscope.report import jsonreport
        return jsonreport.dumps(json_doc)
    if fmt == "jsonl":
        lines = list(jsonl_head)
        lines += [json.dumps({"type": "finding", **p.finding.to_json(), "fingerprint": p.fingerprint})
                  for p in placed]
        if jsonl_tail is not None:
            lines.append(json.dumps(jsonl_tail))
        return "".join(line + "\n" for line in lines)
    if fmt in CI_FORMATS:
        import importlib
        return importlib.import_module(f"carpscope.report.{fmt}").render(placed, ctx)
    return None


def _open_output(args):
    try:
        return open(args.output, "w")
    except OSError as e:
        raise UsageError(f"--output {args.output}: {e.strerror or e}") from None


def _write(args, body: str) -> None:
    if args.output:
        f = getattr(args, "output_stream", None) or _open_output(args)
        with f:
            f.write(body)
    else:
        sys.stdout.write(body)


def _step_summary(args, placed, ctx) -> None:
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


def render_report(args, report, placed=None, ctx=None) -> None:
    from carpscope.report import jsonreport
    if placed is None:      # a caller that did not run the policy (sniff): fingerprints only
        from pathlib import Path

        from carpscope import policy
        names = [s.name for s in report.sources]
        root = getattr(getattr(args, "policy", None), "root", None)
        placed = policy.place(report.findings, names, root)
        ctx = policy.Context(files=names, root=root or Path.cwd(),
                             filtered={n: n in report.filters for n in names})
    doc = jsonreport.report_json(report) if args.format in ("json", "jsonl") else None
    tail = {"type": "summary", **{k: v for k, v in doc.items() if k != "findings"}} if doc else None
    body = _body(args, placed, ctx, json_doc=doc, jsonl_tail=tail)
    show_timeline = not getattr(args, "no_timeline", False)
    if args.output or body is None:
        from carpscope.report import text    # rich: only for the text report
        console = _console(args)
    if args.output:
        if body is None:
            from rich.console import Console
            try:
                with open(args.output, "w") as f:
                    text.render(report, Console(file=f, width=120, no_color=True, highlight=False), show_timeline)
            except OSError as e:
                raise UsageError(f"--output {args.output}: {e.strerror or e}") from None
        else:
            _write(args, body)
        text.render(report, console, show_timeline)
    elif body is not None:
        sys.stdout.write(body)
    else:
        text.render(report, console, show_timeline)
    _step_summary(args, placed, ctx)


def cmd_lint(args) -> int:
    from carpscope.config import lint
    from carpscope.report import text
    for path in args.configs:
        if not os.path.exists(path):
            raise UsageError(f"{path}: no such file")
    res = lint(args.configs)
    placed, ctx = run_policy(args, res.findings, list(args.configs), kind="config")
    findings = [p.finding for p in placed]
    for note in res.notes:
        say(f"carpscope: note: {note}")
    doc = {"carpscope": __version__, "configs": list(args.configs), "findings": [f.to_json() for f in findings]}
    body = _body(args, placed, ctx, json_doc=doc)
    if body is not None:
        _write(args, body)
    groups = res.inventory.groups if res.inventory else []
    if body is None and args.output:
        from rich.console import Console
        with _open_output(args) as f:
            c = Console(file=f, width=120, no_color=True, highlight=False)
            c.print(f"{len(args.configs)} file(s), {len(groups)} group(s)", highlight=False)
            text.render_findings(findings, c)
    if body is None or args.output:
        _console(args).print(f"{len(args.configs)} file(s), {len(groups)} group(s)", highlight=False)
        text.render_findings(findings, _console(args))
    _step_summary(args, placed, ctx)
    return _final_status(args, EXIT_OK, findings)


def cmd_inventory(args) -> int:
    from carpscope.config import ConfigError, inventory_from_configs, inventory_to_toml
    try:
        inv = inventory_from_configs(args.configs)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(f"{getattr(e, 'filename', '')}: {e.strerror or e}") from None
    body = inventory_to_toml(inv)
    if args.output:
        with open(args.output, "w") as f:
            f.write(body)
    else:
        sys.stdout.write(body)
    return EXIT_OK


def cmd_sniff(args) -> int:
    from carpscope import live
    return live.run(args)


COMMANDS = {"analyze": cmd_analyze, "rules": cmd_rules, "sniff": cmd_sniff, "lint": cmd_lint,
            "inventory": cmd_inventory}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_ERROR
    debug = getattr(args, "debug", False)
    try:
        if hasattr(args, "write_baseline"):
            resolve_policy(args)
        return COMMANDS[args.command](args)
    except (UsageError, ValueError) as e:
        if debug and not isinstance(e, UsageError):
            return _traceback(e)
        say(f"carpscope: error: {e}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("carpscope: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        try:
            sys.stdout = None
        finally:
            return EXIT_OK
    except Exception as e:  # a bug: one line, the traceback only on request
        if debug:
            return _traceback(e)
        say(f"carpscope: internal error: {type(e).__name__}: {e} (run with --debug for details)")
        return EXIT_ERROR


def _traceback(e: BaseException) -> int:
    """--debug: the whole traceback, with any secret that reached an exception's text blanked."""
    import traceback
    from carpscope.auth import scrub
    sys.stderr.write(scrub("".join(traceback.format_exception(e))))
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
