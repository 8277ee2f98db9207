"""atheris (libFuzzer) harness for the report target (see targets.py for the input layout).

    python fuzz/fuzz_report.py fuzz/corpus/report -artifact_prefix=fuzz/crashes/ -max_total_time=600
"""
import os
import sys

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
with atheris.instrument_imports(include=["carpscope", "targets"]):
    import targets

target = targets.report_target


def TestOneInput(data: bytes) -> None:
    target(data)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
