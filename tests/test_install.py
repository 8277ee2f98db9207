"""The package as `pip install` gives it (issue 16): rule pages inside the package, SARIF help
text and helpUri, LICENSE. The full check (a fresh venv outside the repository, `pip install .`,
then `carpscope rules split-brain` and a SARIF run) is .ci/install_check.py; it runs here under
CI=true (slow: it builds and installs the package) and on request (CARPSCOPE_INSTALL_TEST=1)."""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from carpscope.rules import HELP_URI, catalogue

REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() == "true"


def test_help_uri_is_the_declared_repository_plus_the_page_path():
    urls = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]
    base = urls["Repository"].rstrip("/")
    assert HELP_URI.startswith(base + "/blob/main/")
    for rule in catalogue().values():
        rel = rule.help_uri[len(base) + len("/blob/main/"):]
        assert (REPO / rel).is_file(), rule.help_uri       # the path exists in the repository


def test_dpkt_is_not_a_runtime_dependency():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("dpkt") for d in meta["dependencies"])
    out = subprocess.run(["git", "grep", "-l", "-E", r"^\s*(import|from) dpkt", "--", "carpscope"],
                         cwd=REPO, capture_output=True, text=True)
    assert out.stdout == "", out.stdout


@pytest.mark.install
def test_pip_install_into_a_fresh_venv_is_complete():
    if not IN_CI and not os.environ.get("CARPSCOPE_INSTALL_TEST"):
        pytest.skip("slow (builds a venv and installs the package): runs under CI=true or CARPSCOPE_INSTALL_TEST=1")
    p = subprocess.run([sys.executable, str(REPO / ".ci" / "install_check.py")], capture_output=True, text=True,
                       timeout=900)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "PASS install" in p.stdout
