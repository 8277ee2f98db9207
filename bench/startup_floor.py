"""The floor under carpscope's start-up measurement: what any program pays that is started as
``python -m``, parses a subcommand's arguments with argparse and writes JSON, and does nothing
else (bench/run.py runs it beside ``python -m carpscope analyze ... --format json`` and
``python -c pass``). runpy, argparse (with re, enum, gettext and locale) and json are the
standard library's share of carpscope's start-up; carpscope's own is the difference."""
import argparse
import json
import sys

parser = argparse.ArgumentParser(prog="floor")
commands = parser.add_subparsers(dest="command")
analyze = commands.add_parser("analyze")
analyze.add_argument("captures", nargs="+")
analyze.add_argument("-f", "--format", default="text", choices=["text", "json"])
args = parser.parse_args()
sys.stdout.write(json.dumps({"command": args.command, "captures": args.captures, "format": args.format}) + "\n")
