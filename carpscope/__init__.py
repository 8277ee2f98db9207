"""carpscope: decode, verify and diagnose CARP and VRRP (IP protocol 112).

The per-frame modules are compiled by mypyc when the package is built with a C compiler
(setup.py); ``CARPSCOPE_PURE_PYTHON=1`` runs their Python source instead, with the same
results (``engine_kind()`` says which runs).
"""
from __future__ import annotations

import os
import sys

__version__ = "0.2.0"

PURE_ENV = "CARPSCOPE_PURE_PYTHON"


class _SourceFirst:
    """A finder that loads carpscope's modules from their .py files even where a compiled
    extension of the same name sits beside them."""

    @staticmethod
    def find_spec(name: str, path=None, target=None):
        if not name.startswith("carpscope.") or path is None:
            return None
        import importlib.util
        leaf = name.rpartition(".")[2]
        for entry in path:
            for candidate, is_pkg in ((os.path.join(entry, leaf + ".py"), False),
                                      (os.path.join(entry, leaf, "__init__.py"), True)):
                if os.path.isfile(candidate):
                    return importlib.util.spec_from_file_location(
                        name, candidate,
                        submodule_search_locations=[os.path.dirname(candidate)] if is_pkg else None)
        # a module with no Python source is a compiled kernel (carpscope._sha1): not in pure mode
        raise ModuleNotFoundError(f"{name} is compiled only ({PURE_ENV} is set)", name=name)


def _stale() -> bool:
    """In a source checkout built in place (pip install -e), a compiled module older than its
    .py would silently run old code: then the Python source runs instead (and says so)."""
    here = os.path.dirname(__file__)
    if not os.path.exists(os.path.join(os.path.dirname(here), "setup.py")):
        return False                      # an installed copy, not a checkout: no walk at every start
    try:
        built = os.stat(os.path.join(here, "engine" + _ext_suffix())).st_mtime
    except OSError:
        return False                      # not built in place: nothing to compare
    for folder, _dirs, files in os.walk(here):
        for name in files:
            if name.endswith(".py") and os.stat(os.path.join(folder, name)).st_mtime > built + 1:
                stem = os.path.join(folder, name[:-3])
                if os.path.exists(stem + _ext_suffix()):
                    return True
    return False


def _ext_suffix() -> str:
    import importlib.machinery
    return importlib.machinery.EXTENSION_SUFFIXES[0]


if not any(isinstance(f, _SourceFirst) for f in sys.meta_path) and (os.environ.get(PURE_ENV) or _stale()):
    if not os.environ.get(PURE_ENV):
        sys.stderr.write("carpscope: note: the compiled engine is older than its source: running the "
                         "Python source (rebuild it: pip install -e .)\n")
    sys.meta_path.insert(0, _SourceFirst())


def engine_kind() -> str:
    """"compiled" when the engine runs as mypyc-compiled C, else "python"."""
    from carpscope import engine as module
    return "python" if (module.__file__ or "").endswith(".py") else "compiled"
