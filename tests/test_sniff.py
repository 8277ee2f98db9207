"""`carpscope sniff` without a network: the sniff loop on a fake clock and a scripted source,
the JSON lines events, the dashboard, --write equivalence with `analyze`, and the errors that
need no root (missing interface, unknown user, bad arguments). The real-speaker runs are in
test_sniff_live.py.
"""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys

import pytest
from rich.console import Console

from carpscope import cli, policy
from carpscope.capture import live as capture_live
from carpscope.capture.filters import live_filter_texts
from carpscope.commands import sniff as sniff_cmd
from carpscope.engine import Engine as Analysis
from carpscope.capture import FileSource
from carpscope.commands.keys import build_auth
from carpscope.report import jsonreport
from carpscope.report.dashboard import Dashboard, Rates, age_text
from carpscope.synth import PcapWriter, carp_frame, garp_frame, vrrp_frame

T0 = 1_700_000_000.0
VIP = "10.0.0.1"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


class Clock:
    """Wall and monotonic clock in one; select() waits advance it instead of sleeping."""

    def __init__(self, t0: float = T0):
        self.now = t0

    def time(self) -> float:
        return self.now

    def mono(self) -> float:
        return self.now - T0

    def wait(self, r, w, x, timeout):
        self.now += max(timeout, 0.005)
        return [], [], []


class FakeSource:
    """Frames handed out once the clock reaches their time stamp (like a live handle)."""

    name, linktype, linktype_name, filter, fd = "fake0", 1, "EN10MB", "ip proto 112", 0

    def __init__(self, clock: Clock, frames: list[tuple[float, bytes]], lose_at: float | None = None):
        self.clock = clock
        self.frames = sorted(frames, key=lambda f: f[0])
        self.lose_at = lose_at
        self.handed = 0

    def chunk(self, n: int = 256):
        """Frames as the capture reader hands them over (number, time, link type, bytes, ...)."""
        out = []
        while self.frames and self.frames[0][0] <= self.clock.now and len(out) < n:
            ts, data = self.frames.pop(0)
            sec = int(ts)
            self.handed += 1
            out.append((self.handed, sec + round((ts - sec) * 1e6) * 1e-6, self.linktype, data, -1, len(data)))
        return out

    def check(self) -> None:
        if self.lose_at is not None and self.clock.now >= T0 + self.lose_at:
            raise capture_live.InterfaceLost("fake0: the interface went down during the capture")

    def stats(self):
        return (self.handed, 0, 0)


def carp(src: str, start: float, stop: float, pw: str, *, vhid: int = 7, advskew: int = 0, every: float = 1.0):
    out, t, n = [], start, 1
    while t < stop:
        out.append((T0 + t, carp_frame(src, vhid, advskew=advskew, counter=n, passphrase=pw, vips=[VIP])))
        t += every
        n += 1
    return out


def make_args(tmp_path, *extra: str):
    keys = tmp_path / "keys"
    keys.write_text("one:secret-one\ntwo:secret-two\n")
    keys.chmod(0o600)
    args = cli.build_parser().parse_args(["sniff", "fake0", "--passphrase-file", str(keys),
                                          "--vip", f"7={VIP}", *extra])
    cli.resolve_policy(args)
    return args


def sniff(tmp_path, frames, *, duration=None, count=None, lose_at=None, writer=None, dashboard=None,
          extra=()):
    clock = Clock()
    args = make_args(tmp_path, *extra)
    verifier, vipinfer, intent, _ = build_auth(args)
    analysis = Analysis(verifier, vipinfer, intent)
    out = io.StringIO()
    src = FakeSource(clock, frames, lose_at)
    s = sniff_cmd.Sniffer(analysis, src, emit=sniff_cmd.JsonLines(out, src.name), dashboard=dashboard, writer=writer,
                     duration=duration, count=count, clock=clock.time, mono=clock.mono, wait=clock.wait,
                     policy=sniff_cmd.live_policy(args, ["fake0"]))
    s.run()
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    return s, analysis, events, clock


def ts_of(ev: dict) -> float:
    import datetime as dt
    return dt.datetime.strptime(ev["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc).timestamp()


# ---------------------------------------------------------------------------- the loop


def test_healthy_master_events_and_no_findings(tmp_path):
    frames = carp("10.0.0.2", 0, 8, "secret-one")
    s, analysis, events, _ = sniff(tmp_path, frames, duration=8.5)
    assert s.stop_reason == "duration"
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["speaker", "master"]
    assert events[1]["ip"] == "10.0.0.2" and events[1]["kind"] == "initial" and events[1]["vhid"] == 7
    assert "split-brain" not in kinds and "finding-raised" not in kinds
    for e in events:
        assert e["schema"] == sniff_cmd.SCHEMA and RFC3339.match(e["ts"]) and e["interface"] == "fake0"
    report = analysis.finish()
    (g,) = report.groups
    assert g.master.ip == "10.0.0.2" and report.findings == []
    sp = next(iter(g.speakers.values()))
    assert sp.auth_status() == "ok" and sp.auth_key == "one"


def test_split_brain_raised_within_three_intervals(tmp_path):
    frames = carp("10.0.0.2", 0, 14, "secret-one") + carp("10.0.0.3", 4.3, 14, "secret-two", advskew=100)
    s, analysis, events, _ = sniff(tmp_path, frames, duration=14)
    second = next(e for e in events if e["type"] == "master" and e["ip"] == "10.0.0.3")
    sb = next(e for e in events if e["type"] == "split-brain")
    raised = next(e for e in events if e["type"] == "finding-raised" and e["rule"] == "split-brain")
    assert sorted(sb["speakers"]) == ["10.0.0.2", "10.0.0.3"]
    assert RFC3339.match(sb["since"])
    interval = 1 + 100 / 256
    assert ts_of(sb) - ts_of(second) <= 3 * interval
    assert ts_of(raised) - ts_of(second) <= 3 * interval
    assert raised["cause"] == "passphrase" and raised["severity"] == "error"
    # announced once, not every second
    assert sum(1 for e in events if e["type"] == "finding-raised" and e["rule"] == "split-brain") == 1
    assert policy.exit_status(analysis.finish().findings, "error") == 1


def test_failover_and_silent_master(tmp_path):
    # A master until 5 s, then silent; B (advskew 100) takes over after its master-down time
    frames = carp("10.0.0.2", 0, 5, "secret-one") + carp("10.0.0.3", 8.4, 14, "secret-one", advskew=100)
    s, analysis, events, _ = sniff(tmp_path, frames, duration=14)
    kinds = [(e["type"], e.get("ip")) for e in events]
    silent = kinds.index(("silent", "10.0.0.2"))
    took = kinds.index(("master", "10.0.0.3"))
    assert silent < took
    gap = next(e for e in events if e["type"] == "gap")
    assert gap["previous"] == "10.0.0.2" and gap["master"] == "10.0.0.3"
    assert analysis.finish().groups[0].master.ip == "10.0.0.3"


def test_silence_is_noticed_while_nothing_arrives(tmp_path):
    # nothing after 3 s: the tick (not a later advert) ends the run
    frames = carp("10.0.0.2", 0, 3, "secret-one")
    _, _, events, _ = sniff(tmp_path, frames, duration=9)
    silent = next(e for e in events if e["type"] == "silent")
    assert silent["ip"] == "10.0.0.2"


def test_count_stops_exactly(tmp_path):
    frames = carp("10.0.0.2", 0, 20, "secret-one")
    s, analysis, _, clock = sniff(tmp_path, frames, count=5)
    assert s.stop_reason == "count" and s.info.adverts == 5
    assert clock.now - T0 < 6
    assert analysis.finish().groups[0].speakers[("10.0.0.2", "00:00:5e:00:01:07")].adverts == 5


def test_interface_lost_ends_with_a_report(tmp_path):
    frames = carp("10.0.0.2", 0, 20, "secret-one")
    s, analysis, _, _ = sniff(tmp_path, frames, lose_at=4.0)
    assert s.stop_reason == "interface-lost" and "went down" in s.lost
    assert analysis.finish().groups[0].speakers


class Snapshots:
    """An engine whose snapshots are given (the real one's methods for the rest)."""

    def __init__(self, findings):
        self.engine, self.findings = Analysis(), findings

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def snapshot(self):
        return type("R", (), {"findings": next(self.findings), "groups": []})()


def test_finding_cleared_when_it_goes_away(tmp_path):
    # inferred VIP: ucarp's gratuitous ARP arrives after its first adverts; and --select keeps
    # the policy on the live findings too
    frames = carp("10.0.0.2", 0, 6, "secret-one")
    s, _, events, _ = sniff(tmp_path, frames, duration=7, extra=("--select", "CS5"))
    assert not [e for e in events if e["type"].startswith("finding")]

    from carpscope.model import Severity

    class Fake:
        def __init__(self, rule, speakers, severity=Severity.ERROR):
            self.rule, self.segment, self.vhid, self.severity = rule, "s", 1, severity
            self.evidence = {"speakers": speakers}

        def to_json(self):
            return {"rule": self.rule, "code": "X", "severity": "info", "protocol": None, "vhid": 1,
                    "segment": "s", "message": "m", "evidence": self.evidence}

    out = io.StringIO()
    batches = iter([[Fake("a", ["1"]), Fake("b", [{"ip": "2"}])], [Fake("b", [{"ip": "2"}])], []])
    sn = sniff_cmd.Sniffer(Snapshots(batches), FakeSource(Clock(), []), emit=sniff_cmd.JsonLines(out, "fake0"))
    for _ in range(3):
        sn.update_findings(T0)
    got = [(e["type"], e["rule"]) for e in map(json.loads, out.getvalue().splitlines())]
    assert got == [("finding-raised", "a"), ("finding-raised", "b"), ("finding-cleared", "a"),
                   ("finding-cleared", "b")]


def test_warnings_are_announced_once_they_hold():
    from carpscope.model import Severity

    class Fake:
        rule, segment, vhid, severity, evidence = "w", "s", 1, Severity.WARNING, {}

        def to_json(self):
            return {"rule": self.rule, "severity": "warning"}

    out = io.StringIO()
    seq = iter([[Fake()], [], [Fake()], [Fake()], [Fake()], [Fake()], [Fake()]])
    sn = sniff_cmd.Sniffer(Snapshots(seq), FakeSource(Clock(), []), emit=sniff_cmd.JsonLines(out, "fake0"))
    times = []
    for i in range(7):                  # one snapshot a second; gone at 1 s: the hold starts again
        sn.update_findings(T0 + i)
        times.append(len(out.getvalue().splitlines()))
    assert times == [0, 0, 0, 0, 0, 1, 1]


def test_finding_key():
    class F:
        rule, segment, vhid = "r", "seg", 3
        evidence = {"speakers": [{"ip": "10.0.0.3"}, {"ip": "10.0.0.2"}]}
    assert policy.finding_key(F) == ("r", "seg", 3, ("10.0.0.2", "10.0.0.3"))
    F.evidence = {"speaker": "10.0.0.9"}
    assert policy.finding_key(F)[3] == ("10.0.0.9",)
    F.evidence = {}
    assert policy.finding_key(F)[3] == ()


def test_rfc3339():
    assert sniff_cmd.rfc3339(0.5) == "1970-01-01T00:00:00.500000Z"


# ---------------------------------------------------------------------------- --write


def _group_view(report):
    out = []
    for g in report.groups:
        d = jsonreport.group_json(g)
        d.pop("segment")
        out.append(d)
    return out


def _finding_view(report):
    return sorted((f.rule, f.code, f.severity.value, f.vhid, f.cause, tuple(f.packets), f.first_seen, f.last_seen)
                  for f in report.findings)


def test_write_then_analyze_gives_the_same_report(tmp_path):
    frames = (carp("10.0.0.2", 0, 12, "secret-one") + carp("10.0.0.3", 3.2, 12, "secret-two", advskew=50)
              + [(T0 + 0.5, garp_frame("00:00:5e:00:01:07", VIP))]
              + [(T0 + 1.5 + i, vrrp_frame("10.0.0.9", 9, 150, ["10.0.0.99"])) for i in range(6)])
    path = tmp_path / "w.pcap"
    with open(path, "wb") as f:
        s, analysis, _, _ = sniff(tmp_path, frames, duration=12.5, writer=PcapWriter(f))
    live_report = s.finish()
    args = make_args(tmp_path)
    verifier, vipinfer, intent, _ = build_auth(args)
    off = Analysis(verifier, vipinfer, intent)
    src = FileSource(str(path))
    off.feed_source(src)
    off_report = off.finish()
    assert src.info.packets == s.frames == len(frames)
    assert _group_view(live_report) == _group_view(off_report)
    assert _finding_view(live_report) == _finding_view(off_report)
    assert any(f.rule == "split-brain" for f in live_report.findings)


# ---------------------------------------------------------------------------- dashboard


def test_dashboard_renders_groups_changes_and_findings(tmp_path):
    console = Console(record=True, width=200, force_terminal=True, color_system=None)
    dash = Dashboard(console, "fake0", "EN10MB", True, "ip proto 112", writing="x.pcap")
    frames = carp("10.0.0.2", 0, 10, "secret-one") + carp("10.0.0.3", 3.2, 10, "secret-two", advskew=50)
    s, analysis, _, clock = sniff(tmp_path, frames, duration=10, dashboard=dash)
    console.print(dash.renderable())
    text = console.export_text()
    assert "segment fake0" in text and "CARP" in text and " 7 " in text
    assert "10.0.0.2" in text and "10.0.0.3" in text
    assert "SPLIT BRAIN" in text and "split-brain" in text
    assert "active findings (" in text and "writing x.pcap" in text
    assert re.search(r"\b1\.0\d\b", text)         # adverts/s of a 1 s speaker


def test_dashboard_waiting_and_helpers():
    console = Console(record=True, width=120, force_terminal=True, color_system=None)
    dash = Dashboard(console, "eth9")
    dash.update([], [], T0)
    console.print(dash.renderable())
    text = console.export_text()
    assert "waiting for CARP/VRRP advertisements on eth9" in text and "no active findings" in text
    assert age_text(0.42) == "0.4s ago" and age_text(125) == "2m05s ago"
    r = Rates(window=10)
    assert r.sample(("k",), 0.1, 0.0, 1) is None                 # one advert: no rate yet
    assert r.sample(("k",), 3.5, 3.0, 4) == pytest.approx(1.0)  # between adverts, not refreshes
    for t in range(4, 30):                                       # faster: 2 a second
        last = r.sample(("k",), t + 0.3, float(t), 4 + (t - 3) * 2)
    assert last == pytest.approx(2.0)
    assert r.sample(("k",), 60.0, 29.0, 56, active=False) == 0.0  # silent: decays to nothing


# ---------------------------------------------------------------------------- the command, no root needed


def run_sniff(*args, timeout=20, **kw):
    env = dict(os.environ, NO_COLOR="1", COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "carpscope", "sniff", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env=env, **kw)


def test_missing_interface_is_one_line_exit_2():
    r = run_sniff("nosuch0", "--duration", "1")
    assert r.returncode == 2
    assert r.stderr.strip() == "carpscope: error: nosuch0: no such interface (carpscope sniff --list shows them)"
    assert r.stdout == ""


def test_no_interface_given():
    r = run_sniff()
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--list" in r.stderr


def test_unknown_user_is_refused_before_capturing():
    r = run_sniff("lo", "--user", "no-such-user-carpscope", "--duration", "1")
    assert r.returncode == 2
    assert r.stderr.strip() == "carpscope: error: --user no-such-user-carpscope: no such user"


@pytest.mark.parametrize("bad", [["--duration", "0"], ["--duration", "x"], ["--count", "0"]])
def test_bad_limits(bad):
    r = run_sniff("lo", *bad)
    assert r.returncode == 2 and "must" in r.stderr or "not a" in r.stderr


def test_list_interfaces():
    r = run_sniff("--list")
    assert r.returncode == 0 and re.search(r"^lo\s+up", r.stdout, re.M), r.stdout
    r = run_sniff("--list", "-f", "json")
    names = {d["name"]: d for d in json.loads(r.stdout)["interfaces"]}
    assert names["lo"]["up"] is True and names["lo"]["ipv4"] == "127.0.0.1"


def test_permission_message_wording():
    msg = capture_live.LiveSource._explain("eth0", -8, "eth0: You don't have permission to capture on that device")
    assert "CAP_NET_RAW" in msg and "setcap cap_net_raw,cap_net_admin=eip $(readlink -f " in msg and "root" in msg
    assert "\n" not in msg
    assert "--no-promisc" in capture_live.LiveSource._explain("eth0", -11, None)
    assert "is down" in capture_live.LiveSource._explain("eth0", -9, None)
    assert "no such interface" in capture_live.LiveSource._explain("eth0", -5, None)


def test_live_filters_avoid_protochain():
    fs = live_filter_texts()
    assert "protochain" not in fs[0] and "vlan" in fs[0] and "arp" in fs[0]
    import pcapy
    # compiles for Ethernet, including after vlan (protochain does not)
    pcapy.compile(1, 65535, fs[0], 1, 0)


def _nobody():
    import pwd
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody'")


# A non-root run: the interpreter starts as root (it may live where only root can read, e.g.
# under /root/.pyenv, and carpscope imports lazily), and drops to nobody just before libpcap
# is asked for the capture: what libpcap sees is an unprivileged process.
_AS_NOBODY = """
import os, sys
import pcapy
import carpscope.cli
real_create = pcapy.create
def create(*a):
    os.setgroups([]); os.setgid(int(sys.argv[1])); os.setuid(int(sys.argv[2]))
    assert os.geteuid() != 0
    return real_create(*a)
pcapy.create = create
sys.exit(carpscope.cli.main(sys.argv[3:]))
"""


def test_not_root_gets_the_capability_hint():
    if os.geteuid() != 0:
        r = run_sniff("lo", "--duration", "1")       # we are the non-root user already
    else:
        pw = _nobody()
        env = dict(os.environ, NO_COLOR="1", COLUMNS="200")
        r = subprocess.run([sys.executable, "-c", _AS_NOBODY, str(pw.pw_gid), str(pw.pw_uid), "sniff", "lo",
                            "--duration", "1"], capture_output=True, text=True, timeout=20,
                           stdin=subprocess.DEVNULL, env=env)
    if r.returncode == 0:
        pytest.skip("this interpreter already has CAP_NET_RAW")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("carpscope: error: lo: permission denied: capture needs root or CAP_NET_RAW")
    assert "setcap cap_net_raw,cap_net_admin=eip" in lines[0] and "Traceback" not in r.stderr


def test_user_drops_privileges_after_opening(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to open the capture and switch user")
    pw = _nobody()
    import tempfile
    d = tempfile.mkdtemp(prefix="carpscope-sniff-")
    try:
        os.chmod(d, 0o777)
        out = os.path.join(d, "w.pcap")
        r = run_sniff("lo", "--user", "nobody", "--duration", "0.5", "-f", "jsonl", "-w", out, cwd="/")
        assert r.returncode == 0, r.stderr
        # the file is opened after the switch: owned by nobody
        assert os.stat(out).st_uid == pw.pw_uid
        types = [json.loads(line)["type"] for line in r.stdout.splitlines()]
        assert types[0] == "start" and "end" in types and types[-1] == "summary"
    finally:
        import shutil
        shutil.rmtree(d, ignore_errors=True)


def test_user_switch_needs_root():
    if os.geteuid() == 0:
        pytest.skip("only meaningful when not root")
    r = run_sniff("lo", "--user", "nobody", "--duration", "1")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_dashboard_fits_a_narrow_terminal(tmp_path):
    console = Console(record=True, width=80, force_terminal=True, color_system=None)
    dash = Dashboard(console, "fake0")
    frames = carp("10.0.0.2", 0, 6, "secret-one") + carp("10.0.0.3", 0.5, 6, "secret-one", advskew=100)
    sniff(tmp_path, frames, duration=6, dashboard=dash)
    console.print(dash.renderable())
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    row = next(line for line in text.splitlines() if "CARP" in line)
    assert "10.0.0.2" in row and " 7 " in row and "00:00:5e" not in row


def test_invalid_interface_name():
    r = run_sniff("x" * 20, "--duration", "1")
    assert r.returncode == 2 and "not a valid interface name" in r.stderr and len(r.stderr.splitlines()) == 1


# ---------------------------------------------------------------------------- several interfaces


class NamedSource(FakeSource):
    def __init__(self, name, clock, frames, lose_at=None, back_at=None):
        super().__init__(clock, frames, lose_at)
        self.name, self.back_at = name, back_at
        self.closed = False

    def check(self) -> None:
        if self.lose_at is not None and self.clock.now >= T0 + self.lose_at:
            raise capture_live.InterfaceLost(f"{self.name}: the interface went down during the capture")

    def close(self) -> None:
        self.closed = True

    def number_after(self, n: int) -> None:
        self.handed = n


def several(tmp_path, sources, duration, keep_going=False):
    args = make_args(tmp_path)
    verifier, vipinfer, intent, _ = build_auth(args)
    analysis = Analysis(verifier, vipinfer, intent)
    out = io.StringIO()
    clock = getattr(sources[0], "source", sources[0]).clock
    s = sniff_cmd.Sniffer(analysis, sources, emit=sniff_cmd.JsonLines(out, [x.name for x in sources]),
                          duration=duration, clock=clock.time, mono=clock.mono, wait=clock.wait,
                          keep_going=keep_going, policy=sniff_cmd.live_policy(args, [x.name for x in sources]))
    s.run()
    return s, analysis, [json.loads(line) for line in out.getvalue().splitlines()]


def test_two_interfaces_are_two_segments_in_one_engine(tmp_path):
    clock = Clock()
    # the same VHID and addresses on both: two segments, not a split brain
    em0 = NamedSource("em0", clock, carp("10.0.0.2", 0, 10, "secret-one"))
    em1 = NamedSource("em1", clock, carp("10.0.0.3", 0.5, 10, "secret-one", advskew=100))
    s, analysis, events = several(tmp_path, [em0, em1], 9.5)
    report = s.finish()
    assert sorted(g.segment for g in report.groups) == ["em0", "em1"]
    assert not [f for f in report.findings if f.rule == "split-brain"]
    masters = {(e["interface"], e["segment"], e["ip"]) for e in events if e["type"] == "master"}
    assert masters == {("em0", "em0", "10.0.0.2"), ("em1", "em1", "10.0.0.3")}
    assert [x.name for x in analysis.sources] == ["em0", "em1"]
    assert s.frames == 20 and s.adverts == 20 and s.stop_reason == "duration" and s.lost is None


def test_one_interface_lost_the_others_go_on(tmp_path):
    clock = Clock()
    em0 = NamedSource("em0", clock, carp("10.0.0.2", 0, 12, "secret-one"))
    em1 = NamedSource("em1", clock, carp("10.0.0.3", 0, 12, "secret-one"), lose_at=3.0)
    s, _, events = several(tmp_path, [em0, em1], 10)
    assert s.stop_reason == "duration" and em1.closed and not em0.closed
    assert s.lost == "em1: the interface went down during the capture"      # exit status 2 at the end
    lost = [e for e in events if e["type"] == "interface-lost"]
    assert [(e["interface"], e["reason"]) for e in lost] == [("em1", s.lost)]
    assert s.taps[0].info.adverts == 11 and s.taps[1].info.adverts < 6


def test_every_interface_lost_stops(tmp_path):
    clock = Clock()
    em0 = NamedSource("em0", clock, carp("10.0.0.2", 0, 12, "secret-one"), lose_at=5.0)
    em1 = NamedSource("em1", clock, carp("10.0.0.3", 0, 12, "secret-one"), lose_at=3.0)
    s, _, _ = several(tmp_path, [em0, em1], 10)
    assert s.stop_reason == "interface-lost" and clock.now < T0 + 7
    assert "em0" in s.lost and "em1" in s.lost


def test_exporter_keeps_going_and_reopens(tmp_path):
    from carpscope.capture.taps import Tap
    clock = Clock()
    frames = carp("10.0.0.2", 0, 14, "secret-one")
    first = NamedSource("em0", clock, [f for f in frames if f[0] < T0 + 3], lose_at=3.0)
    again = NamedSource("em0", clock, [f for f in frames if f[0] >= T0 + 8])
    opened = []

    def opener(name):
        if clock.now < T0 + 7.5:
            raise capture_live.LiveError(f"{name}: the interface is down")
        opened.append(name)
        return again

    tap = Tap(first, opener)
    s, analysis, events = several(tmp_path, [tap], 13, keep_going=True)
    assert s.stop_reason == "duration" and s.lost is None and opened == ["em0"]
    kinds = [e["type"] for e in events if e["type"].startswith("interface")]
    assert kinds == ["interface-lost", "interface-back"]
    # numbering went on where it stopped: no frame number twice on the segment
    assert tap.info.packets == 3 + 6 and again.handed == 9
    assert analysis.finish().groups[0].speakers[("10.0.0.2", "00:00:5e:00:01:07")].adverts == 9


@pytest.mark.parametrize("argv, said", [
    (["em0", "em0"], "interface em0 given twice"),
    (["any", "lo"], "'any' already captures every interface: give it alone, or name the interfaces"),
    (["lo", "em0", "-w", "x.pcap"], "--write records one interface: give one interface, or keep evidence of "
                                    "several with --evidence DIR"),
])
def test_interface_list_errors(argv, said):
    r = run_sniff(*argv, "--duration", "1")
    assert r.returncode == 2 and r.stdout == "" and r.stderr.strip() == f"carpscope: error: {said}"


def test_dashboard_of_several_interfaces(tmp_path):
    console = Console(record=True, width=160, force_terminal=True, color_system=None)
    dash = Dashboard(console, "em0, em1", "EN10MB")
    clock = Clock()
    em0 = NamedSource("em0", clock, carp("10.0.0.2", 0, 8, "secret-one"))
    em1 = NamedSource("em1", clock, carp("10.0.0.3", 0, 8, "secret-one"), lose_at=4.0)
    args = make_args(tmp_path)
    verifier, vipinfer, intent, _ = build_auth(args)
    s = sniff_cmd.Sniffer(Analysis(verifier, vipinfer, intent), [em0, em1], dashboard=dash, duration=7,
                          clock=clock.time, mono=clock.mono, wait=clock.wait)
    s.run()
    console.print(dash.renderable())
    text = console.export_text()
    assert "carpscope sniff em0, em1" in text and "segment em0" in text and "segment em1" in text
    assert "em1 lost: em1: the interface went down during the capture" in text
    assert re.search(r"\b(1[2-6]) frames\b", text)          # frames of both interfaces together
