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
