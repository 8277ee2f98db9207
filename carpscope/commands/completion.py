"""``carpscope completion bash|zsh``: a shell completion script, generated from the argument
parser (commands/completion_scripts.py)."""
from __future__ import annotations

import sys

from carpscope.commands import EXIT_OK


def run(args) -> int:
    from carpscope.cli import build_parser
    from carpscope.commands import completion_scripts
    parser = build_parser()
    sys.stdout.write(getattr(completion_scripts, args.shell)(parser, dict(parser.subcommands)))
    return EXIT_OK
