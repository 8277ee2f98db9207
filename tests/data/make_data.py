"""Regenerate the small captures in tests/data (run: python tests/data/make_data.py).

Every capture carries the *same* protocol-112 adverts (ADVERTS below), wrapped in a different
link layer or file format, so tests/test_linktypes.py can check that each one decodes to
identical advert fields, and tests/test_tshark_diff.py can hold every file against tshark.
The files are deterministic: rerunning this script rewrites them byte for byte.
"""
from __future__ import annotations

import struct
import sys
from pathlib import Path
from socket import AF_INET, AF_INET6, inet_pton

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from carpscope import synth  # noqa: E402
from carpscope.wire import proto112  # noqa: E402

T0 = 1_700_000_000.0          # timestamps: T0 + i * 0.25 s (exact in µs and ns)
VMAC4 = "01:00:5e:00:00:12"
VMAC6 = "33:33:00:00:00:12"


def _carp4():
    cnt = bytes.fromhex("0102030405060708")
    md = synth.carp_md(synth.bsd_key("secret"), 5, ["192.0.2.100"], cnt)
    pl = proto112.encode_carp(5, 1, 100, cnt, md)
    return synth.ip4("192.0.2.2", "224.0.0.18", pl), "00:00:5e:00:01:05", VMAC4


def _carp6(ext: bytes = b"", ext_nxt: int | None = None):
    cnt = bytes.fromhex("a1a2a3a4a5a6a7a8")
    md = synth.carp_md(synth.bsd_key("secret6"), 6, [], cnt, ["2001:db8::100"])
    pl = proto112.encode_carp(6, 2, 0, cnt, md, demote=3)
    return synth.ip6("fe80::2", "ff02::12", pl, ext=ext, ext_nxt=ext_nxt), "00:00:5e:00:01:06", VMAC6


def _vrrp2():
    pl = proto112.encode_vrrp2(7, 150, ["192.0.2.200", "192.0.2.201"], 1)
    return synth.ip4("192.0.2.3", "224.0.0.18", pl, tos=0xC0), "00:00:5e:00:01:07", VMAC4


def _vrrp3_4(variant="pseudo", vrid=8, src="192.0.2.4"):
    pl = proto112.encode_vrrp3(vrid, 200, ["192.0.2.210"], 100, family=4,
                               src=inet_pton(AF_INET, src), dst=inet_pton(AF_INET, "224.0.0.18"),
                               variant=variant)
    return synth.ip4(src, "224.0.0.18", pl, tos=0xC0), f"00:00:5e:00:01:{vrid:02x}", VMAC4


def _vrrp3_6(ext: bytes = b"", ext_nxt: int | None = None):
    s, d = inet_pton(AF_INET6, "fe80::4"), inet_pton(AF_INET6, "ff02::12")
    pl = proto112.encode_vrrp3(9, 100, ["fe80::9", "2001:db8::9"], 100, family=6, src=s, dst=d)
    return synth.ip6("fe80::4", "ff02::12", pl, ext=ext, ext_nxt=ext_nxt), "00:00:5e:00:02:09", VMAC6


def _vrrp2_seven():
    addrs = [f"10.0.0.{i}" for i in range(1, 8)]
    pl = proto112.encode_vrrp2(10, 100, addrs, 1)
    return synth.ip4("192.0.2.5", "224.0.0.18", pl, tos=0xC0), "00:00:5e:00:01:0a", VMAC4


def _tcp():
    """Background traffic: not protocol 112, skipped by the capture filter."""
    tcp = struct.pack("!HHIIBBHHH", 40000, 80, 1, 1, 5 << 4, 0x10, 1024, 0, 0)  # bare ACK
    return synth.ip4("10.9.8.7", "10.9.8.6", tcp, ttl=64, proto=6, tos=0), "02:00:00:00:00:01", "02:00:00:00:00:02"


# (name, builder): frame 2 is background traffic so filtered and all-frames numbering differ
ADVERTS = [
    ("carp4", _carp4),
    ("tcp", _tcp),
    ("carp6", _carp6),
    ("vrrp2", _vrrp2),
    ("vrrp3_4", _vrrp3_4),
    ("vrrp3_6", _vrrp3_6),
    ("vrrp3_4_nopseudo", lambda: _vrrp3_4("none", 11, "192.0.2.6")),
    ("vrrp2_seven", _vrrp2_seven),
]


def packets(families=(4, 6)):
    """[(ip bytes, family, eth_src, eth_dst)] in file order."""
    out = []
    for _name, build in ADVERTS:
        ip, es, ed = build()
        fam = 4 if ip[0] >> 4 == 4 else 6
        if fam in families:
            out.append((ip, fam, es, ed))
    return out


def ethertype(fam: int) -> int:
    return 0x0800 if fam == 4 else 0x86DD


# ---------------------------------------------------------------- link layers

def l_ether(ip, fam, es, ed, vlans=()):
    return synth.ether(es, ed, ethertype(fam), ip, vlans)


def l_null(ip, fam, order, af6):
    return struct.pack(order + "I", 2 if fam == 4 else af6) + ip


def l_pflog(ip, fam, system):
    """pf's log header, as FreeBSD (61 bytes, padded to 64; IPv6 = AF 28) or OpenBSD (100
    bytes; IPv6 = AF 24) write it: length, af, action (pass), reason, ifname, ruleset, rule
    numbers, uids and pids, direction (in), then OpenBSD's rewritten/naf and addresses."""
    af = 2 if fam == 4 else (28 if system == "freebsd" else 24)
    head = struct.pack("!BBBB16s16sIIIiIiB", 0, af, 0, 0, b"em0", b"", 7, 0xFFFFFFFF, 0xFFFFFFFF, -1, 0, 0, 1)
    if system == "freebsd":
        head = bytes([61]) + head[1:] + bytes(3)
    else:
        head = bytes([100]) + head[1:] + bytes([0, af, 0]) + bytes(32) + bytes(4)
    return head + ip


def l_nflog(ip, fam, es, order):
    """Linux NFLOG: family, version 0, resource id 7 (big-endian), then TLVs in the capturing
    host's byte order (``order``): packet header, input interface 3, source MAC, payload."""
    def tlv(kind, value):
        return struct.pack(order + "HH", 4 + len(value), kind) + value + bytes(-len(value) % 4)
    return (struct.pack("!BBH", 2 if fam == 4 else 10, 0, 7)
            + tlv(1, struct.pack("!HBB", ethertype(fam), 1, 0))
            + tlv(4, struct.pack("!I", 3))
            + tlv(8, struct.pack("!H2s8s", 6, b"", synth.mac_bytes(es)))
            + tlv(9, ip))


class BigEndianPcapWriter:
    """pcap written by a big-endian host (magic a1b2c3d4 in network order)."""

    def __init__(self, f, linktype):
        self.f = f
        f.write(struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype))

    def write(self, ts, data):
        sec = int(ts)
        self.f.write(struct.pack(">IIII", sec, round((ts - sec) * 1e6), len(data), len(data)) + data)


class ModifiedPcapWriter:
    """Alexey Kuznetzov's modified pcap (magic a1b2cd34, old Linux tcpdump; editcap -F modpcap):
    each record header adds the interface index, the protocol and the packet type (24 bytes)."""

    def __init__(self, f, linktype):
        self.f = f
        f.write(struct.pack("<IHHiIII", 0xA1B2CD34, 2, 4, 0, 0, 262144, linktype))

    def write(self, ts, data):
        sec = int(ts)
        self.f.write(struct.pack("<IIIIiHBx", sec, round((ts - sec) * 1e6), len(data), len(data), 2,
                                 int.from_bytes(data[12:14], "big"), 0) + data)


def write_pcap(out, name, linktype, frames, nanosecond=False, writer=None):
    with open(out / name, "wb") as f:
        w = writer(f, linktype) if writer else synth.PcapWriter(f, linktype, nanosecond=nanosecond)
        for i, fr in enumerate(frames):
            w.write(T0 + i * 0.25, fr)


def main(out: Path = HERE):
    """Write every capture into ``out`` (the tests regenerate into a temporary directory and
    compare byte for byte with the committed files)."""
    out = Path(out)
    pk = packets()
    write_pcap(out, "eth.pcap", 1, [l_ether(*p) for p in pk])
    write_pcap(out, "eth_ns.pcap", 1, [l_ether(*p) for p in pk], nanosecond=True)
    write_pcap(out, "eth_modified.pcap", 1, [l_ether(*p) for p in pk], writer=ModifiedPcapWriter)
    write_pcap(out, "vlan.pcap", 1, [l_ether(*p, vlans=(100,)) for p in pk])
    write_pcap(out, "qinq.pcap", 1, [l_ether(*p, vlans=(200, 100)) for p in pk])
    write_pcap(out, "sll.pcap", 113, [synth.sll(es, ethertype(fam), ip) for ip, fam, es, _ in pk])
    write_pcap(out, "sll2.pcap", 276, [synth.sll2(es, ethertype(fam), ip, ifindex=3) for ip, fam, es, _ in pk])
    # Linux cooked captures of a trunk (tcpdump -i any): libpcap re-inserts the 802.1Q tag
    tag = lambda fam: struct.pack("!HH", 100, ethertype(fam))  # noqa: E731
    write_pcap(out, "sll_vlan.pcap", 113, [synth.sll(es, 0x8100, tag(fam) + ip) for ip, fam, es, _ in pk])
    write_pcap(out, "sll2_vlan.pcap", 276, [synth.sll2(es, 0x8100, tag(fam) + ip, ifindex=3) for ip, fam, es, _ in pk])
    write_pcap(out, "raw.pcap", 101, [ip for ip, *_ in pk])
    write_pcap(out, "ipv4.pcap", 228, [ip for ip, *_ in packets((4,))])
    write_pcap(out, "ipv6.pcap", 229, [ip for ip, *_ in packets((6,))])
    write_pcap(out, "null_le.pcap", 0, [l_null(ip, fam, "<", 28) for ip, fam, *_ in pk])
    write_pcap(out, "null_be.pcap", 0, [l_null(ip, fam, ">", 24) for ip, fam, *_ in pk], writer=BigEndianPcapWriter)
    write_pcap(out, "loop.pcap", 108, [l_null(ip, fam, ">", 24) for ip, fam, *_ in pk])
    write_pcap(out, "pflog_freebsd.pcap", 117, [l_pflog(ip, fam, "freebsd") for ip, fam, *_ in pk])
    write_pcap(out, "pflog_openbsd.pcap", 117, [l_pflog(ip, fam, "openbsd") for ip, fam, *_ in pk],
               writer=BigEndianPcapWriter)
    write_pcap(out, "nflog.pcap", 239, [l_nflog(ip, fam, es, "<") for ip, fam, es, _ in pk])
    write_pcap(out, "nflog_be.pcap", 239, [l_nflog(ip, fam, es, ">") for ip, fam, es, _ in pk],
               writer=BigEndianPcapWriter)

    with open(out / "eth.pcapng", "wb") as f:
        w = synth.PcapngWriter(f)
        w.add_interface(1)
        for i, p in enumerate(pk):
            w.write(T0 + i * 0.25, l_ether(*p))

    # an interface whose time stamps count from an offset (if_tsoffset, seconds): libpcap and
    # Wireshark add it, so the times read are the same as eth.pcapng's
    with open(out / "eth_tsoffset.pcapng", "wb") as f:
        w = synth.PcapngWriter(f)
        w.add_interface(1, tsoffset=1_600_000_000)
        for i, p in enumerate(pk):
            w.write(T0 + i * 0.25, l_ether(*p))

    # several interfaces of different link types: libpcap refuses, the exact reader reads it
    with open(out / "mixed.pcapng", "wb") as f:
        w = synth.PcapngWriter(f)
        eth, raw, s2 = w.add_interface(1), w.add_interface(101), w.add_interface(276)
        for i, (ip, fam, es, ed) in enumerate(pk):
            kind = i % 3
            data = (l_ether(ip, fam, es, ed) if kind == 0 else ip if kind == 1
                    else synth.sll2(es, ethertype(fam), ip, ifindex=3))
            w.write(T0 + i * 0.25, data, (eth, raw, s2)[kind])

    # Frame Relay (LINKTYPE 107): RFC 2427 (Q.922 address of DLCI 100, UI, NLPID 0xCC/0x8E),
    # RFC 2427 SNAP (NLPID 0x80, OUI 0, ethertype) and Cisco encapsulation (ethertype
    # right after the address), in turn
    def frelay(i, ip, fam):
        q922 = bytes([0x18, 0x41])
        kind = i % 3
        if kind == 0:
            return q922 + bytes([0x03, 0xCC if fam == 4 else 0x8E]) + ip
        if kind == 1:
            return q922 + bytes([0x03, 0x00, 0x80, 0, 0, 0]) + struct.pack("!H", ethertype(fam)) + ip
        return q922 + struct.pack("!H", ethertype(fam)) + ip
    write_pcap(out, "frelay.pcap", 107, [frelay(i, ip, fam) for i, (ip, fam, *_) in enumerate(pk)])

    # the second interface (raw IP) is declared only after four Ethernet packets: libpcap
    # reads those, then stops; the exact reader continues from the fifth frame
    with open(out / "mixed_late.pcapng", "wb") as f:
        w = synth.PcapngWriter(f)
        eth = w.add_interface(1)
        raw = None
        for i, p in enumerate(pk):
            if i == 4:
                raw = w.add_interface(101)
            w.write(T0 + i * 0.25, l_ether(*p) if raw is None else p[0], eth if raw is None else raw)

    # a pcapng with an interface carpscope does not decode (USER0) between Ethernet ones:
    # its frames are skipped but still counted, so frame numbers stay Wireshark's
    with open(out / "unsupported_iface.pcapng", "wb") as f:
        w = synth.PcapngWriter(f)
        eth, user0 = w.add_interface(1), w.add_interface(147)
        for i, p in enumerate(pk):
            w.write(T0 + i * 0.25, l_ether(*p), eth)
            w.write(T0 + i * 0.25 + 0.1, b"\xde\xad" + p[0], user0)

    # IPv6 extension headers before the payload: hop-by-hop (router alert) then destination
    # options (PadN), as (first next-header, bytes)
    hbh_dst = bytes([60, 0, 5, 2, 0, 0, 1, 0]) + bytes([112, 0, 1, 4, 0, 0, 0, 0])
    dst_only = bytes([112, 0, 1, 4, 0, 0, 0, 0])
    ext = [_carp6(hbh_dst, 0), _vrrp3_6(dst_only, 60), _carp6(dst_only, 60), _vrrp3_6(hbh_dst, 0)]
    write_pcap(out, "ipv6_exthdr.pcap", 1, [synth.ether(es, ed, 0x86DD, ip) for ip, es, ed in ext])


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
