#!/bin/sh
# The engine spike of issue 13 (docs/performance.md, "How the engine was chosen"): one reduced
# per-advert engine (decode, packet rules, HMAC, copies, tracking) in plain typed Python, run
#   - interpreted,
#   - compiled by mypyc from the same file,
#   - compiled by Cython from the same file with eng.pxd beside it (pure-Python mode),
# on the storm, loop and flap captures of bench/ (built if missing). Needs a C compiler,
# mypy (mypyc) and Cython in the Python that runs it:  pip install mypy cython
# Usage: sh bench/spike/run.sh [python]
set -e
PY=${1:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${TMPDIR:-/tmp}/carpscope-spike
rm -rf "$OUT" && mkdir -p "$OUT/py" "$OUT/mypyc" "$OUT/cython"
cp "$HERE/eng.py" "$OUT/py/"
cp "$HERE/eng.py" "$OUT/mypyc/"
cp "$HERE/eng.py" "$HERE/eng.pxd" "$OUT/cython/"
(cd "$OUT/mypyc" && "$PY" -m mypyc eng.py >/dev/null)
(cd "$OUT/cython" && "$PY" -c "
from setuptools import setup
from Cython.Build import cythonize
setup(ext_modules=cythonize('eng.py', quiet=True, compiler_directives={'annotation_typing': False}), script_args=['build_ext', '--inplace'])" >/dev/null)
"$PY" "$HERE/../make_captures.py" storm loop flap
for cap in storm loop flap; do
  for how in py mypyc cython; do
    printf '%-6s %-7s ' "$cap" "$how"
    ENGPATH="$OUT/$how" "$PY" "$HERE/run_one.py" "$HERE/../out/$cap.pcap" 2>/dev/null
  done
done
