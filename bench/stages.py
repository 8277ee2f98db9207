"""CPU per engine stage on a benchmark capture (where an advert's time goes).

    python bench/stages.py dense        # bench/out/dense.pcap, built by make_captures.py

Reads the capture once into memory (so reading is timed apart), then runs each stage of the
engine (carpscope/engine.py) over all adverts on its own — decode, copies and lookup, packet
rules, HMAC verification, VIP inference, tracking, auth accounting — and last the whole engine
on the same frames. Stage times are indicative (each stage alone, lists between them); the
ENGINE line is the real per-frame cost. Runs the compiled engine when installed
(CARPSCOPE_PURE_PYTHON=1 for the Python source).
"""
from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path

import carpscope
from carpscope import auth
from carpscope.auth.vipinfer import VipInference
from carpscope.capture import open_source
from carpscope.engine import Engine
from carpscope.model import SourceInfo
from carpscope.rules.auth import tally
from carpscope.rules.packet import PacketRules
from carpscope.wire.frame import Decoder

HERE = Path(__file__).resolve().parent


def main(name: str) -> None:
    gc.disable()
    path = HERE / "out" / f"{name}.pcap"
    man = json.loads((HERE / "out" / f"{name}.json").read_text())

    def ring() -> auth.Keyring:
        r = auth.Keyring()
        auth.load_passphrase_file(str(HERE / "out" / f"{name}.keys"), r)
        for v in man["vip_args"]:
            vh, a = auth.parse_vip_arg(v)
            r.add_vips(vh, a)
        return r

    t0 = time.perf_counter()
    src = open_source(str(path))
    frames = [f for ch in src.chunks() for f in ch]
    t1 = time.perf_counter()
    dec = Decoder(str(path))
    recs = [dec.decode(lt, d, n, ts) for n, ts, lt, d, _o, _l in frames]
    t2 = time.perf_counter()
    e = Engine()
    rep, tr = e.repeats, e.tracker
    adv = []
    for a in recs:
        st = e._state(a)
        if rep.copy(a, st.cells):
            continue
        got = tr.lookup(a)
        if got is None:
            continue
        g, sp = got
        if rep.seen(a, g, sp, st.cells):
            adv.append((a, g, sp))
    t3 = time.perf_counter()
    pr = PacketRules()
    for a, _g, _sp in adv:
        pr.advert(a)
    t4 = time.perf_counter()
    ver = auth.Verifier(ring())
    res = [ver.verify(a, sp) for a, _g, sp in adv]
    t5 = time.perf_counter()
    vi = VipInference(ring())
    for a, _g, _sp in adv:
        vi.add_advert(a)
    t6 = time.perf_counter()
    for a, g, sp in adv:
        tr.advert(a, g, sp)
    t7 = time.perf_counter()
    for (a, _g, sp), r in zip(adv, res):
        tally(sp, a, r)
    t8 = time.perf_counter()
    e2 = Engine(auth.Verifier(ring()), VipInference(ring()))
    e2.chunk(frames, str(path), SourceInfo(str(path)))
    t9 = time.perf_counter()
    n = len(frames)
    print(f"{carpscope.engine_kind()} engine; frames {n:,}, adverts after copies {len(adv):,}")
    for label, a, b in (("read", t0, t1), ("decode", t1, t2), ("copies+lookup", t2, t3), ("packet rules", t3, t4),
                        ("HMAC", t4, t5), ("VIP inference", t5, t6), ("tracking", t6, t7), ("auth tally", t7, t8),
                        ("ENGINE", t8, t9)):
        print(f"{label:14} {(b - a) * 1e6 / n:6.2f} us/frame  {b - a:.3f} s")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "dense")
