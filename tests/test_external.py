"""The public captures in ../shared/captures/external against their own expected outputs.

- tcpdump's vrrp.pcap gives the facts of tcpdump's vrrp-v.out (per packet: version, vrid,
  prio, authtype, interval, addresses, whether an auth string is present). The cleartext
  password in that file is never compared with or looked for in carpscope's output except
  to prove it is absent: carpscope must not print VRRP authentication data.
- Every capture agrees with its `.tshark-fields.tsv` (tshark 4.0.17 fields saved beside it),
  so the second opinion is checked even where tshark is not installed.
- PcapPlusPlus' three VRRP captures (and their .dat hex) give the values SOURCES.md lists.
- tcpdump's fuzz captures decode without exceptions; every packet tcpdump/tshark show broken
  is a malformed record / finding.
"""
from __future__ import annotations

import csv
import hashlib
import json
import re

import pytest

from carpscope.capture.reader import Record, read_records
from carpscope.model import Advert, Malformed
from carpscope.wire.frame import decode_frame
from conftest import EXTERNAL, jsonl_records, run_cli

TD = "the-tcpdump-group__tcpdump"
PPP = "seladb__PcapPlusPlus"
AUTHTYPES = {"none": 0, "simple": 1, "ah": 2}


def decode_all(path) -> dict:
    with open(path, "rb") as f:
        return {r.number: decode_frame(r.linktype, r.data, r.number, r.ts, "ext")
                for r in read_records(f) if isinstance(r, Record)}


def tcpdump_out(path) -> dict[int, str]:
    """Packet number -> the whole text tcpdump printed for it (continuation lines joined)."""
    pkts: dict[int, str] = {}
    cur = None
    for line in path.read_text().splitlines():
        m = re.match(r"\s*(\d+)\s+(\d{4}-\d\d-\d\d \S+ |\[Invalid header)", line)
        if m:
            cur = int(m.group(1))
            pkts[cur] = line
        elif cur is not None:
            pkts[cur] += " " + line.strip()
    return pkts


VRRP_RE = re.compile(
    r"(?P<ipver>IP6?) .*?(?:ttl|hlim) (?P<ttl>\d+).*? (?P<src>[0-9a-f.:]+) > (?P<dst>[0-9a-f.:]+): "
    r"VRRPv(?P<v>\d+), Advertisement, vrid (?P<vrid>\d+), prio (?P<prio>\d+),"
    r"(?: authtype (?P<auth>\w+),)? intvl (?P<intvl>\d+)(?P<unit>s|cs), length (?P<len>\d+)"
    r"(?:, addrs(?:\(\d+\))?: (?P<addrs>[0-9a-f.:,]+))?(?P<authstr> auth \")?")


# ------------------------------------------------------------------ tcpdump vrrp.pcap / vrrp-v.out

def test_vrrp_pcap_matches_tcpdump_verbose_output(external_dir):
    out = tcpdump_out(external_dir / TD / "vrrp-v.out")
    recs = decode_all(external_dir / TD / "vrrp.pcap")
    assert len(out) == len(recs) == 165
    kinds = set()
    for n, text in out.items():
        m = VRRP_RE.search(text)
        assert m, f"unparsed tcpdump line {n}: {text[:120]}"
        a = recs[n]
        assert isinstance(a, Advert), f"frame {n}: {a!r}"
        where = f"vrrp.pcap frame {n}"
        assert a.protocol == f"vrrp{m['v']}" and a.version == int(m["v"]), where
        assert a.family == (6 if m["ipver"] == "IP6" else 4), where
        assert (a.src, a.dst, a.ttl) == (m["src"], m["dst"], int(m["ttl"])), where
        assert a.vhid == int(m["vrid"]) and a.priority == int(m["prio"]), where
        assert a.payload_len == int(m["len"]), where
        assert a.interval_cs == int(m["intvl"]) * (100 if m["unit"] == "s" else 1), where
        assert list(a.addresses) == m["addrs"].split(","), where
        assert a.checksum_ok, where      # tcpdump -v prints no checksum complaint
        if m["v"] == "2":
            assert a.auth_type == AUTHTYPES[m["auth"]], where
            # an auth string is shown exactly when the auth type is simple and the data is there
            assert bool(m["authstr"]) == (a.auth_type == 1 and any(a.auth_data)), where
        else:
            assert m["auth"] is None and a.auth_type is None, where
        kinds.add((a.protocol, a.family, a.auth_type))
    assert kinds == {("vrrp2", 4, 1), ("vrrp2", 4, 0), ("vrrp3", 4, None), ("vrrp3", 6, None)}


def test_vrrp_auth_string_is_never_printed(external_dir):
    """vrrp.pcap carries the VRRPv2 simple password in clear; no carpscope output may contain it
    (as text, hex, or base64-free JSON bytes). The secret is read from tcpdump's .out file, and
    only its presence in carpscope's output is checked."""
    text = (external_dir / TD / "vrrp-v.out").read_text()
    secrets = set(re.findall(r'auth "([^"]+)"', text))
    assert len(secrets) == 1
    secret = secrets.pop()
    forms = {secret, secret.encode().hex(), secret.encode().hex(":"), secret.encode().hex(" ")}
    cap = external_dir / TD / "vrrp.pcap"
    outputs = []
    for args in (("--format", "json"), ("--format", "jsonl"), ("--format", "text"), ("--adverts",),
                 ("--adverts", "--all-frames", "--format", "text")):
        rc, out, err = run_cli("analyze", cap, *args)
        assert rc in (0, 1) and "Traceback" not in out + err
        outputs.append(out + err)
    assert all(out.strip() for out in outputs)
    leaked = [i for i, out in enumerate(outputs) if any(f in out for f in forms)]
    assert not leaked, "carpscope printed VRRP authentication data (output not shown)"
    # the report still says there is cleartext auth, without the secret
    rep = json.loads(outputs[0].split("\ncarpscope:")[0])
    g42 = next(g for g in rep["groups"] if g["vhid"] == 42)
    assert {s["auth"]["status"] for s in g42["speakers"]} == {"cleartext"}


# ------------------------------------------------------------------ the .tshark-fields.tsv second opinions

def tsv_rows(path):
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        return list(csv.DictReader(f, delimiter="\t"))


TSV = sorted(EXTERNAL.rglob("*.tshark-fields.tsv")) if EXTERNAL.is_dir() else []


@pytest.mark.parametrize("tsv", TSV, ids=[p.name for p in TSV])
def test_matches_saved_tshark_fields(tsv):
    cap = tsv.with_name(tsv.name.replace(".tshark-fields.tsv", ""))
    recs = decode_all(cap)
    rows = tsv_rows(tsv)
    for row in rows:
        n = int(row["frame.number"])
        rec = recs[n]
        where = f"{cap.name} frame {n}"
        status = row["vrrp.checksum.status"]
        complete = status == "1" and row["vrrp.version"] in ("2", "3")
        if not complete:
            # tshark: no checksum verdict (truncated) or a bad checksum on a fuzzed packet
            assert isinstance(rec, Malformed) or (isinstance(rec, Advert) and not rec.checksum_ok), where
            continue
        assert isinstance(rec, Advert), f"{where}: {rec!r}"
        assert rec.version == int(row["vrrp.version"]) and rec.type == int(row["vrrp.type"]), where
        assert rec.vhid == int(row["vrrp.virt_rtr_id"]) and rec.priority == int(row["vrrp.prio"]), where
        assert rec.count == int(row["vrrp.addr_count"]), where
        assert rec.checksum == int(row["vrrp.checksum"], 16) and rec.checksum_ok, where
        addrs = ",".join(rec.addresses)
        assert addrs == (row["vrrp.ip_addr"] or row["vrrp.ipv6_addr"]), where
        if rec.version == 2:
            assert rec.auth_type == int(row["vrrp.auth_type"]) and rec.interval_cs == 100 * int(row["vrrp.adver_int"])
            if row["vrrp.auth_string"]:
                assert hashlib.sha256(rec.auth_data.rstrip(b"\0")).hexdigest() == \
                    hashlib.sha256(row["vrrp.auth_string"].encode()).hexdigest(), f"{where}: auth data (not shown)"
        else:
            assert rec.interval_cs == int(row["vrrp.short_adver_int"]), where
        if row["ip.src"]:
            assert (rec.src, rec.dst, rec.ttl) == (row["ip.src"], row["ip.dst"], int(row["ip.ttl"])), where
        else:
            assert (rec.src, rec.dst, rec.ttl) == (row["ipv6.src"], row["ipv6.dst"], int(row["ipv6.hlim"])), where
        if row["eth.src"]:
            assert (rec.eth_src, rec.eth_dst) == (row["eth.src"], row["eth.dst"]), where
        assert abs(rec.ts - float(row["frame.time_epoch"])) < 2e-6, where
    # frames tshark did not list as VRRP/CARP are not adverts for carpscope either
    listed = {int(r["frame.number"]) for r in rows}
    extra = [n for n, r in recs.items() if n not in listed and isinstance(r, Advert)]
    assert not extra, f"{cap.name}: carpscope decodes adverts in frames tshark does not: {extra[:10]}"


# ------------------------------------------------------------------ PcapPlusPlus

PCAPPLUSPLUS = {
    # values from SOURCES.md (PcapPlusPlus Tests/Packet++Test/Tests/VrrpTest.cpp); addresses
    # where SOURCES.md gives only their number are from the saved tshark fields
    "VRRP-V2": dict(protocol="vrrp2", version=2, vhid=1, priority=100, auth_type=0, interval_cs=100,
                    checksum=0x38FA, addresses=("192.168.0.1", "192.168.0.2", "192.168.0.3"),
                    src="192.168.0.30", dst="224.0.0.18", ttl=255, eth_src="00:00:5e:00:01:01", family=4),
    "VRRP-V3-IPv4": dict(protocol="vrrp3", version=3, vhid=1, priority=100, interval_cs=1, checksum=0x484D,
                         count=2, addresses=("192.168.0.1", "192.168.0.2"), family=4,
                         checksum_variant="pseudo"),
    "VRRP-V3-IPv6": dict(protocol="vrrp3", version=3, vhid=1, priority=100, interval_cs=1, checksum=0x1071,
                         count=3, addresses=("fe80::254", "2001:db8::1", "2001:db8::2"), family=6,
                         src="fe80::1", eth_src="00:00:5e:00:01:01", checksum_variant="pseudo"),
}


@pytest.mark.parametrize("name", list(PCAPPLUSPLUS))
def test_pcapplusplus_expected_values(external_dir, name):
    recs = decode_all(external_dir / PPP / f"{name}.pcap")
    assert list(recs) == [1]
    a = recs[1]
    assert isinstance(a, Advert), a
    for k, v in PCAPPLUSPLUS[name].items():
        assert getattr(a, k) == v, f"{name}: {k} = {getattr(a, k)!r}, expected {v!r}"
    assert a.checksum_ok and a.type == 1 and a.count == len(a.addresses)
    # the .dat file is the same frame as hex text
    dat = bytes.fromhex((external_dir / PPP / f"{name}.dat").read_text().strip())
    b = decode_frame(1, dat, 1, a.ts, "ext")
    assert b == a


def test_pcapplusplus_vrrp2_without_auth_data(external_dir):
    """PcapPlusPlus' VRRPv2 advert leaves out the 8 authentication bytes (20 bytes for 3
    addresses); tshark and tcpdump decode it, and so does carpscope (auth_data empty)."""
    a = decode_all(external_dir / PPP / "VRRP-V2.pcap")[1]
    assert a.payload_len == 20 == 8 + 4 * 3 and a.auth_data == b"" and a.checksum_variant == "plain"


# ------------------------------------------------------------------ tcpdump's fuzz files

FUZZ = {
    # file: {frame: expected} — "malformed" where tcpdump/tshark show the packet broken
    "vrrp-vrrp_print-oobr.pcap": {1: "malformed", 2: "malformed", 3: "malformed"},
    "vrrp-vrrp_print-oobr-2.pcap": {n: "fragment" for n in range(1, 11)},
    "icmp-icmp_print-oobr-1.pcap": {1: None, 2: "malformed", 3: None},
    "icmp-icmp_print-oobr-2.pcap": {1: "malformed", 2: "malformed", 3: None},
}


@pytest.mark.parametrize("fname", list(FUZZ))
def test_fuzz_captures(external_dir, fname):
    path = external_dir / TD / fname
    out = tcpdump_out(path.with_suffix(".out"))
    recs = decode_all(path)
    assert set(recs) == set(FUZZ[fname])
    for n, want in FUZZ[fname].items():
        rec = recs[n]
        text = out.get(n, "")
        if want is None:
            assert rec is None, f"{fname} frame {n}: {rec!r}"
            assert "VRRP" not in text or "Invalid header" in text
            continue
        assert isinstance(rec, Malformed), f"{fname} frame {n}: {rec!r}"
        # tcpdump: the packet is cut short ([|vrrp]), has a bad IP header checksum or an
        # unknown VRRP version, or its record header is invalid
        assert re.search(r"\[\|vrrp\]|bad cksum|VRRPv15|Invalid header", text), text
        if want == "fragment":
            assert "flags [+" in text and "fragment" in rec.reason
        else:
            assert rec.reason and rec.family == 4

    # the CLI: no exception, malformed findings name exactly these frames
    rc, stdout, err = run_cli("analyze", path, "--format", "jsonl", "--all-frames")
    assert rc in (0, 1) and "Traceback" not in stdout + err and "internal error" not in err
    recs_cli = jsonl_records(stdout)
    flagged = sorted(p for r in recs_cli if r["type"] == "finding" and r["rule"] == "malformed" for p in r["packets"])
    assert flagged == sorted(n for n, w in FUZZ[fname].items() if w)
    summary = recs_cli[-1]
    assert summary["sources"][0]["adverts"] == 0
    assert summary["sources"][0]["malformed"] == len(flagged)
