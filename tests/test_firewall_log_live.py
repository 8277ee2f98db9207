"""A firewall's log of real adverts: Linux NFLOG, what ``tcpdump -i nflog:N`` writes.

ucarp speakers run in network namespaces the test creates; an nftables rule in the backup's
namespace logs every protocol-112 packet it receives to an NFLOG group, which tcpdump records
there (and, in the other test, ``carpscope sniff nflog:N`` reads live). carpscope decodes the
log: the adverts of the master, their HMAC verified, the interface index and source MAC the
kernel logged; tshark's dissection of the same file agrees frame by frame. Traffic stays
inside the namespaces; everything started is stopped by the lab (by PID), bounded in time.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import tshark_json
from tests.harness import Host, Lab, Ucarp, require_root

ROOT = Path(__file__).resolve().parents[1]
GROUP = 7
PASS = "nflog-pass"
VIP = "10.77.41.1"
RULES = f"""table inet carpscope_test {{
    chain input {{
        type filter hook input priority 0; policy accept;
        meta l4proto 112 log group {GROUP}
    }}
}}
"""

pytestmark = pytest.mark.live


@pytest.fixture
def live():
    require_root(("ip", "ucarp", "tcpdump", "nft"))


def _wait_listening(proc, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while "listening on" not in proc.output():
        assert proc.alive() and time.monotonic() < deadline, f"{what} did not start: {proc.output()}"
        time.sleep(0.05)


def _pair(lab: Lab):
    a = lab.start(Ucarp("a", 41, PASS, VIP))
    b = lab.start(Ucarp("b", 41, PASS, VIP, advskew=100))
    lab.wait_state("a", "carp:41", "MASTER", 9)
    return a, b


def _ifindex(lab: Lab, host: str) -> int:
    out = lab.run_in(host, ["ip", "-j", "link", "show", "eth0"]).stdout
    return json.loads(out)[0]["ifindex"]


def test_nflog_recording_of_real_speakers(live, tmp_path):
    pcap = tmp_path / "nflog.pcap"
    lab = Lab([Host("a", "10.77.41.2/24"), Host("b", "10.77.41.3/24")])
    with lab:
        lab.run_in("b", ["nft", "-f", "-"], input=RULES)
        cap = lab.spawn_in("b", ["tcpdump", "-i", f"nflog:{GROUP}", "-n", "-U", "-Z", "root", "-w", str(pcap)],
                           "tcpdump-nflog")
        _wait_listening(cap, "tcpdump -i nflog")
        _pair(lab)
        time.sleep(3.5)
        lab.stop(cap, 2)          # SIGINT: tcpdump flushes and exits
        ifindex = _ifindex(lab, "b")
    head = pcap.read_bytes()[:24]
    assert int.from_bytes(head[20:24], "little") == 239, "tcpdump wrote an NFLOG capture"

    keys = tmp_path / "keys"
    keys.write_text(f"lab:{PASS}\n")
    p = subprocess.run([sys.executable, "-m", "carpscope", "analyze", str(pcap), "--passphrase-file", str(keys),
                        "--vip", f"41={VIP}", "--format", "jsonl", "--fail-on", "never"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    recs = [json.loads(line) for line in p.stdout.splitlines()]
    adverts = [r for r in recs if r["type"] == "advert"]
    summary = recs[-1]
    assert summary["sources"][0]["linktype"] == "NFLOG" and len(adverts) >= 3
    # the master's adverts, as the backup's kernel received them
    assert {(a["protocol"], a["src"], a["vhid"], a["ttl"]) for a in adverts} == {("carp", "10.77.41.2", 41, 255)}
    assert all(a["auth"]["status"] == "ok" and a["auth"]["key"] == "lab" for a in adverts)
    assert {a["segment"] for a in adverts} == {f"{pcap}/if{ifindex}"}
    assert {a["eth_src"] for a in adverts} == {"00:00:5e:00:00:29"}     # ucarp sends from the virtual MAC of VHID 41
    [group] = summary["groups"]
    assert group["master"] == "10.77.41.2" and group["vhid"] == 41

    # tshark dissects the same bytes: the same frames, sources, VHIDs, counters and HMACs
    theirs = {int(f["frame.number"][0]): (f["ip.src"][0], int(f["carp.vhid"][0]), f"{int(f['carp.counter'][0]):016x}",
                                          f["carp.hmac"][0].replace(":", ""))
              for f in tshark_json(pcap, decode_as_carp=True) if "carp.vhid" in f}
    ours = {a["frame"]: (a["src"], a["vhid"], a["counter"], a["hmac"]) for a in adverts}
    assert ours == theirs


def test_sniff_reads_an_nflog_group_live(live, tmp_path):
    lab = Lab([Host("a", "10.77.42.2/24"), Host("b", "10.77.42.3/24")])
    with lab:
        lab.run_in("b", ["nft", "-f", "-"], input=RULES)
        _pair(lab)
        p = lab.run_in("b", [sys.executable, "-m", "carpscope", "sniff", f"nflog:{GROUP}", "--duration", "3.5",
                             "--format", "json", "--fail-on", "never", "--passphrase", PASS, "--vip", f"41={VIP}"],
                       timeout=30, check=False)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    [group] = doc["groups"]
    assert (group["protocol"], group["vhid"], group["master"]) == ("carp", 41, "10.77.42.2")
    [speaker] = group["speakers"]
    assert speaker["adverts"] >= 2 and speaker["auth"]["status"] == "ok"
    assert doc["sources"][0]["linktype"] == "NFLOG"
