"""Command line: the arguments, the dispatch to a command (carpscope/commands/), the one place
where errors become one line and an exit status. Nothing else.

Exit status: 0 no finding at or above --fail-on; 1 such findings; 2 usage, input, output or
permission error (one line on stderr, never a traceback unless --debug); 130 / 143 when SIGINT
/ SIGTERM stopped the run (the report of what was read is still written).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from carpscope import __version__
from carpscope.commands import EXIT_ERROR, EXIT_OK, UsageError, say
from carpscope.commands.output import FORMATS
from carpscope.files import abort_unfinished
from carpscope.policy import FAIL_ON

COMMANDS = ("analyze", "sniff", "lint", "inventory", "rules", "docs", "completion")


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return v


def _columns() -> int:
    """``shutil.get_terminal_size().columns``, without importing shutil."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80    # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter at the width it would take itself, read without importing shutil:
    argparse builds a formatter for every argument added, and shutil (with zlib, bz2, lzma) was
    about 2 ms of every run."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, _columns() - 2 if width is None else width)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser (its subcommands' parsers too) with that formatter."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)


def _common(p: argparse.ArgumentParser) -> None:
    k = p.add_argument_group("keys and intent (passphrases are never printed)")
    k.add_argument("--passphrase-file", action="append", default=[], metavar="FILE",
                   help="passphrases, one per line, optional 'label:' prefix, '#' comments")
    k.add_argument("--passphrase", action="append", default=[], metavar="SECRET",
                   help="a passphrase on the command line (visible to other users: prefer --passphrase-file)")
    k.add_argument("--vip", action="append", default=[], metavar="VHID=ADDR[,ADDR...]",
                   help="the virtual addresses of a VHID (they are inside the CARP HMAC)")
    k.add_argument("--inventory", action="append", default=[], metavar="FILE.toml",
                   help="the intended groups, hosts and keys (docs/inventory.md): host names in the "
                        "report, and the unexpected-master, unknown-speaker and missing-group checks")
    k.add_argument("--rc-conf", action="append", default=[], metavar="FILE",
                   help="FreeBSD rc.conf of a member (repeat per host)")
    k.add_argument("--config", action="append", default=[], metavar="FILE",
                   help="pfSense/OPNsense config.xml, OpenBSD hostname.carpN, keepalived.conf, ucarp command "
                        "line or unit, rc.conf, sysctl.conf (kind detected; repeatable)")
    k.add_argument("--no-weak-check", action="store_true", help="do not try the bundled default passphrases")
    o = p.add_argument_group("output and policy")
    _policy_options(o)
    o.add_argument("--color", default="auto", choices=["auto", "always", "never"],
                   help="colour in the text report (auto: on a terminal, unless NO_COLOR is set)")
    o.add_argument("--tz", default="utc", choices=["utc", "local"],
                   help="time zone of the times people read (text, html, --adverts): utc (default) or "
                        "local; JSON keeps epoch seconds")
    o.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    o.add_argument("--debug", action="store_true", help="show tracebacks on internal errors")


def _policy_options(o) -> None:
    """Report format and policy, shared by analyze, sniff and lint (see policy.py)."""
    o.add_argument("-f", "--format", default="text", choices=FORMATS,
                   help="text, json (the contract), jsonl, html (one self-contained page: timelines, "
                        "events, findings), sarif (2.1.0), junit (XML), github (workflow commands), "
                        "gitlab (Code Quality)")
    o.add_argument("-o", "--output", metavar="FILE",
                   help="write the report to FILE, whole or not at all (text summary still on the terminal)")
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


def _sniff_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("interfaces", nargs="*", metavar="IFACE",
                   help="interfaces to watch, each its own segment (see --list; 'any' for all, without "
                        "promiscuous mode)")
    c = p.add_argument_group("capture")
    c.add_argument("--list", action="store_true", help="list the interfaces and exit")
    c.add_argument("--duration", type=_positive_float, metavar="S", help="stop after S seconds")
    c.add_argument("-c", "--count", type=_positive_int, metavar="N", help="stop after N advertisements")
    c.add_argument("-w", "--write", metavar="FILE.pcap",
                   help="save the frames that passed the capture filter (adverts, ARP, neighbour "
                        "advertisements) for a later 'carpscope analyze'")
    c.add_argument("--no-promisc", action="store_true", help="do not put the interface in promiscuous mode")
    c.add_argument("-Z", "--user", metavar="NAME",
                   help="drop privileges to this user once the capture is open (like tcpdump -Z)")
    f = p.add_argument_group("fleet (docs/fleet.md)")
    f.add_argument("--metrics", metavar="[HOST:]PORT",
                   help="serve Prometheus metrics on HOST:PORT (HOST defaults to 127.0.0.1; needs the "
                        "'metrics' extra: pip install 'carpscope[metrics]')")
    f.add_argument("--evidence", metavar="DIR",
                   help="keep the last frames of each interface in memory and write a pcapng to DIR when "
                        "a finding at or above --fail-on starts (until it ends)")
    f.add_argument("--evidence-window", type=_positive_float, default=60.0, metavar="S",
                   help="seconds of frames kept before a finding starts (default 60)")
    f.add_argument("--evidence-files", type=_positive_int, default=100, metavar="N",
                   help="evidence files kept in DIR, the oldest deleted first (default 100)")


def _analyze(a: argparse.ArgumentParser) -> None:
    a.add_argument("captures", nargs="+", metavar="CAPTURE",
                   help="pcap or pcapng files, pipes or FIFOs, globs (quoted); - reads standard input")
    a.add_argument("--adverts", action="store_true", help="print one line per advertisement (with its HMAC verdict)")
    a.add_argument("--numbering", default="all", choices=["all", "filtered"],
                   help="frame numbers as Wireshark shows them on the capture (all, default), or the n-th "
                        "frame passing the capture filter (filtered: what tcpdump -w OUT FILTER writes)")
    a.add_argument("--all-frames", action="store_const", const="all", dest="numbering", help=argparse.SUPPRESS)
    a.add_argument("--no-timeline", action="store_true",
                   help="text report without the timeline drawings (the event lists stay)")
    a.add_argument("--segment", metavar="NAME",
                   help="treat all captures as one capture point NAME (rotated files of one capture); "
                        "by default each file is its own segment")
    _common(a)


def _sniff(s: argparse.ArgumentParser) -> None:
    _sniff_arguments(s)
    _common(s)


def _lint(li: argparse.ArgumentParser) -> None:
    li.add_argument("configs", nargs="+", metavar="CONFIG",
                    help="rc.conf, keepalived.conf, ucarp command lines or units, sysctl.conf, inventory TOML")
    _policy_options(li)
    li.add_argument("--color", default="auto", choices=["auto", "always", "never"], help="colour in the text report")
    li.add_argument("--tz", default="utc", choices=["utc", "local"], help=argparse.SUPPRESS)
    li.add_argument("--debug", action="store_true", help="show tracebacks on internal errors")


def _inventory(inv: argparse.ArgumentParser) -> None:
    inv.add_argument("configs", nargs="+", metavar="CONFIG",
                     help="rc.conf, keepalived.conf, ucarp command lines or units of the members")
    inv.add_argument("-o", "--output", metavar="FILE", help="write the inventory to FILE (default: standard output)")
    inv.add_argument("--debug", action="store_true", help="show tracebacks on internal errors")


def _rules(r: argparse.ArgumentParser) -> None:
    r.add_argument("rule", nargs="?", metavar="SLUG|CODE", help="a rule's slug (split-brain) or code (CS401)")


def _docs(d: argparse.ArgumentParser) -> None:
    d.add_argument("guide", nargs="?", metavar="GUIDE",
                   help="a guide's name (sniff, report, inventory, ci, fleet, ...)")
    d.add_argument("--unit", action="store_true", help="print the systemd unit of a sensor (docs/fleet.md)")


def _completion(c: argparse.ArgumentParser) -> None:
    c.add_argument("shell", choices=["bash", "zsh"], help="e.g. carpscope completion bash > /etc/bash_completion.d/carpscope")


# the commands, in the order of the help: name, one line of help, the function adding its arguments
COMMANDS = (
    ("analyze", "analyze capture files (pcap, pcapng; - for stdin)", _analyze),
    ("sniff", "watch a live interface: dashboard of every VHID, alerts as they happen", _sniff),
    ("lint", "check configurations (rc.conf, config.xml, hostname.carpN, keepalived.conf, ucarp, inventory) "
             "without a capture", _lint),
    ("inventory", "convert configurations into an inventory (TOML, secrets left as references)", _inventory),
    ("rules", "list the rules, or show one rule's page", _rules),
    ("docs", "list the guides shipped with carpscope, or print one", _docs),
    ("completion", "print a shell completion script (bash, zsh)", _completion),
)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``command`` (the first argument, when it names a command),
    only that command's parser: the others are never used on that run, and each parser that
    argparse builds costs start-up (its translations looked up, a formatter per argument)."""
    p = _Parser(prog="carpscope", description="Decode, verify and diagnose CARP and VRRP.")
    p.add_argument("--version", action="version", version=f"carpscope {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    known = any(name == command for name, _, _ in COMMANDS)
    for name, text, arguments in COMMANDS:
        if not known or name == command:
            arguments(sub.add_parser(name, help=text))
    p.subcommands = sub.choices       # type: ignore[attr-defined]  # main() reports an unknown option with its command's usage
    return p


def resolve_policy(args) -> None:
    """Put the settings file under the command line: ``args.policy`` is the merged policy, and
    the key and intent lists carry the merged values (so every command, sniff included, sees the
    settings file through its usual arguments)."""
    import os

    from carpscope import policy
    settings = policy.load_settings(args.settings, args.isolated)
    pol = policy.build_policy(settings, select=args.select, extend_select=args.extend_select,
                              ignore=args.ignore, severity=args.severity,
                              fail_on="never" if args.exit_zero else args.fail_on,
                              baseline=args.baseline, write_baseline=args.write_baseline)
    args.policy = pol
    args.select, args.ignore, args.fail_on = list(pol.select), list(pol.ignore), pol.fail_on
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


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    parser = build_parser(words[0] if words else None)
    args, extra = parser.parse_known_args(argv)
    if extra:    # the command's own usage, not the top level's (exits 2)
        parser.subcommands.get(args.command, parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if not args.command:
        parser.print_help()
        return EXIT_ERROR
    debug = getattr(args, "debug", False)
    try:
        return _run(args, debug)
    finally:
        abort_unfinished()      # an output begun and not completed leaves no partial file


def _run(args, debug: bool) -> int:
    try:
        if hasattr(args, "write_baseline"):
            resolve_policy(args)
        return importlib.import_module(f"carpscope.commands.{args.command}").run(args)
    except BrokenPipeError:
        try:
            sys.stdout = None
        finally:
            return EXIT_OK
    except (UsageError, ValueError, OSError) as e:
        if debug and not isinstance(e, UsageError):
            return _traceback(e)
        text = str(e) if not isinstance(e, OSError) or not e.strerror else f"{e.filename or ''}: {e.strerror}"
        say(f"carpscope: error: {text}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        say("carpscope: interrupted")
        return 130
    except Exception as e:  # a bug: one line, the traceback only on request
        if debug:
            return _traceback(e)
        say(f"carpscope: internal error: {type(e).__name__}: {e} (run with --debug for details)")
        return EXIT_ERROR


def _traceback(e: BaseException) -> int:
    """--debug: the whole traceback, with any secret that reached an exception's text blanked."""
    import traceback

    from carpscope.auth.secrets import scrub
    sys.stderr.write(scrub("".join(traceback.format_exception(e))))
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
