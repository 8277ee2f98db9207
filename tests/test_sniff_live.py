"""`carpscope sniff` on a real bridge with real ucarp and keepalived speakers (tests/harness).

Each test builds its own lab, runs the sniffer inside the switch namespace for a bounded time
(--duration) and stops only what it started. Needs root, ip, ucarp, keepalived, tcpdump (and
tmux for the dashboard test): skipped with the reason otherwise, failed under CI=true.

The delivery latency (packet time stamp to the JSON line read by the test) and the split-brain
detection time are printed (pytest -s shows them).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

try:
    from tests.harness import Host, Keepalived, Lab, Ucarp, require_root, tool
except ImportError:          # rootdir-less import mode puts tests/ itself on sys.path
    from harness import Host, Keepalived, Lab, Ucarp, require_root, tool

REPO = Path(__file__).resolve().parents[1]
MASTER_WAIT = 9.0

pytestmark = pytest.mark.live


@pytest.fixture
def live():
    require_root()


def ts_of(text: str) -> float:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc).timestamp()


def keys_file(tmp_path: Path, **keys: str) -> Path:
    p = tmp_path / "keys"
    p.write_text("".join(f"{k}:{v}\n" for k, v in keys.items()))
    p.chmod(0o600)
    return p


class Sniff:
    """`carpscope sniff` in the lab's switch namespace; stdout lines read as they arrive."""

    def __init__(self, lab: Lab, *args: str, iface: str | None = None):
        argv = [tool("ip"), "netns", "exec", lab.switch_netns, sys.executable, "-m", "carpscope", "sniff",
                iface or lab.bridge, *args]
        env = dict(os.environ, PYTHONPATH=str(REPO), NO_COLOR="1", COLUMNS="200")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     cwd=REPO, env=env, start_new_session=True)
        self.lines: list[tuple[float, str]] = []        # (arrival time, line)
        self.stderr = ""
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()
        self._e = threading.Thread(target=self._read_err, daemon=True)
        self._e.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.time(), line.decode("utf-8", "replace")))

    def _read_err(self) -> None:
        self.stderr = self.proc.stderr.read().decode("utf-8", "replace")

    def events(self, etype: str | None = None) -> list[dict]:
        out = []
        for arrived, line in list(self.lines):
            try:
                d = json.loads(line)
            except ValueError:
                continue
            d["_arrived"] = arrived
            if etype is None or d.get("type") == etype:
                out.append(d)
        return out

    def wait_started(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.events("start"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"sniff did not start: {self.stderr or self.proc.poll()}")
            time.sleep(0.05)

    def wait(self, timeout: float) -> int:
        try:
            rc = self.proc.wait(timeout)
        finally:
            self.stop()
        self._t.join(5)
        self._e.join(5)
        return rc

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self) -> None:
        """Only our own process, by PID: SIGTERM, then SIGKILL."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(3)

    def summary(self) -> dict:
        (s,) = self.events("summary")
        return s

    def final_findings(self) -> list[dict]:
        return self.events("finding")


def latency(sn: Sniff) -> list[float]:
    """Seconds from the packet's time stamp to the test reading the event line."""
    return [e["_arrived"] - ts_of(e["ts"]) for e in sn.events() if e["type"] in ("speaker", "master")]


def analyze_json(pcap: Path, keys: Path, *extra: str) -> dict:
    r = subprocess.run([sys.executable, "-m", "carpscope", "analyze", str(pcap), "--passphrase-file", str(keys),
                        "-f", "json", *extra], capture_output=True, text=True, timeout=30, cwd=REPO)
    assert r.returncode in (0, 1), r.stderr
    return json.loads(r.stdout)


def same_groups(a: list[dict], b: list[dict]) -> None:
    strip = [{k: v for k, v in g.items() if k != "segment"} for g in a]
    other = [{k: v for k, v in g.items() if k != "segment"} for g in b]
    assert strip == other


def finding_view(fs: list[dict]) -> list[tuple]:
    return sorted((f["rule"], f["severity"], f["vhid"], f.get("cause"), tuple(f["packets"]), f["first_seen"],
                   f["last_seen"]) for f in fs)


# ---------------------------------------------------------------------------- healthy pair


def test_healthy_ucarp_pair(live, tmp_path):
    keys = keys_file(tmp_path, pair="pair-pass")
    pcap = tmp_path / "live.pcap"
    with Lab([Host("a", "10.78.0.2/24"), Host("b", "10.78.0.3/24")]) as lab:
        sn = Sniff(lab, "--duration", "11", "-f", "jsonl", "--passphrase-file", str(keys), "-w", str(pcap))
        sn.wait_started()
        lab.start(Ucarp("a", 7, "pair-pass", "10.78.0.1"))
        lab.wait_state("a", "carp:7", "MASTER", MASTER_WAIT)
        lab.start(Ucarp("b", 7, "pair-pass", "10.78.0.1", advskew=100))
        rc = sn.wait(20)
    assert rc == 0, sn.stderr
    masters = sn.events("master")
    assert masters and {m["ip"] for m in masters} == {"10.78.0.2"}
    assert masters[0]["vhid"] == 7 and masters[0]["protocol"] == "carp"
    assert not sn.events("split-brain") and not sn.events("finding-raised"), [(e["rule"], e["message"]) for e in sn.events("finding-raised")]
    (g,) = sn.summary()["groups"]
    assert g["master"] == "10.78.0.2" and g["masters_at_end"] == ["10.78.0.2"]
    assert [s["auth"]["status"] for s in g["speakers"]] == ["ok"]
    assert sn.final_findings() == []
    lat = latency(sn)
    print(f"\ndelivery latency over {len(lat)} events: median {statistics.median(lat) * 1000:.1f} ms, "
          f"max {max(lat) * 1000:.1f} ms")
    assert max(lat) < 0.5
    # the written capture, analysed offline, tells the same story
    off = analyze_json(pcap, keys)
    same_groups(sn.summary()["groups"], off["groups"])
    assert finding_view(off["findings"]) == finding_view(sn.final_findings())
    assert off["sources"][0]["packets"] == sn.summary()["sources"][0]["packets"]


_LATENCY = """
import json, select, sys, time
from carpscope.capture.live import LiveSource
src = LiveSource(sys.argv[1])
lat, end = [], time.monotonic() + float(sys.argv[2])
while time.monotonic() < end and len(lat) < int(sys.argv[3]):
    select.select([src.fd], [], [], 0.2)
    for f in src.chunk():
        lat.append(time.time() - f[1])
print(json.dumps({"latency": lat, "filter": src.filter, "warning": src.warning}))
"""


def test_delivery_latency(live, tmp_path):
    """create() + set_timeout(50) + activate(): each advert is handed over within ~50 ms, not
    after libpcap's usual 1 s buffering."""
    with Lab([Host("a", "10.78.8.2/24")]) as lab:
        lab.start(Ucarp("a", 4, "lat-pass", "10.78.8.1"))
        lab.wait_state("a", "carp:4", "MASTER", MASTER_WAIT)
        r = lab.exec_in_switch([sys.executable, "-c", _LATENCY, lab.bridge, "8", "6"], timeout=20)
    out = json.loads(r.stdout)
    lat = out["latency"]
    print(f"\nLiveSource delivery latency over {len(lat)} frames: median {statistics.median(lat) * 1000:.1f} ms, "
          f"max {max(lat) * 1000:.1f} ms")
    assert len(lat) >= 5 and max(lat) < 0.2
    assert out["warning"] is None and "protochain" not in out["filter"]     # the kernel runs the filter


# ---------------------------------------------------------------------------- split brain


def test_split_brain_two_passphrases(live, tmp_path):
    keys = keys_file(tmp_path, one="first-pass", two="second-pass")
    pcap = tmp_path / "sb.pcap"
    with Lab([Host("a", "10.78.1.2/24"), Host("b", "10.78.1.3/24")]) as lab:
        sn = Sniff(lab, "--duration", "14", "-f", "jsonl", "--passphrase-file", str(keys),
                   "--vip", "9=10.78.1.1", "-w", str(pcap))
        sn.wait_started()
        lab.start(Ucarp("a", 9, "first-pass", "10.78.1.1"))
        lab.wait_state("a", "carp:9", "MASTER", MASTER_WAIT)
        lab.start(Ucarp("b", 9, "second-pass", "10.78.1.1", advskew=50))
        lab.wait_state("b", "carp:9", "MASTER", MASTER_WAIT)
        rc = sn.wait(25)
    assert rc == 1, sn.stderr            # a split brain is an error: --fail-on error
    second = next(e for e in sn.events("master") if e["ip"] == "10.78.1.3")
    sb = sn.events("split-brain")[0]
    raised = next(e for e in sn.events("finding-raised") if e["rule"] == "split-brain")
    interval = 1 + 50 / 256
    start = ts_of(second["ts"])
    detect, shown = ts_of(raised["ts"]) - start, raised["_arrived"] - start
    print(f"\nsplit brain: tracker event {ts_of(sb['ts']) - start:.2f} s, finding raised {detect:.2f} s, "
          f"line read {shown:.2f} s after the second master's first advert (interval {interval:.2f} s)")
    assert sorted(sb["speakers"]) == ["10.78.1.2", "10.78.1.3"]
    assert shown <= 3 * interval
    assert raised["cause"] == "passphrase" and raised["severity"] == "error"
    assert any(f["rule"] == "split-brain" for f in sn.final_findings())
    off = analyze_json(pcap, keys, "--vip", "9=10.78.1.1")
    same_groups(sn.summary()["groups"], off["groups"])
    assert finding_view(off["findings"]) == finding_view(sn.final_findings())


# ---------------------------------------------------------------------------- failover


def test_ucarp_failover_master_event(live, tmp_path):
    keys = keys_file(tmp_path, fo="fo-pass")
    with Lab([Host("a", "10.78.2.2/24"), Host("b", "10.78.2.3/24")]) as lab:
        sn = Sniff(lab, "--duration", "14", "-f", "jsonl", "--passphrase-file", str(keys))
        sn.wait_started()
        pa = lab.start(Ucarp("a", 11, "fo-pass", "10.78.2.1"))
        lab.wait_state("a", "carp:11", "MASTER", MASTER_WAIT)
        lab.start(Ucarp("b", 11, "fo-pass", "10.78.2.1", advskew=100))
        time.sleep(2)
        stopped = time.time()
        lab.stop(pa)
        lab.wait_state("b", "carp:11", "MASTER", MASTER_WAIT)
        rc = sn.wait(25)
    assert rc in (0, 1), sn.stderr
    after = [e for e in sn.events("master") if ts_of(e["ts"]) > stopped]
    assert after and after[-1]["ip"] == "10.78.2.3", sn.events()
    assert sn.summary()["groups"][0]["masters_at_end"] == ["10.78.2.3"]
    assert not sn.events("split-brain")


def test_keepalived_failover(live, tmp_path):
    keys = keys_file(tmp_path, unused="x")
    with Lab([Host("a", "10.78.3.2/24"), Host("b", "10.78.3.3/24")]) as lab:
        sn = Sniff(lab, "--duration", "10", "-f", "jsonl", "--passphrase-file", str(keys))
        sn.wait_started()
        hi = lab.start(Keepalived("b", 42, 200, ("10.78.3.1/24",), version=3))
        lab.start(Keepalived("a", 42, 100, ("10.78.3.1/24",), version=3))
        lab.wait_state("b", "vrrp:42", "MASTER", MASTER_WAIT)
        time.sleep(2)
        stopped = time.time()
        lab.stop(hi)
        lab.wait_state("a", "vrrp:42", "MASTER", MASTER_WAIT)
        rc = sn.wait(20)
    assert rc in (0, 1), sn.stderr
    first = sn.events("master")[0]
    assert (first["ip"], first["protocol"], first["vhid"]) == ("10.78.3.3", "vrrp3", 42)
    after = [e for e in sn.events("master") if ts_of(e["ts"]) > stopped]
    assert after and after[-1]["ip"] == "10.78.3.2"
    assert not sn.events("split-brain")


# ---------------------------------------------------------------------------- interface lost, errors


@pytest.mark.parametrize("how", ["down", "deleted"])
def test_interface_lost_during_sniff(live, tmp_path, how):
    with Lab([Host("a", "10.78.4.2/24")]) as lab:
        sn = Sniff(lab, "--duration", "30", "-f", "jsonl")
        sn.wait_started()
        lab.start(Ucarp("a", 5, "lost-pass", "10.78.4.1"))
        lab.wait_state("a", "carp:5", "MASTER", MASTER_WAIT)
        time.sleep(1.5)
        if how == "down":
            lab.exec_in_switch(["ip", "link", "set", lab.bridge, "down"])
        else:
            lab.exec_in_switch(["ip", "link", "del", lab.bridge])
        rc = sn.wait(10)
        if how == "down":
            again = subprocess.run([tool("ip"), "netns", "exec", lab.switch_netns, sys.executable, "-m", "carpscope",
                                    "sniff", lab.bridge, "--duration", "1"], capture_output=True, text=True,
                                   timeout=20, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert rc == 2
    what = "went down" if how == "down" else "disappeared"
    assert f"br0: the interface {what} during the capture" in sn.stderr and "Traceback" not in sn.stderr
    # the final report still comes
    end = sn.events("end")[0]
    assert end["reason"] == "interface-lost" and end["adverts"] >= 1
    assert sn.summary()["groups"][0]["vhid"] == 5
    if how == "down":
        assert again.returncode == 2
        assert again.stderr.strip() == "carpscope: error: br0: the interface is down (bring it up: ip link set br0 up)"


def test_sigterm_and_sigint_end_with_the_report(live, tmp_path):
    with Lab([Host("a", "10.78.5.2/24")]) as lab:
        lab.start(Ucarp("a", 6, "sig-pass", "10.78.5.1"))
        lab.wait_state("a", "carp:6", "MASTER", MASTER_WAIT)
        for sig in (signal.SIGTERM, signal.SIGINT):
            sn = Sniff(lab, "-f", "jsonl")
            sn.wait_started()
            deadline = time.monotonic() + 5
            while not sn.events("master") and time.monotonic() < deadline:
                time.sleep(0.05)
            t = time.monotonic()
            sn.signal(sig)
            rc = sn.wait(10)
            assert time.monotonic() - t < 2
            assert rc == 0, sn.stderr
            assert sn.events("end")[0]["reason"] == signal.Signals(sig).name
            assert sn.summary()["groups"][0]["master"] == "10.78.5.2"
            assert "Traceback" not in sn.stderr


def test_not_a_terminal_prints_json_lines_from_start_to_end(live, tmp_path):
    """Piped with the default format: JSON lines throughout, the final report too (as the README
    promises), so `| jq` reads every line."""
    with Lab([Host("a", "10.78.6.2/24")]) as lab:
        lab.start(Ucarp("a", 8, "pipe-pass", "10.78.6.1"))
        lab.wait_state("a", "carp:8", "MASTER", MASTER_WAIT)
        sn = Sniff(lab, "--count", "3")             # default --format text, stdout is a pipe
        rc = sn.wait(15)
    assert rc == 0, sn.stderr
    records = [json.loads(line) for _, line in sn.lines if line.strip()]   # every line is JSON
    assert [e["type"] for e in records][:3] == ["start", "speaker", "master"]
    end = next(e for e in records if e["type"] == "end")
    assert end["reason"] == "count" and end["adverts"] == 3
    assert records[-1]["type"] == "summary" and records[-1]["groups"][0]["speakers"][0]["ip"] == "10.78.6.2"


def test_sniff_piped_into_jq(live, tmp_path):
    """The issue's check: `carpscope sniff IFACE --duration 5 | jq -c .` succeeds on a live run."""
    require_root(("ip", "ucarp", "jq"))
    with Lab([Host("a", "10.78.8.2/24"), Host("b", "10.78.8.3/24")]) as lab:
        lab.start(Ucarp("a", 9, "jq-pass", "10.78.8.1"))
        lab.wait_state("a", "carp:9", "MASTER", MASTER_WAIT)
        lab.start(Ucarp("b", 9, "jq-pass", "10.78.8.1", advskew=100))
        cmd = (f"set -o pipefail; PYTHONPATH={shlex.quote(str(REPO))} {shlex.quote(sys.executable)} -m carpscope "
               f"sniff {shlex.quote(lab.bridge)} --duration 5 | {shlex.quote(tool('jq'))} -c .")
        p = subprocess.run([tool("ip"), "netns", "exec", lab.switch_netns, "bash", "-c", cmd], capture_output=True,
                           text=True, timeout=30, stdin=subprocess.DEVNULL, cwd=REPO)
    assert p.returncode == 0, p.stderr
    lines = [json.loads(line) for line in p.stdout.splitlines()]
    assert lines[0]["type"] == "start" and lines[-1]["type"] == "summary"
    assert any(e["type"] == "master" and e["ip"] == "10.78.8.2" for e in lines)


# ---------------------------------------------------------------------------- the dashboard in a terminal


def test_dashboard_in_tmux(live, tmp_path):
    require_root(("ip", "ucarp", "tmux"))
    keys = keys_file(tmp_path, dash="dash-pass")
    tmux = [tool("tmux"), "-S", str(tmp_path / "tmux.sock")]     # our own server, its socket in tmp_path
    with Lab([Host("a", "10.78.7.2/24"), Host("b", "10.78.7.3/24")]) as lab:
        lab.start(Ucarp("a", 13, "dash-pass", "10.78.7.1"))
        lab.wait_state("a", "carp:13", "MASTER", MASTER_WAIT)
        lab.start(Ucarp("b", 13, "dash-pass", "10.78.7.1", advskew=100))
        # env -u: a tmux server started from pytest hands its panes COLUMNS=80 / LINES=24
        cmd = shlex.join([tool("ip"), "netns", "exec", lab.switch_netns, "env", "-u", "COLUMNS", "-u", "LINES",
                          f"PYTHONPATH={REPO}",
                          sys.executable, "-m", "carpscope", "sniff", lab.bridge, "--duration", "25",
                          "--passphrase-file", str(keys), "--vip", "13=10.78.7.1"])
        try:
            subprocess.run([*tmux, "new-session", "-d", "-s", "dash", "-x", "200", "-y", "50", cmd],
                           check=True, timeout=10, cwd=REPO)
            subprocess.run([*tmux, "set-option", "-t", "dash", "remain-on-exit", "on"], timeout=10)
            screens = []
            deadline = time.monotonic() + 6
            while time.monotonic() < deadline:
                time.sleep(0.5)
                screens.append(subprocess.run([*tmux, "capture-pane", "-p", "-t", "dash"], capture_output=True,
                                              text=True, timeout=10).stdout)
                if "master" in screens[-1] and "ok dash" in screens[-1] and "base 1 skew 100" in screens[-1]:
                    break
            shot = screens[-1]
            # Ctrl-C in the terminal: the dashboard gives way to the final report
            subprocess.run([*tmux, "send-keys", "-t", "dash", "C-c"], timeout=10)
            deadline = time.monotonic() + 5
            final = ""
            while time.monotonic() < deadline:
                dead = subprocess.run([*tmux, "display-message", "-p", "-t", "dash", "#{pane_dead}"],
                                      capture_output=True, text=True, timeout=10).stdout.strip()
                if dead == "1":
                    final = subprocess.run([*tmux, "capture-pane", "-p", "-S", "-100", "-t", "dash"],
                                           capture_output=True, text=True, timeout=10).stdout
                    break
                time.sleep(0.3)
        finally:
            subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=10)
    assert "carpscope sniff br0" in shot, shot
    rows = [ln for ln in shot.splitlines() if "CARP" in ln]
    assert rows and " 13 " in rows[0] and "10.78.7.2" in rows[0] and " master " in rows[0], shot
    assert "ok dash" in shot and "active findings (0)" in shot, shot
    # redrawn in place: one header on the screen, whatever the number of refreshes
    assert all(s.count("carpscope sniff br0") <= 1 for s in screens)
    # Ctrl-C: the dashboard gives way to the analyze report
    assert "mastership and events" in final and "no findings" in final, final
    assert "carpscope sniff br0  " not in final and "interrupted" in final


# ---------------------------------------------------------------------------- several interfaces


_SCRAPE = """
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())
"""


def test_two_interfaces_one_lost_and_back(live, tmp_path):
    """sniff br0 p-b: the bridge and host b's port, two segments in one process; p-b set down
    and up again: reported lost, the bridge goes on, and with --metrics p-b is reopened."""
    with Lab([Host("a", "10.78.9.2/24"), Host("b", "10.78.9.3/24")]) as lab:
        lab.start(Ucarp("a", 12, "two-pass", "10.78.9.1"))
        lab.wait_state("a", "carp:12", "MASTER", MASTER_WAIT)
        lab.start(Ucarp("b", 12, "two-pass", "10.78.9.1", advskew=100))
        sn = Sniff(lab, lab.port("b"), "--metrics", "9418", "--duration", "20", "-f", "jsonl")
        sn.wait_started()

        def scrape() -> str:
            r = lab.exec_in_switch([sys.executable, "-c", _SCRAPE, "http://127.0.0.1:9418/metrics"], check=False)
            return r.stdout

        def wait_for(cond, timeout=10.0):
            deadline = time.monotonic() + timeout
            while not cond():
                assert time.monotonic() < deadline and sn.proc.poll() is None, sn.stderr
                time.sleep(0.2)

        wait_for(lambda: {(e["interface"], e["ip"]) for e in sn.events("master")} >= {("br0", "10.78.9.2"),
                                                                                       ("p-b", "10.78.9.2")})
        lab.exec_in_switch(["ip", "link", "set", lab.port("b"), "down"])
        wait_for(lambda: sn.events("interface-lost"))
        wait_for(lambda: 'carpscope_interface_up{interface="p-b"} 0.0' in scrape())
        text = scrape()
        assert 'carpscope_interface_up{interface="br0"} 1.0' in text
        lab.exec_in_switch(["ip", "link", "set", lab.port("b"), "up"])
        wait_for(lambda: sn.events("interface-back"))
        wait_for(lambda: 'carpscope_interface_up{interface="p-b"} 1.0' in scrape())
        import re
        at_back = float(re.search(r'^carpscope_adverts_total\{interface="p-b"\} (\S+)$', scrape(), re.M).group(1))
        rc = sn.wait(25)
    assert rc in (0, 1), sn.stderr                 # not 2: p-b is back at the end
    starts = sn.events("start")
    assert [e["interface"] for e in starts] == ["br0", "p-b"]
    (lost,) = sn.events("interface-lost")
    assert lost["interface"] == "p-b" and "went down" in lost["reason"]
    end = sn.events("end")[0]
    assert end["reason"] == "duration" and end["interface"] == "br0,p-b"
    per = {p["interface"]: p for p in end["interfaces"]}
    assert per["br0"]["lost"] is None and per["p-b"]["lost"] is None and per["p-b"]["adverts"] > 0
    segments = {g["segment"] for g in sn.summary()["groups"]}
    assert segments == {"br0", "p-b"}
    # p-b captured again: more adverts after it came back (a master advertises every second)
    assert per["p-b"]["adverts"] >= at_back + 2, (at_back, per)
