"""Replay corpus directories through their targets (no fuzzing): for line coverage of what a
campaign reached, and to check a corpus against the current code.

    python -m coverage run --source=carpscope fuzz/replay_corpus.py decode=fuzz/corpus/decode ...
    python -m coverage report
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import targets  # noqa: E402


def main(specs):
    for spec in specs:
        name, _, d = spec.partition("=")
        files = sorted(os.listdir(d))
        for f in files:
            with open(os.path.join(d, f), "rb") as fh:
                targets.TARGETS[name](fh.read())
        print(f"{name}: {len(files)} inputs replayed without a failure")


if __name__ == "__main__":
    main(sys.argv[1:])
