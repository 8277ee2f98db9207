"""Many segments, one view, with real parts: two carpscope sensors, each in the switch namespace
of its own lab watching a real ucarp pair (one healthy, one with mismatched passphrases), a real
Prometheus (Debian's `prometheus`) scraping both every second with the shipped alerting rules,
a real Alertmanager (`prometheus-alertmanager`) sending to a webhook receiver of the test.

    lab "good" (a, b: same passphrase)   ── br0 ── sensor 1 ── s1 (10.79.0.11) ─┐
    lab "bad"  (c, d: two passphrases)   ── br0 ── sensor 2 ── s2 (10.79.0.12) ─┤ mon0 (10.79.0.1)
                                   Prometheus 127.0.0.1:9090, Alertmanager :9093, webhook :9099

Every process runs in a namespace the test creates (the monitor is a lab without hosts, linked
to each sensor's namespace by a veth), the labs stop them by PID and delete their namespaces.
The test queries Prometheus' HTTP API from inside the monitor namespace: the split-brain series
is 1 for the broken pair only, the ALERTS series shows CarpscopeSplitBrain firing for it within
a bound, Alertmanager delivers it to the webhook, and the sensor's evidence file (named in its
finding) opens in tshark with both masters' adverts. The times are printed (pytest -s).
"""
from __future__ import annotations

import json
import sys
import time
from importlib import resources
from pathlib import Path

import pytest

try:
    from tests.harness import Host, Lab, Ucarp, require_root, tool
except ImportError:          # rootdir-less import mode puts tests/ itself on sys.path
    from harness import Host, Lab, Ucarp, require_root, tool

pytestmark = pytest.mark.live

MASTER_WAIT = 9.0
ALERT_BOUND = 30.0           # seconds from the second master's start to the alert firing
PORT = 9417

_QUERY = """
import json, sys, urllib.request, urllib.parse
try:
    url = sys.argv[1]
    with urllib.request.urlopen(url, timeout=3) as r:
        print(r.read().decode())
except Exception as e:
    print(json.dumps({"status": "unreachable", "error": str(e)}))
"""

_WEBHOOK = """
import http.server, sys
out = open(sys.argv[2], "ab", buffering=0)
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        out.write(body.replace(b"\\n", b" ") + b"\\n")
        self.send_response(200)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def link(lab: Lab, mon: Lab, name: str, addr: str) -> None:
    """A veth from the lab's switch namespace (``name``, ``addr``) to the monitor's bridge."""
    lab.exec_in_switch(["ip", "link", "add", name, "type", "veth", "peer", "name", f"m-{name}", "netns",
                        mon.switch_netns])
    lab.exec_in_switch(["ip", "addr", "add", addr, "dev", name])
    lab.exec_in_switch(["ip", "link", "set", name, "up"])
    mon.exec_in_switch(["ip", "link", "set", f"m-{name}", "master", mon.bridge])
    mon.exec_in_switch(["ip", "link", "set", f"m-{name}", "up"])


def query(mon: Lab, path: str) -> dict:
    r = mon.exec_in_switch([sys.executable, "-c", _QUERY, f"http://127.0.0.1:9090{path}"], timeout=10)
    return json.loads(r.stdout)


def instant(mon: Lab, promql: str) -> list[dict]:
    import urllib.parse
    got = query(mon, "/api/v1/query?query=" + urllib.parse.quote(promql))
    return got["data"]["result"] if got.get("status") == "success" else []


def wait_for(what: str, check, timeout: float, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(every)


def json_lines(path: Path) -> list[dict]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if isinstance(d, dict):
            out.append(d)
    return out


def keys_file(tmp_path: Path, name: str, **keys: str) -> Path:
    p = tmp_path / name
    p.write_text("".join(f"{k}:{v}\n" for k, v in keys.items()))
    p.chmod(0o600)
    return p


def test_two_sensors_prometheus_alertmanager(tmp_path):
    require_root(("ip", "ucarp", "prometheus", "prometheus-alertmanager", "tshark"))
    rules = Path(str(resources.files("carpscope").joinpath("data", "alerts.yml")))
    good_keys = keys_file(tmp_path, "good.keys", pair="pair-pass")
    bad_keys = keys_file(tmp_path, "bad.keys", first="first-pass", second="second-pass")
    ev_good, ev_bad = tmp_path / "evidence-good", tmp_path / "evidence-bad"
    ev_good.mkdir()
    ev_bad.mkdir()
    hooks = tmp_path / "webhook.jsonl"
    with Lab([Host("a", "10.79.1.2/24"), Host("b", "10.79.1.3/24")]) as good, \
            Lab([Host("c", "10.79.2.2/24"), Host("d", "10.79.2.3/24")]) as bad, \
            Lab([], bridge="mon0") as mon:
        mon.exec_in_switch(["ip", "addr", "add", "10.79.0.1/24", "dev", "mon0"])
        link(good, mon, "s1", "10.79.0.11/24")
        link(bad, mon, "s2", "10.79.0.12/24")
        sensors = {}
        for lab, addr, keys, vip, ev in ((good, "10.79.0.11", good_keys, "7=10.79.1.1", ev_good),
                                         (bad, "10.79.0.12", bad_keys, "9=10.79.2.1", ev_bad)):
            sensors[addr] = lab.spawn_in_switch(
                [sys.executable, "-m", "carpscope", "sniff", lab.bridge, "--metrics", f"{addr}:{PORT}",
                 "--evidence", str(ev), "--evidence-window", "30", "-f", "jsonl", "--passphrase-file", str(keys),
                 "--vip", vip], "sensor")
        cfg = mon.workdir / "prometheus.yml"
        cfg.write_text(json.dumps({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": ["127.0.0.1:9093"]}]}]},
            "scrape_configs": [{"job_name": "carpscope", "static_configs": [
                {"targets": [f"10.79.0.11:{PORT}"], "labels": {"site": "good"}},
                {"targets": [f"10.79.0.12:{PORT}"], "labels": {"site": "bad"}}]}]}))
        am = mon.workdir / "alertmanager.yml"
        am.write_text(json.dumps({
            "route": {"receiver": "hook", "group_by": ["alertname", "instance"], "group_wait": "1s",
                      "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": "hook", "webhook_configs": [{"url": "http://127.0.0.1:9099/hook"}]}]}))
        mon.spawn_in_switch([sys.executable, "-c", _WEBHOOK, "9099", str(hooks)], "webhook")
        mon.spawn_in_switch([tool("prometheus-alertmanager"), f"--config.file={am}",
                             f"--storage.path={mon.workdir / 'am'}", "--web.listen-address=127.0.0.1:9093",
                             "--cluster.listen-address=", "--log.level=warn"], "alertmanager")
        prom = mon.spawn_in_switch([tool("prometheus"), f"--config.file={cfg}",
                                    f"--storage.tsdb.path={mon.workdir / 'tsdb'}",
                                    "--web.listen-address=127.0.0.1:9090", "--log.level=warn"], "prometheus")
        # both sensors scraped before the speakers start
        wait_for("Prometheus scrapes both sensors",
                 lambda: len([r for r in instant(mon, 'up{job="carpscope"} == 1')]) == 2, 40)
        assert not instant(mon, "carpscope_masters"), "no group before any speaker"

        good.start(Ucarp("a", 7, "pair-pass", "10.79.1.1"))
        bad.start(Ucarp("c", 9, "first-pass", "10.79.2.1"))
        good.wait_state("a", "carp:7", "MASTER", MASTER_WAIT)
        bad.wait_state("c", "carp:9", "MASTER", MASTER_WAIT)
        good.start(Ucarp("b", 7, "pair-pass", "10.79.1.1", advskew=100))
        t_second = time.time()
        bad.start(Ucarp("d", 9, "second-pass", "10.79.2.1", advskew=50))
        bad.wait_state("d", "carp:9", "MASTER", MASTER_WAIT)

        def split_brain():
            rows = instant(mon, "carpscope_split_brain")
            by_site = {(r["metric"]["site"], r["metric"]["vhid"]): (float(r["value"][1]), r["metric"].get("cause", ""))
                       for r in rows}
            return by_site if by_site.get(("bad", "9"), (0,))[0] == 1 else None

        by_site = wait_for("carpscope_split_brain is 1 for the broken pair", split_brain, ALERT_BOUND)
        t_series = time.time()
        assert by_site == {("good", "7"): (0.0, ""), ("bad", "9"): (1.0, "passphrase")}, by_site

        def firing():
            return instant(mon, 'ALERTS{alertname="CarpscopeSplitBrain", alertstate="firing"}')

        alerts = wait_for("the split-brain alert fires", firing, ALERT_BOUND - (time.time() - t_second))
        t_alert = time.time()
        assert [a["metric"]["instance"] for a in alerts] == [f"10.79.0.12:{PORT}"]
        assert alerts[0]["metric"]["vhid"] == "9" and alerts[0]["metric"]["cause"] == "passphrase"
        assert alerts[0]["metric"]["severity"] == "critical"

        # the healthy pair: one master, authenticated, named
        masters = {r["metric"]["site"]: float(r["value"][1]) for r in instant(mon, "carpscope_masters")}
        assert masters == {"good": 1.0, "bad": 2.0}
        info = instant(mon, 'carpscope_master_info{site="good"}')
        assert [r["metric"]["address"] for r in info] == ["10.79.1.2"]
        assert not instant(mon, 'carpscope_hmac_verdicts_total{site="good", result="fail"} > 0')
        assert instant(mon, 'carpscope_hmac_verdicts_total{site="good", result="ok"} > 0')
        assert not instant(mon, 'ALERTS{alertname="CarpscopeSplitBrain", site="good"}')

        def delivered():
            if not hooks.exists():
                return None
            for msg in json_lines(hooks):
                for a in msg.get("alerts", []):
                    if a["labels"].get("alertname") == "CarpscopeSplitBrain" and a["status"] == "firing":
                        return a
            return None

        hook = wait_for("Alertmanager delivers the alert to the webhook", delivered, 30)
        t_hook = time.time()
        assert hook["labels"]["instance"] == f"10.79.0.12:{PORT}"
        assert hook["annotations"]["runbook_url"].endswith("/carpscope/rules/pages/split-brain.md")
        assert "likely cause: passphrase" in hook["annotations"]["description"]

        # the broken sensor's evidence: named in its finding, both masters' adverts in it
        bad.stop(sensors["10.79.0.12"])
        good.stop(sensors["10.79.0.11"])
        events = json_lines(sensors["10.79.0.12"].log_path)
        sb_event = next(e for e in events if e.get("type") == "split-brain")
        raised = next(e for e in events if e.get("type") == "finding-raised" and e["rule"] == "split-brain")
        files = raised["evidence"]["pcapng"]
        assert files and all(Path(f).parent == ev_bad for f in files)
        closed = [e for e in events if e.get("type") == "evidence" and e["state"] == "closed"]
        assert closed and closed[0]["pcapng"] == files[0]
        final = next(e for e in events if e.get("type") == "finding" and e["rule"] == "split-brain")
        assert final["evidence"]["pcapng"] == files
        assert not list(ev_good.iterdir()), "no evidence for the healthy pair"
        import subprocess
        r = subprocess.run([tool("tshark"), "-r", files[0], "-Y", "ip.proto == 112", "-T", "fields", "-e", "ip.src"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        sources = r.stdout.split()
        assert {"10.79.2.2", "10.79.2.3"} <= set(sources), sources
        assert prom.alive()
    t_since = sb_event["since"]
    import datetime as dt
    since = dt.datetime.strptime(t_since, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc).timestamp()
    print(f"\nsplit brain: both masters since {since - t_second:.1f} s after the second ucarp started; "
          f"series 1 in Prometheus {t_series - t_second:.1f} s, ALERTS firing {t_alert - t_second:.1f} s "
          f"({t_alert - since:.1f} s after the overlap began), webhook {t_hook - t_second:.1f} s; "
          f"evidence {files[0]} ({len(sources)} protocol-112 frames)")
    assert t_alert - t_second <= ALERT_BOUND
