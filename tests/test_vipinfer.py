"""VIP inference from ARP/NA hints and the advert stream, and its hand-off to the keyring."""
from __future__ import annotations

import hashlib
import hmac
import struct

from carpscope.auth import Keyring, Verifier
from carpscope.model import AddressHint, Advert
from carpscope.auth.vipinfer import VIA_MASTER, VIA_VMAC, VipInference, virtual_mac_id

REAL_A = "52:54:00:aa:00:01"
REAL_B = "52:54:00:bb:00:02"


def _adv(ts, src, vhid, *, seg="lan", protocol="carp", eth=None, counter=b"\0" * 8, md=b"\0" * 20,
         frame=None):
    return Advert(frame=frame or int(ts * 100), ts=ts, source="t.pcap", segment=seg, protocol=protocol,
                  family=4, src=src, dst="224.0.0.18", ttl=255, vhid=vhid, version=2, type=1,
                  checksum=0, checksum_ok=True, checksum_variant="plain", payload_len=36, advbase=1,
                  advskew=0, counter=counter, md=md, eth_src=eth or f"00:00:5e:00:00:{vhid:02x}",
                  priority=100 if protocol != "carp" else None, interval_cs=100)


def _hint(ts, addr, eth, *, lladdr=None, seg="lan", family=4, frame=None):
    return AddressHint(frame or int(ts * 100) + 1, ts, "t.pcap", seg, family, addr, eth, lladdr or eth)


def _feed(vi, items):
    for it in items:
        vi.add(it)
    vi.finish()
    return vi


def test_virtual_mac_id():
    assert virtual_mac_id("00:00:5e:00:01:0a") == (1, 10)
    assert virtual_mac_id("00:00:5E:00:02:FF") == (2, 255)
    assert virtual_mac_id("00-00-5e-00-01-01") == (1, 1)
    for mac in ("00:00:5e:00:00:0a", "00:00:5e:00:01:00", "01:00:5e:00:00:12", REAL_A, None, ""):
        assert virtual_mac_id(mac) is None


def test_virtual_mac_arp_and_na_feed_the_keyring():
    kr = Keyring()
    vi = _feed(VipInference(kr), [
        _hint(1.0, "10.0.0.5", "00:00:5e:00:01:03"),
        _hint(1.0, "10.0.0.6", "00:00:5e:00:01:03"),
        # FreeBSD NA: frame from the real MAC, target lladdr option is the virtual MAC
        _hint(1.1, "2001:db8::5", REAL_A, lladdr="00:00:5e:00:01:03", family=6),
        # VRRPv3 IPv6 MAC block: recorded, but VRRP has no HMAC, so not handed to the keyring
        _hint(1.2, "2001:db8::99", "00:00:5e:00:02:03", family=6),
        _hint(1.3, "10.9.0.1", "00:00:5e:00:01:04", seg="dmz"),
        _hint(1.4, "0.0.0.0", "00:00:5e:00:01:03"),            # probe: ignored
    ])
    assert vi.vips("lan", 3) == ("10.0.0.5", "10.0.0.6", "2001:db8::5", "2001:db8::99")
    (g3,) = [g for g in vi.groups() if g.vhid == 3]
    assert set(g3.via.values()) == {VIA_VMAC} and g3.frames["10.0.0.5"] == 101
    # the union first (kernel CARP hashes every VIP), then each IPv4 VIP alone (ucarp hashes one)
    union, *singles = kr.vip_entries(3, "lan")
    assert (union.origin, union.segment, union.vips.addrs) == ("inferred", "lan", ("10.0.0.5", "10.0.0.6", "2001:db8::5"))
    assert [e.vips.addrs for e in singles] == [("10.0.0.5",), ("10.0.0.6",)]
    assert kr.vip_entries(3, "dmz") == [] and kr.vip_entries(4, "dmz")[0].vips.addrs == ("10.9.0.1",)
    assert len(kr.vip_entries(3, all_segments=True)) == 3          # grown set replaced, not appended


def test_ucarp_garp_after_master_change_is_attributed_and_verifies():
    key = b"ucarp-pw".ljust(20, b"\0")
    kr = Keyring()
    kr.add_passphrase("uc", "ucarp-pw")
    ver = Verifier(kr, try_weak=False)
    vi = VipInference(kr)
    results = []
    for i, ts in enumerate([10.0, 11.0, 12.0, 13.0]):
        ctr = struct.pack("!Q", i)
        md = hmac.new(key, b"\x02\x01\x0a" + bytes([10, 0, 0, 100]) + ctr, hashlib.sha1).digest()
        a = _adv(ts, "10.0.0.1", 10, counter=ctr, md=md)
        vi.add(a)
        results.append(ver.verify(a))
        if i == 0:
            vi.add(_hint(10.4, "10.0.0.100", REAL_A))                 # ucarp GARP from the NIC MAC
            vi.add(_hint(10.5, "10.0.0.1", REAL_A))                   # the speaker's own address
    vi.finish()
    assert vi.vips("lan", 10) == ("10.0.0.100",)
    assert next(iter(vi.groups())).via["10.0.0.100"] == VIA_MASTER
    assert results[0].status == "unchecked"                           # before the GARP was seen
    assert [r.status for r in results[1:]] == ["ok"] * 3
    assert results[-1].inferred_vips and results[-1].vips == ("10.0.0.100",)


def test_garp_just_before_the_first_advert_counts():
    vi = _feed(VipInference(), [_hint(4.8, "10.0.0.100", REAL_A), _adv(5.0, "10.0.0.1", 10)])
    assert vi.vips("lan", 10) == ("10.0.0.100",)
    vi = _feed(VipInference(), [_hint(3.0, "10.0.0.100", REAL_A), _adv(5.0, "10.0.0.1", 10)])
    assert vi.vips("lan", 10) == ()


def test_no_attribution_when_ambiguous_late_or_not_carp():
    # two groups changed master in the window
    vi = _feed(VipInference(), [_adv(1.0, "10.0.0.1", 10), _adv(1.5, "10.0.0.2", 11),
                                _hint(2.0, "10.0.0.100", REAL_A)])
    assert vi.groups() == []
    # outside the window (steady master, no change)
    vi = _feed(VipInference(), [_adv(float(t), "10.0.0.1", 10) for t in range(1, 10)]
               + [_hint(9.5, "10.0.0.100", REAL_A)])
    assert vi.groups() == []
    # only a VRRP group changed: its own GARPs come from the virtual MAC, real-MAC hints are not its
    vi = _feed(VipInference(), [_adv(1.0, "10.0.0.1", 10, protocol="vrrp2"), _hint(2.0, "10.0.0.100", REAL_A)])
    assert vi.groups() == []
    # other segment
    vi = _feed(VipInference(), [_adv(1.0, "10.0.0.1", 10), _hint(2.0, "10.0.0.100", REAL_A, seg="dmz")])
    assert vi.groups() == []
    # a speaker's own source address, even learned after the hint
    vi = _feed(VipInference(), [_adv(1.0, "10.0.0.1", 10), _hint(1.2, "10.0.0.2", REAL_B),
                                _adv(1.4, "10.0.0.2", 10)])
    assert vi.vips("lan", 10) == ()


def test_master_change_after_silence_and_takeover():
    items = [_adv(float(t), "10.0.0.1", 10) for t in range(0, 5)]
    items += [_hint(4.5, "10.0.0.50", REAL_B)]                 # steady: not attributed
    items += [_adv(20.0, "10.0.0.2", 10), _hint(20.3, "10.0.0.100", REAL_B)]      # takeover by B
    items += [_adv(40.0, "10.0.0.2", 10), _hint(40.2, "10.0.0.101", REAL_B)]      # back after silence
    vi = _feed(VipInference(), items)
    assert vi.vips("lan", 10) == ("10.0.0.100", "10.0.0.101")


def test_conflicting_heuristic_claims_are_dropped_and_vmac_wins():
    kr = Keyring()
    vi = _feed(VipInference(kr), [_adv(1.0, "10.0.0.1", 10), _hint(1.5, "10.0.0.100", REAL_A),
                                  _adv(30.0, "10.0.0.2", 11), _hint(30.5, "10.0.0.100", REAL_B),
                                  _hint(31.0, "10.0.0.100", REAL_B)])
    assert vi.vips("lan", 10) == () and vi.vips("lan", 11) == ()
    assert kr.vip_entries(10, "lan") == []                         # retracted from the keyring too
    vi = _feed(VipInference(), [_adv(1.0, "10.0.0.1", 10), _hint(1.5, "10.0.0.100", REAL_A),
                                _hint(50.0, "10.0.0.100", "00:00:5e:00:01:0c")])
    assert vi.vips("lan", 10) == () and vi.vips("lan", 12) == ("10.0.0.100",)


def test_memory_is_bounded():
    vi = VipInference()
    vi.MAX_ADDRS = 5
    vi.MAX_PENDING = 10
    for i in range(50):
        vi.add(_hint(1.0, f"10.0.1.{i + 1}", "00:00:5e:00:01:01"))
    for i in range(50):
        vi.add(_hint(2.0 + i * 0.001, f"10.0.2.{i + 1}", REAL_A))
    assert len(vi.vips("lan", 1)) == 5 and len(vi._pending) <= 10
    vi.finish()
    assert vi.dropped >= 40 + 45 and not vi._pending
    # change events are pruned as time passes
    vi = VipInference()
    for t in range(1000):
        vi.add(_adv(float(t) * 10, f"10.0.0.{t % 2 + 1}", 10))
    assert len(vi._segments["lan"].changes) <= 2
