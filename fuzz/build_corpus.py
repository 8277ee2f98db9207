"""Build the seed corpora in fuzz/corpus/{decode,capture,pipe,config,report}/ (regenerated, not committed).

Seeds: every capture in the repository (captures/, captures/public/, tests/data/) and in
../shared/captures/external (the public tcpdump and PcapPlusPlus captures, including
tcpdump's oobr fuzz files), every frame of those captures, synthetic frames of every kind
carpscope decodes, a few hand-made capture layouts libpcap writers rarely produce (big-endian
pcap, pcapng simple/obsolete packet blocks, tsresol), and the configuration fixtures.

    python fuzz/build_corpus.py [OUTDIR]
"""
from __future__ import annotations

import hashlib
import io
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from carpscope import synth  # noqa: E402
from carpscope.capture.reader import Record, read_records  # noqa: E402
from targets import CONFIG_KINDS, LINKTYPE_LIST  # noqa: E402

CAPTURE_DIRS = [REPO / "captures", REPO / "tests" / "data", REPO.parent / "shared" / "captures" / "external"]


def capture_files() -> list[Path]:
    out = []
    for d in CAPTURE_DIRS:
        if d.is_dir():
            out += sorted(p for p in d.rglob("*") if p.suffix in (".pcap", ".pcapng") and p.is_file())
    return out


def synthetic_frames() -> list[tuple[int, bytes]]:
    s = synth
    carp4 = s.carp_frame("192.0.2.2", 5, passphrase="x", vips=["192.0.2.100"])
    carp6 = s.carp_frame("fe80::2", 6, passphrase="x", vips=["2001:db8::100"])
    v2 = s.vrrp_frame("192.0.2.3", 7, 150, ["192.0.2.200", "192.0.2.201"], auth_type=1, auth_data=b"pw")
    v3 = s.vrrp_frame("192.0.2.3", 8, 100, ["192.0.2.210"], version=3)
    v3_6 = s.vrrp_frame("fe80::3", 9, 100, ["2001:db8::1"], version=3)
    garp = s.garp_frame("00:00:5e:00:01:05", "192.0.2.100")
    payload = carp4[14 + 20:14 + 20 + 36]
    hbh = bytes([60, 0]) + bytes(6)                       # hop-by-hop -> destination options
    dst = bytes([112, 0]) + bytes(6)
    ext6 = s.ether("02:00:00:00:00:09", "33:33:00:00:00:12", 0x86DD,
                   s.ip6("fe80::9", "ff02::12", payload, ext=hbh + dst, ext_nxt=0))
    frag6 = s.ether("02:00:00:00:00:09", "33:33:00:00:00:12", 0x86DD,
                    s.ip6("fe80::9", "ff02::12", payload, ext=bytes([112, 0, 0, 8, 0, 0, 0, 1]), ext_nxt=44))
    ip4 = carp4[14:14 + 20 + 36]
    frames = [(1, f) for f in (carp4, carp6, v2, v3, v3_6, garp, ext6, frag6,
                               s.carp_frame("192.0.2.2", 5, vlans=(10,)), s.carp_frame("192.0.2.2", 5, vlans=(10, 20)))]
    frames += [(113, s.sll("02:00:00:00:00:01", 0x0800, ip4)), (276, s.sll2("02:00:00:00:00:01", 0x0800, ip4)),
               (101, ip4), (228, ip4), (229, carp6[14:]), (0, struct.pack("<I", 2) + ip4),
               (108, struct.pack(">I", 24) + carp6[14:]),
               (107, bytes([0x18, 0x41, 0x03, 0xCC]) + ip4), (107, bytes([0x18, 0x41, 0x08, 0x00]) + ip4)]
    return frames


def handmade_captures() -> list[bytes]:
    fr = synthetic_frames()
    out = []
    # big-endian microsecond pcap, nanosecond pcap
    be = struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for i, (lt, f) in enumerate(fr[:4]):
        be += struct.pack(">IIII", 1_700_000_000 + i, 0, len(f), len(f)) + f
    out.append(be)
    b = io.BytesIO()
    w = synth.PcapWriter(b, nanosecond=True)
    for lt, f in fr[:4]:
        w.write(1.5, f)
    out.append(b.getvalue())
    # pcapng: two interfaces of different link types, tsresol option, SPB and OPB blocks
    b = io.BytesIO()
    w = synth.PcapngWriter(b)
    w.add_interface(1)
    w._block(1, struct.pack("<HHI", 101, 0, 65535) + struct.pack("<HHB3x", 9, 1, 0x89) + bytes(4))
    w.ifaces += 1
    w.write(2.0, fr[0][1], 0)
    w.write(2.5, fr[12][1], 1)
    f = fr[2][1]
    w._block(3, struct.pack("<I", len(f)) + f)                                   # simple packet block
    w._block(2, struct.pack("<HHIIII", 0, 0, 0, 7, len(f), len(f)) + f)          # obsolete packet block
    out.append(b.getvalue())
    # big-endian pcapng section
    shb_body = struct.pack(">IHHq", 0x1A2B3C4D, 1, 0, -1)
    blk = lambda t, body: struct.pack(">II", t, len(body) + 12) + body + struct.pack(">I", len(body) + 12)
    f = fr[0][1] + bytes(-len(fr[0][1]) % 4)
    out.append(blk(0x0A0D0D0A, shb_body) + blk(1, struct.pack(">HHI", 1, 0, 0)) +
               blk(6, struct.pack(">IIIII", 0, 0, 1, len(fr[0][1]), len(fr[0][1])) + f))
    return out


def write(dirpath: Path, data: bytes) -> None:
    dirpath.mkdir(parents=True, exist_ok=True)
    (dirpath / hashlib.sha1(data).hexdigest()).write_bytes(data)


def main(outdir: Path) -> None:
    counts = {}
    caps = [p.read_bytes() for p in capture_files()] + handmade_captures()
    for i, data in enumerate(caps):
        write(outdir / "capture", b"\x00" + data)
        write(outdir / "capture", b"\x01" + data)
        write(outdir / "report", bytes([i % 7 | (0x80 if i % 3 == 0 else 0)]) + data)
        if len(data) <= 65535:            # the campaign's -max_len
            write(outdir / "pipe", bytes([(i % 12)]) + data)      # stdin or FIFO, pieces of every size
    frames = list(synthetic_frames())
    for data in caps:
        try:
            frames += [(r.linktype, r.data) for r in read_records(io.BytesIO(data)) if isinstance(r, Record)]
        except ValueError:
            pass
    for lt, f in frames:
        if lt in LINKTYPE_LIST:
            write(outdir / "decode", bytes([LINKTYPE_LIST.index(lt)]) + f)
    cfg = REPO / "tests" / "fixtures" / "configs"
    for p in sorted(cfg.rglob("*")):
        if not p.is_file() or p.suffix in (".md", ".pass"):
            continue
        n = p.name
        kind = ("inventory.toml" if n.endswith(".toml") else "sysctl.conf" if n.endswith("sysctl.conf")
                else "rc.conf" if n.endswith(("rc.conf", "loader.conf")) else "interfaces" if "interfaces" in n
                else "keepalived.conf" if p.parent.parent.name == "keepalived" or "keepalived" in n
                or p.parent.name == "conf.d" else "ucarp.service")
        write(outdir / "config", bytes([CONFIG_KINDS.index(kind)]) + p.read_bytes())
    for sub in ("decode", "capture", "pipe", "config", "report"):
        counts[sub] = len(list((outdir / sub).iterdir()))
    print(" ".join(f"{k}={v}" for k, v in counts.items()), f"seeds in {outdir}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "corpus")
