"""`sniff --metrics`: the Prometheus exporter, scraped over HTTP and parsed with the client
library's own parser, on the sniff loop with a fake clock and scripted frames (the real
speakers and a real Prometheus are in test_fleet_live.py): each metric against the engine's
state, the split-brain series going to 1 and back, a silent master, a demoted speaker, the
label caps under a flood of spoofed speakers, and the command-line errors.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from carpscope.commands import sniff as sniff_cmd
from carpscope.commands.keys import build_auth
from carpscope.engine import Engine
from carpscope.exporter import Exporter, ListenError, parse_listen
from carpscope.metrics import Metrics
from carpscope.model import Finding, Severity
from carpscope.synth import carp_frame, vrrp_frame

from tests.test_sniff import T0, Clock, FakeSource, carp, make_args

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Named(FakeSource):
    def __init__(self, name: str, clock, frames, lose_at=None):
        super().__init__(clock, frames, lose_at)
        self.name = name


def scrape(port: int, accept: str | None = None) -> tuple[str, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.read().decode(), r.headers.get("Content-Type", "")


def scrape_when_up(port: int, accept: str | None = None, *, tries: int) -> str:
    """The exposition of a starting sensor once it reports its interface up (every 0.1 s, at
    most ``tries`` times); the last text read ("" if none) when it never does."""
    text = ""
    for _ in range(tries):
        try:
            text = scrape(port, accept)[0]
            if "carpscope_interface_up" in text:
                break
        except OSError:
            pass
        time.sleep(0.1)
    return text


def samples(text: str) -> dict[str, list[tuple[dict, float]]]:
    out: dict[str, list] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def one(got: dict, name: str, **labels) -> float:
    hits = [v for lab, v in got.get(name, []) if all(lab.get(k) == str(x) for k, x in labels.items())]
    assert len(hits) == 1, (name, labels, got.get(name))
    return hits[0]


def run(tmp_path, frames_by_iface: dict[str, list], duration: float, *, lose_at=None, keep_going=False,
        extra=(), exporter_kw=None):
    """The sniff loop over fake interfaces with an exporter on 127.0.0.1 (a free port)."""
    clock = Clock()
    args = make_args(tmp_path, *extra)
    verifier, vipinfer, intent, _ = build_auth(args)
    engine = Engine(verifier, vipinfer, intent)
    srcs = [Named(n, clock, fr, lose_at.get(n) if lose_at else None) for n, fr in frames_by_iface.items()]
    exp = Exporter("127.0.0.1", 0, clock=clock.time, **(exporter_kw or {}))
    out = io.StringIO()
    s = sniff_cmd.Sniffer(engine, srcs, emit=sniff_cmd.JsonLines(out, [x.name for x in srcs]), duration=duration,
                          clock=clock.time, mono=clock.mono, wait=clock.wait, metrics=exp, keep_going=keep_going,
                          policy=sniff_cmd.live_policy(args, [x.name for x in srcs]))
    s.run()
    return s, engine, exp, clock, [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.fixture
def closing():
    made = []
    yield made
    for e in made:
        e.close()


def test_split_brain_pair_and_healthy_pair(tmp_path, closing):
    # vhid 7: two passphrases, both master from 4.3 s; vhid 8: one master (same key)
    frames = (carp("10.0.0.2", 0, 14, "secret-one") + carp("10.0.0.3", 4.3, 14, "secret-two", advskew=100)
              + [(T0 + t, carp_frame("10.0.0.5", 8, counter=t + 1, passphrase="secret-one", vips=["10.0.0.8"]))
                 for t in range(14)])
    s, engine, exp, clock, _ = run(tmp_path, {"fake0": frames}, 12, extra=("--vip", "8=10.0.0.8"),
                                   exporter_kw={"hosts": {"10.0.0.5": "fw-b"}})     # an inventory's names
    closing.append(exp)
    text, ctype = scrape(exp.port)
    assert ctype.startswith("text/plain; version=0.0.4")        # the client library's exposition
    got = samples(text)
    g7 = dict(segment="fake0", protocol="carp", family=4, vhid=7)
    g8 = dict(segment="fake0", protocol="carp", family=4, vhid=8)
    assert one(got, "carpscope_split_brain", **g7) == 1
    assert one(got, "carpscope_split_brain", **g7, cause="passphrase") == 1
    assert one(got, "carpscope_split_brain", **g8, cause="") == 0
    assert one(got, "carpscope_masters", **g7) == 2 and one(got, "carpscope_masters", **g8) == 1
    masters7 = {lab["address"] for lab, v in got["carpscope_master_info"] if lab["vhid"] == "7"}
    assert masters7 == {"10.0.0.2", "10.0.0.3"}
    (m8,) = [lab for lab, v in got["carpscope_master_info"] if lab["vhid"] == "8"]
    assert m8["address"] == "10.0.0.5" and m8["mac"] == "00:00:5e:00:01:08" and m8["host"] == "fw-b"
    groups = {g.vhid: g for g in engine.tracker.groups.values()}
    for vhid, g in groups.items():
        for sp in g.speakers.values():
            assert one(got, "carpscope_speaker_adverts_total", vhid=vhid, address=sp.ip) == sp.adverts
        assert one(got, "carpscope_hmac_verdicts_total", vhid=vhid, result="ok") == sum(
            sp.auth_ok for sp in g.speakers.values())
        last = max(sp.last for sp in g.speakers.values())
        assert one(got, "carpscope_master_advert_age_seconds", vhid=vhid) == pytest.approx(clock.now - last, abs=0.01)
    assert one(got, "carpscope_hmac_verdicts_total", **g7, result="ok") > 0
    assert one(got, "carpscope_findings", rule="split-brain", severity="error", vhid=7) == 1
    assert not [lab for lab, v in got["carpscope_findings"] if lab["vhid"] == "8" and v]
    assert one(got, "carpscope_frames_total", interface="fake0") == s.frames
    assert one(got, "carpscope_adverts_total", interface="fake0") == s.info.adverts
    assert one(got, "carpscope_interface_up", interface="fake0") == 1
    assert one(got, "carpscope_kernel_drops_total", interface="fake0") == 0
    assert {lab["kind"]: v for lab, v in got["carpscope_series_dropped"]} == {"group": 0, "speaker": 0, "finding": 0}
    assert "process_resident_memory_bytes" in got       # the sensor's own memory
    # OpenMetrics when Prometheus asks for it: the library negotiates it
    om, octype = scrape(exp.port, "application/openmetrics-text; version=1.0.0")
    assert octype.startswith("application/openmetrics-text") and om.rstrip().endswith("# EOF")
    for secret in ("secret-one", "secret-two"):        # keys are never exported, not even by label
        assert secret not in text and secret not in om


def test_split_brain_ends_and_changes_counted(tmp_path, closing):
    # B is master beside A from 3.3 s to 9 s, then stops: split brain 0 again, the finding stays
    frames = carp("10.0.0.2", 0, 20, "secret-one") + carp("10.0.0.3", 3.3, 9, "secret-two", advskew=100)
    _, _, exp, _, events = run(tmp_path, {"fake0": frames}, 18)
    closing.append(exp)
    got = samples(scrape(exp.port)[0])
    assert one(got, "carpscope_split_brain", vhid=7) == 0
    assert one(got, "carpscope_split_brain", vhid=7, cause="") == 0
    assert one(got, "carpscope_masters", vhid=7) == 1
    assert one(got, "carpscope_findings", rule="split-brain", vhid=7) == 1       # it happened
    assert any(e["type"] == "split-brain-end" for e in events)
    # B's run opened beside A: a change the tracker counts (a takeover); A remaining master
    # when B went silent is not one (track.py counts the changes as the report lists them)
    assert one(got, "carpscope_mastership_changes_total", vhid=7) == 1


def test_silent_master_has_no_master_and_a_growing_age(tmp_path, closing):
    frames = carp("10.0.0.2", 0, 4, "secret-one")
    s, _, exp, clock, _ = run(tmp_path, {"fake0": frames}, 12)
    closing.append(exp)
    got = samples(scrape(exp.port)[0])
    assert one(got, "carpscope_masters", vhid=7) == 0
    assert "carpscope_master_info" not in got
    assert one(got, "carpscope_master_advert_age_seconds", vhid=7) == pytest.approx(clock.now - (T0 + 3), abs=0.01)
    clock.now += 30                      # the age is computed at scrape time
    assert one(samples(scrape(exp.port)[0]), "carpscope_master_advert_age_seconds", vhid=7) == pytest.approx(
        clock.now - (T0 + 3), abs=0.01)


def test_demoted_follows_the_last_advert(tmp_path, closing):
    # A advertises advskew 240 (demoted) for 6 s, then 0 again
    def demoted_run(until):
        frames = [(T0 + t, carp_frame("10.0.0.2", 7, advskew=240 if t < 6 else 0, counter=t + 1,
                                      passphrase="secret-one", vips=["10.0.0.1"])) for t in range(until)]
        return run(tmp_path, {"fake0": frames}, until - 0.5)

    _, _, exp, _, _ = demoted_run(6)
    closing.append(exp)
    assert one(samples(scrape(exp.port)[0]), "carpscope_speaker_demoted", address="10.0.0.2") == 1
    _, _, exp2, _, _ = demoted_run(12)
    closing.append(exp2)
    got = samples(scrape(exp2.port)[0])
    assert one(got, "carpscope_speaker_demoted", address="10.0.0.2") == 0
    assert one(got, "carpscope_findings", rule="demoted") == 1           # the finding is history


def test_flood_of_spoofed_speakers_is_capped(tmp_path, closing):
    """A real pair advertising all along, and a flood: 40 VLANs x 30 VRIDs of one-off speakers
    and 300 spoofed sources in one VRID. The exported series stay under the caps, the real
    pair is kept, and the caps say they were hit."""
    real = carp("10.0.0.2", 0, 10, "secret-one")
    flood = []
    for vlan in range(1, 41):
        for vrid in range(1, 31):
            flood.append((T0 + 2 + vlan * 0.01, vrrp_frame(f"10.9.{vlan}.{vrid}", vrid, 100, ["10.9.0.1"],
                                                           vlans=(vlan,))))
    for i in range(300):
        flood.append((T0 + 3 + i * 0.001, vrrp_frame(f"10.8.{i // 250}.{i % 250 + 1}", 99, 100, ["10.8.9.9"])))
    caps = dict(max_groups=200, max_speakers=400, max_per_group=8, max_findings=50)
    _, engine, exp, _, _ = run(tmp_path, {"fake0": real + flood}, 9, exporter_kw={"metrics_caps": caps})
    closing.append(exp)
    got = samples(scrape(exp.port)[0])
    groups = {(lab["segment"], lab["protocol"], lab["vhid"]) for lab, _ in got["carpscope_masters"]}
    assert len(engine.tracker.groups) == 40 * 30 + 2 and len(groups) == 200
    assert ("fake0", "carp", "7") in groups                              # the real pair
    per_group: dict = {}
    for lab, _ in got["carpscope_speaker_adverts_total"]:
        per_group.setdefault((lab["segment"], lab["vhid"]), set()).add(lab["address"])
    assert sum(len(v) for v in per_group.values()) <= 400 and max(len(v) for v in per_group.values()) == 8
    dropped = {lab["kind"]: v for lab, v in got["carpscope_series_dropped"]}
    assert dropped["group"] == len(engine.tracker.groups) - 200 and dropped["speaker"] > 0
    assert {lab["kind"]: v for lab, v in got["carpscope_series_limit"]} == {"group": 200, "speaker": 400,
                                                                           "finding": 50}
    assert len(got["carpscope_findings"]) <= 50
    # every family with group labels stays within the groups kept
    for name, rows in got.items():
        if name.startswith("carpscope_") and rows and "vhid" in rows[0][0] and name != "carpscope_findings":
            assert {(lab["segment"], lab["protocol"], lab["vhid"]) for lab, _ in rows} <= groups, name


def test_finding_series_stay_at_zero_once_cleared():
    m = Metrics(max_findings=3)

    def f(rule, vhid):
        return Finding(rule=rule, code="CS999", severity=Severity.ERROR, message="m", protocol="carp", vhid=vhid,
                       segment="em0")

    def series(findings):
        (fam,) = [x for x in m.sample(T0, [], findings, []) if x.name == "carpscope_findings"]
        return {(lab[3], lab[2]): v for lab, v in fam.samples}

    assert series([f("a", 1), f("a", 1), f("b", 2)]) == {("a", "1"): 2, ("b", "2"): 1}
    assert series([f("b", 2)]) == {("a", "1"): 0, ("b", "2"): 1}
    # the cap (3 series) makes room for a new one by dropping a series at zero
    assert series([f("c", 3), f("d", 4)]) == {("b", "2"): 0, ("c", "3"): 1, ("d", "4"): 1}
    # full, none at zero: the new one is left out and counted
    fams = m.sample(T0, [], [f("b", 2), f("c", 3), f("d", 4), f("e", 5)], [])
    (dropped,) = [x for x in fams if x.name == "carpscope_series_dropped"]
    assert dict((lab[0], v) for lab, v in dropped.samples)["finding"] == 1


def test_interfaces_each_their_segment_and_a_lost_one(tmp_path, closing):
    a = carp("10.0.0.2", 0, 12, "secret-one")
    b = [(T0 + t, carp_frame("10.1.0.2", 7, counter=t + 1, passphrase="secret-one", vips=["10.0.0.1"]))
         for t in range(12)]
    s, engine, exp, _, events = run(tmp_path, {"em0": a, "em1": b}, 10, lose_at={"em1": 4.0}, keep_going=True)
    closing.append(exp)
    got = samples(scrape(exp.port)[0])
    assert {lab["segment"] for lab, _ in got["carpscope_masters"]} == {"em0", "em1"}
    assert one(got, "carpscope_interface_up", interface="em0") == 1
    assert one(got, "carpscope_interface_up", interface="em1") == 0
    assert s.stop_reason == "duration" and s.lost is not None        # the sensor went on without em1
    lost = [e for e in events if e["type"] == "interface-lost"]
    assert [e["interface"] for e in lost] == ["em1"]
    assert {e["interface"] for e in events if e["type"] == "master"} == {"em0", "em1"}


def test_parse_listen():
    assert parse_listen("9417") == ("127.0.0.1", 9417)
    assert parse_listen("0.0.0.0:9417") == ("0.0.0.0", 9417)
    assert parse_listen("[::1]:9417") == ("::1", 9417)
    for bad in ("", ":9417", "host:0", "host:70000", "host:x", "::1:9417"):
        with pytest.raises(ListenError):
            parse_listen(bad)


def run_cli(*args, env=None, timeout=30):
    return subprocess.run([sys.executable, "-m", "carpscope", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, cwd=REPO,
                          env=dict(os.environ, NO_COLOR="1", **(env or {})))


def test_bad_metrics_address_is_one_line():
    r = run_cli("sniff", "lo", "--metrics", "localhost:99999", "--duration", "1")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == "carpscope: error: --metrics localhost:99999: the port must be a number from 1 to 65535"


_NO_CLIENT = """
import sys
sys.modules["prometheus_client"] = None      # as if the 'metrics' extra were not installed
import carpscope.cli
sys.exit(carpscope.cli.main(sys.argv[1:]))
"""


def test_metrics_without_the_client_library_says_what_to_install():
    r = subprocess.run([sys.executable, "-c", _NO_CLIENT, "sniff", "lo", "--metrics", "9417", "--duration", "1"],
                       capture_output=True, text=True, timeout=30, cwd=REPO)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == ("carpscope: error: --metrics needs the Prometheus client library: "
                                "pip install 'carpscope[metrics]' (prometheus-client)")


_LOADED = """
import sys
import carpscope.cli
rc = carpscope.cli.main(sys.argv[1:])
print("LOADED" if "prometheus_client" in sys.modules else "NOT-LOADED", file=sys.stderr)
"""


def test_client_library_loaded_only_for_metrics():
    cap = os.path.join(REPO, "captures")
    pcap = next(os.path.join(d, f) for d, _, fs in os.walk(cap) for f in sorted(fs) if f.endswith(".pcap"))
    for argv in (["analyze", pcap, "-q"], ["sniff", "--list"], ["rules"]):
        r = subprocess.run([sys.executable, "-c", _LOADED, *argv], capture_output=True, text=True, timeout=60, cwd=REPO)
        assert r.stderr.strip().endswith("NOT-LOADED"), (argv, r.stderr)


def test_port_in_use_is_one_line():
    if os.geteuid() != 0:
        pytest.skip("opening 'lo' for capture needs root (or CAP_NET_RAW)")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = run_cli("sniff", "lo", "--metrics", f"127.0.0.1:{port}", "--duration", "1")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == f"carpscope: error: --metrics 127.0.0.1:{port}: cannot listen: Address already in use"


def test_sniff_lo_serves_metrics_then_stops(tmp_path):
    """The whole command on the loopback: --metrics serves while it runs, and the port is free
    once it ended."""
    if os.geteuid() != 0:
        pytest.skip("opening 'lo' for capture needs root (or CAP_NET_RAW)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    p = subprocess.Popen([sys.executable, "-m", "carpscope", "sniff", "lo", "--metrics", str(port), "--duration", "4",
                          "-f", "jsonl"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        text = scrape_when_up(port, tries=60)
        got = samples(text) if text else None
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    assert p.returncode == 0, err
    assert got and one(got, "carpscope_interface_up", interface="lo") == 1
    start = json.loads(out.splitlines()[0])
    assert start["type"] == "start" and start["metrics"] == str(port)
    with socket.socket() as again:       # the exporter closed its socket (TIME_WAIT aside)
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
        again.listen()


def test_metrics_and_evidence_after_dropping_to_a_user(tmp_path):
    """-Z: the exporter is bound as root, then serves as the user; the evidence directory is
    opened after the switch, so it must be the user's to write in."""
    if os.geteuid() != 0:
        pytest.skip("needs root to open the capture and switch user")
    import pwd
    import tempfile
    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody'")
    d = tempfile.mkdtemp(prefix="carpscope-ev-")
    os.chmod(d, 0o777)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    p = subprocess.Popen([sys.executable, "-m", "carpscope", "sniff", "lo", "--user", "nobody", "--metrics", str(port),
                          "--evidence", d, "--duration", "3", "-f", "jsonl"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd="/")
    try:
        text = scrape_when_up(port, "application/openmetrics-text; version=1.0.0", tries=50)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
        shutil.rmtree(d, ignore_errors=True)
    assert p.returncode == 0, err
    assert 'carpscope_interface_up{interface="lo"} 1.0' in text
    proc_uid = [ln for ln in out.splitlines() if '"type": "start"' in ln]
    assert proc_uid and json.loads(proc_uid[0])["user"] == "nobody" and pw.pw_uid > 0
    # a directory only root may write in: refused once the user is nobody, in one line
    ro = tempfile.mkdtemp(prefix="carpscope-ev-")
    try:
        os.chmod(ro, 0o755)
        r = subprocess.run([sys.executable, "-m", "carpscope", "sniff", "lo", "--user", "nobody", "--evidence", ro,
                            "--duration", "1"], capture_output=True, text=True, timeout=30, cwd="/",
                           stdin=subprocess.DEVNULL)
    finally:
        shutil.rmtree(ro, ignore_errors=True)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == (f"carpscope: error: --evidence {ro}: cannot create files there "
                                "(permission denied or read-only)")
