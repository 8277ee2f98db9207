"""Run one atheris target until a number of executions is reached, in chunks, and keep going
after a crash (the crashing input is kept in CRASHDIR; fix it, add it to
tests/fuzz_regressions/, and the next chunk carries on). One JSON line per chunk goes to LOG:
executions, seconds, libFuzzer's coverage counters (cov = edges, ft = features), corpus size,
crash file.

    python fuzz/campaign.py TARGET EXECUTIONS CORPUSDIR CRASHDIR LOG [CHUNK]
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main(target, total, corpus, crashdir, log, chunk=500_000):
    total, chunk = int(total), int(chunk)
    os.makedirs(crashdir, exist_ok=True)
    done = 0
    while done < total:
        runs = min(chunk, total - done)
        t0 = time.time()
        p = subprocess.run([sys.executable, os.path.join(HERE, "fuzz.py"), target, corpus,
                            f"-runs={runs}", f"-artifact_prefix={crashdir}/{target}-", "-print_final_stats=1",
                            "-max_len=65536", "-timeout=10", "-rss_limit_mb=2048", "-print_pcs=0"],
                           capture_output=True, text=True, errors="replace")
        out = p.stderr + p.stdout
        m = re.search(r"stat::number_of_executed_units:\s*(\d+)", out)
        n = int(m.group(1)) if m else 0
        covs = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)", out)
        crash = re.search(r"Test unit written to (\S+)", out)
        exc = re.search(r"=== Uncaught Python exception: ===\n(.*)", out)
        rec = {"target": target, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "executions": n,
               "seconds": round(time.time() - t0, 1), "rc": p.returncode,
               "cov": int(covs[-1][0]) if covs else None, "ft": int(covs[-1][1]) if covs else None,
               "corpus": int(covs[-1][2]) if covs else None,
               "crash": crash.group(1) if crash else None, "exception": exc.group(1) if exc else None}
        with open(log, "a") as f:
            f.write(json.dumps(rec) + "\n")
        done += n
        if n == 0:
            with open(log + ".err", "w") as f:
                f.write(out[-5000:])
            break


if __name__ == "__main__":
    main(*sys.argv[1:])
