"""A signal before any input is read: while the command's modules load, and after, before the
command sets its own handlers. One line, status 130 (SIGINT) or 143 (SIGTERM), no traceback.
The signal is sent by the process to itself from an import hook at the named module, so the
moment is exact (a timer would race the interpreter's own start-up, which no program can
guard)."""
from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from conftest import REPO

HOOK = """
import os, signal, sys
class Hook:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.{sig})
        return None
sys.meta_path.insert(0, Hook())
sys.argv = ["carpscope", "analyze", {capture!r}, "--format", "json", "-q"]
from carpscope.entry import main
sys.exit(main())
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("module,said", [("carpscope.cli", "while starting"),
                                         ("carpscope.commands.output", "while starting"),
                                         ("carpscope.commands.analyze", "")])
def test_a_signal_before_reading_is_one_line(sig, module, said):
    code = HOOK.format(module=module, sig=sig, capture=str(REPO / "captures" / "failover.pcap"))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    want = {"SIGINT": ("interrupted", 130), "SIGTERM": ("terminated", 143)}[sig]
    assert p.returncode == want[1], p.stderr
    assert p.stdout == ""
    assert p.stderr == f"carpscope: {want[0]}{' ' + said if said else ''}\n"
