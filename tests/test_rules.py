"""Every rule: a capture that triggers it and a near miss that must not.

Captures are built with tests/scenarios.py (protocol-true timing: masters advertise every
advbase + advskew/256 s, backups are silent and take over after their own master-down interval)
and run through the public pipeline, ``carpscope analyze FILE --format json``; the assertions
are on the JSON findings. Each case registers itself with ``@trigger(slug)`` or
``@near_miss(slug)``; ``test_catalogue_covered`` checks that every catalogued rule has both
(configuration rules: tests/test_config_lint.py, checked by grepping it).
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from carpscope import cli, synth
from carpscope.rules import catalogue

CATALOGUE = catalogue()

try:
    from tests.scenarios import (Capture, Carp, Vrrp, dual_master, failover, flapping, host_mac,
                                 preemption, steady)
except ImportError:          # rootdir-less import mode puts tests/ itself on sys.path
    from scenarios import (Capture, Carp, Vrrp, dual_master, failover, flapping, host_mac,
                           preemption, steady)

REPO = Path(__file__).resolve().parents[1]

# What each rule is, written out here (not read from the catalogue) so that a changed code or
# severity fails a test.
SPEC = {
    "malformed": ("CS101", "warning"), "capture-truncated": ("CS102", "warning"),
    "bad-checksum": ("CS103", "error"), "bad-ttl": ("CS104", "error"),
    "vrrp3-legacy-checksum": ("CS105", "info"), "nonstandard-field": ("CS106", "warning"),
    "unexpected-source-mac": ("CS107", "info"), "advert-copies": ("CS108", "info"),
    "advert-storm": ("CS109", "error"),
    "vhid-conflict": ("CS201", "error"), "skew-tie": ("CS202", "warning"),
    "skew-order": ("CS203", "warning"), "advbase-mismatch": ("CS204", "warning"),
    "demoted": ("CS205", "warning"), "bow-out": ("CS206", "info"),
    "vrrp-address-mismatch": ("CS207", "error"), "vrrp-version-mix": ("CS208", "warning"),
    "priority-owner-conflict": ("CS209", "error"), "speaker-limit": ("CS210", "warning"),
    "hmac-mismatch": ("CS301", "error"), "vip-set-mismatch": ("CS302", "error"),
    "passphrase-mismatch": ("CS303", "error"), "hmac-unchecked": ("CS304", "info"),
    "weak-passphrase": ("CS305", "warning"), "vrrp-cleartext-auth": ("CS306", "warning"),
    "vrrp-auth-mismatch": ("CS307", "error"),
    "split-brain": ("CS401", "error"), "master-gap": ("CS402", "warning"),
    "flapping": ("CS403", "warning"), "counter-replay": ("CS404", "warning"),
    "unexpected-master": ("CS405", "warning"), "unknown-speaker": ("CS406", "warning"),
    "missing-group": ("CS407", "warning"),
    "config-parse-error": ("CS501", "error"), "config-pass-mismatch": ("CS502", "error"),
    "config-vip-mismatch": ("CS503", "error"), "config-skew-order": ("CS504", "warning"),
    "config-vhid-reuse": ("CS505", "error"), "config-advskew-clamped": ("CS506", "warning"),
    "config-pass-truncated": ("CS507", "warning"), "config-missing-pass": ("CS508", "warning"),
    "config-preempt": ("CS509", "info"), "config-weak-passphrase": ("CS510", "warning"),
    "config-vip-outside-subnet": ("CS511", "warning"), "config-vip-conflict": ("CS512", "error"),
    "config-unicast-peer": ("CS513", "error"), "config-sync-group": ("CS514", "warning"),
}
CAPTURE_RULES = [s for s in CATALOGUE if not s.startswith("config-")]
CONFIG_RULES = [s for s in CATALOGUE if s.startswith("config-")]

KEY = "tr4nsit-k3y"             # the passphrase the speakers use unless a test says otherwise
NET = "10.1.2"
VIP = f"{NET}.1"
FW1, FW2, FW3 = f"{NET}.2", f"{NET}.3", f"{NET}.4"

TRIGGERS: dict[str, list] = {}
NEAR_MISSES: dict[str, list] = {}


def trigger(slug):
    def deco(fn):
        TRIGGERS.setdefault(slug, []).append(fn)
        return fn
    return deco


def near_miss(slug):
    def deco(fn):
        NEAR_MISSES.setdefault(slug, []).append(fn)
        return fn
    return deco


# ----------------------------------------------------------------------------- running carpscope

def analyze(path, *args) -> list[dict]:
    """``carpscope analyze PATH --format json ARGS`` in-process; returns the findings."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(["analyze", str(path), "--format", "json", "-q", *map(str, args)])
    assert rc in (0, 1), f"carpscope exited {rc}: {err.getvalue()}"
    report = json.loads(out.getvalue())
    findings = report["findings"]
    worst = {f["severity"] for f in findings}
    assert rc == (1 if "error" in worst else 0), "exit status does not follow --fail-on error"
    return findings


def analyze_json(path, *args) -> dict:
    """The whole JSON report of ``carpscope analyze PATH``."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        cli.main(["analyze", str(path), "--format", "json", "-q", *map(str, args)])
    return json.loads(out.getvalue())


def keyfile(tmp_path: Path, **keys: str) -> Path:
    """A passphrase file 'label:passphrase' per line (mode 600)."""
    p = tmp_path / "keys"
    p.write_text("".join(f"{label}:{secret}\n" for label, secret in keys.items()))
    os.chmod(p, 0o600)
    return p


def strings(obj) -> set[str]:
    """Every string (values and keys) inside a finding's evidence."""
    out: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.add(str(k))
            out |= strings(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            out |= strings(v)
    elif isinstance(obj, str):
        out.add(obj)
    return out


def expect(findings, slug, *, vhid=None, speakers=(), cause=None, protocol=None, n=None) -> dict:
    """The finding of ``slug`` (for ``vhid``) with the catalogued code and severity, naming
    ``speakers`` in its evidence and with ``cause``; returns it."""
    code, severity = SPEC[slug]
    hits = [f for f in findings if f["rule"] == slug]
    assert hits, f"{slug} not reported; got {sorted({(f['rule'], f['vhid']) for f in findings})[:20]}"
    for f in hits:
        assert (f["code"], f["severity"]) == (code, severity), f
        assert f["message"]
    if vhid is not None:
        hits = [f for f in hits if f["vhid"] == vhid]
        assert hits, f"{slug} not reported for id {vhid}"
    if protocol is not None:
        hits = [f for f in hits if f["protocol"] == protocol]
        assert hits, f"{slug} not reported for {protocol}"
    if speakers:
        hits = [f for f in hits if set(speakers) <= strings(f["evidence"])]
        assert hits, f"{slug}: no finding names {speakers} in its evidence"
    if cause is not None:
        assert [f["cause"] for f in hits] == [cause] * len(hits), f"{slug}: cause {[f['cause'] for f in hits]}"
    if n is not None:
        assert len(hits) == n, f"{slug}: {len(hits)} findings, expected {n}"
    return hits[0]


def absent(findings, *slugs, vhid=None) -> None:
    for slug in slugs:
        hits = [f for f in findings if f["rule"] == slug and (vhid is None or f["vhid"] == vhid)]
        assert not hits, f"{slug} reported: {[h['message'] for h in hits]}"


def carp_pair(vhid=7, skew2=100, **kw) -> tuple[Carp, Carp]:
    """fw1 (advskew 0) and fw2 (advskew ``skew2``), same passphrase and VIP."""
    kw.setdefault("vips", (VIP,))
    return Carp(FW1, vhid, **kw), Carp(FW2, vhid, advskew=skew2, **kw)


def run_keyed(tmp_path, cap: Capture, *extra, name="c.pcap", **keys) -> list[dict]:
    keys = keys or {"site": KEY}
    return analyze(cap.write(tmp_path / name), "--passphrase-file", keyfile(tmp_path, **keys), *extra)


# ============================================================================= capture and decoding

def raw_ip4_112(src: str, payload: bytes) -> bytes:
    return synth.ether(synth.vmac(9), "01:00:5e:00:00:12", 0x0800, synth.ip4(src, synth.MCAST4, payload))


@trigger("malformed")
def malformed_payloads(tmp_path):
    cap = steady(Carp(FW1, 9, vips=(VIP,)), 3)
    cap.add(cap.at(0.5), raw_ip4_112(FW3, b"\x41\x09\x64\x01"))           # 4 bytes: too short
    cap.add(cap.at(1.5), raw_ip4_112(FW3, b"\x41\x09\x64\x01" + bytes(32)))  # version 4
    f = run_keyed(tmp_path, cap)
    hit = expect(f, "malformed", speakers=[FW3])
    assert hit["packets"] and hit["evidence"]["count"] >= 1
    assert not [x for x in f if x["rule"] == "malformed" and FW1 in strings(x["evidence"])]


@near_miss("malformed")
def padded_frames_are_not_malformed(tmp_path):
    cap = Capture()
    v2 = Vrrp(FW1, 9, 200, (VIP,))
    for i in range(4):
        # Ethernet padding and a trailing FCS after the IP packet: bounded by the IP length
        cap.add(cap.at(i), v2.advert() + b"\xde\xad\xbe\xef")
    cap.add(cap.at(0.1), Carp(FW2, 10, vips=(f"{NET}.10",)).advert())
    f = analyze(cap.write(tmp_path / "c.pcap"))
    absent(f, "malformed", "nonstandard-field", "capture-truncated")


def _cut(path: Path, keep: int) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) - keep])
    return path


@trigger("capture-truncated")
def pcap_cut_inside_a_packet(tmp_path):
    a = Carp(FW1, 7, vips=(VIP,))
    p = _cut(steady(a, 6).write(tmp_path / "cut.pcap"), 20)    # the last record loses 20 bytes
    f = analyze(p)
    hit = expect(f, "capture-truncated")
    assert hit["source"] == str(p)
    assert hit["evidence"]["frames_read"] >= 5         # what came before the cut was kept
    assert hit["evidence"]["offset"] is not None and hit["evidence"]["offset"] > 24
    absent(f, "master-gap", "malformed")               # the cut is not an outage


@trigger("capture-truncated")
def pcapng_cut_inside_a_block(tmp_path):
    p = _cut(steady(Carp(FW1, 7, vips=(VIP,)), 6).write(tmp_path / "cut.pcapng", fmt="pcapng"), 30)
    expect(analyze(p), "capture-truncated")


@near_miss("capture-truncated")
def complete_file_and_short_snaplen(tmp_path):
    cap = steady(Carp(FW1, 7, vips=(VIP,)), 6)
    absent(analyze(cap.write(tmp_path / "whole.pcap")), "capture-truncated")
    # a packet captured with a small snap length is a short capture of one packet, not damage
    p = tmp_path / "snap.pcap"
    with open(p, "wb") as fh:
        w = synth.PcapWriter(fh, snaplen=64)
        for ts, data in cap.records:
            w.write(ts, data[:64], orig_len=len(data))
    absent(analyze(p), "capture-truncated")


@trigger("bad-checksum")
def carp_checksum_wrong(tmp_path):
    a = Carp(FW1, 7, vips=(VIP,))
    cap = steady(a, 6, garp=False)
    for i in range(3):
        cap.add(cap.at(0.5 + i), Carp(FW2, 7, advskew=100, vips=(VIP,)).advert(bad_checksum=True))
    f = run_keyed(tmp_path, cap, "--vip", f"7={VIP}")
    hit = expect(f, "bad-checksum", vhid=7, speakers=[FW2], protocol="carp")
    assert hit["evidence"]["count"] == 3 and len(hit["packets"]) == 3
    assert not [x for x in f if x["rule"] == "bad-checksum" and FW1 in strings(x["evidence"])]


@trigger("bad-checksum")
def vrrp3_checksum_wrong_in_every_form(tmp_path):
    cap = Capture()
    cap.advertise(Vrrp(FW1, 5, 150, (VIP,), version=3, variant="bad"), cap.at(0), count=4)
    expect(analyze(cap.write(tmp_path / "c.pcap")), "bad-checksum", vhid=5, speakers=[FW1], protocol="vrrp3")


@near_miss("bad-checksum")
def every_valid_checksum_form(tmp_path):
    cap = Capture()
    cap.advertise(Carp(FW1, 7, vips=(VIP,)), cap.at(0), count=4)
    cap.advertise(Vrrp(FW2, 5, 150, (VIP,), version=3, variant="none"), cap.at(0.2), count=4)  # RFC 9568
    cap.advertise(Vrrp(FW3, 6, 150, (f"{NET}.6",), version=3), cap.at(0.4), count=4)
    cap.advertise(Vrrp("fe80::3", 8, 150, ("fe80::8", "2001:db8::8"), version=3), cap.at(0.6), count=4)
    cap.advertise(Vrrp(f"{NET}.5", 11, 150, (f"{NET}.11",)), cap.at(0.8), count=4)
    absent(analyze(cap.write(tmp_path / "c.pcap")), "bad-checksum")


@trigger("bad-ttl")
def routed_adverts(tmp_path):
    cap = steady(Carp(FW1, 7, vips=(VIP,), ttl=254), 5)
    cap.advertise(Vrrp("fe80::3", 8, 150, ("fe80::8",), version=3, ttl=64), cap.at(0.2), count=3)
    f = run_keyed(tmp_path, cap)
    hit = expect(f, "bad-ttl", vhid=7, speakers=[FW1], cause="ttl")
    assert hit["evidence"]["ttl"] == 254 and hit["evidence"]["destination"] == synth.MCAST4
    assert "254" in hit["message"]
    six = expect(f, "bad-ttl", vhid=8, speakers=["fe80::3"])
    assert six["evidence"]["ttl"] == 64 and "hop limit" in six["message"]


@near_miss("bad-ttl")
def ttl_255_everywhere(tmp_path):
    cap = steady(Carp(FW1, 7, vips=(VIP,)), 5)
    cap.advertise(Vrrp("fe80::3", 8, 150, ("fe80::8",), version=3), cap.at(0.2), count=3)
    cap.advertise(Carp(FW2, 9, vips=(f"{NET}.9",)), cap.at(0.4), count=3, dst=FW3)   # unicast
    absent(run_keyed(tmp_path, cap), "bad-ttl")


@trigger("vrrp3-legacy-checksum")
def vrrp3_without_pseudo_header_and_keepalived_unicast(tmp_path):
    cap = Capture()
    cap.advertise(Vrrp(FW1, 5, 150, (VIP,), version=3, variant="none"), cap.at(0), count=4)
    # keepalived <= 1.3.6 unicast: pseudo-header with 224.0.0.18 although sent to the peer
    cap.advertise(Vrrp(FW2, 6, 150, (f"{NET}.6",), version=3, variant="pseudo-224", dst=FW3), cap.at(0.3), count=4)
    f = analyze(cap.write(tmp_path / "c.pcap"))
    hit = expect(f, "vrrp3-legacy-checksum", vhid=5, speakers=[FW1])
    assert hit["evidence"]["variant"] == "none" and hit["evidence"]["count"] == 4
    hit = expect(f, "vrrp3-legacy-checksum", vhid=6, speakers=[FW2])
    assert hit["evidence"]["variant"] == "pseudo-224"
    absent(f, "bad-checksum")


@near_miss("vrrp3-legacy-checksum")
def vrrp3_rfc5798_pseudo_header(tmp_path):
    cap = Capture()
    cap.advertise(Vrrp(FW1, 5, 150, (VIP,), version=3), cap.at(0), count=4)
    cap.advertise(Vrrp(FW2, 6, 150, (f"{NET}.6",), version=3, dst=FW3), cap.at(0.3), count=4)  # unicast
    cap.advertise(Vrrp("fe80::3", 8, 150, ("fe80::8",), version=3), cap.at(0.6), count=4)
    cap.advertise(Vrrp(FW3, 9, 150, (f"{NET}.9",), version=2), cap.at(0.8), count=4)
    absent(analyze(cap.write(tmp_path / "c.pcap")), "vrrp3-legacy-checksum", "bad-checksum")


@trigger("nonstandard-field")
def fields_no_speaker_sends(tmp_path):
    cap = Capture()
    cap.advertise(Carp(FW1, 7, vips=(VIP,)), cap.at(0), count=3, type_=2)
    cap.advertise(Vrrp("fe80::3", 8, 150, ("2001:db8::8", "fe80::8"), version=3), cap.at(0.2), count=3)
    cap.advertise(Vrrp(FW2, 9, 150, (f"{NET}.9",), auth_type=7), cap.at(0.4), count=3)
    f = analyze(cap.write(tmp_path / "c.pcap"))
    assert expect(f, "nonstandard-field", vhid=7, speakers=[FW1])["evidence"]["field"] == "type"
    hit = expect(f, "nonstandard-field", vhid=8, speakers=["fe80::3"])
    assert hit["evidence"] | {"count": 0} == {"speaker": "fe80::3", "field": "first address",
                                            "value": "2001:db8::8", "count": 0}
    assert expect(f, "nonstandard-field", vhid=9)["evidence"]["field"] == "auth type"


@trigger("nonstandard-field")
def carp_advbase_zero(tmp_path):
    cap = Capture()
    cap.advertise(Carp(FW1, 7, vips=(VIP,), advbase=0, advskew=0, kind="openbsd"), cap.at(0), count=5)
    f = analyze(cap.write(tmp_path / "c.pcap"))
    assert expect(f, "nonstandard-field", vhid=7, speakers=[FW1])["evidence"]["value"] == "0/0"
    absent(f, "counter-replay")   # OpenBSD's constant counter at 1/256 s is not a reflection


@near_miss("nonstandard-field")
def ordinary_fields(tmp_path):
    cap = Capture()
    cap.advertise(Carp(FW1, 7, vips=(VIP,), advskew=255), cap.at(0), count=3)
    cap.advertise(Vrrp("fe80::3", 8, 1, ("fe80::8", "2001:db8::8"), version=3, interval_cs=4095), cap.at(0.2), count=3)
    cap.advertise(Vrrp(FW2, 9, 150, (f"{NET}.9",), auth_type=1, auth_data=b"pw"), cap.at(0.4), count=3)
    cap.advertise(Vrrp(FW3, 10, 150, (f"{NET}.10",), auth_type=2, auth_data=b""), cap.at(0.6), count=3)
    absent(analyze(cap.write(tmp_path / "c.pcap")), "nonstandard-field", "malformed")


@trigger("unexpected-source-mac")
def carp_from_a_real_mac_and_vrrp_from_another_ids_vmac(tmp_path):
    cap = Capture()
    cap.advertise(Carp(FW1, 7, vips=(VIP,), mac=host_mac(FW1)), cap.at(0), count=3)
    cap.advertise(Vrrp(FW2, 9, 150, (f"{NET}.9",), mac=synth.vmac(10)), cap.at(0.2), count=3)
    cap.advertise(Vrrp("fe80::3", 8, 150, ("fe80::8",), version=3, mac=synth.vmac(8, 4)), cap.at(0.4), count=3)
    f = analyze(cap.write(tmp_path / "c.pcap"))
    hit = expect(f, "unexpected-source-mac", vhid=7, speakers=[FW1])
    assert hit["evidence"]["mac"] == host_mac(FW1) and hit["evidence"]["expected"] == "00:00:5e:00:01:07"
    assert expect(f, "unexpected-source-mac", vhid=9, speakers=[FW2])["evidence"]["mac"] == "00:00:5e:00:01:0a"
    hit = expect(f, "unexpected-source-mac", vhid=8, speakers=["fe80::3"])
    assert hit["evidence"]["expected"] == "00:00:5e:00:02:08" and "carpver 3" in hit["message"]


@near_miss("unexpected-source-mac")
def ucarp_keepalived_and_unicast_macs(tmp_path):
    cap = Capture()
    cap.advertise(Carp(FW1, 7, vips=(VIP,), kind="ucarp"), cap.at(0), count=3)         # 00:00:5e:00:00:07
    cap.advertise(Carp(FW2, 12, vips=(f"{NET}.12",)), cap.at(0.1), count=3)              # 00:00:5e:00:01:0c
    cap.advertise(Vrrp(FW3, 9, 150, (f"{NET}.9",), vmac=False), cap.at(0.2), count=3)   # keepalived real MAC
    cap.advertise(Vrrp("fe80::3", 8, 150, ("fe80::8",), version=3), cap.at(0.3), count=3)  # 00:00:5e:00:02:08
    # FreeBSD unicast CARP: real MAC towards the peer
    cap.advertise(Carp(f"{NET}.5", 13, vips=(f"{NET}.13",), mac=host_mac(f"{NET}.5")), cap.at(0.4),
                  count=3, dst=f"{NET}.6")
    absent(analyze(cap.write(tmp_path / "c.pcap")), "unexpected-source-mac")


# ============================================================================= protocol and group

@trigger("vhid-conflict")
def carp_and_vrrp_share_id_1(tmp_path):
    cap = steady(Carp(FW2, 1, vips=(f"{NET}.51",), kind="ucarp"), 6)
    cap.advertise(Vrrp(FW1, 1, 100, (f"{NET}.50",)), cap.at(0.4), count=4)
    f = run_keyed(tmp_path, cap)
    hit = expect(f, "vhid-conflict", vhid=1, speakers=[FW1, FW2], cause="vhid-conflict")
    assert hit["evidence"]["speakers"] == {"carp": [FW2], "vrrp2": [FW1]}
    assert "00:00:5e:00:01:01" in hit["message"]


@trigger("vhid-conflict")
def two_keepalived_clusters_share_a_vrid(tmp_path):
    cap = dual_master(Vrrp(FW1, 51, 100, (f"{NET}.200",)), Vrrp(FW2, 51, 100, (f"{NET}.201",)))
    f = analyze(cap.write(tmp_path / "c.pcap"))
    hit = expect(f, "vhid-conflict", vhid=51, speakers=[FW1, FW2], cause="vhid-conflict")
    assert hit["evidence"]["addresses"] == {FW1: [f"{NET}.200"], FW2: [f"{NET}.201"]}
    absent(f, "vrrp-address-mismatch")
    # both are master of their own group: reported with the id clash as the cause
    hit = _split(f, "vhid-conflict", vhid=51)
    assert "renumber" in hit["message"] and "passphrase" not in hit["message"]


@near_miss("vhid-conflict")
def different_ids_and_overlapping_lists(tmp_path):
    cap = steady(Carp(FW2, 1, vips=(f"{NET}.51",)), 6)
    cap.advertise(Vrrp(FW1, 2, 100, (f"{NET}.50",)), cap.at(0.4), count=4)
    # VRRPv3 over IPv6 with id 1 does not share the IPv4 CARP group's MAC or multicast group
    cap.advertise(Vrrp("fe80::3", 1, 150, ("fe80::1", "2001:db8::1"), version=3), cap.at(0.6), count=4)
    # the same VRRP group with overlapping (not disjoint) lists: a mismatch, not a second group
    cap.advertise(Vrrp(FW3, 3, 200, (f"{NET}.30", f"{NET}.31")), cap.at(0.8), count=3)
    cap.advertise(Vrrp(f"{NET}.5", 3, 100, (f"{NET}.30",)), cap.at(10), count=3)
    f = run_keyed(tmp_path, cap)
    absent(f, "vhid-conflict")
    expect(f, "vrrp-address-mismatch", vhid=3)


@trigger("skew-tie")
def equal_advskew_both_time_out(tmp_path):
    # ucarp pair with advbase 1 advskew 10 on both, started together: both advertise until the
    # address tie-break makes fw2 yield
    a, b = Carp(FW1, 7, advskew=10, vips=(VIP,), kind="ucarp"), Carp(FW2, 7, advskew=10, vips=(VIP,), kind="ucarp")
    cap = Capture()
    cap.become_master(a, cap.at(3.04), count=10)
    cap.become_master(b, cap.at(3.05), count=2)
    f = run_keyed(tmp_path, cap)
    hit = expect(f, "skew-tie", vhid=7, speakers=[FW1, FW2])
    assert hit["evidence"]["timing"] == [1, 10]
    absent(f, "split-brain", "advbase-mismatch")


@trigger("skew-tie")
def vrrp_equal_priority(tmp_path):
    cap, _ = failover(Vrrp(FW1, 51, 100, (VIP,)), Vrrp(FW2, 51, 100, (VIP,)))
    hit = expect(analyze(cap.write(tmp_path / "c.pcap")), "skew-tie", vhid=51, speakers=[FW1, FW2])
    assert hit["evidence"]["timing"] == 100


@near_miss("skew-tie")
def ordered_skews_and_bow_out(tmp_path):
    a, b = carp_pair(skew2=100)
    cap, _ = failover(a, b)
    cap.advertise(Vrrp(FW1, 51, 200, (f"{NET}.51",)), cap.at(0.1), count=3)
    cap.advertise(Vrrp(FW2, 51, 100, (f"{NET}.51",)), cap.at(20), count=3)
    absent(run_keyed(tmp_path, cap), "skew-tie")
    # two OpenBSD masters bowing out one after the other are not a tie
    c, d = Carp(FW1, 9, vips=(VIP,), kind="openbsd"), Carp(FW2, 9, advskew=50, vips=(VIP,), kind="openbsd")
    cap = Capture()
    last = cap.become_master(c, cap.at(0), count=3)
    cap.add(last + 0.5, c.advert(advbase=255, advskew=255))
    last = cap.become_master(d, last + 0.51, count=3)
    cap.add(last + 0.5, d.advert(advbase=255, advskew=255))
    absent(run_keyed(tmp_path, cap, name="bow.pcap"), "skew-tie", "advbase-mismatch")


@trigger("advbase-mismatch")
def carp_advbase_1_and_2(tmp_path):
    a, b = Carp(FW1, 7, vips=(VIP,)), Carp(FW2, 7, advbase=2, advskew=0, vips=(VIP,))
    cap, _ = failover(a, b)
    hit = expect(run_keyed(tmp_path, cap), "advbase-mismatch", vhid=7, speakers=[FW1, FW2], cause="advbase")
    assert hit["evidence"]["values"] == {FW1: 1, FW2: 2}


@trigger("advbase-mismatch")
def vrrp2_advert_int_1_and_3(tmp_path):
    cap, _ = failover(Vrrp(FW1, 51, 200, (VIP,)), Vrrp(FW2, 51, 100, (VIP,), interval_cs=300))
    hit = expect(analyze(cap.write(tmp_path / "c.pcap")), "advbase-mismatch", vhid=51, speakers=[FW1, FW2])
    assert hit["evidence"]["values"] == {FW1: 100, FW2: 300}
    assert "RFC 3768" in hit["message"]


@near_miss("advbase-mismatch")
def same_advbase_other_skews(tmp_path):
    a, b = carp_pair(skew2=200)
    cap, _ = failover(a, b)
    cap.advertise(Vrrp(FW1, 51, 200, (f"{NET}.51",), version=3, interval_cs=50), cap.at(0.1), count=3)
    cap.advertise(Vrrp(FW2, 51, 100, (f"{NET}.51",), version=3, interval_cs=50), cap.at(20), count=3)
    absent(run_keyed(tmp_path, cap), "advbase-mismatch")


@trigger("demoted")
def freebsd_cap_and_openbsd_demote_count(tmp_path):
    # FreeBSD: advskew 0 + demotion 240 is advertised as 240
    cap = steady(Carp(FW1, 7, advskew=240, vips=(VIP,)), 4)
    cap.advertise(Carp(FW2, 8, vips=(f"{NET}.8",), kind="openbsd", demote=2), cap.at(0.3), count=4)
    f = run_keyed(tmp_path, cap)
    hit = expect(f, "demoted", vhid=7, speakers=[FW1], cause="demotion")
    assert hit["evidence"]["advskew"] == 240 and "240" in hit["message"]
    hit = expect(f, "demoted", vhid=8, speakers=[FW2], cause="demotion")
    assert hit["evidence"]["demote"] == 2 and "demote count 2" in hit["message"]


@near_miss("demoted")
def large_skew_and_bow_out_are_not_demotion(tmp_path):
    a = Carp(FW1, 7, advskew=200, vips=(VIP,), kind="openbsd")
    cap = steady(a, 4)
    cap.add(cap.at(4.5), a.advert(advbase=255, advskew=255))
    cap.advertise(Carp(FW2, 8, advskew=239, vips=(f"{NET}.8",)), cap.at(0.3), count=4)
    absent(run_keyed(tmp_path, cap), "demoted")


@trigger("bow-out")
def openbsd_master_bows_out(tmp_path):
    a, b = Carp(FW1, 7, vips=(VIP,), kind="openbsd"), Carp(FW2, 7, advskew=100, vips=(VIP,), kind="openbsd")
    cap = Capture()
    last = cap.become_master(a, cap.at(0), count=5)
    cap.add(last + 0.4, a.advert(advbase=255, advskew=255))
    cap.become_master(b, last + 0.401, count=5)      # the backup takes over at once
    f = run_keyed(tmp_path, cap)
    hit = expect(f, "bow-out", vhid=7, speakers=[FW1])
    assert hit["evidence"]["count"] == 1
    absent(f, "master-gap", "split-brain", "advbase-mismatch", "demoted", "counter-replay")


@near_miss("bow-out")
def master_stops_without_bowing_out(tmp_path):
    a, b = carp_pair()
    cap, _ = failover(a, b)
    cap.advertise(Carp(FW3, 9, advbase=255, advskew=0, vips=(f"{NET}.9",)), cap.at(0.3), count=2)
    absent(run_keyed(tmp_path, cap), "bow-out")


@trigger("vrrp-address-mismatch")
def vrrp_lists_overlap_but_differ(tmp_path):
    a = Vrrp(FW1, 51, 200, (f"{NET}.50", f"{NET}.51"))
    b = Vrrp(FW2, 51, 100, (f"{NET}.50",))
    cap, _ = failover(a, b)
    hit = expect(analyze(cap.write(tmp_path / "c.pcap")), "vrrp-address-mismatch", vhid=51,
                 speakers=[FW1, FW2], cause="vip-set")
    assert hit["evidence"]["addresses"] == {FW1: [f"{NET}.50", f"{NET}.51"], FW2: [f"{NET}.50"]}
    absent(analyze(cap.write(tmp_path / "c.pcap")), "vhid-conflict")


@near_miss("vrrp-address-mismatch")
def same_addresses_in_another_order(tmp_path):
    a = Vrrp(FW1, 51, 200, (f"{NET}.50", f"{NET}.51"), version=3)
    b = Vrrp(FW2, 51, 100, (f"{NET}.51", f"{NET}.50"), version=3)
    cap, _ = failover(a, b)
    absent(analyze(cap.write(tmp_path / "c.pcap")), "vrrp-address-mismatch", "vhid-conflict")


@trigger("vrrp-version-mix")
def v2_and_v3_on_one_vrid(tmp_path):
    cap, _ = failover(Vrrp(FW1, 5, 200, (VIP,), version=2), Vrrp(FW2, 5, 100, (VIP,), version=3))
    hit = expect(analyze(cap.write(tmp_path / "c.pcap")), "vrrp-version-mix", vhid=5, speakers=[FW1, FW2])
    assert hit["evidence"] == {"vrrp2": [FW1], "vrrp3": [FW2]}


@near_miss("vrrp-version-mix")
def versions_on_other_ids_or_families(tmp_path):
    cap = Capture()
    cap.advertise(Vrrp(FW1, 5, 200, (VIP,), version=2), cap.at(0), count=3)
    cap.advertise(Vrrp(FW2, 6, 200, (f"{NET}.6",), version=3), cap.at(0.2), count=3)
    cap.advertise(Vrrp(FW3, 7, 200, (f"{NET}.7",), version=3), cap.at(0.4), count=3)
    cap.advertise(Vrrp("fe80::3", 7, 150, ("fe80::7",), version=3), cap.at(0.6), count=3)
    absent(analyze(cap.write(tmp_path / "c.pcap")), "vrrp-version-mix")


@trigger("priority-owner-conflict")
def two_owners(tmp_path):
    cap = dual_master(Vrrp(FW1, 51, 255, (VIP,)), Vrrp(FW2, 51, 255, (VIP,)))
    hit = expect(analyze(cap.write(tmp_path / "c.pcap")), "priority-owner-conflict", vhid=51, speakers=[FW1, FW2])
    assert hit["evidence"]["speakers"] == [FW1, FW2]


@near_miss("priority-owner-conflict")
def one_owner_one_backup(tmp_path):
    cap, _ = failover(Vrrp(FW1, 51, 255, (VIP,)), Vrrp(FW2, 51, 254, (VIP,)))
    absent(analyze(cap.write(tmp_path / "c.pcap")), "priority-owner-conflict")


def _many_speakers(n: int, spacing: float = 0.01) -> Capture:
    cap = Capture()
    for i in range(n):
        sp = Carp(f"10.7.{i // 200}.{i % 200 + 2}", 7, advskew=i % 200, vips=("10.7.0.1",))
        cap.add(cap.at(i * spacing), sp.advert())
    return cap


@trigger("speaker-limit")
def sixty_five_speakers_on_one_vhid(tmp_path):
    f = analyze(_many_speakers(65).write(tmp_path / "c.pcap"))
    hit = expect(f, "speaker-limit", vhid=7)
    assert hit["evidence"]["dropped_adverts"] == 1 and "64" in hit["message"]


@trigger("speaker-limit")
def more_than_4096_groups(tmp_path):
    cap = Capture()
    n = 0
    for vlan in range(1, 10):          # (VRRPv2 and v3 of one VRID are one group)
        for proto in ("carp", "vrrp3"):
            for vid in range(1, 256):
                if n == 4097:
                    break
                if proto == "carp":
                    fr = synth.carp_frame(FW1, vid, vlans=(vlan,), passphrase=KEY)
                else:
                    fr = synth.vrrp_frame(FW1, vid, 100, [VIP], version=int(proto[-1]), vlans=(vlan,))
                cap.add(cap.at(n * 0.001), fr)
                n += 1
    hit = expect(analyze(cap.write(tmp_path / "c.pcap"), "--no-weak-check"), "speaker-limit", n=1)
    assert hit["evidence"]["dropped_adverts"] == 1 and "4096 groups" in hit["message"]


@trigger("speaker-limit")
def seventeen_pairs_of_masters_at_once(tmp_path):
    # 7 speakers advertising together: 21 pairs of simultaneous masters, 16 followed (track.MAX_PAIRS)
    cap = Capture()
    sps = [Carp(f"10.7.0.{i + 2}", 7, advskew=i, vips=("10.7.0.1",)) for i in range(7)]
    for k in range(3):
        for i, sp in enumerate(sps):
            cap.add(cap.at(k + i * 0.01), sp.advert())
    hit = expect(analyze(cap.write(tmp_path / "c.pcap")), "speaker-limit", vhid=7)
    assert hit["evidence"]["max_pairs"] == 16 and hit["evidence"]["dropped_pair_checks"] > 0
    assert "pairs" in hit["message"]


@near_miss("speaker-limit")
def sixty_four_speakers(tmp_path):
    # one after the other (each silent before the next begins): 64 speakers, no pair at once
    absent(analyze(_many_speakers(64, spacing=4.0).write(tmp_path / "c.pcap")), "speaker-limit")


@near_miss("speaker-limit")
def six_masters_at_once(tmp_path):
    # 15 pairs of simultaneous masters: all followed
    cap = Capture()
    sps = [Carp(f"10.7.0.{i + 2}", 7, advskew=i, vips=("10.7.0.1",)) for i in range(6)]
    for k in range(3):
        for i, sp in enumerate(sps):
            cap.add(cap.at(k + i * 0.01), sp.advert())
    absent(analyze(cap.write(tmp_path / "c.pcap")), "speaker-limit")


# ============================================================================= authentication

@trigger("hmac-mismatch")
def adverts_verify_with_nothing_known(tmp_path):
    cap = steady(Carp(FW1, 7, vips=(VIP,), passphrase="not-the-one-we-know"), 6)
    f = run_keyed(tmp_path, cap, "--vip", f"7={VIP}", site=KEY)
    expect(f, "hmac-mismatch", vhid=7, speakers=[FW1], cause="auth")
    absent(f, "vip-set-mismatch", "passphrase-mismatch", "hmac-unchecked")


@trigger("hmac-mismatch")
def some_adverts_forged(tmp_path):
    a = Carp(FW1, 7, vips=(VIP,))
    cap = steady(a, 8)
    for i in range(2):
        cap.add(cap.at(0.5 + i), a.advert(md=bytes(range(20))))
    hit = expect(run_keyed(tmp_path, cap, "--vip", f"7={VIP}"), "hmac-mismatch", vhid=7, speakers=[FW1])
    assert "2 of 10 adverts" in hit["message"] and len(hit["packets"]) == 2
    assert "forged or corrupted" in hit["message"]


@trigger("hmac-mismatch")
def first_adverts_before_a_change(tmp_path):
    # a reconfiguration: the first adverts under an old VIP set nobody knows, then the known
    # one; that is a change during the capture, not forgery; and the speaker's document does
    # not say "diagnosis: passphrase" while its status is ok
    old = Carp(FW1, 7, vips=(f"{NET}.99",))
    new = Carp(FW1, 7, vips=(VIP,))
    cap = Capture()
    cap.advertise(old, cap.at(0), count=3)
    cap.advertise(new, cap.at(3), count=6)
    doc = analyze_json(cap.write(tmp_path / "c.pcap"), "--passphrase-file", keyfile(tmp_path, site=KEY),
                       "--vip", f"7={VIP}")
    hit = expect(doc["findings"], "hmac-mismatch", vhid=7, speakers=[FW1])
    assert "the first 3 of 9 adverts" in hit["message"] and "forged" not in hit["message"]
    auth = doc["groups"][0]["speakers"][0]["auth"]
    assert auth["status"] == "ok" and "diagnosis" not in auth and auth["failed"] == 3


@near_miss("hmac-mismatch")
def adverts_verify(tmp_path):
    a, b = carp_pair()
    cap, _ = failover(a, b)
    f = run_keyed(tmp_path, cap, "--vip", f"7={VIP}")
    absent(f, "hmac-mismatch", "hmac-unchecked", "passphrase-mismatch", "vip-set-mismatch", "weak-passphrase")
    # the VIP set inferred from the new master's gratuitous ARP is enough too
    absent(run_keyed(tmp_path, cap, name="d.pcap"), "hmac-mismatch", "hmac-unchecked")


@trigger("vip-set-mismatch")
def signed_vip_set_differs_from_configured(tmp_path):
    cap = steady(Carp(FW1, 7, vips=(VIP,)), 6, garp=False)
    f = run_keyed(tmp_path, cap, "--vip", f"7={VIP},{NET}.5")
    hit = expect(f, "vip-set-mismatch", vhid=7, speakers=[FW1], cause="vip-set")
    assert hit["evidence"]["vips"] == {FW1: [VIP]}
    absent(f, "hmac-mismatch", "passphrase-mismatch")


@trigger("vip-set-mismatch")
def two_speakers_sign_different_sets(tmp_path):
    a = Carp(FW1, 5, vips=(f"{NET}.55",))
    b = Carp(FW2, 5, advskew=100, vips=(f"{NET}.56",))
    cap, _ = failover(a, b)
    f = run_keyed(tmp_path, cap, "--vip", f"5={NET}.55", "--vip", f"5={NET}.56")
    hit = expect(f, "vip-set-mismatch", vhid=5, speakers=[FW1, FW2], cause="vip-set")
    assert hit["evidence"]["vips"] == {FW1: [f"{NET}.55"], FW2: [f"{NET}.56"]}


@near_miss("vip-set-mismatch")
def same_set_in_another_order(tmp_path):
    a, b = carp_pair(vips=(f"{NET}.5", VIP))
    cap, _ = failover(a, b)
    f = run_keyed(tmp_path, cap, "--vip", f"7={VIP},{NET}.5")
    absent(f, "vip-set-mismatch", "hmac-mismatch")


@trigger("passphrase-mismatch")
def two_keys_in_one_vhid(tmp_path):
    a = Carp(FW1, 42, vips=(VIP,), passphrase="site-a-pass")
    b = Carp(FW2, 42, advskew=100, vips=(VIP,), passphrase="site-b-pass")
    cap = dual_master(a, b)
    f = run_keyed(tmp_path, cap, "--vip", f"42={VIP}", a="site-a-pass", b="site-b-pass")
    hit = expect(f, "passphrase-mismatch", vhid=42, speakers=[FW1, FW2], cause="passphrase")
    assert hit["evidence"]["key_labels"] == ["a", "b"]
    assert "site-a-pass" not in json.dumps(f) and "site-b-pass" not in json.dumps(f)
    absent(f, "hmac-mismatch", "vip-set-mismatch")


@trigger("passphrase-mismatch")
def one_speaker_verifies_the_other_does_not(tmp_path):
    a = Carp(FW1, 42, vips=(VIP,))
    b = Carp(FW2, 42, advskew=100, vips=(VIP,), passphrase="unknown-to-us")
    f = run_keyed(tmp_path, dual_master(a, b), "--vip", f"42={VIP}")
    expect(f, "passphrase-mismatch", vhid=42, speakers=[FW1, FW2], cause="passphrase")
    absent(f, "hmac-mismatch")


@near_miss("passphrase-mismatch")
def one_key_for_the_group(tmp_path):
    a, b = carp_pair(vhid=42)
    cap, _ = failover(a, b)
    absent(run_keyed(tmp_path, cap, "--vip", f"42={VIP}", a="other-site-pass", b=KEY), "passphrase-mismatch")


@trigger("hmac-unchecked")
def nothing_to_check_with(tmp_path):
    cap = steady(Carp(FW1, 7, vips=(VIP,)), 5)
    hit = expect(analyze(cap.write(tmp_path / "c.pcap"), "--no-weak-check"), "hmac-unchecked",
                 vhid=7, speakers=[FW1])
    assert "no passphrase" in hit["message"]
    # a passphrase but no VIP set (no --vip, no gratuitous ARP to infer it from)
    cap = steady(Carp(FW1, 7, vips=(VIP,)), 5, garp=False)
    hit = expect(run_keyed(tmp_path, cap, name="d.pcap"), "hmac-unchecked", vhid=7, speakers=[FW1])
    assert "no VIP set" in hit["message"]


@near_miss("hmac-unchecked")
def key_and_vips_known(tmp_path):
    cap = steady(Carp(FW1, 7, vips=(VIP,)), 5, garp=False)
    absent(run_keyed(tmp_path, cap, "--vip", f"7={VIP}"), "hmac-unchecked")


def _weak_entry(n: int) -> str:
    lines = (REPO / "carpscope" / "data" / "weak_passphrases.txt").read_text().splitlines()
    return [x for x in lines if x.strip() and not x.lstrip().startswith("#")][n - 1]


@trigger("weak-passphrase")
def handbook_and_empty_passphrase(tmp_path):
    cap = steady(Carp(FW1, 1, vips=(f"{NET}.50",), passphrase=_weak_entry(1)), 4)
    cap.advertise(Carp(FW2, 2, vips=(f"{NET}.51",), passphrase=""), cap.at(0.3), count=4)
    f = analyze(cap.write(tmp_path / "c.pcap"), "--vip", f"1={NET}.50", "--vip", f"2={NET}.51")
    hit = expect(f, "weak-passphrase", vhid=1, speakers=[FW1], cause="passphrase")
    assert hit["evidence"]["weak_entries"] == [1] and "bundled list entry 1" in hit["message"]
    assert _weak_entry(1) not in json.dumps(f)
    hit = expect(f, "weak-passphrase", vhid=2, speakers=[FW2])
    assert hit["evidence"]["weak_entries"] == [0] and "all-zero key" in hit["message"]


@near_miss("weak-passphrase")
def strong_passphrase_or_weak_check_off(tmp_path):
    cap = steady(Carp(FW1, 1, vips=(f"{NET}.50",)), 4)
    absent(run_keyed(tmp_path, cap, "--vip", f"1={NET}.50"), "weak-passphrase")
    cap = steady(Carp(FW1, 1, vips=(f"{NET}.50",), passphrase=_weak_entry(1)), 4)
    absent(analyze(cap.write(tmp_path / "d.pcap"), "--vip", f"1={NET}.50", "--no-weak-check"), "weak-passphrase")


@trigger("vrrp-cleartext-auth")
def keepalived_auth_pass(tmp_path):
    a = Vrrp(FW1, 51, 200, (VIP,), auth_type=1, auth_data=b"vr2pass", vmac=False)
    b = Vrrp(FW2, 51, 100, (VIP,), auth_type=1, auth_data=b"vr2pass", vmac=False)
    cap, _ = failover(a, b)
    f = analyze(cap.write(tmp_path / "c.pcap"))
    hit = expect(f, "vrrp-cleartext-auth", vhid=51, speakers=[FW1, FW2], cause="auth")
    assert hit["evidence"]["password_variants"] == 1
    assert "vr2pass" not in json.dumps(f)
    absent(f, "vrrp-auth-mismatch")


@near_miss("vrrp-cleartext-auth")
def no_auth_or_ah(tmp_path):
    cap, _ = failover(Vrrp(FW1, 51, 200, (VIP,)), Vrrp(FW2, 51, 100, (VIP,)))
    cap.advertise(Vrrp(FW3, 52, 100, (f"{NET}.52",), auth_type=2), cap.at(0.2), count=3)
    absent(analyze(cap.write(tmp_path / "c.pcap")), "vrrp-cleartext-auth", "vrrp-auth-mismatch")


@trigger("vrrp-auth-mismatch")
def different_passwords(tmp_path):
    a = Vrrp(FW1, 51, 200, (VIP,), auth_type=1, auth_data=b"alpha123")
    b = Vrrp(FW2, 51, 100, (VIP,), auth_type=1, auth_data=b"bravo456")
    f = analyze(dual_master(a, b).write(tmp_path / "c.pcap"))
    hit = expect(f, "vrrp-auth-mismatch", vhid=51, speakers=[FW1, FW2], cause="auth")
    assert "#1" in hit["message"] and "#2" in hit["message"]
    assert "alpha123" not in json.dumps(f) and "bravo456" not in json.dumps(f)


@trigger("vrrp-auth-mismatch")
def password_against_none(tmp_path):
    a = Vrrp(FW1, 51, 200, (VIP,), auth_type=1, auth_data=b"alpha123")
    b = Vrrp(FW2, 51, 100, (VIP,))
    f = analyze(dual_master(a, b).write(tmp_path / "c.pcap"))
    hit = expect(f, "vrrp-auth-mismatch", vhid=51, speakers=[FW1, FW2])
    assert hit["evidence"]["auth"][FW2] == [{"type": 0, "variant": None}]


@near_miss("vrrp-auth-mismatch")
def same_password_on_both(tmp_path):
    a = Vrrp(FW1, 51, 200, (VIP,), auth_type=1, auth_data=b"alpha123")
    b = Vrrp(FW2, 51, 100, (VIP,), auth_type=1, auth_data=b"alpha123")
    cap, _ = failover(a, b)
    absent(analyze(cap.write(tmp_path / "c.pcap")), "vrrp-auth-mismatch")


# ============================================================================= over time

def _split(f, cause, a=FW1, b=FW2, vhid=7):
    hit = expect(f, "split-brain", vhid=vhid, speakers=[a, b], cause=cause, n=1)
    assert hit["evidence"]["speakers"] == sorted([a, b])
    assert f"Likely cause: {cause}" in hit["message"]
    return hit


@trigger("split-brain")
def two_masters_for_five_intervals_one_way(tmp_path):
    a, b = carp_pair()
    f = run_keyed(tmp_path, dual_master(a, b, intervals=5), "--vip", f"7={VIP}")
    hit = _split(f, "one-way")
    assert 5 * b.interval - 0.01 <= hit["evidence"]["seconds"] <= 5 * b.interval + 0.01
    assert len(hit["evidence"]["windows"]) == 1


@trigger("split-brain")
def split_brain_cause_ttl(tmp_path):
    a = Carp(FW1, 7, vips=(VIP,), ttl=254)
    b = Carp(FW2, 7, advskew=100, vips=(VIP,))
    f = run_keyed(tmp_path, dual_master(a, b), "--vip", f"7={VIP}")
    hit = _split(f, "ttl")
    assert "TTL 254" in hit["evidence"]["why"]
    expect(f, "bad-ttl", speakers=[FW1])


@trigger("split-brain")
def split_brain_cause_passphrase(tmp_path):
    a = Carp(FW1, 7, vips=(VIP,), passphrase="site-a-pass")
    b = Carp(FW2, 7, advskew=100, vips=(VIP,), passphrase="site-b-pass")
    f = run_keyed(tmp_path, dual_master(a, b), "--vip", f"7={VIP}", a="site-a-pass", b="site-b-pass")
    _split(f, "passphrase")


@trigger("split-brain")
def split_brain_cause_vip_set(tmp_path):
    a = Carp(FW1, 5, vips=(f"{NET}.55",))
    b = Carp(FW2, 5, advskew=100, vips=(f"{NET}.56",))
    f = run_keyed(tmp_path, dual_master(a, b), "--vip", f"5={NET}.55", "--vip", f"5={NET}.56")
    _split(f, "vip-set", vhid=5)


@trigger("split-brain")
def split_brain_cause_vip_set_vrrp(tmp_path):
    a = Vrrp(FW1, 51, 200, (f"{NET}.50", f"{NET}.51"))
    b = Vrrp(FW2, 51, 100, (f"{NET}.50",))
    _split(analyze(dual_master(a, b).write(tmp_path / "c.pcap")), "vip-set", vhid=51)


@trigger("split-brain")
def split_brain_cause_auth(tmp_path):
    # we know one passphrase; neither side's HMAC verifies with it, so which side is wrong
    # cannot be told
    a = Carp(FW1, 7, vips=(VIP,), passphrase="left-pass")
    b = Carp(FW2, 7, advskew=100, vips=(VIP,), passphrase="right-pass")
    f = run_keyed(tmp_path, dual_master(a, b), "--vip", f"7={VIP}")
    _split(f, "auth")


@trigger("split-brain")
def split_brain_cause_advbase(tmp_path):
    # VRRPv2 receivers discard adverts with another interval (RFC 3768 §7.1): both are master
    a = Vrrp(FW1, 51, 200, (VIP,))
    b = Vrrp(FW2, 51, 100, (VIP,), interval_cs=200)
    hit = _split(analyze(dual_master(a, b).write(tmp_path / "c.pcap")), "advbase", vhid=51)
    assert f"{FW1}: 1 s" in hit["evidence"]["why"] and f"{FW2}: 2 s" in hit["evidence"]["why"]


@trigger("split-brain")
def split_brain_cause_unknown(tmp_path):
    a, b = carp_pair()
    f = analyze(dual_master(a, b).write(tmp_path / "c.pcap"), "--no-weak-check")
    _split(f, "unknown")


@trigger("split-brain")
def split_brain_cause_unknown_vip_set(tmp_path):
    # the passphrase is given, but no VIP set (none given, no gratuitous ARP): the cause names
    # what is missing, not "no passphrase"; and with --no-weak-check nothing speaks of the
    # bundled defaults, which were not tried
    a, b = carp_pair()
    cap = Capture()
    cap.advertise(a, cap.at(0), until=cap.at(12))
    cap.advertise(b, cap.at(4.2), until=cap.at(12))
    f = run_keyed(tmp_path, cap, "--no-weak-check")
    hit = _split(f, "unknown")
    assert "no VIP set" in hit["message"] and "no passphrase" not in hit["message"]
    assert "--vip" in hit["message"]
    f = analyze(cap.write(tmp_path / "n.pcap"), "--no-weak-check")
    hit = _split(f, "unknown")
    assert "no passphrase is known" in hit["message"]
    assert not [x for x in f if "bundled default" in x["message"]], [x["message"] for x in f]


@trigger("split-brain")
def split_brain_vrrp3_ipv6_one_way(tmp_path):
    a = Vrrp("fe80::2", 12, 150, ("fe80::12", "2001:db8::12"), version=3)
    b = Vrrp("fe80::3", 12, 100, ("fe80::12", "2001:db8::12"), version=3)
    _split(analyze(dual_master(a, b).write(tmp_path / "c.pcap")), "one-way", "fe80::2", "fe80::3", vhid=12)


@trigger("split-brain")
def split_brain_vrrp2_passwords_differ(tmp_path):
    a = Vrrp(FW1, 51, 200, (VIP,), auth_type=1, auth_data=b"alpha123")
    b = Vrrp(FW2, 51, 100, (VIP,), auth_type=1, auth_data=b"bravo456")
    hit = _split(analyze(dual_master(a, b).write(tmp_path / "c.pcap")), "passphrase", vhid=51)
    assert "auth_type/auth_pass" in hit["message"] and "HMAC" not in hit["message"]


@trigger("split-brain")
def split_brain_across_vrrp_versions(tmp_path):
    # VRRPv2 and VRRPv3 speakers of one VRID discard each other's adverts (keepalived: "wrong
    # version"): one group, both master, cause "version"; while the v2 side is away the v3
    # master holds the address, so that silence is no master-gap
    a = Vrrp(FW1, 51, 150, (VIP,), version=2)
    b = Vrrp(FW2, 51, 100, (VIP,), version=3)
    cap = dual_master(a, b, intervals=4)
    cap.advertise(b, cap.at(9.5), count=8)
    cap.become_master(a, cap.at(13.2), count=4)
    doc = analyze_json(cap.write(tmp_path / "c.pcap"))
    hit = _split(doc["findings"], "version", vhid=51)
    assert len(hit["evidence"]["windows"]) == 2
    absent(doc["findings"], "master-gap")
    expect(doc["findings"], "vrrp-version-mix", vhid=51)
    groups = [g for g in doc["groups"] if g["vhid"] == 51]
    assert len(groups) == 1 and groups[0]["protocols"] == ["vrrp2", "vrrp3"]
    assert {s["ip"]: s["protocol"] for s in groups[0]["speakers"]} == {FW1: "vrrp2", FW2: "vrrp3"}


def _resign(sp) -> bytes:
    """A VRRP priority-0 advert (keepalived on stop) or a CARP bow-out (OpenBSD)."""
    if isinstance(sp, Carp):
        return sp.advert(advbase=255, advskew=255)
    return dataclasses.replace(sp, priority=0).advert()


@trigger("split-brain")
def starved_master_across_versions(tmp_path):
    # keepalived re-arms a master's advert timer on every packet of its VRID: a VRRPv2 master
    # that the VRRPv3 master ignores (and ignores in turn) may send one advert and then nothing
    # while the other advertises every second; both stay master (live ka-version-mix showed it)
    a = Vrrp(FW1, 51, 150, (VIP,), version=2)
    b = Vrrp(FW2, 51, 100, (VIP,), version=3)
    cap = Capture()
    cap.become_master(b, cap.at(0), count=12)
    cap.become_master(a, cap.at(3.4), count=1)
    doc = analyze_json(cap.write(tmp_path / "c.pcap"))
    hit = _split(doc["findings"], "version", vhid=51)
    (w,) = hit["evidence"]["windows"]
    assert abs(w["from"] - cap.at(3.4)) < 1e-3 and abs(w["to"] - cap.at(11)) < 1e-3 and w["ongoing"]
    assert doc["groups"][0]["masters_at_end"] == [FW1, FW2]


@trigger("split-brain")
def starved_second_master_then_resignation(tmp_path):
    # keepalived, VRRPv2 intervals 1 s and 2 s: rb drops ra's adverts and becomes master, but
    # ra's adverts re-arm rb's timer, so rb's first advert is all it sends until it stops and
    # resigns (priority 0) 7 s later: two masters for those 7 s, however quiet the second
    a = Vrrp(FW1, 51, 150, (VIP,))
    b = Vrrp(FW2, 51, 100, (VIP,), interval_cs=200)
    cap = Capture()
    last = cap.become_master(a, cap.at(0), count=15)
    cap.become_master(b, cap.at(6.6), count=1)
    cap.add(cap.at(13.6), _resign(b))
    cap.add(last + 0.03, _resign(a))
    doc = analyze_json(cap.write(tmp_path / "c.pcap"))
    hit = _split(doc["findings"], "advbase", vhid=51)
    (w,) = hit["evidence"]["windows"]
    assert abs(w["from"] - cap.at(6.6)) < 1e-3 and abs(w["to"] - cap.at(13.6)) < 1e-3 and not w["ongoing"]
    absent(doc["findings"], "skew-tie", "priority-owner-conflict")
    (g,) = doc["groups"]
    assert {s["ip"]: (s["priority"], s["resigned"]) for s in g["speakers"]} == {FW1: (150, 1), FW2: (100, 1)}
    assert [r["resigned"] for r in g["masters"]] == [True, True] and g["masters_at_end"] == []


@near_miss("skew-tie")
def resignations_are_not_a_tie(tmp_path):
    # both stop at once and resign (keepalived priority 0; OpenBSD advbase = advskew = 255):
    # a resignation is no priority, so two of them are no tie
    for i, (a, b) in enumerate([(Vrrp(FW1, 51, 200, (VIP,)), Vrrp(FW2, 51, 100, (VIP,))),
                                (Carp(FW1, 7, vips=(VIP,), kind="openbsd"),
                                 Carp(FW2, 7, advskew=100, vips=(VIP,), kind="openbsd"))]):
        cap, _ = failover(a, b)
        cap.add(cap.at(20), _resign(a))
        cap.add(cap.at(20.001), _resign(b))
        f = run_keyed(tmp_path, cap, "--vip", f"7={VIP}", name=f"{i}.pcap")
        absent(f, "skew-tie", "split-brain")


@trigger("priority-owner-conflict")
def owner_claim_stands_after_stepping_down(tmp_path):
    # keepalived: an owner that hears another owner lowers itself to 254 and later resigns;
    # what it claimed on the wire (255) is still the misconfiguration
    a = Vrrp(FW1, 25, 255, (VIP,), version=3)
    b = Vrrp(FW2, 25, 255, (VIP,), version=3)
    cap = Capture()
    cap.become_master(a, cap.at(0), count=2)
    cap.become_master(b, cap.at(0.01), count=1)
    cap.advertise(dataclasses.replace(a, priority=254), cap.at(2), count=5)
    cap.add(cap.at(7), _resign(a))
    cap.become_master(b, cap.at(7.01), count=3)
    f = analyze(cap.write(tmp_path / "c.pcap"))
    expect(f, "priority-owner-conflict", vhid=25, speakers=[FW1, FW2])
    absent(f, "split-brain")


@near_miss("skew-tie")
def owners_both_lowered_to_254_are_no_tie(tmp_path):
    # keepalived: two owners that hear each other at 255 may both lower themselves to 254 (it
    # depends on who hears whom first); that is the owner conflict, not a tie the operator set
    a = Vrrp(FW1, 25, 255, (VIP,), version=3)
    b = Vrrp(FW2, 25, 255, (VIP,), version=3)
    cap = Capture()
    cap.become_master(a, cap.at(0), count=1)
    cap.become_master(b, cap.at(0.01), count=1)
    cap.advertise(dataclasses.replace(a, priority=254), cap.at(1), count=5)
    cap.advertise(dataclasses.replace(b, priority=254), cap.at(1.01), count=2)
    f = analyze(cap.write(tmp_path / "c.pcap"))
    expect(f, "priority-owner-conflict", vhid=25, speakers=[FW1, FW2])
    absent(f, "skew-tie")
    # the same 254 tie configured by the operator (no 255 ever advertised) is a tie
    cap = Capture()
    cap.become_master(dataclasses.replace(a, priority=254), cap.at(0), count=5)
    cap.advertise(dataclasses.replace(b, priority=254), cap.at(0.01), count=2)
    expect(analyze(cap.write(tmp_path / "d.pcap")), "skew-tie", vhid=25)


def test_split_brain_still_going_at_the_end_is_not_over(tmp_path):
    """A window still open when the capture ends reaches the end and is marked ongoing; no
    "split brain over" event is made up for it. One that ended earlier has its end event."""
    a, b = carp_pair()
    doc = analyze_json(dual_master(a, b, intervals=5).write(tmp_path / "c.pcap"), "--no-weak-check")
    (w,) = expect(doc["findings"], "split-brain", vhid=7)["evidence"]["windows"]
    assert w["ongoing"] and w["to"] == max(s["last_seen"] for s in doc["groups"][0]["speakers"])
    from carpscope.report.view import group_events
    kinds = [e.kind for e in group_events(doc["groups"][0], doc["findings"])]
    assert "split-brain" in kinds and "split-brain-end" not in kinds
    cap = dual_master(a, b, intervals=5)
    cap.advertise(a, cap.at(20), count=5)          # b stopped; a carries on alone
    doc = analyze_json(cap.write(tmp_path / "d.pcap"), "--no-weak-check")
    (w,) = expect(doc["findings"], "split-brain", vhid=7)["evidence"]["windows"]
    assert not w["ongoing"]
    kinds = [e.kind for e in group_events(doc["groups"][0], doc["findings"])]
    assert "split-brain-end" in kinds


def test_split_brain_vrrp_hint_names_the_address_list(tmp_path):
    a = Vrrp(FW1, 51, 200, (f"{NET}.50", f"{NET}.51"))
    b = Vrrp(FW2, 51, 100, (f"{NET}.50",))
    hit = _split(analyze(dual_master(a, b).write(tmp_path / "c.pcap")), "vip-set", vhid=51)
    assert "virtual_ipaddress" in hit["message"] and "HMAC" not in hit["message"]


@pytest.mark.parametrize("proto", ["carp", "vrrp3"])
def test_split_brain_interval_explains_only_vrrp2(tmp_path, proto):
    """CARP receivers accept another advbase (the slower side yields) and VRRPv3 backups adopt
    the master's interval: two masters there are not explained by the interval."""
    if proto == "carp":
        a, b = Carp(FW1, 7, vips=(VIP,)), Carp(FW2, 7, advbase=2, vips=(VIP,))
        f = run_keyed(tmp_path, dual_master(a, b), "--vip", f"7={VIP}")
        vhid = 7
    else:
        a = Vrrp(FW1, 51, 200, (VIP,), version=3, interval_cs=100)
        b = Vrrp(FW2, 51, 100, (VIP,), version=3, interval_cs=200)
        f = analyze(dual_master(a, b).write(tmp_path / "c.pcap"))
        vhid = 51
    _split(f, "one-way", vhid=vhid)
    hit = expect(f, "advbase-mismatch", vhid=vhid, speakers=[FW1, FW2])
    if proto == "vrrp3":
        assert "RFC 5798" in hit["message"] and "RFC 3768" not in hit["message"]


@near_miss("split-brain")
def preemption_overlap_of_one_interval(tmp_path):
    a, b = carp_pair(skew2=100)
    f = run_keyed(tmp_path, preemption(b, a, late=1), "--vip", f"7={VIP}")
    absent(f, "split-brain", "master-gap", "flapping")
    # keepalived: the old master sends its last advert up to one interval late
    cap = preemption(Vrrp(FW2, 51, 100, (VIP,)), Vrrp(FW1, 51, 200, (VIP,)), late=1)
    absent(analyze(cap.write(tmp_path / "v.pcap")), "split-brain")


@near_miss("split-brain")
def preemption_on_a_mirror_port(tmp_path):
    # a SPAN session copying ingress and egress shows every advert twice: ucarp's old master,
    # reading its socket late, sends one more advert on its timer; copies must not lengthen the
    # overlap. (Two more adverts, 2.8 s after the takeover, would be two masters for longer
    # than a takeover allows: the daemons' own state would show a dual master then.)
    a, b = carp_pair(skew2=100, kind="ucarp")
    cap = preemption(b, a, late=1)
    cap.records += [(ts + 0.00002, data) for ts, data in cap.records]
    f = run_keyed(tmp_path, cap, "--vip", f"7={VIP}")
    absent(f, "split-brain", "flapping", "master-gap", "counter-replay")
    expect(f, "advert-copies", cause="reflection", speakers=[FW1, FW2])


@near_miss("split-brain")
def a_claim_then_silence_without_a_reason(tmp_path):
    # one advert from a higher-priority router of the same version, then nothing, while the
    # master carries on: nothing on the wire says the two ignore each other (keepalived with
    # state MASTER starts with one advert and yields; a tracking script lowers a priority
    # without a word), so its silence is not read as mastership
    a = Vrrp(FW1, 51, 150, (VIP,), version=3)
    b = Vrrp(FW2, 51, 100, (VIP,), version=3)
    cap = Capture()
    cap.become_master(b, cap.at(0), count=12)
    cap.become_master(a, cap.at(3.4), count=1)
    absent(analyze(cap.write(tmp_path / "c.pcap")), "split-brain")


@near_miss("split-brain")
def failover_and_short_tie_break(tmp_path):
    a, b = carp_pair()
    cap, _ = failover(a, b)
    absent(run_keyed(tmp_path, cap, "--vip", f"7={VIP}"), "split-brain")
    # both time out together: two adverts each, then the tie-break
    c, d = Carp(FW1, 9, advskew=10, vips=(VIP,)), Carp(FW2, 9, advskew=10, vips=(VIP,))
    cap = Capture()
    cap.become_master(c, cap.at(0), count=8)
    cap.become_master(d, cap.at(0.02), count=2)
    absent(run_keyed(tmp_path, cap, "--vip", f"9={VIP}", name="t.pcap"), "split-brain")


@pytest.mark.parametrize("intervals,split", [(1, False), (1.4, False), (5, True), (20, True)])
def test_split_brain_threshold_in_intervals(tmp_path, intervals, split):
    """Two masters of one group: a window below 1.5 of the longer interval is a takeover."""
    a, b = carp_pair(skew2=0)
    f = run_keyed(tmp_path, dual_master(a, b, intervals=intervals), "--vip", f"7={VIP}")
    if split:
        _split(f, "one-way")
    else:
        absent(f, "split-brain")


@trigger("master-gap")
def ten_second_hole(tmp_path):
    a, b = carp_pair()
    cap, silence = failover(a, b, extra_silence=10 - b.master_down)
    f = run_keyed(tmp_path, cap)
    hit = expect(f, "master-gap", vhid=7, speakers=[FW1, FW2])
    assert abs(hit["evidence"]["seconds"] - 10) < 0.01 and abs(silence - 10) < 0.01
    assert hit["evidence"]["previous"] == FW1 and hit["evidence"]["next"] == FW2
    assert hit["evidence"]["master_down"] == round(b.master_down, 3)


@trigger("master-gap")
def master_returns_after_a_hole(tmp_path):
    a = Vrrp(FW1, 51, 200, (VIP,))
    cap = Capture()
    last = cap.become_master(a, cap.at(0), count=4)
    cap.become_master(a, last + 12, count=4)
    hit = expect(analyze(cap.write(tmp_path / "c.pcap")), "master-gap", vhid=51, speakers=[FW1])
    assert hit["evidence"]["previous"] == hit["evidence"]["next"] == FW1


@near_miss("master-gap")
def ordinary_failovers(tmp_path):
    # the backup waits its own master-down interval, 3 + 255/256 s with advskew 255
    for skew in (1, 100, 255):
        a, b = carp_pair(skew2=skew)
        cap, silence = failover(a, b)
        assert silence == pytest.approx(3 + skew / 256)
        absent(run_keyed(tmp_path, cap, name=f"c{skew}.pcap"), "master-gap")
    # VRRPv2 priority 1 backup: 3 + 255/256 s; VRRPv3 0.5 s interval
    for v, ic in ((2, 100), (3, 50)):
        cap, _ = failover(Vrrp(FW1, 51, 200, (VIP,), version=v, interval_cs=ic),
                          Vrrp(FW2, 51, 1, (VIP,), version=v, interval_cs=ic))
        absent(analyze(cap.write(tmp_path / f"v{v}.pcap")), "master-gap")
    # ucarp reads its socket up to 1 s late: a takeover 1 s after its master-down interval
    a, b = carp_pair(skew2=50, kind="ucarp")
    cap, _ = failover(a, b, extra_silence=1.0)
    absent(run_keyed(tmp_path, cap, name="u.pcap"), "master-gap")


@trigger("flapping")
def four_changes_in_a_minute(tmp_path):
    a, b = carp_pair()
    f = run_keyed(tmp_path, flapping(a, b, 4))
    hit = expect(f, "flapping", vhid=7, speakers=[FW1, FW2])
    assert len(hit["evidence"]["changes"]) == 4 and "4 times" in hit["message"]
    assert [c["to"] for c in hit["evidence"]["changes"]] == [FW2, FW1, FW2, FW1]


@near_miss("flapping")
def failover_and_preemption_back(tmp_path):
    a, b = carp_pair()
    cap, _ = failover(a, b, after=5)
    preemption(b, a, cap=cap, start=20)      # fw1 comes back and preempts: 2 changes
    absent(run_keyed(tmp_path, cap), "flapping", "split-brain")
    # three changes in a minute, or four spread over more than a minute
    absent(run_keyed(tmp_path, flapping(a, b, 3), name="three.pcap"), "flapping")
    absent(run_keyed(tmp_path, flapping(a, b, 4, hold=16), name="slow.pcap"), "flapping")


@trigger("advert-copies")
def reflected_within_a_millisecond(tmp_path):
    a = Carp(FW1, 7, vips=(VIP,))
    cap = Capture()
    for i in range(5):
        frame = a.advert()
        cap.add(cap.at(i), frame)
        cap.add(cap.at(i) + 0.0008, frame)       # the vSwitch sends it back
    f = run_keyed(tmp_path, cap)
    hit = expect(f, "advert-copies", vhid=7, speakers=[FW1], cause="reflection")
    assert hit["evidence"]["copies"] == 5 and hit["evidence"]["per_speaker"][0]["adverts"] == 5
    assert hit["evidence"]["max_copies_per_advert"] == 1
    absent(f, "counter-replay", "advert-storm")


@trigger("advert-copies")
def recorded_on_every_port_of_a_bridge(tmp_path):
    """tcpdump -i any: one frame per interface it crosses (Linux cooked v2 names each)."""
    a = Carp(FW1, 7, vips=(VIP,))
    cap = Capture(linktype=276)
    for i in range(4):
        frame = a.advert()
        for k, ifindex in enumerate((5, 3, 7)):
            cap.add(cap.at(i) + k * 0.00001, frame, ifindex=ifindex)
    f = run_keyed(tmp_path, cap)
    hit = expect(f, "advert-copies", vhid=7, speakers=[FW1], cause="capture")
    assert hit["evidence"]["capture_copies"] == 8 and hit["evidence"]["interfaces"] == [3, 7]
    doc = analyze_json(tmp_path / "c.pcap")
    assert len(doc["groups"]) == 1 and doc["groups"][0]["segment"].endswith("/if5")


@near_miss("advert-copies")
def constant_ip_id_router_resends_at_its_interval(tmp_path):
    """A router whose VRRP adverts are byte-identical (IP id 0) sends them once an interval:
    no copies."""
    v = Vrrp(FW1, 51, 200, (VIP,))
    cap = Capture()
    frame = v.advert()
    for i in range(8):
        cap.add(cap.at(i), frame)
    absent(analyze(cap.write(tmp_path / "v.pcap")), "advert-copies", "advert-storm")


@trigger("advert-storm")
def switching_loop_replicates_every_advert(tmp_path):
    a = Carp(FW1, 7, vips=(VIP,))
    cap = Capture()
    for i in range(3):
        frame = a.advert()
        for k in range(200):                     # a copy every 0.5 ms until the next advert
            cap.add(cap.at(i) + k * 0.0005, frame)
    hit = expect(run_keyed(tmp_path, cap), "advert-storm", vhid=7, speakers=[FW1], cause="storm")
    ev = hit["evidence"]
    assert ev["per_speaker"][0]["adverts"] == 3 and ev["copies"] == 597 and ev["max_copies_per_advert"] == 199
    assert ev["rate_per_s"] == pytest.approx(2000, rel=0.01)        # a copy every 0.5 ms
    assert ev["factor"] == pytest.approx(2000, rel=0.01)            # ... where it advertises once a second


@near_miss("advert-storm")
def a_mirror_port_doubles_every_advert(tmp_path):
    a = Carp(FW1, 7, vips=(VIP,))
    cap = Capture()
    for i in range(20):
        frame = a.advert()
        cap.add(cap.at(i), frame)
        cap.add(cap.at(i) + 0.00002, frame)
    f = run_keyed(tmp_path, cap)
    absent(f, "advert-storm")
    expect(f, "advert-copies", cause="reflection")


@trigger("counter-replay")
def replayed_after_other_counters(tmp_path):
    a = Carp(FW1, 7, vips=(VIP,))
    cap = Capture()
    frames = [a.advert() for _ in range(6)]
    for i, fr in enumerate(frames):
        cap.add(cap.at(i), fr)
    cap.add(cap.at(6.5), frames[1])              # an old advert sent again
    hit = expect(run_keyed(tmp_path, cap), "counter-replay", vhid=7, speakers=[FW1], cause="replay")
    assert hit["evidence"]["first"] == 2


@near_miss("counter-replay")
def ucarp_adopts_a_second_masters_counter(tmp_path):
    # ucarp (and FreeBSD) adopt the counter of every advert they verify and send it + 1: fb,
    # which missed fa's last adverts, takes over from fa's counter it last heard + 1; fa then
    # continues from fb's counter and so repeats values it had sent itself before
    fa = Carp(FW1, 7, vips=(VIP,), kind="ucarp")
    fb = Carp(FW2, 7, advskew=100, vips=(VIP,), kind="ucarp")
    cap = Capture()
    for i in range(6):
        cap.add(cap.at(i), fa.advert(counter=100 + i))
    for i, (sp, c) in enumerate([(fb, 102), (fa, 103), (fb, 104), (fa, 105), (fb, 106), (fa, 107)]):
        cap.add(cap.at(5.3 + 0.5 * i), sp.advert(counter=c))
    absent(run_keyed(tmp_path, cap), "counter-replay")


@near_miss("counter-replay")
def openbsd_constant_counter(tmp_path):
    a = Carp(FW1, 7, vips=(VIP,), kind="openbsd")
    b = Carp(FW2, 7, advskew=100, vips=(VIP,), kind="openbsd")
    cap, _ = failover(a, b, before=10, after=10)
    preemption(b, a, cap=cap, start=30)
    absent(run_keyed(tmp_path, cap), "counter-replay")
    # FreeBSD with IPv4 and IPv6 VIPs: two adverts per interval, each with its own counter
    c = Carp(FW1, 9, vips=(VIP,))
    c6 = Carp("2001:db8::2", 9, vips=(VIP,))
    cap = Capture()
    for i in range(5):
        cap.add(cap.at(i), c.advert(counter=100 + 2 * i))
        cap.add(cap.at(i) + 0.0001, c6.advert(counter=101 + 2 * i))
    absent(run_keyed(tmp_path, cap, name="d.pcap"), "counter-replay")


# ============================================================================= intent (inventory)

def inventory(tmp_path: Path, *, extra_groups: str = "", extra_hosts: str = "", fw2_skew: int = 100,
              primary: str | None = "fw1", extra_segments: str = "", fw1_extra: str = "",
              fw2_extra: str = "") -> Path:
    (tmp_path / "web.pass").write_text(KEY + "\n")
    os.chmod(tmp_path / "web.pass", 0o600)
    p = tmp_path / "site.toml"
    p.write_text(f"""
version = 1

[[segment]]
name = "lan"
network = "{NET}.0/24"
{extra_segments}
[[group]]
name = "web"
protocol = "carp"
id = 7
segment = "lan"
vips = ["{VIP}"]
{f'primary = "{primary}"' if primary else ''}
passphrase_label = "web"
passphrase_file = "web.pass"
{extra_groups}

[[host]]
name = "fw1"
addresses = ["{FW1}/24"]
preempt = false

[[host.member]]
group = "web"
advskew = 0
{fw1_extra}
[[host]]
name = "fw2"
addresses = ["{FW2}/24"]

[[host.member]]
group = "web"
advskew = {fw2_skew}
{fw2_extra}
{extra_hosts}
""")
    return p


@trigger("unexpected-master")
def backup_master_after_the_primary_failed(tmp_path):
    a, b = carp_pair()
    cap, _ = failover(a, b)
    f = analyze(cap.write(tmp_path / "c.pcap"), "--inventory", inventory(tmp_path))
    hit = expect(f, "unexpected-master", vhid=7, speakers=[FW2, FW1])
    assert hit["evidence"]["master"] == FW2 and hit["evidence"]["primary"] == "fw1"
    assert hit["evidence"]["preempt"] is False and "Preemption is off" in hit["message"]
    absent(f, "hmac-unchecked", "hmac-mismatch", "unknown-speaker", "missing-group", "skew-order")


@trigger("unexpected-master")
def primary_never_heard(tmp_path):
    # fw1 came back without preemption before the capture: a silent backup, fw2 keeps the VIP
    cap = steady(Carp(FW2, 7, advskew=100, vips=(VIP,)), 8, garp=False)
    f = analyze(cap.write(tmp_path / "c.pcap"), "--inventory", inventory(tmp_path))
    hit = expect(f, "unexpected-master", vhid=7, speakers=[FW2])
    assert hit["evidence"]["master"] == FW2 and hit["evidence"]["primary"] == "fw1"


@near_miss("unexpected-master")
def primary_preempts_back(tmp_path):
    a, b = carp_pair()
    cap, _ = failover(a, b)
    preemption(b, a, cap=cap, start=20)
    inv = inventory(tmp_path)
    absent(analyze(cap.write(tmp_path / "c.pcap"), "--inventory", inv), "unexpected-master")
    absent(analyze(steady(a, 5).write(tmp_path / "s.pcap"), "--inventory", inv), "unexpected-master")
    # both are master at the end: that is split-brain, and the primary is one of them
    f = analyze(dual_master(a, b).write(tmp_path / "d.pcap"), "--inventory", inv)
    expect(f, "split-brain")
    absent(f, "unexpected-master")
    # without an inventory nothing is intended
    absent(analyze(cap.write(tmp_path / "n.pcap")), "unexpected-master")


@trigger("skew-order")
def primary_advertises_the_larger_skew(tmp_path):
    # fw1 is meant to be primary, but advertises advskew 100 and fw2 (0) preempts it
    a = Carp(FW1, 7, advskew=100, vips=(VIP,))
    b = Carp(FW2, 7, advskew=0, vips=(VIP,))
    f = analyze(preemption(a, b).write(tmp_path / "c.pcap"), "--inventory", inventory(tmp_path, fw2_skew=0))
    hit = expect(f, "skew-order", vhid=7, speakers=[FW1, FW2])
    assert hit["evidence"] == {"primary": FW1, "others": [FW2]}


@trigger("skew-order")
def primary_demoted_by_openbsd_demote_count(tmp_path):
    # OpenBSD: the demote count is compared before the skew: fw1 (demote 1) loses to fw2
    a = Carp(FW1, 7, vips=(VIP,), kind="openbsd", demote=1)
    b = Carp(FW2, 7, advskew=100, vips=(VIP,), kind="openbsd")
    f = analyze(preemption(a, b).write(tmp_path / "c.pcap"), "--inventory", inventory(tmp_path))
    expect(f, "skew-order", vhid=7, speakers=[FW1, FW2])


@trigger("skew-order")
def vrrp_primary_with_lower_priority(tmp_path):
    extra_groups = """
[[group]]
name = "vr"
protocol = "vrrp2"
id = 51
segment = "lan"
primary = "fw1"
"""
    member = '\n[[host.member]]\ngroup = "vr"\npriority = %d\n'
    inv = inventory(tmp_path, extra_groups=extra_groups, fw1_extra=member % 200, fw2_extra=member % 100)
    # fw1 (meant to be primary, priority 200) advertises 100; fw2 advertises 150 and preempts
    cap = preemption(Vrrp(FW1, 51, 100, (f"{NET}.51",)), Vrrp(FW2, 51, 150, (f"{NET}.51",)))
    steady(Carp(FW1, 7, vips=(VIP,)), 5, cap=cap)
    f = analyze(cap.write(tmp_path / "c.pcap"), "--inventory", inv)
    expect(f, "skew-order", vhid=51, speakers=[FW1, FW2], protocol="vrrp2")
    absent(f, "skew-order", vhid=7)


@near_miss("skew-order")
def primary_advertises_the_best_value(tmp_path):
    a, b = carp_pair()
    cap, _ = failover(a, b)
    preemption(b, a, cap=cap, start=20)
    f = analyze(cap.write(tmp_path / "c.pcap"), "--inventory", inventory(tmp_path))
    absent(f, "skew-order")
    # the primary bows out for maintenance: its 255/255 advert is not its election value
    a = Carp(FW1, 7, vips=(VIP,), kind="openbsd")
    b = Carp(FW2, 7, advskew=100, vips=(VIP,), kind="openbsd")
    cap = Capture()
    last = cap.become_master(b, cap.at(0), count=3)
    last = cap.become_master(a, last + 0.01, count=5)
    cap.add(last + 0.5, a.advert(advbase=255, advskew=255))
    cap.become_master(b, last + 0.51, count=5)
    f = analyze(cap.write(tmp_path / "b.pcap"), "--inventory", inventory(tmp_path))
    expect(f, "bow-out", speakers=[FW1])
    absent(f, "skew-order")


@trigger("unknown-speaker")
def a_third_box_advertises_the_group(tmp_path):
    a, b = carp_pair()
    cap, _ = failover(a, b)
    cap.advertise(Carp(FW3, 7, advskew=200, vips=(VIP,)), cap.at(30), count=3)
    f = analyze(cap.write(tmp_path / "c.pcap"), "--inventory", inventory(tmp_path))
    hit = expect(f, "unknown-speaker", vhid=7, speakers=[FW3], n=1)
    assert hit["evidence"]["speaker"] == FW3 and hit["evidence"]["host"] is None


@near_miss("unknown-speaker")
def only_members_and_unknown_groups(tmp_path):
    a, b = carp_pair()
    cap, _ = failover(a, b)
    cap.advertise(Carp(FW3, 50, vips=(f"{NET}.50",)), cap.at(0.2), count=3)   # a group we do not manage
    absent(analyze(cap.write(tmp_path / "c.pcap"), "--inventory", inventory(tmp_path)), "unknown-speaker")


_SECOND_GROUP = """
[[group]]
name = "db"
protocol = "carp"
id = 8
segment = "lan"
vips = ["%s.8"]
passphrase_label = "web"
passphrase_file = "web.pass"
""" % NET
_DMZ_SEGMENT = """
[[segment]]
name = "dmz"
network = "10.9.9.0/24"
"""
_DMZ_GROUP = """
[[group]]
name = "edge"
protocol = "carp"
id = 9
segment = "dmz"
vips = ["10.9.9.1"]
"""
_DMZ_HOSTS = """
[[host]]
name = "edge1"
addresses = ["10.9.9.2/24"]

[[host.member]]
group = "edge"
"""


@trigger("missing-group")
def intended_group_never_advertised(tmp_path):
    a = Carp(FW1, 7, vips=(VIP,))
    f = analyze(steady(a, 5).write(tmp_path / "c.pcap"), "--inventory",
                inventory(tmp_path, extra_groups=_SECOND_GROUP))
    hit = expect(f, "missing-group", vhid=8, n=1)
    assert hit["evidence"]["group"] == "db" and hit["protocol"] == "carp"
    absent(f, "missing-group", vhid=7)


@near_miss("missing-group")
def every_group_seen_or_on_another_segment(tmp_path):
    cap = steady(Carp(FW1, 7, vips=(VIP,)), 5)
    steady(Carp(FW2, 8, vips=(f"{NET}.8",)), 5, cap=cap, start=0.3)
    inv = inventory(tmp_path, extra_groups=_SECOND_GROUP)
    absent(analyze(cap.write(tmp_path / "c.pcap"), "--inventory", inv), "missing-group")
    # a capture on the LAN says nothing about a group on the DMZ
    inv = inventory(tmp_path, extra_groups=_SECOND_GROUP + _DMZ_GROUP, extra_segments=_DMZ_SEGMENT,
                    extra_hosts=_DMZ_HOSTS)
    absent(analyze(cap.write(tmp_path / "d.pcap"), "--inventory", inv), "missing-group")


_V6_INVENTORY = """
version = 1

[[segment]]
name = "lan6"
network = "2001:db8:30::/64"

[[group]]
name = "v12"
protocol = "vrrp3"
id = 12
segment = "lan6"
vips = ["fe80::12", "2001:db8:30::12"]
primary = "r2"

[[host]]
name = "r1"
addresses = ["2001:db8:30::2/64"]

[[host.member]]
group = "v12"
priority = 100

[[host]]
name = "r2"
addresses = ["2001:db8:30::3/64"]

[[host.member]]
group = "v12"
priority = 150
"""


@near_miss("missing-group")
@near_miss("unknown-speaker")
@near_miss("unexpected-master")
def vrrp3_ipv6_from_link_local_sources(tmp_path):
    # RFC 5798: IPv6 adverts come from the link-local address, which inventories rarely list;
    # the group is recognised by its addresses, and its speakers are not called foreign
    inv = tmp_path / "v6.toml"
    inv.write_text(_V6_INVENTORY)
    cap, _ = failover(Vrrp("fe80::3", 12, 150, ("fe80::12", "2001:db8:30::12"), version=3),
                      Vrrp("fe80::2", 12, 100, ("fe80::12", "2001:db8:30::12"), version=3))
    preemption(Vrrp("fe80::2", 12, 100, ("fe80::12", "2001:db8:30::12"), version=3),
               Vrrp("fe80::3", 12, 150, ("fe80::12", "2001:db8:30::12"), version=3), cap=cap, start=30)
    f = analyze(cap.write(tmp_path / "c.pcap"), "--inventory", inv)
    absent(f, "missing-group", "unknown-speaker", "unexpected-master", "skew-order")


# ============================================================================= the registry

def _cases(registry):
    return [pytest.param(fn, id=f"{slug}:{fn.__name__}") for slug, fns in registry.items() for fn in fns]


@pytest.mark.parametrize("case", _cases(TRIGGERS))
def test_trigger(case, tmp_path):
    case(tmp_path)


@pytest.mark.parametrize("case", _cases(NEAR_MISSES))
def test_near_miss(case, tmp_path):
    case(tmp_path)


SPLIT_CAUSES = {"ttl", "passphrase", "vip-set", "auth", "advbase", "one-way", "unknown"}


def test_catalogue_covered():
    """Every catalogued rule has a trigger and a near miss here, or (config-*) in test_config_lint."""
    assert set(SPEC) == set(CATALOGUE), "SPEC and the catalogue list different rules"
    missing_t = [s for s in CAPTURE_RULES if s not in TRIGGERS]
    missing_n = [s for s in CAPTURE_RULES if s not in NEAR_MISSES]
    assert not missing_t and not missing_n, f"no trigger: {missing_t}; no near miss: {missing_n}"
    assert not set(TRIGGERS) - set(CAPTURE_RULES) and not set(NEAR_MISSES) - set(CAPTURE_RULES)
    # one split-brain test per cause
    src = Path(__file__).read_text()
    for cause in SPLIT_CAUSES:
        assert re.search(rf'_split\([^\n]*"{re.escape(cause)}"', src), f"no split-brain test for cause {cause}"


@pytest.mark.parametrize("slug", CONFIG_RULES)
def test_config_rules_covered_by_lint_tests(slug):
    src = (REPO / "tests" / "test_config_lint.py").read_text()
    assert re.search(rf"""["']{re.escape(slug)}["']""", src), f"{slug} is not asserted in test_config_lint.py"


def test_json_cli_subprocess(tmp_path):
    """The same pipeline as a user runs it: ``python -m carpscope analyze F --format json``."""
    a, b = carp_pair()
    p = dual_master(a, b).write(tmp_path / "c.pcap")
    k = keyfile(tmp_path, site=KEY)
    r = subprocess.run([sys.executable, "-m", "carpscope", "analyze", str(p), "--format", "json",
                        "--passphrase-file", str(k), "--vip", f"7={VIP}"],
                       capture_output=True, cwd=REPO, timeout=60)
    assert r.returncode == 1, r.stderr
    f = json.loads(r.stdout)["findings"]
    _split(f, "one-way")
