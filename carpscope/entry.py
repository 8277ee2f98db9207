"""The ``carpscope`` command's entry point (and ``python -m carpscope``'s): it guards the start.

A SIGINT or SIGTERM while the command's modules load, before any input is read, ends it with
one line and status 130 or 143, not a traceback; each command then handles signals itself
(analyze reports what it read, sniff what it saw). Only the interpreter's own start-up, before
this module runs, is beyond any program's reach."""
from __future__ import annotations

import _signal as signal     # signal's constants without its enums (start-up)
import gc
import sys


class _Loading(BaseException):
    """A signal while the command's modules load."""


def main() -> int:
    """Run the command line; its exit status."""
    def loading(num: int, _frame: object) -> None:
        raise _Loading(num)

    def terminated(_num: int, _frame: object) -> None:
        sys.stderr.write("carpscope: terminated\n")
        raise SystemExit(128 + signal.SIGTERM)

    old = signal.signal(signal.SIGINT, loading)
    signal.signal(signal.SIGTERM, loading)
    try:
        from carpscope.cli import main as command
    except _Loading as e:
        num = int(e.args[0])
        sys.stderr.write(f"carpscope: {'interrupted' if num == signal.SIGINT else 'terminated'} while starting\n")
        return 128 + num
    finally:
        # until a command sets its own: SIGINT raises KeyboardInterrupt (the CLI says
        # "interrupted", 130), SIGTERM ends with one line and 143 (outputs begun are removed)
        signal.signal(signal.SIGINT, old)
        signal.signal(signal.SIGTERM, terminated)
    status = command()
    # The process ends now. The analysis keeps its state in reference cycles (a group and its
    # tracker, ...), left uncollected while it ran; moving everything to the collector's
    # permanent generation leaves that memory to the operating system instead of a last full
    # collection at exit (30-80 ms on the bench captures). Outputs are closed by now.
    gc.freeze()
    return status
