"""The protocol vectors (../shared/docs/vectors.json), bit for bit.

Every `carp_packets`, `vrrp_packets` and `classification` entry is decoded by carpscope and
every expected field is asserted. Checksums and HMACs are also recomputed here with
independent code (RFC 1071 and stdlib hmac), so a vector that carpscope decodes "the same
wrong way" as it encodes cannot pass.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import struct
from ipaddress import ip_address

import pytest

from tests.harness.pcapread import inet_checksum as rfc1071   # independent of carpscope.wire
from carpscope.model import Advert, Malformed
from carpscope.wire import proto112
from carpscope.wire.frame import decode_frame


def _load():
    import json

    from conftest import VECTORS
    if not VECTORS.is_file():  # the tests using it then skip through the `vectors` fixture
        return {"carp_packets": [], "vrrp_packets": [], "classification": []}
    return json.loads(VECTORS.read_text())


V = _load()


def ids(entries):
    return [e["id"] for e in entries]


# ------------------------------------------------------------------ independent references

def with_zero_checksum(payload: bytes) -> bytes:
    return payload[:6] + b"\0\0" + payload[8:]


def pseudo(src: str, dst: str, length: int) -> bytes:
    s, d = ip_address(src).packed, ip_address(dst).packed
    if len(s) == 4:
        return s + d + struct.pack("!BBH", 0, 112, length)
    return s + d + struct.pack("!I3xB", length, 112)


def carp_hmac(key: bytes, vhid: int, v4: list[str], v6: list[str], counter: bytes) -> bytes:
    a4 = sorted({ip_address(a).packed for a in v4})
    a6 = set()
    for a in v6:
        b = bytearray(ip_address(a).packed)
        if ip_address(a).is_link_local:
            b[2:4] = b"\0\0"
        a6.add(bytes(b))
    msg = bytes([2, 1, vhid]) + b"".join(a4) + b"".join(sorted(a6)) + counter
    return hmac.new(key, msg, hashlib.sha1).digest()


def decode_hex_frame(frame_hex: str):
    rec = decode_frame(1, bytes.fromhex(frame_hex), 1, 0.0, "vectors")
    assert rec is not None, "frame not recognised as protocol 112"
    return rec


def ip_payload(frame: bytes) -> tuple[int, bytes, str, str]:
    """(family, payload bounded by the IP length, src, dst) of an Ethernet frame, parsed here."""
    et = struct.unpack("!H", frame[12:14])[0]
    ip = frame[14:]
    if et == 0x0800:
        ihl, total = (ip[0] & 15) * 4, struct.unpack("!H", ip[2:4])[0]
        return 4, ip[ihl:total], str(ip_address(ip[12:16])), str(ip_address(ip[16:20]))
    plen = struct.unpack("!H", ip[4:6])[0]
    return 6, ip[40:40 + plen], str(ip_address(ip[8:24])), str(ip_address(ip[24:40]))


# ------------------------------------------------------------------ CARP

@pytest.mark.parametrize("vec", V["carp_packets"], ids=ids(V["carp_packets"]))
def test_carp_packet(vec, vectors):
    exp = vec["expected"]
    c = exp["carp"]
    a = decode_hex_frame(vec["frame_hex"])
    assert isinstance(a, Advert), f"{vec['id']}: decoded as malformed: {getattr(a, 'reason', a)}"
    assert a.protocol == "carp"
    assert a.version == c["version"] == 2
    assert a.type == c["type"] == 1
    assert a.vhid == c["vhid"]
    assert a.advskew == c["advskew"]
    assert a.authlen == c["authlen"]
    assert a.demote == c["demote_or_pad"]
    assert a.advbase == c["advbase"]
    assert a.checksum == int(c["checksum"], 16)
    assert a.checksum_ok is exp["carp_checksum_valid"]
    assert a.checksum_variant == ("plain" if exp["carp_checksum_valid"] else "bad")
    assert a.counter == bytes.fromhex(c["counter_hex"])
    assert int.from_bytes(a.counter, "big") == c["counter_u64_be"]
    assert a.md == bytes.fromhex(c["hmac_hex"])
    assert a.payload_len == 36 and a.trailing == 0
    assert a.interval_s == pytest.approx(c["advbase"] + c["advskew"] / 256)

    frame = bytes.fromhex(vec["frame_hex"])
    fam, payload, src, dst = ip_payload(frame)
    assert a.family == fam and a.src == src and a.dst == dst
    ttl = exp.get("ip_ttl", frame[14 + 8] if fam == 4 else frame[14 + 7])
    assert a.ttl == ttl
    assert a.eth_src == frame[6:12].hex(":") and a.eth_dst == frame[0:6].hex(":")
    if "eth_src" in exp:
        assert (a.eth_src, a.eth_dst) == (exp["eth_src"], exp["eth_dst"])
        assert (a.src, a.dst) == (exp["ip_src"], exp["ip_dst"])

    # checksum: 36 bytes, no pseudo-header, for IPv4 and IPv6 alike (protocol.md §1.2)
    good = rfc1071(with_zero_checksum(payload))
    assert (good == a.checksum) is exp["carp_checksum_valid"]
    if "checksum_if_pseudo_header_wrongly_included" in exp:
        wrong = rfc1071(pseudo(src, dst, len(payload)) + with_zero_checksum(payload))
        assert f"{wrong:04x}" == exp["checksum_if_pseudo_header_wrongly_included"]
        assert a.checksum != wrong and a.checksum_ok

    # the HMAC bytes carpscope extracted are the ones a BSD kernel computes for this advert
    h = exp["hmac_valid_with"]
    md = carp_hmac(bytes.fromhex(h["key_hex"]), h["vhid"], h["ipv4_vips"], h["ipv6_vips"], a.counter)
    assert md == a.md


def test_carp_tool_observations_agree(vectors):
    """tcpdump -T carp prints the counter as a big-endian u64 and flags TTL != 255."""
    obs = vectors["tool_observations"]["tcpdump_4.99.3_-T_carp"]
    by_id = {v["id"]: v for v in vectors["carp_packets"]}
    for vid, line in obs.items():
        if vid not in by_id:
            continue
        a = decode_hex_frame(by_id[vid]["frame_hex"])
        fields = dict(re.findall(r"(vhid|advbase|advskew|authlen|counter)=(\d+)", line))
        assert int(fields["vhid"]) == a.vhid and int(fields["advbase"]) == a.advbase
        assert int(fields["advskew"]) == a.advskew and int(fields["authlen"]) == a.authlen
        assert int(fields["counter"]) == int.from_bytes(a.counter, "big")
        m = re.search(r"\[ttl=(\d+)!\]", line)
        assert (a.ttl != 255) == bool(m) and (not m or int(m.group(1)) == a.ttl)
        assert ("bad carp cksum" in line) == (not a.checksum_ok)


# ------------------------------------------------------------------ VRRP

def _vrrp_decode(vec):
    if "frame_hex" in vec:
        frame = bytes.fromhex(vec["frame_hex"])
        return decode_frame(1, frame, 1, 0.0, "vectors"), frame
    payload = bytes.fromhex(vec["vrrp_hex"])
    fam = 6 if ":" in vec.get("ip_src", "") else 4
    src = ip_address(vec.get("ip_src", "192.0.2.1")).packed
    dst = ip_address(vec.get("ip_dst", "224.0.0.18")).packed
    return proto112.decode(payload, fam, src, dst), None


@pytest.mark.parametrize("vec", V["vrrp_packets"], ids=ids(V["vrrp_packets"]))
def test_vrrp_packet(vec):
    exp = vec["expected"]
    r, frame = _vrrp_decode(vec)
    if vec["id"] == "scapy-vrrp-version1-field":
        # version nibble 1 is neither VRRPv2/v3 nor CARP: malformed, never a guess
        assert isinstance(r, str) and "version 1" in r
        payload = bytes.fromhex(vec["vrrp_hex"])
        assert rfc1071(with_zero_checksum(payload)) == int(exp["checksum"], 16)
        return
    assert not isinstance(r, (str, Malformed)), f"{vec['id']}: malformed: {getattr(r, 'reason', r)}"
    version = exp.get("vrrp_version", int(vec.get("vrrp_hex", "00")[0], 16) or None)
    assert r.version == version
    assert r.protocol == f"vrrp{version}"
    assert r.type == exp.get("type", 1)
    assert r.checksum == int(exp["checksum"], 16)
    assert r.checksum_ok
    for key, attr in (("vrid", "vhid"), ("priority", "priority"), ("count", "count"),
                      ("auth_type", "auth_type"), ("reserved", "reserved")):
        if key in exp:
            assert getattr(r, attr) == exp[key], key
    if "addresses" in exp:
        assert list(r.addresses) == exp["addresses"]
        assert r.count == len(exp["addresses"])
    if "adver_int_s" in exp:
        assert r.interval_cs == exp["adver_int_s"] * 100
    if "max_adver_int_cs" in exp:
        assert r.interval_cs == exp["max_adver_int_cs"]
    if "auth_data_hex" in exp:
        assert r.auth_data == bytes.fromhex(exp["auth_data_hex"])
    if version == 3:
        assert r.auth_type is None and r.auth_data is None

    # which checksum form validated
    pseudo_ok = exp.get("checksum_valid_with_pseudo_header", exp.get("checksum_includes_pseudo_header"))
    plain_ok = exp.get("checksum_valid_plain", not pseudo_ok)
    if version == 2:
        assert plain_ok and r.checksum_variant == "plain"
    elif pseudo_ok:
        assert r.checksum_variant == "pseudo"
    else:
        assert plain_ok and r.checksum_variant == "none"

    if frame is not None:
        assert len(frame) == exp["frame_len"]
        fam, payload, src, dst = ip_payload(frame)
        assert r.payload_len == exp["vrrp_len"] == len(payload), "payload must be bounded by the IP length"
        assert r.family == exp["ip_version"] == fam and (r.src, r.dst) == (src, dst)
        assert r.trailing == 0
        if "tcpdump_default_line_suffix" in exp:
            line = exp["tcpdump_default_line_suffix"]
            assert f"vrid {r.vhid}, prio {r.priority}" in line and f"length {r.payload_len}" in line
            assert f"VRRPv{r.version}" in line
            assert (f"intvl {r.interval_cs // 100}s" if version == 2 else f"intvl {r.interval_cs}cs") in line
    if "length" in exp:
        assert len(bytes.fromhex(vec["vrrp_hex"])) == exp["length"]


def test_vrrp3_ipv4_checksum_variants(vectors):
    """VRRPv3/IPv4: with pseudo-header (RFC 5798 practice), without (RFC 9568 / Cisco) and
    keepalived <= 1.3.6 unicast (224.0.0.18 in the pseudo-header); carpscope names the one
    that validated. Checksums computed here independently."""
    vec = {v["id"]: v for v in vectors["vrrp_packets"]}
    sc = vec["scapy-vrrpv3-ipv4"]
    payload = bytes.fromhex(sc["vrrp_hex"])
    src, dst = sc["ip_src"], sc["ip_dst"]
    zero = with_zero_checksum(payload)
    plain = rfc1071(zero)
    assert f"{plain:04x}" == sc["expected"]["checksum_without_pseudo_header"]
    unicast_dst = "20.0.0.9"
    cases = {
        "pseudo": (rfc1071(pseudo(src, dst, len(payload)) + zero), dst),
        "none": (plain, dst),
        "pseudo-224": (rfc1071(pseudo(src, "224.0.0.18", len(payload)) + zero), unicast_dst),
    }
    assert f"{cases['pseudo'][0]:04x}" == sc["expected"]["checksum"]
    for variant, (c, d) in cases.items():
        p = payload[:6] + struct.pack("!H", c) + payload[8:]
        r = proto112.decode(p, 4, ip_address(src).packed, ip_address(d).packed)
        assert r.checksum == c and r.checksum_ok and r.checksum_variant == variant, variant
    bad = payload[:6] + struct.pack("!H", cases["pseudo"][0] ^ 0x0101) + payload[8:]
    r = proto112.decode(bad, 4, ip_address(src).packed, ip_address(dst).packed)
    assert not r.checksum_ok and r.checksum_variant == "bad"

    # tcpdump vrrp.pcap frame 3: tshark with v3_checksum_as_in_v2 says "should be 0x9eb4"
    f3 = vec["tcpdump-vrrp-pcap-frame-3"]
    fam, pl, s, d = ip_payload(bytes.fromhex(f3["frame_hex"]))
    assert f"{rfc1071(with_zero_checksum(pl)):04x}" == f3["expected"]["checksum_if_computed_without_pseudo_header_rfc9568_style"]

    # IPv6: the pseudo-header is the only valid form
    s6 = vec["scapy-vrrpv3-ipv6"]
    p6 = bytes.fromhex(s6["vrrp_hex"])
    r = proto112.decode(p6, 6, ip_address(s6["ip_src"]).packed, ip_address(s6["ip_dst"]).packed)
    assert r.checksum_ok and r.checksum_variant == "pseudo"
    assert rfc1071(pseudo(s6["ip_src"], s6["ip_dst"], len(p6)) + with_zero_checksum(p6)) == r.checksum
    nopseudo = p6[:6] + struct.pack("!H", rfc1071(with_zero_checksum(p6))) + p6[8:]
    r = proto112.decode(nopseudo, 6, ip_address(s6["ip_src"]).packed, ip_address(s6["ip_dst"]).packed)
    assert not r.checksum_ok and r.checksum_variant == "bad"


# ------------------------------------------------------------------ classification

@pytest.mark.parametrize("vec", V["classification"], ids=ids(V["classification"]))
def test_classification(vec):
    payload = bytes.fromhex(vec["ip_payload_hex"])
    fam = vec["ip_version"]
    src = ip_address("10.0.0.91" if fam == 4 else "fe80::1").packed
    dst = ip_address("224.0.0.18" if fam == 4 else "ff02::12").packed
    r = proto112.decode(payload, fam, src, dst)
    assert not isinstance(r, str), r
    assert r.protocol == vec["expected_class"]
    if r.protocol == "vrrp2":
        assert len(payload) == 16 + 4 * r.count and len(r.addresses) == r.count
    if r.protocol == "carp":
        assert r.authlen == 7 and r.trailing == len(payload) - 36 == 0
        assert r.counter == payload[8:16] and r.md == payload[16:36]


def test_seven_address_vrrp2_is_vrrp2_not_carp(vectors):
    """The Wireshark-heuristic false positive (protocol.md §3.1): a 44-byte VRRPv2 advert with
    Count = 7 has byte 3 == 7 like CARP's authlen; the exact length says VRRPv2."""
    vec = next(v for v in vectors["classification"] if v["id"] == "cls-vrrp2-seven-addrs")
    payload = bytes.fromhex(vec["ip_payload_hex"])
    assert len(payload) == 44 and payload[3] == 7
    # wrapped in IPv4/Ethernet as in tool_observations, decoded from the frame
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0xC0, 20 + len(payload), 0, 0x4000, 255, 112, 0,
                     ip_address("192.0.2.9").packed, ip_address("224.0.0.18").packed)
    ip = ip[:10] + struct.pack("!H", rfc1071(ip)) + ip[12:]
    frame = bytes.fromhex("01005e00001200005e0001090800") + ip + payload
    a = decode_frame(1, frame, 1, 0.0, "vectors")
    assert isinstance(a, Advert) and a.protocol == "vrrp2" and a.vhid == 9
    assert a.priority == 100 and a.count == 7
    assert list(a.addresses) == [f"10.0.0.{i}" for i in range(1, 8)]
    assert a.checksum_ok and a.auth_type == 0 and a.auth_data == bytes(8)
    # and the 36-byte CARP header with the same byte 3 stays CARP
    carp = next(v for v in vectors["classification"] if v["id"] == "cls-carp-v4-real")
    r = proto112.decode(bytes.fromhex(carp["ip_payload_hex"]), 4, bytes(4), bytes(4))
    assert r.protocol == "carp"


@pytest.mark.parametrize("n,count,expect", [
    (36, 7, "carp"),          # CARP (never a self-consistent VRRPv2)
    (44, 7, "vrrp2"),         # VRRPv2, 7 addresses + 8 auth bytes
    (48, 7, "carp"),          # CARP with 12 trailing bytes
    (20, 1, "vrrp2"),         # VRRPv2, 1 address
    (12, 1, "vrrp2"),         # VRRPv2 without auth data (PcapPlusPlus VRRP-V2.pcap style)
    (22, 1, None),            # fits nothing: malformed
    (35, 7, None),            # short CARP: malformed
    (7, 0, None),             # shorter than any header
])
def test_version2_length_rules(n, count, expect):
    p = bytearray(max(n, 8))
    p[0], p[1], p[3] = 0x21, 4, count
    p = bytes(p[:n])
    r = proto112.decode(p, 4, bytes(4), bytes(4))
    if expect is None:
        assert isinstance(r, str) and r
    else:
        assert not isinstance(r, str), r
        assert r.protocol == expect
        if expect == "carp":
            assert r.trailing == n - 36
        else:
            assert len(r.auth_data) == (8 if n == 16 + 4 * count else 0)


def test_version2_over_ipv6_is_carp_and_short_is_malformed():
    p = proto112.encode_carp(3, 1, 0)
    assert proto112.decode(p, 6, bytes(16), bytes(16)).protocol == "carp"
    r = proto112.decode(p[:30], 6, bytes(16), bytes(16))
    assert isinstance(r, str) and "IPv6" in r


@pytest.mark.parametrize("first", [0x11, 0x41, 0xF2, 0x01])
def test_unknown_versions_are_malformed(first):
    p = bytes([first]) + bytes(35)
    r = proto112.decode(p, 4, bytes(4), bytes(4))
    assert isinstance(r, str) and f"version {first >> 4}" in r
