"""The same adverts over every link type and file format decode to identical fields.

The captures are in tests/data (see its README and make_data.py). Each is run through the CLI
(`carpscope analyze FILE --format jsonl`) and every advert is compared with EXPECTED, which
is written down from how make_data.py built the packets (not from carpscope's output);
checksums and HMACs are recomputed here with independent code.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import struct
from ipaddress import ip_address

import pytest

from tests.harness.pcapread import inet_checksum as rfc1071   # independent of carpscope.wire
from conftest import DATA, jsonl_records, run_cli, stderr_messages

T0 = 1_700_000_000.0
FULL = ["carp4", "tcp", "carp6", "vrrp2", "vrrp3_4", "vrrp3_6", "vrrp3_4_nopseudo", "vrrp2_seven"]

EXPECTED = {
    "carp4": dict(protocol="carp", family=4, src="192.0.2.2", dst="224.0.0.18", vhid=5, version=2,
                  length=36, advbase=1, advskew=100, authlen=7, demote=0, counter="0102030405060708",
                  checksum_variant="plain", eth_src="00:00:5e:00:01:05", eth_dst="01:00:5e:00:00:12"),
    "carp6": dict(protocol="carp", family=6, src="fe80::2", dst="ff02::12", vhid=6, version=2,
                  length=36, advbase=2, advskew=0, authlen=7, demote=3, counter="a1a2a3a4a5a6a7a8",
                  checksum_variant="plain", eth_src="00:00:5e:00:01:06", eth_dst="33:33:00:00:00:12"),
    "vrrp2": dict(protocol="vrrp2", family=4, src="192.0.2.3", dst="224.0.0.18", vhid=7, version=2,
                  length=24, priority=150, count=2, addresses=["192.0.2.200", "192.0.2.201"],
                  interval_cs=100, auth_type=0, checksum_variant="plain",
                  eth_src="00:00:5e:00:01:07", eth_dst="01:00:5e:00:00:12"),
    "vrrp3_4": dict(protocol="vrrp3", family=4, src="192.0.2.4", dst="224.0.0.18", vhid=8, version=3,
                    length=12, priority=200, count=1, addresses=["192.0.2.210"], interval_cs=100,
                    reserved=0, checksum_variant="pseudo",
                    eth_src="00:00:5e:00:01:08", eth_dst="01:00:5e:00:00:12"),
    "vrrp3_6": dict(protocol="vrrp3", family=6, src="fe80::4", dst="ff02::12", vhid=9, version=3,
                    length=40, priority=100, count=2, addresses=["fe80::9", "2001:db8::9"],
                    interval_cs=100, reserved=0, checksum_variant="pseudo",
                    eth_src="00:00:5e:00:02:09", eth_dst="33:33:00:00:00:12"),
    "vrrp3_4_nopseudo": dict(protocol="vrrp3", family=4, src="192.0.2.6", dst="224.0.0.18", vhid=11,
                             version=3, length=12, priority=200, count=1, addresses=["192.0.2.210"],
                             interval_cs=100, reserved=0, checksum_variant="none",
                             eth_src="00:00:5e:00:01:0b", eth_dst="01:00:5e:00:00:12"),
    "vrrp2_seven": dict(protocol="vrrp2", family=4, src="192.0.2.5", dst="224.0.0.18", vhid=10, version=2,
                        length=44, priority=100, count=7, addresses=[f"10.0.0.{i}" for i in range(1, 8)],
                        interval_cs=100, auth_type=0, checksum_variant="plain",
                        eth_src="00:00:5e:00:01:0a", eth_dst="01:00:5e:00:00:12"),
}
HMAC_KEYS = {"carp4": (b"secret", ["192.0.2.100"], []), "carp6": (b"secret6", [], ["2001:db8::100"])}
LINK_FIELDS = ("eth_src", "eth_dst")
# link types whose libpcap filter is no use (filters.NO_BPF): --numbering filtered counts every frame
NO_FILTER = {"frelay.pcap", "pflog_freebsd.pcap", "pflog_openbsd.pcap", "nflog.pcap", "nflog_be.pcap"}


def names(families=(4, 6)):
    return [n for n in FULL if (4 if n == "tcp" else EXPECTED[n]["family"]) in families]


# file -> (advert names in file order incl. background "tcp", link facts)
ETH = {"eth": True}
FILES = {
    "eth.pcap": (names(), ETH),
    "eth_ns.pcap": (names(), ETH),
    "eth_modified.pcap": (names(), ETH),
    "eth.pcapng": (names(), ETH),
    "eth_tsoffset.pcapng": (names(), ETH),
    "vlan.pcap": (names(), dict(eth=True, vlans=[100], segment="/vlan100")),
    "qinq.pcap": (names(), dict(eth=True, vlans=[200, 100], segment="/vlan200.100")),
    "sll.pcap": (names(), dict(sll=True)),
    "sll2.pcap": (names(), dict(sll=True, segment="/if3")),
    "sll_vlan.pcap": (names(), dict(sll=True, vlans=[100], segment="/vlan100")),
    "sll2_vlan.pcap": (names(), dict(sll=True, vlans=[100], segment="/vlan100/if3")),
    "raw.pcap": (names(), {}),
    "ipv4.pcap": (names((4,)), {}),
    "ipv6.pcap": (names((6,)), {}),
    "null_le.pcap": (names(), {}),
    "null_be.pcap": (names(), {}),
    "loop.pcap": (names(), {}),
    "frelay.pcap": (names(), {}),
    "pflog_freebsd.pcap": (names(), dict(segment="/em0")),
    "pflog_openbsd.pcap": (names(), dict(segment="/em0")),
    "nflog.pcap": (names(), dict(sll=True, segment="/if3")),       # the MAC from NFULA_HWADDR
    "nflog_be.pcap": (names(), dict(sll=True, segment="/if3")),
    "mixed.pcapng": (names(), dict(mixed=True)),
    "mixed_late.pcapng": (names(), dict(mixed=True)),
}


# ------------------------------------------------------------------ independent references

def bsd_hmac(passphrase: bytes, vhid: int, v4, v6, counter: bytes) -> str:
    key = passphrase[:19].ljust(20, b"\0")
    a6 = sorted(ip_address(a).packed for a in v6)
    msg = bytes([2, 1, vhid]) + b"".join(sorted(ip_address(a).packed for a in v4)) + b"".join(a6) + counter
    return hmac.new(key, msg, hashlib.sha1).hexdigest()


def adverts(*args, stdin=None):
    rc, out, err = run_cli("analyze", *args, "--format", "jsonl", stdin=stdin)
    assert rc in (0, 1), f"rc {rc}: {err}"
    assert "Traceback" not in out + err
    recs = jsonl_records(out)
    return [r for r in recs if r["type"] == "advert"], recs


@functools.lru_cache(maxsize=None)
def _batch(all_frames: bool):
    """One CLI run over every file in FILES (a subprocess per file would dominate the run time)."""
    names = [f for f in FILES if all_frames or f not in NO_FILTER]
    got, recs = adverts(*(DATA / f for f in names), *([] if all_frames else ["--numbering", "filtered"]))
    by_source = {str(DATA / f): [] for f in names}
    for a in got:
        by_source[a["source"]].append(a)
    sources = {s["name"]: s for s in recs[-1]["sources"]}
    return {f: (by_source[str(DATA / f)], sources[str(DATA / f)], recs[-1]) for f in names}


def check_advert(a: dict, name: str, frame: int, ts: float, link: dict, where: str):
    exp = EXPECTED[name]
    for k, v in exp.items():
        if k in LINK_FIELDS:
            continue
        assert a[k] == v, f"{where}: {name} {k} = {a[k]!r}, expected {v!r}"
    assert a["frame"] == frame, f"{where}: {name} frame number"
    assert a["ts"] == pytest.approx(ts, abs=1e-6), f"{where}: {name} timestamp"
    assert a["ttl"] == 255 and a["msgtype"] == 1 and a["checksum_ok"] is True
    if a["protocol"] == "carp":
        key, v4, v6 = HMAC_KEYS[name]
        assert a["hmac"] == bsd_hmac(key, a["vhid"], v4, v6, bytes.fromhex(a["counter"])), f"{where}: HMAC bytes"
    if link.get("eth"):
        assert (a["eth_src"], a["eth_dst"]) == (exp["eth_src"], exp["eth_dst"]), where
    elif link.get("sll"):
        assert a["eth_src"] == exp["eth_src"] and a["eth_dst"] is None, where
    elif not link.get("mixed"):
        assert a["eth_src"] is None and a["eth_dst"] is None, where
    assert a["vlans"] == link.get("vlans", []), where
    if not link.get("mixed"):   # per-interface facts: test_mixed_pcapng_link_types_per_frame
        assert a["segment"] == a["source"] + link.get("segment", ""), f"{where}: segment {a['segment']!r}"


# ------------------------------------------------------------------ every link type / format

@pytest.mark.parametrize("fname", list(FILES))
def test_same_adverts_all_frames(fname):
    """By default frame numbers are positions in the file (Wireshark's frame.number)."""
    order, link = FILES[fname]
    got, src, summary = _batch(True)[fname]
    want = [(i + 1, n) for i, n in enumerate(order) if n != "tcp"]
    assert [a["vhid"] for a in got] == [EXPECTED[n]["vhid"] for _, n in want], fname
    for a, (frame, name) in zip(got, want):
        check_advert(a, name, frame, T0 + (frame - 1) * 0.25, link, fname)
    assert summary["type"] == "summary" and summary["packet_numbering"] == "all"
    assert (src["packets"], src["adverts"], src["malformed"], src["error"]) == (len(order), len(want), 0, None)


@pytest.mark.parametrize("fname", list(FILES))
def test_same_adverts_filtered(fname):
    """--numbering filtered (libpcap's BPF filter): frames are numbered among the matching ones;
    Frame Relay (libpcap's filter misses Cisco framing), pflog (libpcap's assumes one system's
    header length) and NFLOG (libpcap has none) have no usable filter: every frame counts."""
    order, link = FILES[fname]
    want = [n for n in order if n != "tcp"]
    if fname in NO_FILTER:
        got, recs = adverts(DATA / fname, "--numbering", "filtered")
        assert recs[-1]["packet_numbering"] == "all" and recs[-1]["sources"][0]["filter"] is None
        frames = [i + 1 for i, n in enumerate(order) if n != "tcp"]
    else:
        got, src, summary = _batch(False)[fname]
        assert summary["packet_numbering"] == "filtered" and "ip proto 112" in src["filter"]
        assert src["packets"] == len(want), "frames read = frames that matched the filter"
        frames = list(range(1, len(want) + 1))
    assert [a["frame"] for a in got] == frames
    for a, name, frame in zip(got, want, frames):
        check_advert(a, name, frame, T0 + order.index(name) * 0.25, link, fname)


def test_all_files_decode_identically():
    """Beyond EXPECTED: every field except source/segment/link facts is the same in every file."""
    ref = {}
    for fname, (got, _src, _summary) in _batch(True).items():
        for a in got:
            key = (a["vhid"], a["protocol"])
            core = {k: v for k, v in a.items()
                    if k not in ("source", "segment", "eth_src", "eth_dst", "vlans", "frame", "ts", "time")}
            ref.setdefault(key, (fname, core))
            assert core == ref[key][1], f"{fname} differs from {ref[key][0]} for {key}"
    assert len(ref) == 7


def test_checksums_recomputed_independently():
    """The checksum values carpscope reports are the RFC 1071 values over the IP payload as
    built (CARP/VRRPv2 plain, VRRPv3 with or without the pseudo-header)."""
    got, _ = adverts(DATA / "eth.pcap")
    raw = (DATA / "eth.pcap").read_bytes()
    frames, off = [], 24
    while off < len(raw):
        incl = struct.unpack("<I", raw[off + 8:off + 12])[0]
        frames.append(raw[off + 16:off + 16 + incl])
        off += 16 + incl
    for a in got:
        fr = frames[a["frame"] - 1]
        fam = a["family"]
        if fam == 4:
            ihl, total = (fr[14] & 15) * 4, struct.unpack("!H", fr[16:18])[0]
            pl, s, d = fr[14 + ihl:14 + total], fr[26:30], fr[30:34]
            assert len(fr) == 60 or len(fr) == 14 + total, "short IPv4 frames are padded to 60 bytes"
        else:
            plen = struct.unpack("!H", fr[18:20])[0]
            pl, s, d = fr[54:54 + plen], fr[22:38], fr[38:54]
        assert a["length"] == len(pl), "payload bounded by the IP length, padding excluded"
        zero = pl[:6] + b"\0\0" + pl[8:]
        if a["protocol"] == "vrrp3" and a["checksum_variant"] == "pseudo":
            ph = s + d + (struct.pack("!BBH", 0, 112, len(pl)) if fam == 4 else struct.pack("!I3xB", len(pl), 112))
            want = rfc1071(ph + zero)
        else:
            want = rfc1071(zero[:36] if a["protocol"] == "carp" else zero)
        assert int(a["checksum"], 16) == want, a["vhid"]


def test_ipv6_extension_headers():
    """Hop-by-hop and destination options before CARP/VRRPv3: same adverts, the payload
    length excludes the extension headers."""
    got, _ = adverts(DATA / "ipv6_exthdr.pcap")
    assert [(a["frame"], a["protocol"], a["vhid"]) for a in got] == [
        (1, "carp", 6), (2, "vrrp3", 9), (3, "carp", 6), (4, "vrrp3", 9)]
    for a in got:
        name = "carp6" if a["protocol"] == "carp" else "vrrp3_6"
        check_advert(a, name, a["frame"], T0 + (a["frame"] - 1) * 0.25, ETH, "ipv6_exthdr.pcap")
    got_f, _ = adverts(DATA / "ipv6_exthdr.pcap", "--numbering", "filtered")
    assert len(got_f) == 4, "the BPF filter (ip6 protochain 112) must pass extension headers"


def test_unsupported_interface_in_pcapng():
    """USER0 frames interleaved with Ethernet: skipped but counted (Wireshark numbering)."""
    got, recs = adverts(DATA / "unsupported_iface.pcapng")
    want = [(i, n) for i, n in enumerate(FULL) if n != "tcp"]
    assert [a["frame"] for a in got] == [2 * i + 1 for i, _ in want]
    for a, (i, name) in zip(got, want):
        check_advert(a, name, 2 * i + 1, T0 + i * 0.25, ETH, "unsupported_iface.pcapng")
    got_f, _ = adverts(DATA / "unsupported_iface.pcapng", "--numbering", "filtered")
    assert [a["vhid"] for a in got_f] == [EXPECTED[n]["vhid"] for _, n in want]


@pytest.mark.parametrize("fname", ["mixed.pcapng", "mixed_late.pcapng", "unsupported_iface.pcapng"])
def test_libpcap_refuses_mixed_pcapng(fname):
    """These files really exercise the fallback: libpcap stops on them (at open or mid-read)."""
    import pcapy
    with pytest.raises(pcapy.PcapError, match="different"):
        pc = pcapy.open_offline(str(DATA / fname))
        while pc.next()[0] is not None:
            pass


def test_mixed_late_filtered_numbering_across_interfaces():
    got, _ = adverts(DATA / "mixed_late.pcapng", "--numbering", "filtered")
    assert [a["frame"] for a in got] == list(range(1, 8)), "filtered numbering continues across link types"
    assert [a["eth_dst"] is not None for a in got] == [True, True, True, False, False, False, False]


def test_mixed_pcapng_link_types_per_frame():
    """libpcap refuses a pcapng whose interfaces differ; the exact reader decodes each frame
    with its own interface's link type (Ethernet, raw IP, SLL2 in turn)."""
    got, _ = adverts(DATA / "mixed.pcapng")
    for a in got:
        kind = (a["frame"] - 1) % 3
        if kind == 0:
            assert a["eth_dst"] is not None and a["segment"] == a["source"]
        elif kind == 1:
            assert a["eth_src"] is None and a["segment"] == a["source"]
        else:
            assert a["eth_dst"] is None and a["eth_src"] is not None and a["segment"].endswith("/if3")


@pytest.mark.parametrize("fname", ["eth.pcap", "eth.pcapng", "sll2.pcap"])
def test_stdin(fname):
    data = (DATA / fname).read_bytes()
    got, recs = adverts("-", stdin=data)
    ref, _ = adverts(DATA / fname)
    assert recs[-1]["sources"][0]["name"] == "stdin"
    assert len(got) == 7
    for a, b in zip(got, ref):
        assert a["source"] == "stdin"
        a = {k: v for k, v in a.items() if k not in ("source", "segment")}
        b = {k: v for k, v in b.items() if k not in ("source", "segment")}
        assert a == b


def test_pcap_ns_and_us_timestamps_agree():
    us, _ = adverts(DATA / "eth.pcap")
    ns, _ = adverts(DATA / "eth_ns.pcap")
    assert [a["ts"] for a in us] == [a["ts"] for a in ns] == [T0 + FULL.index(n) * 0.25 for n in FULL if n != "tcp"]


# ------------------------------------------------------------------ unknown link types

def _pcap_with_linktype(path, linktype, frames=(b"\0" * 40,)):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype))
        for fr in frames:
            f.write(struct.pack("<IIII", 1, 0, len(fr), len(fr)) + fr)
    return path


def _pcapng_with_linktype(path, linktype):
    def block(t, body):
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", t, len(body) + 12) + body + struct.pack("<I", len(body) + 12)
    data = (block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
            + block(1, struct.pack("<HHI", linktype, 0, 65535))
            + block(6, struct.pack("<IIIII", 0, 0, 0, 40, 40) + b"\0" * 40))
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("linktype,name", [(147, "USER0"), (105, "IEEE802_11"), (4242, "unknown"), (9, "PPP")])
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_unknown_linktype_is_one_clear_error(tmp_path, linktype, name, fmt):
    p = tmp_path / f"lt{linktype}.{fmt}"
    (_pcap_with_linktype if fmt == "pcap" else _pcapng_with_linktype)(p, linktype)
    rc, out, err = run_cli("analyze", p, "--format", "json")
    assert rc == 2
    assert "Traceback" not in out + err and out == ""
    msgs = stderr_messages(err)
    assert len(msgs) == 1, err
    assert msgs[0].startswith(f"carpscope: error: {p}: unsupported link type {linktype} ({name})")


# ------------------------------------------------------------------ the data are what the script makes

def test_data_files_are_reproducible(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_data", DATA / "make_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(tmp_path)
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == sorted(p.name for p in DATA.iterdir() if p.suffix in (".pcap", ".pcapng"))
    for name in made:
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes(), f"{name}: rerun make_data.py and commit"


# ------------------------------------------------------------------ firewall logs whose header does not hold

def test_firewall_log_headers_that_do_not_hold():
    """pflog and NFLOG frames whose header is cut, too short or of another version give no
    network layer (the frame is skipped, as tcpdump prints no packet), never an exception; an
    NFLOG family that is no IP one is read from the packet's version nibble."""
    from carpscope.wire.link import ETH_IP4, ETH_IP6, locate, parse_link

    ip = bytes.fromhex("4500001c000040007070") + bytes(18)
    pflog = bytes([61, 2]) + bytes(59) + bytes(3) + ip
    assert locate(117, pflog, 0, len(pflog)) == (ETH_IP4, 64)
    assert parse_link(117, pflog).ifname is None                   # no interface name logged
    assert locate(117, pflog[:40], 0, 40)[0] == -1                 # shorter than any pflog header
    assert locate(117, bytes([44]) + pflog[1:], 0, len(pflog))[0] == -1   # below tcpdump's minimum
    assert locate(117, bytes([200]) + pflog[1:], 0, len(pflog))[0] == -1  # longer than the frame
    assert locate(117, pflog[:1] + bytes([99]) + pflog[2:], 0, len(pflog))[0] == 0   # no IP family

    def tlv(kind, value):
        return struct.pack("<HH", 4 + len(value), kind) + value + bytes(-len(value) % 4)
    nflog = struct.pack("!BBH", 10, 0, 1) + tlv(4, struct.pack("!I", 9)) + tlv(9, ip)
    assert locate(239, nflog, 0, len(nflog)) == (ETH_IP6, 16)      # the family says IPv6
    link = parse_link(239, nflog)
    assert (link.ifindex, link.eth_src) == (9, None)
    assert locate(239, nflog[:1] + bytes([1]) + nflog[2:], 0, len(nflog))[0] == 0      # version 1
    assert locate(239, nflog[:12], 0, 12)[0] == -1                 # cut before the payload
    assert locate(239, nflog[:4] + bytes(4) + nflog[8:], 0, len(nflog))[0] == -1      # a 0-length TLV
    bridge = bytes([7]) + nflog[1:]                                # NFPROTO_BRIDGE: the packet says
    assert locate(239, bridge, 0, len(bridge)) == (ETH_IP4, 16)
    for cut in range(len(nflog)):
        parse_link(239, nflog[:cut])
        locate(117, pflog[:cut], 0, cut)


def test_a_cut_modified_pcap_says_where_it_stopped(tmp_path):
    """A modified pcap (24-byte record headers) cut inside a record header: every record before
    the cut is read, and the damage names the header's real size."""
    data = (DATA / "eth_modified.pcap").read_bytes()
    first = 24 + 24 + int.from_bytes(data[32:36], "little")        # file header + the first record
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:first + 20])
    got, recs = adverts(cut)
    assert [a["frame"] for a in got] == [1]
    src = recs[-1]["sources"][0]
    assert src["packets"] == 1
    assert src["error"] == f"reading stopped at record 2 (byte offset {first}): truncated record header (20 of 24 bytes)"


def test_nflog_frames_of_one_sender_share_a_flow():
    """NFLOG TLVs carry values of each packet (time stamp, sequence number): frames of one
    sender on one interface are one flow all the same (the decoder works out what they share
    once), and another interface index or source MAC is another."""
    from carpscope.wire.frame import Decoder
    from carpscope.wire.link import link_key

    raw = (DATA / "eth.pcap").read_bytes()
    frame = raw[40:40 + int.from_bytes(raw[32:36], "little")]       # the first record: an IPv4 advert
    ip = frame[14:]

    def tlv(kind, value):
        return struct.pack("<HH", 4 + len(value), kind) + value + bytes(-len(value) % 4)

    def nflog(seq, ifindex=3, mac=frame[6:12]):
        return (struct.pack("!BBH", 2, 0, 7) + tlv(1, b"\x08\x00\x01\x00") + tlv(4, struct.pack("!I", ifindex))
                + tlv(3, struct.pack("!QQ", 1700000000 + seq, seq * 1000)) + tlv(10, struct.pack("!I", seq))
                + tlv(8, b"\x00\x06\x00\x00" + mac + b"\x00\x00") + tlv(9, ip))

    dec = Decoder("nflog")
    got = [dec.decode(239, nflog(i), i + 1, float(i)) for i in range(5)]
    assert all(a is not None and a.flow is got[0].flow for a in got)
    assert len(dec.flows) == 1
    other_if = dec.decode(239, nflog(9, ifindex=4), 10, 9.0)
    other_mac = dec.decode(239, nflog(10, mac=bytes.fromhex("020000000099")), 11, 10.0)
    assert len({id(got[0].flow), id(other_if.flow), id(other_mac.flow)}) == 3
    assert (got[0].segment, other_if.segment) == ("nflog/if3", "nflog/if4")
    assert other_mac.eth_src == "02:00:00:00:00:99"
    assert link_key(1, frame, 14) == frame[:14]                    # elsewhere: the link header itself
