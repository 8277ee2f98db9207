"""Help texts, usage errors and shell completion (issue 16)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def carpscope(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=str(REPO), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "carpscope", *args], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=60, stdin=subprocess.DEVNULL)


def test_unknown_option_gets_its_commands_usage():
    p = carpscope("analyze", "x.pcap", "--bogus")
    assert p.returncode == 2
    assert p.stderr.startswith("usage: carpscope analyze")
    assert p.stderr.strip().endswith("carpscope analyze: error: unrecognized arguments: --bogus")
    p = carpscope("rules", "split-brain", "--nope")
    assert p.returncode == 2 and p.stderr.startswith("usage: carpscope rules")


@pytest.mark.parametrize("command,options", [
    ("analyze", ["--no-timeline", "--inventory FILE.toml", "CAPTURE", "--tz {utc,local}", "-f {", "--color"]),
    ("inventory", ["-o FILE, --output FILE", "CONFIG", "--debug"]),
    ("lint", ["CONFIG", "--debug", "--color"]),
    ("rules", ["SLUG|CODE"]),
])
def test_every_option_has_help(command, options):
    out = carpscope(command, "--help").stdout
    lines = out.splitlines()
    for opt in options:
        i = next(k for k, line in enumerate(lines) if line.startswith("  " + opt))
        rest = lines[i][2 + len(opt):]
        described = rest.strip() if rest.startswith("  ") else lines[i + 1].strip()
        assert described and not described.startswith("-"), f"{command} {opt}: no help text"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completion(tmp_path):
    script = tmp_path / "c.sh"
    p = carpscope("completion", "bash")
    assert p.returncode == 0
    script.write_text(p.stdout)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0

    def complete(*words: str) -> list[str]:
        arr = " ".join(f"'{w}'" for w in words)
        r = subprocess.run(["bash", "-c", f"source {script}; COMP_WORDS=({arr}); COMP_CWORD={len(words) - 1}; "
                                          '_carpscope; printf "%s\\n" "${COMPREPLY[@]}"'],
                           capture_output=True, text=True, timeout=20)
        return r.stdout.split()
    assert "analyze" in complete("carpscope", "an")
    assert complete("carpscope", "analyze", "--for") == ["--format"]
    assert "html" in complete("carpscope", "analyze", "--format", "")
    assert complete("carpscope", "rules", "split") == ["split-brain"]
    assert "--duration" in complete("carpscope", "sniff", "--dur")
    assert carpscope("completion", "zsh").stdout.startswith("#compdef carpscope")
