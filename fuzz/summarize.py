"""Sum campaign logs (campaign.py's JSON lines) per target: executions, seconds, last
coverage counters, crash chunks. Prints a markdown table for docs/fuzzing.md.

    python fuzz/summarize.py fuzz/logs/*.jsonl
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict


def main(paths):
    tot = defaultdict(lambda: {"executions": 0, "seconds": 0.0, "chunks": 0, "crash_chunks": 0,
                               "cov": None, "ft": None, "corpus": None})
    recs = sorted((json.loads(line) for p in paths for line in open(p) if line.strip()), key=lambda r: r["time"])
    for r in recs:
        if True:
            t = tot[r["target"]]
            t["executions"] += r["executions"]
            t["seconds"] += r["seconds"]
            t["chunks"] += 1
            t["crash_chunks"] += bool(r["crash"])
            if r["cov"] is not None:
                t["cov"], t["ft"], t["corpus"] = r["cov"], r["ft"], r["corpus"]
    print("| target | executions | chunk wall time (s) | exec/s | edges (cov) | features (ft) | corpus | chunks ending in a crash |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    total = 0
    for name, t in sorted(tot.items()):
        total += t["executions"]
        rate = t["executions"] / t["seconds"] if t["seconds"] else 0
        print(f"| {name} | {t['executions']:,} | {t['seconds']:,.0f} | {rate:,.0f} | {t['cov']} | {t['ft']} | "
              f"{t['corpus']} | {t['crash_chunks']} |")
    print(f"| **total** | **{total:,}** | | | | | | |")


if __name__ == "__main__":
    main(sys.argv[1:])
