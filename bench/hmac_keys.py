"""CARP HMAC verification rate with 1 and with 10 candidate keys (issue: verify every advert).

    python bench/hmac_keys.py            # prints a table and writes bench/HMAC.md

Two cases per key count, on the same 200,000 adverts (one VHID, one VIP, counters counting up):
- steady: one speaker; after the first advert its matching context is tried first, so every
  advert costs one inner+outer SHA-1 copy/finish whatever the number of keys;
- searching: every advert from a new speaker (the cache never helps), the right key last, so
  each advert walks every candidate context: the worst case, linear in the keys.
No weak-key list (try_weak=False), so the candidates are exactly the keys given.
"""
from __future__ import annotations

import platform
import time
from datetime import date
from pathlib import Path

from carpscope import auth, synth
from carpscope.model import Advert

N = 200_000
VIP = "10.0.0.50"
HERE = Path(__file__).resolve().parent


def adverts(n: int, key: bytes, new_speakers: bool) -> list[Advert]:
    out = []
    for i in range(n):
        ctr = i.to_bytes(8, "big")
        md = synth.carp_md(key, 7, [VIP], ctr)
        src = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}" if new_speakers else "10.0.0.2"
        out.append(Advert(i + 1, float(i), "bench", "bench", 4, src, "224.0.0.18", 255, protocol="carp",
                          vhid=7, version=2, type=1, checksum_ok=True, checksum_variant="plain",
                          payload_len=36, advbase=1, advskew=0, authlen=7, demote=0, counter=ctr, md=md,
                          eth_src="00:00:5e:00:01:07"))
    return out


def rate(keys: int, new_speakers: bool) -> float:
    ring = auth.Keyring()
    for k in range(keys):
        ring.add_passphrase(f"k{k}", f"bench-pass-{k}")
    ring.add_vips(7, [VIP])
    right = auth.derive_key(f"bench-pass-{keys - 1}")     # the last candidate is the right one
    ads = adverts(N, right, new_speakers)
    v = auth.Verifier(ring, try_weak=False)
    t = time.perf_counter()
    for a in ads:
        if v.verify(a).status != "ok":
            raise SystemExit("bench: an advert failed to verify")
    return N / (time.perf_counter() - t)


def main() -> None:
    rows = []
    for keys in (1, 10):
        for new in (False, True):
            rows.append((keys, "searching" if new else "steady", max(rate(keys, new) for _ in range(3))))
    lines = [f"# CARP HMAC verification rate ({date.today()}, {platform.machine()}, "
             f"{platform.python_implementation()} {platform.python_version()})", "",
             "`python bench/hmac_keys.py` — adverts verified per second by `auth.Verifier.verify` alone "
             f"(best of 3 runs over {N:,} adverts; see the module docstring for the two cases).", "",
             "| candidate keys | case | adverts/s |", "| ---: | --- | ---: |"]
    lines += [f"| {k} | {case} | {r:,.0f} |" for k, case, r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    (HERE / "HMAC.md").write_text(text)


if __name__ == "__main__":
    main()
