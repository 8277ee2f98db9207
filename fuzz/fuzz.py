"""atheris (libFuzzer) harness for one target of targets.py (input layouts in its docstring).

    python fuzz/fuzz.py capture fuzz/corpus/capture -artifact_prefix=fuzz/crashes/ -max_total_time=600

The first argument names the target (a key of targets.TARGETS); the rest go to libFuzzer.
"""
import os
import sys

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
with atheris.instrument_imports(include=["carpscope", "targets"]):
    import targets

if os.environ.get("CARPSCOPE_PURE_PYTHON"):
    # carpscope's submodules are then loaded from source by its own finder (carpscope/__init__.py),
    # ahead of atheris' import hook: instrument their functions now (the compiled engine, the
    # default, cannot be instrumented at all: run campaigns with CARPSCOPE_PURE_PYTHON=1)
    import inspect

    for _name in [n for n in sys.modules if n.startswith("carpscope.")]:
        _mod = sys.modules.get(_name)
        for _obj in list(vars(_mod).values()) if _mod is not None else ():
            _fns = [_obj] if inspect.isfunction(_obj) else (
                [v for v in vars(_obj).values() if inspect.isfunction(v)] if inspect.isclass(_obj) else [])
            for _f in _fns:
                if _f.__module__ == _name:
                    atheris.instrument_func(_f)



def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in targets.TARGETS:
        sys.exit(f"usage: fuzz.py {{{','.join(targets.TARGETS)}}} [libFuzzer arguments]")
    target = targets.TARGETS[sys.argv[1]]

    def TestOneInput(data: bytes) -> None:
        target(data)

    atheris.Setup([sys.argv[0]] + sys.argv[2:], TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
