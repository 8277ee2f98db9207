"""The layout issue 13 asked for, kept: no module of carpscope imports another module's private
names (a leading underscore), and the modules import each other without a cycle (at module
level or inside functions). Read from the source with ``ast``; nothing is imported."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

from conftest import REPO

PKG = REPO / "carpscope"


def modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        rel = p.relative_to(REPO)
        if "docs" in rel.parts:          # carpscope/docs is docs/ (guides, no code)
            continue
        name = ".".join(rel.with_suffix("").parts)
        out[name.removesuffix(".__init__")] = p
    return out


def imports(mods: dict[str, Path]) -> list[tuple[str, str, str | None]]:
    """(importing module, imported carpscope module, name taken from it or None)."""
    out = []
    for mod, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                out += [(mod, a.name, None) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
                    parts = parts[:len(parts) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    out.append((mod, sub, None) if sub in mods else (mod, base, a.name))
    found = []
    for mod, target, name in out:
        if not target.startswith("carpscope"):
            continue
        while target not in mods and "." in target:
            target = target.rsplit(".", 1)[0]
        if target != mod:
            found.append((mod, target, name))
    return found


def private_imports(mods: dict[str, Path]) -> list[str]:
    return [f"{m} imports {name} from {t}" for m, t, name in imports(mods)
            if name and name.startswith("_") and not name.startswith("__") and not t.startswith(m + ".")]


def cycles(mods: dict[str, Path]) -> list[list[str]]:
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, t, _ in imports(mods):
        graph[m].add(t)
    found: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(v: str, path: list[str]) -> None:
        state[v] = 1
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                found.append(path[path.index(w):] + [w])
            elif w not in state:
                visit(w, path + [w])
        state[v] = 2

    for v in sorted(graph):
        if v not in state:
            visit(v, [v])
    return found


def test_no_module_imports_private_names_of_another():
    assert private_imports(modules()) == []


def test_no_import_cycle():
    assert cycles(modules()) == []


def test_the_checks_see_a_cycle_and_a_private_import(tmp_path, monkeypatch):
    """The two checks above can fail: on a made-up package with both defects."""
    pkg = tmp_path / "carpscope"
    (pkg / "a").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("from carpscope.b import _hidden\n")
    (pkg / "b.py").write_text("def f():\n    from carpscope import a\n_hidden = 1\n")
    here = sys.modules[__name__]
    monkeypatch.setattr(here, "REPO", tmp_path)
    monkeypatch.setattr(here, "PKG", pkg)
    assert private_imports(modules()) == ["carpscope.a imports _hidden from carpscope.b"]
    assert cycles(modules()) == [["carpscope.a", "carpscope.b", "carpscope.a"]]
