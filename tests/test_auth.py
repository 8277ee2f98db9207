"""CARP authentication: vectors, flavours, fast path, keyring, verifier, diagnosis, findings.

Expected HMACs are computed here with the stdlib ``hmac`` module over messages built by this
file's own builder (``_msg``), independently of carpscope.auth's code path.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import pickle
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carpscope import auth
from carpscope.auth import (Keyring, PassphraseError, Verifier, VipSet,
                            carp_hmac, derive_key, hmac_message, is_truncated, key_from_hex,
                            keyring_from_env, load_passphrase_file, parse_vip_arg)
from carpscope.model import Advert
from carpscope.rules import auth as rules_auth, lookup
from carpscope.rules.auth import tally
from carpscope.track import Tracker

VECTORS = Path(__file__).resolve().parents[1].parent / "shared/docs/vectors.json"
SECRET = "Zebra-Quokka-7731!"          # distinctive: must never show up in any output


def _vectors(section: str) -> list[dict]:
    if not VECTORS.exists():
        pytest.skip(f"vectors.json not found at {VECTORS} (the CI machine has it)")
    return json.loads(VECTORS.read_text())[section]


def _vector_ids(section: str) -> list[str]:
    try:
        return [v["id"] for v in json.loads(VECTORS.read_text())[section]]
    except OSError:
        return ["missing"]


# ----------------------------------------------------------------- independent reference

def _key(passphrase: str) -> bytes:
    return passphrase.encode()[:19].ljust(20, b"\0")


def _msg(vhid: int, addrs, counter: bytes, *, ll: bool = True, lladdr: bytes = b"") -> bytes:
    """BSD message built from scratch: numeric IPv4 sort, memcmp IPv6 sort with scope cleared."""
    v4, v6 = set(), set()
    for a in addrs:
        ip = ipaddress.ip_address(a.split("%")[0])
        if ip.version == 4:
            v4.add(int(ip))
        else:
            b = bytearray(ip.packed)
            if ip.is_link_local:
                if not ll:
                    continue
                b[2] = b[3] = 0
            v6.add(bytes(b))
    body = b"".join(struct.pack("!I", x) for x in sorted(v4)) + b"".join(sorted(v6))
    return bytes((2, 1)) + lladdr + bytes((vhid,)) + body + counter


def _md(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha1).digest()


def _advert(md: bytes, counter: bytes, *, vhid: int = 1, src: str = "10.0.0.2", frame: int = 1,
            ts: float = 0.0, eth_src: str | None = None, segment: str = "lab", family: int = 4,
            **kw) -> Advert:
    fields = dict(frame=frame, ts=ts, source="test.pcap", segment=segment, protocol="carp",
                  family=family, src=src, dst="224.0.0.18" if family == 4 else "ff02::12", ttl=255,
                  vhid=vhid, version=2, type=1, checksum=0, checksum_ok=True,
                  checksum_variant="plain", payload_len=36, advbase=1, advskew=0, counter=counter,
                  md=md, eth_src=eth_src or f"00:00:5e:00:01:{vhid:02x}")
    fields.update(kw)
    return Advert(**fields)


def _ctr(i: int) -> bytes:
    return struct.pack("!Q", 0x1000 + i)


# ----------------------------------------------------------------- vectors.json

@pytest.mark.parametrize("vid", _vector_ids("carp_key_derivation"))
def test_key_derivation_vectors(vid):
    v = next(x for x in _vectors("carp_key_derivation") if x["id"] == vid)
    if "bsd_ifconfig_pass_key_hex" in v:
        pw = v["password_ascii"]
        assert derive_key(pw).hex() == v["bsd_ifconfig_pass_key_hex"]
        assert derive_key(pw.encode()).hex() == v["bsd_ifconfig_pass_key_hex"]
        assert is_truncated(pw) == (len(pw) > 19)
        if v["ucarp_key_hex"] is None:
            with pytest.raises(PassphraseError):
                derive_key(pw, style="ucarp")
        else:
            assert derive_key(pw, style="ucarp").hex() == v["ucarp_key_hex"]
    elif "possible_residue_key_hex" in v:
        clean = derive_key(v["new_password_ascii"])
        assert clean.hex() == v["clean_key_hex"]
        residue = key_from_hex(v["possible_residue_key_hex"])
        assert residue != clean and residue[:4] == clean[:4]
    elif "keypass_key_hex" in v:
        assert derive_key(v["password_ascii"], style="keypass").hex() == v["keypass_key_hex"]
    else:
        pytest.fail(f"unhandled key derivation vector {vid}")


def _vector_vips(v) -> list[str]:
    # "fe80:2::1 (kernel embedded form of fe80::1%2)": the address is the first word
    return v["ipv4_vips_as_configured"] + [a.split()[0] for a in v["ipv6_vips_as_configured"]]


@pytest.mark.parametrize("vid", _vector_ids("carp_hmac"))
def test_hmac_vectors(vid):
    v = next(x for x in _vectors("carp_hmac") if x["id"] == vid)
    key = bytes.fromhex(v["key_hex"])
    vips = _vector_vips(v)
    lladdr = bytes.fromhex(v["openbsd_lladdr_hex"]) if v.get("openbsd_lladdr_hex") else None
    counter = bytes.fromhex(v.get("counter_hex") or v["bsd_counter_hex"])
    expected = bytes.fromhex(v.get("expected_hmac_hex") or v["bsd_expected_hmac_hex"])
    message = bytes.fromhex(v.get("message_hex") or v["bsd_message_hex"])
    assert _md(key, message) == expected                       # the vector is self-consistent

    # which flavours build exactly the vector's message
    flavours = []
    for f in auth.FLAVOURS:
        if (f == auth.OPENBSD_LLADDR) != (lladdr is not None):
            continue
        try:
            if hmac_message(v["vhid"], vips, counter, f, lladdr) == message:
                flavours.append(f)
        except ValueError:
            pass
    assert flavours, "no flavour reproduces the vector's message"
    for f in flavours:
        assert carp_hmac(key, v["vhid"], vips, counter, f, lladdr) == expected

    # the verifier accepts it with the key and VIP set, and names exactly those flavours
    kr = Keyring()
    kr.add_raw_key("vec", key, origin="config")
    kr.add_vips(v["vhid"], vips, origin="config")
    ver = Verifier(kr, try_weak=False)
    eth = lladdr.hex(":") if lladdr else None
    res = ver.verify(_advert(expected, counter, vhid=v["vhid"], eth_src=eth))
    assert res.status == "ok" and res.key == "vec"
    assert res.flavours == tuple(flavours)
    assert res.flavour == "|".join(flavours)
    assert set(res.vips) == {str(ipaddress.ip_address(b)) for b in VipSet.of(vips).v4 + VipSet.of(vips).v6}

    # negatives carried by the vector must fail
    negatives = [v[k] for k in ("negative_config_order_hmac_hex", "negative_all_20_bytes_hmac_hex",
                                "scapy_expected_hmac_hex") if k in v]
    for neg in negatives:
        bad = ver.verify(_advert(bytes.fromhex(neg), counter, vhid=v["vhid"], eth_src=eth, src="10.9.9.1"))
        assert bad.status == "fail"
    if "negative_config_order_message_hex" in v:
        assert message != bytes.fromhex(v["negative_config_order_message_hex"])


def test_real_capture_vector_verifies_with_passphrase_and_as_weak():
    v = next(x for x in _vectors("carp_hmac") if x["id"] == "hmac-real-freebsd-pass123")
    counter, md = bytes.fromhex(v["counter_hex"]), bytes.fromhex(v["observed_hmac_in_packet_hex"])
    kr = Keyring()
    kr.add_vips(1, v["ipv4_vips_as_configured"])
    # no user key: the bundled weak list contains the john-samples passphrase
    res = Verifier(kr).verify(_advert(md, counter, src="192.168.88.100"))
    assert res.status == "ok" and res.weak and res.key.startswith("weak-default-")
    assert res.flavours == ("freebsd", "openbsd", "ucarp")
    # the same passphrase given by the user keeps the user's label but is still flagged weak
    kr.add_passphrase("office", "pass123")
    res = Verifier(kr).verify(_advert(md, counter, src="192.168.88.100"))
    assert (res.status, res.key, res.weak) == ("ok", "office", True)
    assert Verifier(kr, try_weak=False).verify(_advert(md, counter)).key == "office"


# ----------------------------------------------------------------- derivation details

def test_derivation_rules():
    assert derive_key("") == bytes(20)
    assert derive_key("x" * 40) == b"x" * 19 + b"\0"
    assert is_truncated("x" * 20) and not is_truncated("x" * 19)
    assert derive_key("ab\0cd") == derive_key("ab")                  # C string
    with pytest.raises(PassphraseError):
        derive_key("", style="ucarp")
    with pytest.raises(PassphraseError):
        derive_key("y" * 20, style="ucarp")
    with pytest.raises(ValueError):
        derive_key("a", style="md5")
    assert key_from_hex("0x" + "AB" * 20) == b"\xab" * 20
    assert key_from_hex(":".join(["01"] * 20)) == b"\x01" * 20
    with pytest.raises(PassphraseError):
        key_from_hex("abcd")
    assert issubclass(PassphraseError, ValueError)


def test_vipset_order_dedup_scope_and_bounds():
    vs = VipSet.of(["10.0.0.20", "10.0.0.3", "10.0.0.3", "192.168.1.1/24", "fe80::1%em0",
                    "fe80:2::1", "2001:db8::1", "0.0.0.0"])
    assert vs.addrs == ("10.0.0.3", "10.0.0.20", "192.168.1.1", "2001:db8::1", "fe80::1")
    assert vs.has_link_local and vs.v6_global == (ipaddress.ip_address("2001:db8::1").packed,)
    assert str(vs) == "{10.0.0.3, 10.0.0.20, 192.168.1.1, 2001:db8::1, fe80::1}"
    with pytest.raises(ValueError):
        VipSet.of(["10.0.0.300"])


# ----------------------------------------------------------------- fast path == stdlib hmac

@settings(max_examples=150, deadline=None)
@given(key=st.binary(min_size=20, max_size=20), vhid=st.integers(1, 255),
       v4=st.lists(st.integers(1, 2**32 - 2), min_size=1, max_size=6),
       v6=st.lists(st.binary(min_size=16, max_size=16), max_size=3),
       ll=st.booleans(), counter=st.binary(min_size=8, max_size=8))
def test_fast_context_equals_stdlib_hmac(key, vhid, v4, v6, ll, counter):
    addrs = [str(ipaddress.IPv4Address(x)) for x in v4]
    addrs += [str(ipaddress.IPv6Address(b)) for b in v6
              if b not in (bytes(16), b"\xff" * 16) and not ipaddress.IPv6Address(b).is_link_local
              and b[0] != 0xFF]
    if ll:
        addrs.append("fe80::" + format(vhid, "x"))
    assert carp_hmac(key, vhid, addrs, counter, "freebsd") == _md(key, _msg(vhid, addrs, counter))
    assert carp_hmac(key, vhid, addrs, counter, "openbsd") == _md(key, _msg(vhid, addrs, counter, ll=False))
    pads = auth.KeyPads(auth.Key("k", key))
    for flavours, prefix in auth.flavour_prefixes(vhid, VipSet.of(addrs)):
        ctx = auth.HmacContext(pads, vhid, VipSet.of(addrs), flavours, prefix)
        assert ctx.digest(counter) == hmac.new(key, prefix + counter, "sha1").digest()
        assert ctx.digest(counter) == ctx.digest(counter)           # states are copied, not consumed


# ----------------------------------------------------------------- crafted multi-VIP adverts

FB_VIPS = ["10.0.0.20", "10.0.0.3", "192.168.7.1", "2001:db8::20", "2001:db8::3", "fe80::1"]


def test_freebsd_style_advert_needs_right_flavour_and_full_set():
    key, counter = _key("lab-pass"), _ctr(1)
    md = _md(key, _msg(9, FB_VIPS, counter))                 # FreeBSD: link-local included
    kr = Keyring()
    kr.add_passphrase("lab", "lab-pass")
    kr.add_vips(9, FB_VIPS, origin="config")
    ver = Verifier(kr, try_weak=False)
    res = ver.verify(_advert(md, counter, vhid=9))
    assert (res.status, res.key, res.flavour, res.flavours) == ("ok", "lab", "freebsd", ("freebsd",))
    assert res.vips == ("10.0.0.3", "10.0.0.20", "192.168.7.1", "2001:db8::3", "2001:db8::20", "fe80::1")
    matching = [c.flavours for c in ver.contexts("lab", 9) if c.matches(counter, md)]
    assert matching == [("freebsd",)]
    # any VIP missing: no context matches
    for drop in FB_VIPS:
        kr2 = Keyring()
        kr2.add_passphrase("lab", "lab-pass")
        kr2.add_vips(9, [a for a in FB_VIPS if a != drop])
        assert Verifier(kr2, try_weak=False).verify(_advert(md, counter, vhid=9)).status == "fail"


def test_openbsd_style_advert_excludes_link_local_and_hashes_custom_lladdr():
    key, counter = _key("obsd"), b"\x8a\x01\x02\x03\x04\x05\x06\x07"
    lladdr = bytes.fromhex("021122334455")
    kr = Keyring()
    kr.add_passphrase("ob", "obsd")
    kr.add_vips(5, FB_VIPS, origin="config")
    ver = Verifier(kr, try_weak=False)
    # NOV6LL sender with the default virtual MAC
    md = _md(key, _msg(5, FB_VIPS, counter, ll=False))
    res = ver.verify(_advert(md, counter, vhid=5, src="10.0.0.7"))
    assert (res.status, res.flavour) == ("ok", "openbsd")
    # NOV6LL sender whose carp interface has a custom lladdr (its Ethernet source)
    md = _md(key, _msg(5, FB_VIPS, counter, ll=False, lladdr=lladdr))
    res = ver.verify(_advert(md, counter, vhid=5, src="10.0.0.8", eth_src="02:11:22:33:44:55"))
    assert (res.status, res.flavour, res.lladdr) == ("ok", "openbsd-lladdr", "02:11:22:33:44:55")
    # the same packet from a virtual MAC cannot be an lladdr sender: fails
    res = ver.verify(_advert(md, counter, vhid=5, src="10.0.0.9"))
    assert res.status == "fail"
    # lladdr hashed but link-local included is no real flavour: fails
    md = _md(key, _msg(5, FB_VIPS, counter, ll=True, lladdr=lladdr))
    assert ver.verify(_advert(md, counter, vhid=5, src="10.0.0.10", eth_src="02:11:22:33:44:55")).status == "fail"


def test_ucarp_flavour_only_for_single_ipv4():
    vs = VipSet.of(["10.0.0.1", "10.0.0.2"])
    assert all("ucarp" not in f for f, _ in auth.flavour_prefixes(1, vs))
    with pytest.raises(ValueError):
        hmac_message(1, vs, bytes(8), "ucarp")
    assert [f for f, _ in auth.flavour_prefixes(1, VipSet.of(["10.0.0.1"]))] == [("freebsd", "openbsd", "ucarp")]


# ----------------------------------------------------------------- verifier caching

def _lab_keyring(vips=("10.0.0.5", "10.0.0.6")) -> Keyring:
    kr = Keyring()
    kr.add_passphrase("lab", "lab-pass", origin="file")
    kr.add_vips(1, list(vips), origin="config")
    return kr


def test_steady_speaker_is_verified_every_packet():
    key = _key("lab-pass")
    kr = _lab_keyring()
    ver = Verifier(kr)
    statuses = []
    for i in range(60):
        md = _md(key, _msg(1, ["10.0.0.5", "10.0.0.6"], _ctr(i)))
        if i == 30:
            md = bytes([md[0] ^ 1]) + md[1:]                     # tampered in the middle
        statuses.append(ver.verify(_advert(md, _ctr(i), frame=i + 1, ts=float(i))).status)
    assert statuses[30] == "fail"
    assert statuses[:30] == ["ok"] * 30 and statuses[31:] == ["ok"] * 29
    assert ver.stats["fast"] == 58         # one search for the first advert, one for the tampered
    assert ver.stats["ok"] == 59 and ver.stats["fail"] == 1


def test_cache_falls_back_when_speaker_changes_context_and_on_keyring_change():
    kr = _lab_keyring()
    kr.add_passphrase("new", "new-pass")
    ver = Verifier(kr, try_weak=False)
    vips = ["10.0.0.5", "10.0.0.6"]
    a = ver.verify(_advert(_md(_key("lab-pass"), _msg(1, vips, _ctr(1))), _ctr(1)))
    b = ver.verify(_advert(_md(_key("new-pass"), _msg(1, vips, _ctr(2))), _ctr(2)))
    assert (a.key, b.key) == ("lab", "new")
    # a VIP set added later is used immediately (caches follow keyring.generation)
    md = _md(_key("lab-pass"), _msg(1, ["10.0.0.7"], _ctr(3)))
    assert ver.verify(_advert(md, _ctr(3))).status == "fail"
    kr.add_vips(1, ["10.0.0.7"], origin="inferred", segment="lab")
    res = ver.verify(_advert(md, _ctr(3)))
    assert (res.status, res.inferred_vips) == ("ok", True)
    # an inferred set only applies to its own segment
    assert ver.verify(_advert(md, _ctr(3), segment="other")).status == "fail"


def test_unchecked_and_not_carp():
    kr = Keyring()
    kr.add_passphrase("lab", "lab-pass")
    ver = Verifier(kr)
    res = ver.verify(_advert(bytes(20), bytes(8), vhid=4))
    assert res.status == "unchecked" and res.diagnosis.kind == "unknown-vips"
    assert "--vip 4=" in res.reason
    kr.add_vips(4, ["10.4.0.1"])
    assert Verifier(kr, try_weak=False).verify(_advert(bytes(20), bytes(8), vhid=4)).status == "fail"
    assert Verifier(Keyring(), try_weak=False).verify(_advert(bytes(20), bytes(8))).diagnosis.kind == "no-keys"
    kr.add_vips(5, ["10.5.0.1"], origin="inferred", segment="dmz")
    res = Verifier(kr).verify(_advert(bytes(20), bytes(8), vhid=5))
    assert res.status == "unchecked" and res.diagnosis.kind == "unknown-vips"
    assert "other segments" in res.reason and res.diagnosis.known_vips == (("10.5.0.1",),)
    vr = _advert(None, None, protocol="vrrp2")
    assert ver.verify(vr).status == "none"


# ----------------------------------------------------------------- diagnosis

def test_diagnosis_tells_vip_set_from_passphrase():
    kr = _lab_keyring(("10.0.0.5", "10.0.0.6"))
    ver = Verifier(kr, try_weak=False)
    # speaker B has only 10.0.0.5 bound to the vhid
    md = _md(_key("lab-pass"), _msg(1, ["10.0.0.5"], _ctr(1)))
    res = ver.verify(_advert(md, _ctr(1), src="10.0.0.3"))
    d = res.diagnosis
    assert res.status == "fail" and d.kind == "vip-set"
    assert (d.key, d.vips) == ("lab", ("10.0.0.5",))
    assert "passphrase `lab`" in d.message and "{10.0.0.5}" in d.message
    assert d.known_vips == (("10.0.0.5", "10.0.0.6"),)
    # speaker C has an extra VIP (superset of the configured set)
    md = _md(_key("lab-pass"), _msg(1, ["10.0.0.5", "10.0.0.6", "10.0.0.9"], _ctr(1)))
    kr.add_vips(1, ["10.0.0.9"], origin="inventory", segment="elsewhere")
    d = ver.verify(_advert(md, _ctr(1), src="10.0.0.4")).diagnosis
    assert d.kind == "vip-set" and d.vips == ("10.0.0.5", "10.0.0.6", "10.0.0.9")
    # speaker D uses another passphrase with the right VIPs
    md = _md(_key("other"), _msg(1, ["10.0.0.5", "10.0.0.6"], _ctr(1)))
    d = ver.verify(_advert(md, _ctr(1), src="10.0.0.8")).diagnosis
    assert d.kind == "passphrase" and d.key is None and d.vips == ()
    assert d.keys_tried == 1 and d.sets_tried > 0


def test_diagnosis_runs_once_per_speaker():
    ver = Verifier(_lab_keyring(), try_weak=True)
    for i in range(25):
        md = _md(_key("lab-pass"), _msg(1, ["10.0.0.6"], _ctr(i)))
        res = ver.verify(_advert(md, _ctr(i), src="10.0.0.3"))
        assert res.status == "fail" and res.diagnosis.kind == "vip-set"
    for i in range(25):
        res = ver.verify(_advert(os.urandom(20), _ctr(i), src="10.0.0.4"))
        assert res.diagnosis.kind == "passphrase"
    assert ver.stats["diagnoses"] == 2 and ver.stats["fail"] == 50


def test_diagnosis_finds_subset_of_union_with_weak_key():
    kr = Keyring()
    kr.add_vips(3, ["10.3.0.1", "10.3.0.2"], origin="config")
    kr.add_vips(3, ["10.3.0.3", "10.3.0.4"], origin="inventory")
    md = _md(_key("testpass"), _msg(3, ["10.3.0.2", "10.3.0.3"], _ctr(0)))
    d = Verifier(kr).verify(_advert(md, _ctr(0), vhid=3)).diagnosis
    assert d.kind == "vip-set" and d.vips == ("10.3.0.2", "10.3.0.3") and d.weak
    assert "testpass" not in d.message and "bundled list entry" in d.message


# ----------------------------------------------------------------- findings

class Tally:
    """(advert, verdict) pairs counted on the tracker's speakers, as the engine does."""

    def __init__(self):
        self.tracker = Tracker()

    def add(self, advert, result):
        g, sp = self.tracker.lookup(advert)
        self.tracker.advert(advert, g, sp)
        tally(sp, advert, result)

    def findings(self):
        return rules_auth.auth_findings(list(self.tracker.groups.values()))


def auth_findings(pairs):
    col = Tally()
    for adv, res in pairs:
        col.add(adv, res)
    return col.findings()


def _run(pairs):
    return {f.rule: f for f in auth_findings(pairs)}


def _stream(ver, speakers, n=15):
    """speakers: {src: (passphrase, vips)} advertising alternately."""
    out = []
    frame = 0
    for i in range(n):
        for src, (pw, vips) in speakers.items():
            frame += 1
            md = _md(_key(pw), _msg(1, vips, _ctr(i)))
            adv = _advert(md, _ctr(i), src=src, frame=frame, ts=float(frame))
            out.append((adv, ver.verify(adv)))
    return out


def test_findings_vip_set_mismatch():
    ver = Verifier(_lab_keyring(), try_weak=False)
    fs = _run(_stream(ver, {"10.0.0.2": ("lab-pass", ["10.0.0.5", "10.0.0.6"]),
                            "10.0.0.3": ("lab-pass", ["10.0.0.5"])}))
    assert set(fs) == {"vip-set-mismatch"}
    f = fs["vip-set-mismatch"]
    assert f.code == lookup("vip-set-mismatch").code and f.cause == "vip-set"
    assert "10.0.0.3 uses {10.0.0.5}" in f.message and "10.0.0.2 uses {10.0.0.5, 10.0.0.6}" in f.message
    assert (f.vhid, f.segment, f.protocol) == (1, "lab", "carp")
    assert f.evidence["vips"] == {"10.0.0.2": ["10.0.0.5", "10.0.0.6"], "10.0.0.3": ["10.0.0.5"]}
    assert f.packets == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]          # B's failing frames, bounded
    assert (f.first_seen, f.last_seen) == (1.0, 30.0)


def test_findings_passphrase_mismatch_not_doubled_as_hmac_mismatch():
    ver = Verifier(_lab_keyring(), try_weak=False)
    fs = _run(_stream(ver, {"10.0.0.2": ("lab-pass", ["10.0.0.5", "10.0.0.6"]),
                            "10.0.0.3": ("typo-pass", ["10.0.0.5", "10.0.0.6"])}))
    assert set(fs) == {"passphrase-mismatch"}
    f = fs["passphrase-mismatch"]
    assert f.cause == "passphrase" and "10.0.0.2 with `lab`" in f.message
    assert "10.0.0.3 with no known passphrase" in f.message
    assert f.evidence["key_labels"] == ["lab"]


def test_findings_two_known_keys_and_lone_failure():
    kr = _lab_keyring()
    kr.add_passphrase("old", "old-pass")
    ver = Verifier(kr, try_weak=False)
    fs = _run(_stream(ver, {"10.0.0.2": ("lab-pass", ["10.0.0.5", "10.0.0.6"]),
                            "10.0.0.3": ("old-pass", ["10.0.0.5", "10.0.0.6"])}))
    assert set(fs) == {"passphrase-mismatch"} and fs["passphrase-mismatch"].evidence["key_labels"] == ["lab", "old"]
    fs = _run(_stream(Verifier(_lab_keyring(), try_weak=False), {"10.0.0.3": ("x", ["10.0.0.5"])}))
    assert set(fs) == {"hmac-mismatch"} and fs["hmac-mismatch"].cause == "auth"


def test_findings_weak_and_unchecked():
    ver = Verifier(_lab_keyring())
    fs = _run(_stream(ver, {"10.0.0.2": ("testpass", ["10.0.0.5", "10.0.0.6"])}, n=3))
    f = fs["weak-passphrase"]
    entries = [ln for ln in (Path(auth.__file__).parent.parent / "data/weak_passphrases.txt").read_text().splitlines()
               if ln.strip() and not ln.startswith("#")]
    n = entries.index("testpass") + 1
    assert f"bundled list entry {n}" in f.message and "testpass" not in json.dumps(f.to_json())
    assert f.evidence["key_labels"] == [f"weak-default-{n}"]
    kr = Keyring()
    ver = Verifier(kr)
    adv = _advert(bytes(20), bytes(8), vhid=7)
    fs = _run([(adv, ver.verify(adv))])
    assert set(fs) == {"hmac-unchecked"} and fs["hmac-unchecked"].severity.value == "info"


def test_findings_tampered_adverts_from_a_good_speaker():
    key = _key("lab-pass")
    ver = Verifier(_lab_keyring(), try_weak=False)
    col = Tally()
    for i in range(20):
        md = _md(key, _msg(1, ["10.0.0.5", "10.0.0.6"], _ctr(i)))
        if i % 7 == 3:
            md = bytes(20)
        adv = _advert(md, _ctr(i), frame=i + 1, ts=float(i))
        col.add(adv, ver.verify(adv))
    (f,) = col.findings()
    assert f.rule == "hmac-mismatch" and f.packets == [4, 11, 18]
    assert "3 of 20 adverts" in f.message


def _vrrp(src, auth_type, auth_data, frame):
    return _advert(None, None, protocol="vrrp2", src=src, frame=frame, ts=float(frame), vhid=2,
                   priority=100, auth_type=auth_type, auth_data=auth_data)


def test_vrrp_cleartext_and_auth_mismatch_never_print_the_password():
    pairs = [(_vrrp("10.1.0.1", 1, b"abcdefgh", i), None) for i in range(1, 4)]
    pairs += [(_vrrp("10.1.0.2", 1, b"abcdefgX", i), None) for i in range(4, 7)]
    fs = _run(pairs)
    assert set(fs) == {"vrrp-cleartext-auth", "vrrp-auth-mismatch"}
    assert fs["vrrp-auth-mismatch"].cause == "auth"
    assert "#1" in fs["vrrp-auth-mismatch"].message and "#2" in fs["vrrp-auth-mismatch"].message
    for f in fs.values():
        blob = json.dumps(f.to_json()) + repr(f)
        assert "abcdefg" not in blob and "6162636465666768" not in blob
    same = [(_vrrp("10.1.0.1", 1, b"abcdefgh", 1), None), (_vrrp("10.1.0.2", 1, b"abcdefgh", 2), None)]
    assert set(_run(same)) == {"vrrp-cleartext-auth"}
    none = [(_vrrp("10.1.0.1", 0, b"\0" * 8, 1), None), (_vrrp("10.1.0.2", 0, b"junkjunk", 2), None)]
    assert _run(none) == {}
    mixed = [(_vrrp("10.1.0.1", 0, b"\0" * 8, 1), None), (_vrrp("10.1.0.2", 1, b"pw", 2), None)]
    assert set(_run(mixed)) == {"vrrp-cleartext-auth", "vrrp-auth-mismatch"}


def test_findings_state_is_bounded_by_speakers():
    ver = Verifier(_lab_keyring(), try_weak=False)
    col = Tally()
    for i in range(500):
        adv = _advert(bytes(20), _ctr(i), frame=i + 1, ts=float(i))
        col.add(adv, ver.verify(adv))
    assert sum(len(g.speakers) for g in col.tracker.groups.values()) == 1
    (f,) = col.findings()
    assert len(f.packets) == 10 and f.evidence["speakers"][0]["fail"] == 500


# ----------------------------------------------------------------- keyring loaders

def test_passphrase_file_rules(tmp_path):
    p = tmp_path / "keys"
    p.write_bytes(b"# lab keys\n\nlab:pass:word\nplain secret\n  # indented comment\n"
                  b"has space:x\nkey2:dupe\nwin:crlf\r\nlong:" + b"L" * 24 + b"\n")
    p.chmod(0o600)
    kr, warnings = load_passphrase_file(p)
    labels = {k.label: k for k in kr.keys()}
    # 'key2:dupe' collides: skipped; a line WORD:REST is also the unlabelled passphrase of its line
    assert list(labels) == ["lab", "line3", "key2", "key3", "win", "line8", "long", "line9"]
    assert labels["lab"]._raw == derive_key("pass:word")           # label = text before the FIRST ':'
    assert labels["line3"]._raw == derive_key("lab:pass:word")     # ... or the whole line
    assert labels["key2"]._raw == derive_key("plain secret")        # default label = entry number
    assert labels["key3"]._raw == derive_key("has space:x")         # 'has space' is not a label
    assert labels["win"]._raw == derive_key("crlf")                 # CRLF line ending stripped
    assert labels["long"].truncated and not labels["lab"].truncated
    assert all(k.origin == "file" for k in labels.values())
    assert len(warnings) == 2
    assert "duplicate key label 'key2'" in warnings[0] and ":7:" in warnings[0]
    assert "'long' is longer than 19 bytes" in warnings[1]
    # group/other readable file: warned, still loaded
    p.chmod(0o644)
    kr2, warnings = load_passphrase_file(p)
    assert len(kr2) == 8 and any("readable by group or others" in w for w in warnings)


def test_keyring_from_env(tmp_path):
    p = tmp_path / "k"
    p.write_text("ops:" + SECRET + "\n")
    p.chmod(0o600)
    kr, warnings = keyring_from_env({"CARPSCOPE_PASSPHRASES": str(p)})
    assert [k.label for k in kr.keys()] == ["ops", "line1"] and warnings == []   # or 'ops:...' unlabelled
    assert {k.origin for k in kr.keys()} == {"env"}
    kr, warnings = keyring_from_env({})
    assert len(kr) == 0 and warnings == []
    with pytest.raises(OSError):
        keyring_from_env({"CARPSCOPE_PASSPHRASES": str(tmp_path / "missing")})


def test_parse_vip_arg_and_keyring_vips():
    assert parse_vip_arg("1=10.0.0.5,10.0.0.6") == (1, ["10.0.0.5", "10.0.0.6"])
    assert parse_vip_arg(" 12 = 2001:db8::1 , fe80::1%em0 ") == (12, ["2001:db8::1", "fe80::1%em0"])
    for bad in ("10.0.0.5", "0=10.0.0.5", "256=10.0.0.5", "x=10.0.0.5", "3=", "3=10.0.0.256"):
        with pytest.raises(ValueError):
            parse_vip_arg(bad)
    kr = Keyring()
    g0 = kr.generation
    kr.add_vips(1, ["10.0.0.1"], origin="config")
    kr.add_vips(1, ["10.0.0.1"], origin="config")                 # duplicate: no change
    kr.add_vips(1, ["10.0.0.9"], origin="inferred", segment="s1")
    kr.add_vips(1, ["10.0.0.9", "10.0.0.10"], origin="inferred", segment="s1")   # replaces
    assert [(e.vips.addrs, e.origin) for e in kr.vip_entries(1, "s1")] == [
        (("10.0.0.1",), "config"), (("10.0.0.9", "10.0.0.10"), "inferred")]
    assert [e.vips.addrs for e in kr.vip_entries(1, "s2")] == [("10.0.0.1",)]
    kr.remove_inferred(1, "s1")
    assert len(kr.vip_entries(1, "s1")) == 1 and kr.generation > g0
    with pytest.raises(ValueError):
        kr.add_vips(1, ["10.0.0.1"], origin="guess")
    with pytest.raises(ValueError):
        kr.add_vips(300, ["10.0.0.1"])


# ----------------------------------------------------------------- secrets never leak

def test_secret_never_in_repr_str_errors_results_or_findings(tmp_path):
    kr = Keyring()
    key = kr.add_passphrase("ops", SECRET, origin="file")
    raw = derive_key(SECRET)
    texts = [repr(key), str(key), repr(kr), str(kr)]
    errors = []
    for call in (lambda: kr.add_passphrase("ops", SECRET),               # duplicate label
                 lambda: kr.add_passphrase(SECRET, "x"),                  # label/secret swapped
                 lambda: derive_key(SECRET + "-and-more-bytes", style="ucarp"),
                 lambda: key_from_hex(SECRET),
                 lambda: kr.add_raw_key("raw", SECRET),
                 lambda: pickle.dumps(key)):
        with pytest.raises((ValueError, TypeError)) as exc:
            call()
        errors.append(str(exc.value) + repr(exc.value))
    texts += errors
    # results, diagnoses and findings for ok, vip-set and passphrase outcomes
    kr.add_vips(1, ["10.0.0.5", "10.0.0.6"], origin="config")
    ver = Verifier(kr)
    texts.append(repr(ver))
    pairs = []
    for i, (src, vips, pw) in enumerate([("10.0.0.2", ["10.0.0.5", "10.0.0.6"], SECRET),
                                         ("10.0.0.3", ["10.0.0.6"], SECRET),
                                         ("10.0.0.4", ["10.0.0.5", "10.0.0.6"], "other")]):
        adv = _advert(_md(_key(pw), _msg(1, vips, _ctr(i))), _ctr(i), src=src, frame=i + 1)
        res = ver.verify(adv)
        pairs.append((adv, res))
        texts += [repr(res), str(res), json.dumps(res.to_json())]
        if res.diagnosis:
            texts += [repr(res.diagnosis), json.dumps(res.diagnosis.to_json())]
    assert [r.status for _, r in pairs] == ["ok", "fail", "fail"]
    fs = auth_findings(pairs)
    assert {f.rule for f in fs} >= {"vip-set-mismatch", "passphrase-mismatch"}
    texts += [repr(f) + json.dumps(f.to_json()) for f in fs]
    texts += [repr(c) for c in ver.contexts("lab", 1)]
    p = tmp_path / "k"
    p.write_text(f"{SECRET}\nops:{SECRET}\n" + "x" * 30 + "\n")
    p.chmod(0o666)
    texts += load_passphrase_file(p)[1]
    blob = "\n".join(texts)
    for needle in (SECRET, SECRET[:12], raw.hex(), SECRET.encode().hex(), "x" * 30):
        assert needle not in blob


def _speaker_keys(*args: str) -> dict[str, str]:
    import subprocess
    import sys
    repo = Path(__file__).resolve().parents[1]
    p = subprocess.run([sys.executable, "-m", "carpscope", "analyze", str(repo / "captures/handbook.pcap"),
                        "--format", "json", "-q", "--exit-zero", "--isolated", *args],
                       capture_output=True, text=True, cwd=repo, timeout=60)
    assert p.returncode == 0, p.stderr
    return {s["ip"]: s["auth"]["key"] for g in json.loads(p.stdout)["groups"] for s in g["speakers"]}


def test_one_passphrase_under_several_labels_is_attributed_per_host(tmp_path):
    """The FreeBSD handbook's three hosts all use "testpass": each speaker's key label is the
    one its own host's configuration holds (not the first label read); without configs that
    say who uses which, every candidate label is named."""
    repo = Path(__file__).resolve().parents[1]
    confs = [a for h in ("hosta", "hostb", "hostc")
             for a in ("--rc-conf", str(repo / f"tests/fixtures/configs/handbook/{h}.rc.conf"))]
    assert _speaker_keys(*confs) == {"192.168.1.3": "hosta:vhid1", "192.168.1.4": "hostb:vhid2"}
    keys = tmp_path / "k"
    keys.write_text("one:testpass\ntwo:testpass\n")
    os.chmod(keys, 0o600)
    assert set(_speaker_keys("--passphrase-file", str(keys)).values()) == {"one | two"}


_KERNEL_CHECK = """
import hashlib, hmac, os, random, sys
try:
    from carpscope import _sha1
except ImportError:
    print("absent"); sys.exit(0)
random.seed(7)
for i in range(3000):
    key = os.urandom(random.choice([0, 1, 20, 64]))
    k = key.ljust(64, b"\\0")
    prefix = os.urandom(random.randrange(0, 300))
    msg = os.urandom(random.choice([0, 8, 20, 63, 64]))
    inner = _sha1.absorb(bytes(x ^ 0x36 for x in k) + prefix)
    outer = _sha1.absorb(bytes(x ^ 0x5C for x in k))
    assert _sha1.finish(inner, outer, msg) == hmac.new(key, prefix + msg, hashlib.sha1).digest(), i
print(_sha1.kernel)
"""


@pytest.mark.parametrize("no_shani", ["", "1"])
def test_sha1_kernel_matches_hashlib(no_shani):
    """The compiled HMAC-SHA1 kernel (SHA-NI where the CPU has it, else portable C) agrees with
    Python's hmac on random keys, prefixes (across block boundaries) and messages."""
    import subprocess
    import sys
    p = subprocess.run([sys.executable, "-c", _KERNEL_CHECK], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, CARPSCOPE_NO_SHANI=no_shani))
    assert p.returncode == 0, p.stderr
    if p.stdout.strip() == "absent":
        pytest.skip("the compiled kernel is not built here (pure Python install)")
    assert p.stdout.strip() in (("portable",) if no_shani else ("portable", "sha-ni"))
