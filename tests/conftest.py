"""Shared fixtures and helpers for the decoder tests.

Paths are computed from the repository root, never from the working directory:
  REPO/captures                 recordings other engineers add (globbed at test time)
  REPO/tests/data               small generated captures (tests/data/make_data.py)
  REPO/../shared/...            public captures and protocol vectors (skipped when absent)
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CAPTURES = REPO / "captures"
DATA = REPO / "tests" / "data"
SHARED = REPO.parent / "shared"
EXTERNAL = SHARED / "captures" / "external"
VECTORS = SHARED / "docs" / "vectors.json"
TSHARK = shutil.which("tshark")
CHROMIUM = shutil.which("chromium")
IN_CI = os.environ.get("CI", "").lower() == "true"


def pytest_runtest_setup(item):
    """tshark (chromium) tests skip without tshark (chromium), except in CI where it is a failure."""
    if item.get_closest_marker("tshark") and TSHARK is None:
        if IN_CI:
            pytest.fail("tshark is not installed but CI=true: the tshark differential tests must run in CI",
                        pytrace=False)
        pytest.skip("tshark not installed (apt-get install tshark); the differential tests need it")
    if item.get_closest_marker("chromium") and CHROMIUM is None:
        if IN_CI:
            pytest.fail("chromium is not installed but CI=true: the HTML report tests must run in CI", pytrace=False)
        pytest.skip("chromium not installed (apt-get install chromium); the HTML report tests need it")


# ------------------------------------------------------------------ paths

@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def captures_dir() -> Path:
    return CAPTURES


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def external_dir() -> Path:
    if not EXTERNAL.is_dir():
        pytest.skip(f"public captures not available ({EXTERNAL} missing: ../shared is not checked out here)")
    return EXTERNAL


@pytest.fixture(scope="session")
def vectors_path() -> Path:
    if not VECTORS.is_file():
        pytest.skip(f"protocol vectors not available ({VECTORS} missing: ../shared is not checked out here)")
    return VECTORS


@pytest.fixture(scope="session")
def vectors(vectors_path) -> dict:
    return json.loads(vectors_path.read_text())


# ------------------------------------------------------------------ the CLI

def run_cli(*args, stdin: bytes | None = None, timeout: float = 60) -> tuple[int, str, str]:
    """Run ``python -m carpscope ARGS`` in a subprocess; returns (rc, stdout, stderr)."""
    env = dict(os.environ, NO_COLOR="1")
    for k in ("FORCE_COLOR", "COLUMNS"):   # what a user's pipe gets: no terminal, default width
        env.pop(k, None)
    p = subprocess.run([sys.executable, "-m", "carpscope", *map(str, args)], input=stdin,
                       stdin=None if stdin is not None else subprocess.DEVNULL,
                       capture_output=True, cwd=REPO, env=env, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


@pytest.fixture(scope="session")
def cli():
    return run_cli


def stderr_messages(stderr: str) -> list[str]:
    """The ``carpscope: ...`` messages on stderr, a message wrapped by the console (cli.py
    prints through rich, which wraps long lines; see test_bad_input) joined back up."""
    msgs: list[str] = []
    for line in stderr.splitlines():
        if line.startswith("carpscope:") or not msgs:
            msgs.append(line)
        else:
            msgs[-1] += " " + line
    return [" ".join(m.split()) for m in msgs]


def jsonl_records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


# ------------------------------------------------------------------ tshark

TSHARK_LAYERS = "frame eth ieee8021ad vlan sll fr ip ipv6 vrrp carp _ws.malformed _ws.short"


def tshark_json(path, decode_as_carp: bool = False, *, heuristic: bool = True,
                prefs: tuple[str, ...] = (), count: int | None = None) -> list[dict]:
    """tshark's dissection of every frame of ``path``, flattened per frame.

    Each frame is a dict field name -> list of values (strings, in tree order), e.g.
    ``{"frame.number": ["1"], "vrrp.ip_addr": ["10.0.0.1", "10.0.0.2"], ...}``; the set of
    top-level layers is under ``"_layers"``. ``heuristic`` adds ``-o ip.try_heuristic_first:TRUE``
    (CARP is only recognised by Wireshark's heuristic), ``decode_as_carp`` forces
    ``-d ip.proto==112,carp`` (the only way tshark decodes IPv6 CARP).
    """
    cmd = [TSHARK or "tshark", "-n", "-r", str(path), "-T", "json", "--no-duplicate-keys",
           "-J", TSHARK_LAYERS]
    if heuristic:
        cmd += ["-o", "ip.try_heuristic_first:TRUE"]
    if decode_as_carp:
        cmd += ["-d", "ip.proto==112,carp"]
    for p in prefs:
        cmd += ["-o", p]
    if count:
        cmd += ["-c", str(count)]
    p = subprocess.run(cmd, capture_output=True, timeout=120)
    out = p.stdout.decode("utf-8", "replace").strip()
    if not out:
        return []
    frames = []
    for pkt in json.loads(out):
        layers = pkt["_source"]["layers"]
        flat: dict[str, list] = {"_layers": list(layers)}
        _flatten(layers, flat)
        frames.append(flat)
    return frames


def _flatten(node, flat: dict[str, list]) -> None:
    for key, value in node.items():
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, dict):
                _flatten(v, flat)
            else:
                flat.setdefault(key, []).append(v)


@pytest.fixture(scope="session")
def tshark():
    return tshark_json
