"""Start-up in structure (issue 13: a machine-readable run on a tiny capture within 2x
``python -c pass``): what a ``--format json`` run on a small capture loads. No timing here
(bench/run.py measures it); these fail when a module that run does not need comes back on its
path: the text, HTML and CI reports and rich, the config readers, settings-file parsing,
importlib.resources and its tempfile/zipfile, pathlib, datetime, glob, socket (the decoder
writes addresses as inet_ntop does: wire/proto112.ntop), shutil (argparse's formatter width is
read by cli._columns), typing (its names are imported only for the type checker, under a
``TYPE_CHECKING`` of our own), hashlib and the OpenSSL it loads (carpscope.digests takes SHA-1
and SHA-256 from CPython's own modules), signal's enums (``_signal``); and dataclasses, compiled
modules included (it pulls in inspect, about 8 ms, and each class costs the building of its
methods at import: the records of the run are plain classes with their own ``__init__``)."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys

import pytest

from conftest import CAPTURES, REPO

NOT_LOADED = (
    "rich", "tomllib", "tempfile", "zipfile", "importlib.resources", "importlib.readers", "pathlib",
    "urllib.parse", "datetime", "glob", "random", "threading", "xml", "defusedxml", "pcapy",
    "dataclasses", "inspect", "socket", "shutil", "typing", "hashlib", "_hashlib", "signal",
    "carpscope.report.text", "carpscope.report.html", "carpscope.report.view", "carpscope.report.sarif",
    "carpscope.report.junit", "carpscope.report.adverts", "carpscope.config", "carpscope.intent",
    "carpscope.commands.sniff", "carpscope.commands.lint",
)

# the child notes the modules the interpreter started with, runs the command as python -m does,
# and prints the modules it added; it runs without site (-S, carpscope from PYTHONPATH): an
# editable install's finder loads pathlib at every start, which would hide it here
CHILD = ("import atexit, sys\n"
         "start = set(sys.modules)\n"
         "atexit.register(lambda: sys.stderr.write('MODULES ' + ' '.join(sorted(set(sys.modules) - start)) + '\\n'))\n"
         "import runpy\n"
         "sys.argv = ['carpscope', *sys.argv[1:]]\n"
         "runpy.run_module('carpscope', run_name='__main__', alter_sys=True)\n")


def json_run_modules(tmp_path, pure: bool) -> set[str]:
    """The modules ``carpscope analyze failover.pcap --format json`` adds, run like the
    command (python -m carpscope) in a directory of its own: no settings file on the way up
    (the .git stops the search) and the capture inside it (a file outside the root is shown
    through pathlib's normal form, which imports it)."""
    shutil.copy(CAPTURES / "failover.pcap", tmp_path)
    (tmp_path / ".git").mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("CARPSCOPE_PURE_PYTHON", None)
    if pure:
        env["CARPSCOPE_PURE_PYTHON"] = "1"
    p = subprocess.run([sys.executable, "-S", "-c", CHILD, "analyze", "failover.pcap", "--format", "json"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert p.returncode in (0, 1), p.stderr
    assert '"findings"' in p.stdout
    line = [x for x in p.stderr.splitlines() if x.startswith("MODULES ")][-1]
    return set(line.split()[1:])


def compiled_modules() -> set[str]:
    """setup.py's COMPILED, as module names."""
    tree = ast.parse((REPO / "setup.py").read_text())
    files = next(ast.literal_eval(n.value) for n in tree.body
                 if isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "COMPILED" for t in n.targets))
    return {f.removesuffix(".py").replace("/", ".") for f in files}


def module_level_imports(name: str) -> set[str] | None:
    """The modules a carpscope module imports at its top level; None for one without a source
    (carpscope._sha1)."""
    rel = name.replace(".", "/")
    path = next((p for p in (REPO / (rel + ".py"), REPO / rel / "__init__.py") if p.exists()), None)
    if path is None:
        return None
    out = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
    return out


@pytest.mark.parametrize("pure", [False, True], ids=["installed", "pure-python"])
def test_a_json_run_loads_only_what_it_uses(tmp_path, pure):
    loaded = json_run_modules(tmp_path, pure)
    assert "carpscope.engine" in loaded and "carpscope.report.jsonreport" in loaded   # the child saw the run
    unwanted = sorted(m for m in loaded if any(m == n or m.startswith(n + ".") for n in NOT_LOADED))
    assert unwanted == []


def test_no_dataclass_in_the_modules_of_a_json_run(tmp_path):
    """No module of the run imports dataclasses at its top level, compiled or not (the compiled
    ones run the decorator at import too, and its generated ``__init__`` as interpreted code)."""
    ours = {m: module_level_imports(m) for m in json_run_modules(tmp_path, pure=False)
            if m.startswith("carpscope.")}
    assert "carpscope.policy" in ours and compiled_modules() & set(ours)
    assert sorted(m for m, imports in ours.items() if imports and "dataclasses" in imports) == []


def test_a_command_builds_only_its_own_parser():
    """argparse looks up its translations and makes a formatter for each parser and argument it
    builds: a run builds the parser of its own command; help, an unknown command and the
    completion script see them all."""
    from carpscope.cli import COMMANDS, build_parser
    names = [name for name, _, _ in COMMANDS]
    assert list(build_parser("analyze").subcommands) == ["analyze"]
    assert list(build_parser("lint").subcommands) == ["lint"]
    for first in (None, "-h", "--version", "analyse"):
        assert list(build_parser(first).subcommands) == names
    # the lone parser is the one the whole command line has
    whole, lone = build_parser().subcommands["analyze"], build_parser("analyze").subcommands["analyze"]
    assert lone.format_help() == whole.format_help()


def test_an_unknown_command_still_lists_every_command():
    r = subprocess.run([sys.executable, "-m", "carpscope", "analyse", "x.pcap"], capture_output=True, text=True,
                       cwd=REPO, timeout=60)
    assert r.returncode == 2
    assert "invalid choice: 'analyse'" in r.stderr and "'completion'" in r.stderr


def test_main_asks_for_the_parser_of_the_command_it_runs(monkeypatch, capsys):
    from carpscope import cli
    asked = []
    real = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda command=None: asked.append(command) or real(command))
    assert cli.main(["rules", "CS401"]) == 0
    assert asked == ["rules"] and "CS401" in capsys.readouterr().out
