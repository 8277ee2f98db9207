"""Property tests (hypothesis): hostile bytes and text never raise anything but the documented
error, and what the builders encode decodes back to the same fields.

Contracts checked:
  decode_frame(lt, bytes)      -> Advert | Malformed | AddressHint | None for every supported
                                  link type; UnsupportedLinkType (only) for the others
  proto112.decode(bytes)       -> Advert | str (the reason)
  pcapfile.read_records(f)     -> Records, at most one Damage and only last; CaptureFormatError
                                  (only) when the file is not a capture
  every config parser          -> ConfigError only (fuzz/targets.py config_target, which
                                  bypasses read_configs' last-resort guard)
Round trips: CARP, VRRPv2, VRRPv3 (IPv4/IPv6, every checksum variant) through every link layer,
IPv4 options, IPv6 extension headers, link padding; pcap/pcapng writers through the reader
(also when the stream hands out a few bytes per read, like a pipe); inventory TOML.

CI budget: EXAMPLES examples per test (CARPSCOPE_PROPERTY_EXAMPLES overrides it for a long run).
"""
from __future__ import annotations

import io
import os
import struct
import sys
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from socket import AF_INET, AF_INET6, inet_pton

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from carpscope import synth
from carpscope.model import AddressHint, Advert, Malformed
from carpscope.capture.reader import CaptureFormatError, Damage, Record, read_records
from carpscope.wire import checksum as ck
from carpscope.wire import proto112
from carpscope.wire.frame import decode_frame
from carpscope.wire.link import LINKTYPES, OTHER_LINKTYPES, UnsupportedLinkType

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
import targets  # noqa: E402

EXAMPLES = int(os.environ.get("CARPSCOPE_PROPERTY_EXAMPLES", "200"))
PROP = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(PROP, max_examples=max(1, EXAMPLES // 3))     # tests that parse whole files
RECORDS = (Advert, Malformed, AddressHint, type(None))

# ------------------------------------------------------------------ strategies

ip4s = st.integers(0, 2**32 - 1).map(lambda n: str(IPv4Address(n)))
ip6s = st.integers(0, 2**128 - 1).map(lambda n: str(IPv6Address(n)))
u8 = st.integers(0, 255)


@st.composite
def carp_payloads(draw):
    f = dict(vhid=draw(u8), advbase=draw(u8), advskew=draw(u8), counter=draw(st.binary(min_size=8, max_size=8)),
             md=draw(st.binary(min_size=20, max_size=20)), demote=draw(u8), type_=draw(st.integers(0, 15)))
    return f, proto112.encode_carp(f["vhid"], f["advbase"], f["advskew"], f["counter"], f["md"],
                                   demote=f["demote"], type_=f["type_"])


@st.composite
def adverts(draw):
    """(expected fields, src, dst, family, protocol-112 payload) of a well-formed advert."""
    kind = draw(st.sampled_from(["carp4", "carp6", "vrrp2", "vrrp3-4", "vrrp3-6"]))
    family = 6 if kind in ("carp6", "vrrp3-6") else 4
    src, dst = (draw(ip6s), draw(ip6s)) if family == 6 else (draw(ip4s), draw(ip4s))
    af = AF_INET6 if family == 6 else AF_INET
    s, d = inet_pton(af, src), inet_pton(af, dst)
    if kind.startswith("carp"):
        f, p = draw(carp_payloads())
        want = dict(protocol="carp", vhid=f["vhid"], version=2, type=f["type_"], advbase=f["advbase"],
                    advskew=f["advskew"], authlen=7, demote=f["demote"], counter=f["counter"], md=f["md"],
                    checksum_ok=True, checksum_variant="plain", trailing=0)
    elif kind == "vrrp2":
        vrid, prio = draw(u8), draw(u8)
        addrs = draw(st.lists(ip4s, max_size=20))
        adv, at = draw(u8), draw(u8)
        auth = draw(st.binary(max_size=8))
        p = proto112.encode_vrrp2(vrid, prio, addrs, adv, at, auth)
        want = dict(protocol="vrrp2", vhid=vrid, version=2, type=1, priority=prio, count=len(addrs),
                    addresses=tuple(addrs), auth_type=at, auth_data=auth.ljust(8, b"\0"),
                    interval_cs=adv * 100, checksum_ok=True, checksum_variant="plain", trailing=0)
    else:
        vrid, prio = draw(u8), draw(u8)
        addrs = draw(st.lists(ip6s if family == 6 else ip4s, max_size=12))
        interval = draw(st.integers(0, 4095))
        variant = "pseudo" if family == 6 else draw(st.sampled_from(["pseudo", "none", "pseudo-224"]))
        p = proto112.encode_vrrp3(vrid, prio, addrs, interval, family=family, src=s, dst=d, variant=variant)
        if family == 4:   # the decoder tries pseudo, none, pseudo-224 in turn: the first that verifies
            starts = {"pseudo": ck.pseudo4(s, d, len(p)), "none": 0, "pseudo-224": ck.pseudo4(s, ck.VRRP_GROUP4, len(p))}
            variant = next(v for v in ("pseudo", "none", "pseudo-224") if ck.verifies(p, starts[v]))
        want = dict(protocol="vrrp3", vhid=vrid, version=3, type=1, priority=prio, count=len(addrs),
                    addresses=tuple(addrs), interval_cs=interval, reserved=0, checksum_ok=True,
                    checksum_variant=variant, trailing=0)
    want.update(family=family, src=src, dst=dst, payload_len=len(p))
    return want, s, d, family, p


def ip_packet(family, s, d, payload, ttl=255):
    if family == 4:
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0xE0, 20 + len(payload), 0, 0x4000, ttl, 112, 0, s, d)
        return hdr + payload
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), 112, ttl, s, d) + payload


ETH_SRC = "02:00:5e:00:01:07"


def wrap(link, family, ip):
    """(link type, frame) carrying ``ip`` on the given link layer."""
    et = 0x86DD if family == 6 else 0x0800
    if link == "eth":
        return 1, synth.ether(ETH_SRC, "01:00:5e:00:00:12", et, ip)
    if link == "vlan":
        return 1, synth.ether(ETH_SRC, "01:00:5e:00:00:12", et, ip, vlans=(30,))
    if link == "qinq":
        return 1, synth.ether(ETH_SRC, "01:00:5e:00:00:12", et, ip, vlans=(100, 30))
    if link == "sll":
        return 113, synth.sll(ETH_SRC, et, ip)
    if link == "sll2":
        return 276, synth.sll2(ETH_SRC, et, ip)
    if link == "raw":
        return 101, ip
    if link == "ipvN":
        return (229 if family == 6 else 228), ip
    if link == "null_le":
        return 0, struct.pack("<I", 24 if family == 6 else 2) + ip
    if link == "null_be":
        return 0, struct.pack(">I", 30 if family == 6 else 2) + ip
    if link == "loop":
        return 108, struct.pack(">I", 28 if family == 6 else 2) + ip
    if link == "frelay":
        return 107, bytes([0x18, 0x41, 0x03, 0x8E if family == 6 else 0xCC]) + ip
    if link == "frelay_snap":
        return 107, bytes([0x18, 0x41, 0x03, 0x00, 0x80, 0, 0, 0]) + struct.pack("!H", et) + ip
    if link == "frelay_cisco":
        return 107, bytes([0x18, 0x41]) + struct.pack("!H", et) + ip
    raise AssertionError(link)


LINKS = ["eth", "vlan", "qinq", "sll", "sll2", "raw", "ipvN", "null_le", "null_be", "loop",
         "frelay", "frelay_snap", "frelay_cisco"]


def check_fields(rec, want, ttl=255):
    assert type(rec) is Advert, rec
    for k, v in want.items():
        got = getattr(rec, k)
        if k in ("src", "dst"):          # inet_ntop writes ::0.1.0.0 where ipaddress writes ::1:0
            got, v = ip_address(got), ip_address(v)
        elif k == "addresses":
            got, v = tuple(map(ip_address, got)), tuple(map(ip_address, v))
        assert got == v, (k, got, v)
    assert rec.ttl == ttl


# ------------------------------------------------------------------ arbitrary bytes never raise

@PROP
@given(st.sampled_from(sorted(LINKTYPES)), st.binary(max_size=300))
def test_decode_frame_arbitrary_bytes(lt, data):
    rec = decode_frame(lt, data, 1, 0.0, "p")
    assert type(rec) in RECORDS


@PROP
@given(st.integers(0, 2**32 - 1).filter(lambda lt: lt not in LINKTYPES), st.binary(max_size=64))
def test_unsupported_linktype_is_the_documented_error(lt, data):
    with pytest.raises(UnsupportedLinkType) as e:
        decode_frame(lt, data, 1, 0.0, "p")
    assert str(lt) in str(e.value)


def test_named_unsupported_linktypes():
    for lt, name in OTHER_LINKTYPES.items():
        with pytest.raises(UnsupportedLinkType, match=name):
            decode_frame(lt, b"\0" * 64, 1, 0.0, "p")


@PROP
@given(st.binary(max_size=200), st.sampled_from([4, 6]))
def test_proto112_arbitrary_payload(p, family):
    n = 4 if family == 4 else 16
    r = proto112.decode(p, family, bytes(n), bytes(n))
    assert isinstance(r, (str, Advert))
    if isinstance(r, Advert):
        assert r.protocol in ("carp", "vrrp2", "vrrp3") and r.trailing >= 0


@PROP
@given(adverts(), st.sampled_from(LINKS), st.lists(st.tuples(st.integers(0, 10**6), u8), max_size=8),
       st.integers(0, 400))
def test_mutated_frames_never_raise(adv, link, flips, cut):
    """Valid frames of every link type with bytes overwritten and cut anywhere."""
    want, s, d, family, p = adv
    lt, fr = wrap(link, family, ip_packet(family, s, d, p))
    b = bytearray(fr)
    for i, v in flips:
        b[i % len(b)] = v
    b = bytes(b[:cut] if cut < len(b) else b)
    assert type(decode_frame(lt, b, 1, 0.0, "p")) in RECORDS


@PROP
@given(adverts(), st.lists(st.sampled_from([0, 43, 60, 44, 51, 58, 112, 135, 139, 140, 6]), max_size=6),
       st.lists(u8, min_size=6, max_size=6), st.binary(max_size=64))
def test_ipv6_extension_header_chains_never_raise(adv, chain, lens, junk):
    """Arbitrary chains of extension headers (lengths, next-header values, fragments, AH,
    ICMPv6) in front of arbitrary bytes."""
    want, s, d, family, p = adv
    src, dst = bytes(16), bytes(16)
    ext, nxt = b"", None
    for i, h in enumerate(reversed(chain)):
        body = bytes([nxt if nxt is not None else 112, lens[i] % 4]) + bytes(6 + 8 * (lens[i] % 4))
        ext = body + ext
        nxt = h
    pkt = struct.pack("!IHBB16s16s", 0x60000000, len(ext) + len(junk), nxt if nxt is not None else 112, 255,
                      src, dst) + ext + junk
    assert type(decode_frame(229, pkt, 1, 0.0, "p")) in RECORDS


# ------------------------------------------------------------------ round trips

@PROP
@given(adverts(), st.sampled_from(LINKS), st.binary(max_size=40))
def test_round_trip_every_link_layer(adv, link, padding):
    """Build then decode is the identity, whatever the link layer and trailing link padding."""
    want, s, d, family, p = adv
    lt, fr = wrap(link, family, ip_packet(family, s, d, p, ttl=254))
    check_fields(decode_frame(lt, fr + padding, 3, 1.5, "p"), want, ttl=254)


@PROP
@given(adverts().filter(lambda a: a[3] == 4), st.integers(0, 10).map(lambda k: 4 * k))
def test_round_trip_ipv4_options(adv, optlen):
    want, s, d, family, p = adv
    opts = bytes([1]) * optlen                            # NOPs
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45 + optlen // 4, 0, 20 + optlen + len(p), 0, 0, 255, 112, 0, s, d)
    check_fields(decode_frame(228, hdr + opts + p, 1, 0.0, "p"), want)


@PROP
@given(adverts().filter(lambda a: a[3] == 6),
       st.lists(st.tuples(st.sampled_from([0, 60, 43, 51, 44]), st.integers(0, 3)), max_size=5))
def test_round_trip_ipv6_extension_headers(adv, chain):
    """Hop-by-hop, destination options, routing, AH and an atomic fragment header in front of
    the advert: the same advert."""
    want, s, d, family, p = adv
    assume(all(h != 0 for h, _ in chain[1:]))             # hop-by-hop only first (RFC 8200)
    ext = b""
    nxt = 112
    for h, k in reversed(chain):
        if h == 44:
            hdr = struct.pack("!BBHI", nxt, 0, 0, 1)     # offset 0, M=0: not really fragmented
        elif h == 51:
            hdr = bytes([nxt, 4 + 2 * k]) + bytes(24 + 8 * k - 2)   # (len + 2) * 4 bytes
        else:
            hdr = bytes([nxt, k]) + bytes(6 + 8 * k)
        ext = hdr + ext
        nxt = h
    pkt = struct.pack("!IHBB16s16s", 0x60000000, len(ext) + len(p), nxt, 255, s, d) + ext + p
    check_fields(decode_frame(1, synth.ether(ETH_SRC, "33:33:00:00:00:12", 0x86DD, pkt), 1, 0.0, "p"), want)


@PROP
@given(adverts(), st.integers(1, 30))
def test_truncated_ip_payload_is_malformed(adv, short):
    """Cut inside the advert: a Malformed record that names the truncation, never an advert."""
    want, s, d, family, p = adv
    ip = ip_packet(family, s, d, p)
    assume(short <= len(p))
    rec = decode_frame(101, ip[:-short], 1, 0.0, "p")
    assert type(rec) is Malformed and "truncated" in rec.reason


@PROP
@given(carp_payloads(), st.binary(min_size=1, max_size=40))
def test_carp_with_trailing_bytes(cp, extra):
    f, p = cp
    assume(len(extra) != 8)     # 44 bytes with byte 3 == 7 is a self-consistent VRRPv2 (proto112 doc)
    ip = ip_packet(4, bytes(4), bytes(4), p + extra)
    rec = decode_frame(101, ip, 1, 0.0, "p")
    assert type(rec) is Advert and rec.protocol == "carp" and rec.trailing == len(extra)
    assert (rec.vhid, rec.counter, rec.md) == (f["vhid"], f["counter"], f["md"])


def test_synth_builders_round_trip():
    """The frame builders tests and demos use (synth.carp_frame / vrrp_frame / garp_frame)."""
    fr = synth.carp_frame("192.0.2.2", 5, advskew=100, counter=9, passphrase="x", vips=["192.0.2.100"])
    a = decode_frame(1, fr, 1, 0.0, "p")
    assert (a.protocol, a.vhid, a.advskew, a.counter, a.eth_src) == ("carp", 5, 100, (9).to_bytes(8, "big"),
                                                                     synth.vmac(5))
    fr = synth.vrrp_frame("fe80::3", 9, 100, ["2001:db8::1"], version=3, vlans=(7,))
    a = decode_frame(1, fr, 1, 0.0, "p")
    assert (a.protocol, a.vhid, a.addresses, a.vlans, a.checksum_variant) == ("vrrp3", 9, ("2001:db8::1",), (7,), "pseudo")
    h = decode_frame(1, synth.garp_frame("00:00:5e:00:01:05", "192.0.2.100"), 1, 0.0, "p")
    assert type(h) is AddressHint and h.address == "192.0.2.100"


# ------------------------------------------------------------------ capture files

frames_st = st.lists(st.tuples(st.integers(0, 2**31).map(lambda s: s + 0.25), st.binary(max_size=120)), max_size=12)


class Trickle(io.RawIOBase):
    """A stream that hands out at most ``k`` bytes per read, like a pipe."""

    def __init__(self, data: bytes, k: int):
        self.b, self.k = io.BytesIO(data), k

    def read(self, n=-1):
        return self.b.read(self.k if n is None or n < 0 else min(n, self.k))

    def readable(self):
        return True


def records(data: bytes, k: int | None = None):
    return list(read_records(io.BytesIO(data) if k is None else Trickle(data, k)))


@PROP
@given(frames_st, st.sampled_from([1, 101, 113, 276]), st.booleans(), st.sampled_from([None, 1, 7, 64]))
def test_pcap_round_trip(frames, lt, nano, k):
    b = io.BytesIO()
    w = synth.PcapWriter(b, linktype=lt, nanosecond=nano)
    for ts, data in frames:
        w.write(ts, data)
    got = records(b.getvalue(), k)
    assert all(type(r) is Record for r in got)
    assert [(r.linktype, r.data, r.number) for r in got] == [(lt, d, i) for i, (_, d) in enumerate(frames, 1)]
    assert all(abs(r.ts - ts) < 1e-5 for r, (ts, _) in zip(got, frames))


@PROP
@given(st.lists(st.sampled_from([1, 101, 113, 276, 0, 108, 147]), min_size=1, max_size=4),
       st.lists(st.tuples(st.integers(0, 2**31).map(lambda s: s + 0.5), st.binary(max_size=120), u8), max_size=12),
       st.sampled_from([None, 3, 64]))
def test_pcapng_round_trip_several_interfaces(lts, frames, k):
    """One section, interfaces of different link types, packets spread over them."""
    b = io.BytesIO()
    w = synth.PcapngWriter(b)
    for lt in lts:
        w.add_interface(lt)
    want = []
    for ts, data, i in frames:
        w.write(ts, data, i % len(lts))
        want.append((lts[i % len(lts)], data))
    got = records(b.getvalue(), k)
    assert all(type(r) is Record for r in got)
    assert [(r.linktype, r.data) for r in got] == want
    assert all(abs(r.ts - ts) < 1e-5 for r, (ts, _, _) in zip(got, frames))


@PROP
@given(frames_st.filter(bool), st.data(), st.booleans())
def test_cut_anywhere_keeps_every_whole_record(frames, data, ng):
    """A capture cut at any byte keeps every record that ends before the cut; the Damage (if
    the cut is inside a record) is last and names that record's number and offset."""
    b = io.BytesIO()
    if ng:
        w = synth.PcapngWriter(b)
        w.add_interface(1)
    else:
        w = synth.PcapWriter(b)
    for ts, d in frames:
        w.write(ts, d)
    full = b.getvalue()
    whole = records(full)
    start = len(full) - sum(r.length for r in whole)        # file header (+ IDB)
    cut = data.draw(st.integers(start, len(full)))
    got = records(full[:cut])
    kept = [r for r in whole if r.offset + r.length <= cut]
    assert [r for r in got if type(r) is Record] == kept
    boundary = cut == start or any(r.offset + r.length == cut for r in whole)
    if boundary:
        assert all(type(r) is Record for r in got)
    else:
        dmg = got[-1]
        assert type(dmg) is Damage
        assert dmg.number == len(kept) + 1 and dmg.offset == (kept[-1].offset + kept[-1].length if kept else start)
        assert "truncated" in dmg.reason


@PROP
@given(st.binary(max_size=400), st.sampled_from([b"", b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
                                                  b"\x0a\x0d\x0d\x0a", b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x4d\x3c\x2b\x1a"]))
def test_arbitrary_capture_bytes(data, magic):
    """Anything after a capture magic: records, then at most one Damage, last; without a
    magic, CaptureFormatError. Nothing else."""
    try:
        got = records(magic + data)
    except CaptureFormatError:
        assert not magic or len(magic + data) < 4
        return
    assert all(type(r) is Record for r in got[:-1])
    if got and type(got[-1]) is Damage:
        assert got[-1].reason and 0 <= got[-1].offset <= len(magic + data)


@PROP
@given(st.binary(max_size=300), st.sampled_from([b"\xd4\xc3\xb2\xa1", b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x4d\x3c\x2b\x1a"]))
def test_capture_target_both_paths(data, magic):
    """The fuzz target: exact reader + decode, and the standard-input path of FileSource."""
    targets.capture_target(b"\x00" + magic + data)
    targets.capture_target(b"\x01" + magic + data)


# ------------------------------------------------------------------ configuration parsers

WORDS = {
    "rc.conf": ["ifconfig_em0=", '"', "inet", "vhid", "1", "advskew", "100", "pass", "secret", "alias",
                "192.0.2.1/24", "192.0.2.50/32", "inet6", "2001:db8::1", "prefixlen", "64", "carp",
                "ifconfig_em0_alias0=", "cloned_interfaces=", "carp_load=", "YES", "hostname=", "${x}", "\\",
                "vlans_em0=", "30", "ifconfig_em0_30=", "netmask", "0xffffff00", "#", "'", "$(", ")", "state",
                "backup", "vrrpprio", "key", "keyhex", "00" * 20, "advbase", "0", "256", "-1", "=", "\n"],
    "sysctl.conf": ["net.inet.carp.preempt", "=", "1", "net.inet.carp.demotion", "-240", "#", '"', "\n", "x"],
    "keepalived.conf": ["vrrp_instance", "VI_1", "{", "}", "state", "MASTER", "BACKUP", "interface", "eth0",
                        "virtual_router_id", "51", "priority", "100", "255", "0", "advert_int", "1", "0.01",
                        "authentication", "auth_type", "PASS", "AH", "auth_pass", "pw", "virtual_ipaddress",
                        "192.0.2.1/24", "2001:db8::1/64", "dev", "nopreempt", "unicast_src_ip", "unicast_peer",
                        "global_defs", "vrrp_version", "3", "router_id", '"', "#", "!", "include", "x.conf",
                        "track_script", "\n", "\n"],
    "ucarp.service": ["ExecStart=", "/usr/sbin/ucarp", "-i", "eth0", "-s", "192.0.2.3", "-v", "5", "-p", "pw",
                      "-a", "192.0.2.50", "-k", "10", "-b", "1", "-P", "--passfile", "f", "-u", "up.sh", "-d",
                      "Environment=", "A=1", "$A", "'", '"', "\\", "\n", "--vhid=300", "--advskew=x", "-z"],
    "interfaces": ["iface", "eth0", "inet", "static", "address", "192.0.2.3/24", "ucarp-vid", "5",
                   "ucarp-vip", "192.0.2.50", "ucarp-password", "pw", "ucarp-advskew", "10", "ucarp-master",
                   "yes", "auto", "source", "x", "\n", "\n", "#", "netmask", "255.255.255.0", "iface", "eth0:ucarp"],
    "inventory.toml": ["version = 1\n", "[[segment]]\n", "[[group]]\n", "[[host]]\n", "[[host.member]]\n",
                       'name = "a"\n', 'name = "lan"\n', 'protocol = "carp"\n', 'protocol = "vrrp3"\n', "id = 1\n",
                       "id = 999\n", 'segment = "lan"\n', 'vips = ["192.0.2.1"]\n', 'vips = ["x"]\n',
                       'group = "a"\n', "advskew = 10\n", "advert_int = 0.5\n", "advert_int = inf\n",
                       'network = "192.0.2.0/24"\n', 'primary = "h"\n', 'passphrase_env = "X"\n',
                       'passphrase = "p"\n', "allow_inline_secret = true\n", 'passphrase_label = "l"\n',
                       'passphrase_file = "/nonexistent"\n', "priority = 300\n", "peers = []\n", "vlan = 4095\n"],
}


@st.composite
def config_texts(draw, kind):
    words = WORDS[kind]
    toks = draw(st.lists(st.one_of(st.sampled_from(words), st.text(max_size=6)), max_size=60))
    sep = "" if kind == "inventory.toml" else " "
    return sep.join(toks)


@PROP
@given(st.sampled_from(targets.CONFIG_KINDS), st.text(max_size=400))
def test_config_parsers_arbitrary_text(kind, text):
    targets.config_target(bytes([targets.CONFIG_KINDS.index(kind)]) + text.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize("kind", targets.CONFIG_KINDS)
@SLOW
@given(data=st.data())
def test_config_parsers_near_valid_text(kind, data):
    """Texts made of each grammar's own words: past the lexers, into the interpreters."""
    text = data.draw(config_texts(kind))
    targets.config_target(bytes([targets.CONFIG_KINDS.index(kind)]) + text.encode("utf-8", "surrogatepass"))


def test_config_fixtures_are_seeds():
    """The real fixtures parse cleanly through the same targets (the fuzzers' seeds)."""
    root = Path(__file__).resolve().parent / "fixtures" / "configs"
    assert (root / "freebsd" / "fw1.rc.conf").is_file()
    targets.config_target(bytes([0]) + (root / "freebsd" / "fw1.rc.conf").read_bytes())
    targets.config_target(bytes([5]) + (root / "inventory" / "site.toml").read_bytes())


def _inventories():
    name = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)

    @st.composite
    def build(draw):
        segs = draw(st.lists(name, min_size=1, max_size=3, unique=True))
        hosts = draw(st.lists(name, min_size=1, max_size=3, unique=True))
        lines = ["version = 1"]
        for s in segs:
            lines += ["[[segment]]", f'name = "{s}"']
            if draw(st.booleans()):
                lines.append(f'network = "{draw(ip4s)}/32"')
        groups = []
        for i in range(draw(st.integers(0, 4))):
            g = f"g{i}"
            proto = draw(st.sampled_from(["carp", "vrrp2", "vrrp3"]))
            lines += ["[[group]]", f'name = "{g}"', f'protocol = "{proto}"', f"id = {i + 1}",
                      f'segment = "{draw(st.sampled_from(segs))}"']
            if draw(st.booleans()):
                lines.append(f"vips = {draw(st.lists(ip4s, min_size=1, max_size=3, unique=True))}".replace("'", '"'))
            if draw(st.booleans()):
                lines += [f'passphrase_label = "{g}-key"', f'passphrase_env = "CARP_{i}"']
            groups.append((g, proto))
        for h in hosts:
            lines += ["[[host]]", f'name = "{h}"']
            if draw(st.booleans()):
                lines.append(f"preempt = {draw(st.sampled_from(['true', 'false']))}")
            for g, proto in draw(st.lists(st.sampled_from(groups), unique=True)) if groups else []:
                lines += ["[[host.member]]", f'group = "{g}"']
                if proto == "carp":
                    lines.append(f"advskew = {draw(u8.filter(lambda v: v < 255))}")
                else:
                    lines.append(f"priority = {draw(st.integers(1, 255))}")
        return "\n".join(lines) + "\n"
    return build()


@SLOW
@given(_inventories())
def test_inventory_toml_round_trip(text):
    """parse -> write -> parse -> write is stable (secrets stay references)."""
    from carpscope.config import inventory_to_toml, parse_inventory
    one = inventory_to_toml(parse_inventory(text, "a.toml"))
    two = inventory_to_toml(parse_inventory(one, "b.toml"))
    assert one == two
