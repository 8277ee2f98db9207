"""Where the time of one advert goes: each pipeline stage alone, in CPU microseconds per advert.

    python bench/stages.py                 # the dense capture (built if missing)
    python bench/stages.py mixed --repeat 5

Each stage runs over the whole capture on its own (the records decoded beforehand), the
fastest of --repeat runs is shown: read (libpcap's batches; carpscope's chunked reader),
decode_frame, PacketRules, VipInference.add_advert, Verifier.verify, AuthFindings.add,
Tracker, then Analysis.record (everything after decode, together: what an advert that is not a
repeat costs), analyze's whole loop (read included) without the fold, with the Python fold and
with the compiled one, and interpreter start-up. bench/RESULTS.md quotes this table.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_captures  # noqa: E402
from run import python_env  # noqa: E402

from carpscope import auth  # noqa: E402
from carpscope.engine import Engine as Analysis  # noqa: E402
from carpscope.capture import open_source  # noqa: E402
from carpscope.model import Advert  # noqa: E402
from carpscope.rules.packet import PacketRules  # noqa: E402
from carpscope.steady import engine as steady_engine  # noqa: E402
from carpscope.track import Tracker  # noqa: E402
from carpscope.auth.vipinfer import VipInference  # noqa: E402
from carpscope.wire.frame import decode_frame  # noqa: E402


def keyring(man: dict) -> auth.Keyring:
    ring = auth.Keyring()
    auth.load_passphrase_file(man["keys"], ring)
    for v in man["vip_args"]:
        vhid, addrs = auth.parse_vip_arg(v)
        ring.add_vips(vhid, addrs)
    return ring


def cpu(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("capture", nargs="?", default="dense")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=make_captures.OUT)
    args = ap.parse_args(argv)
    man = make_captures.ensure(args.capture, args.out)
    path = str(args.out / f"{args.capture}.pcap")
    frames = list(open_source(path).frames())
    recs = [r for r in (decode_frame(lt, d, n, ts, path) for lt, n, ts, d in frames) if r is not None]
    ads = [r for r in recs if type(r) is Advert]
    n = len(ads)

    def read(libpcap: bool):
        def run():
            if libpcap:
                os.environ["CARPSCOPE_LIBPCAP_READ"] = "1"
            try:
                for _ in open_source(path).chunks():
                    pass
            finally:
                os.environ.pop("CARPSCOPE_LIBPCAP_READ", None)
        return run

    def fed(engine: str):
        def run():
            ring = keyring(man)
            an = Analysis(auth.Verifier(ring), VipInference(ring), auth.AuthFindings(), steady=engine)
            an.feed_source(open_source(path))
            an.finish()
        return run

    def decode():
        for lt, num, ts, data in frames:
            decode_frame(lt, data, num, ts, path)

    def each(make):
        def run():
            f = make()
            for a in ads:
                f(a)
        return run

    verifier = auth.Verifier(keyring(man))
    results = [verifier.verify(a) for a in ads]

    def auth_add():
        col = auth.AuthFindings()
        for a, r in zip(ads, results):
            col.add(a, r)

    def analysis():
        ring = keyring(man)
        an = Analysis(auth.Verifier(ring), VipInference(ring), auth.AuthFindings())
        record = an.record
        for r in recs:
            record(r)
        an.finish()

    stages = [
        ("read: libpcap batches + BPF", read(True), len(frames)),
        ("read: carpscope._pcapread chunks + BPF", read(False), len(frames)),
        ("decode_frame", decode, len(frames)),
        ("PacketRules.advert", each(lambda: PacketRules().advert), n),
        ("VipInference.add_advert", each(lambda: VipInference(keyring(man)).add_advert), n),
        ("Verifier.verify (auth.py)", each(lambda: auth.Verifier(keyring(man)).verify), n),
        ("AuthFindings.add (auth.py)", auth_add, n),
        ("Tracker.advert", each(lambda: Tracker().advert), n),
        ("Analysis.record: all of the above after decode", analysis, n),
        ("analyze's loop, every frame through the pipeline", fed("off"), n),
        ("analyze's loop, repeats folded in Python", fed("python"), n),
    ]
    if steady_engine() == "c":
        stages.append(("analyze's loop, repeats folded in C (as installed)", fed("c"), n))
    print(f"{args.capture}: {len(frames):,} frames read, {n:,} adverts; CPU per advert (fastest of {args.repeat})")
    for label, fn, count in stages:
        t = cpu(fn, args.repeat)
        print(f"  {label:50} {t / max(n, 1) * 1e6:6.2f} us   ({t:.3f} s)")
    _startup(args.out)                       # caches the bytecode, as run.py's untimed run does
    start = min(_startup(args.out) for _ in range(args.repeat))
    print(f"  {'interpreter start-up + imports (python -m carpscope analyze, empty capture)':50} {start:.3f} s")
    return 0


def _startup(out: Path) -> float:
    empty = out / "empty.pcap"
    if not empty.exists():
        empty.parent.mkdir(parents=True, exist_ok=True)
        with open(empty, "wb") as f:
            make_captures.synth.PcapWriter(f)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "carpscope", "analyze", str(empty), "--format", "json", "-q"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=python_env(out))
    return time.perf_counter() - t0


if __name__ == "__main__":
    sys.exit(main())
