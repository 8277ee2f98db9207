"""Replay every input the fuzzers (fuzz/fuzz_*.py) ever crashed on: each must now run through
its target without an exception (fuzz/targets.py says what a target checks). The inputs sit in
tests/fuzz_regressions/<target>/, named after what was wrong; docs/fuzzing.md lists them with
the fix. Inputs of the capture target are also fed to the CLI (as a file and on standard
input): one line of warning or error, never an internal error."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "fuzz"))
sys.path.insert(0, str(REPO / "tests"))

import targets  # noqa: E402
from conftest import run_cli  # noqa: E402

CASES = sorted(p for p in HERE.glob("*/*") if p.is_file() and p.parent.name in targets.TARGETS)


def test_there_are_regressions():
    assert {p.parent.name for p in CASES} >= {"capture"}


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.name}" for p in CASES])
def test_replay(path):
    targets.TARGETS[path.parent.name](path.read_bytes())


CAPTURES = [p for p in CASES if p.parent.name == "capture"]


@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_cli_on_crash_inputs(tmp_path, path):
    body = path.read_bytes()[1:]        # byte 0 chose the reader path in the fuzzer
    f = tmp_path / "input.cap"
    f.write_bytes(body)
    for args, stdin in (((f,), None), (("-",), body)):
        rc, out, err = run_cli("analyze", *args, "--format", "json", stdin=stdin)
        assert "internal error" not in err and "Traceback" not in err, err
        assert rc in (0, 1, 2), (rc, err)


CONFIGS = [p for p in CASES if p.parent.name == "config"]


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_lint_on_crash_inputs(tmp_path, path):
    """Through 'carpscope lint' the same text gives config-parse-error findings with file and
    line, never read_configs' last-resort 'cannot read this file (SomeError: ...)'."""
    data = path.read_bytes()
    kind = targets.CONFIG_KINDS[data[0] % len(targets.CONFIG_KINDS)]
    f = tmp_path / ("interfaces" if kind == "interfaces" else f"host1.{kind}")
    f.write_bytes(data[1:].decode("utf-8", "replace").encode())
    rc, out, err = run_cli("lint", f, "--format", "json")
    assert "internal error" not in err and "Traceback" not in err, err
    assert "cannot read this file (" not in out + err, out
