"""The HTML report (``--format html``), checked in a real browser: Debian's headless Chromium
loads each bundled capture's report, and the DOM it built (``--dump-dom``) is checked against
the JSON report: one section per group, a lane per speaker, each mastership run, split-brain
window and change marker at the x its time gives on the SVG's scale, tick labels under their
ticks. A screenshot of two reports is written to tests/out/html/ for a person to look at.

Without chromium these tests skip, except under CI=true (conftest.py). The page must be one
self-contained file: no script, no external asset, a Content-Security-Policy that forbids
loading anything, and everything from a capture or config escaped.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from carpscope.report import html as html_report
from carpscope.report.view import Clock, group_events
from tests.harness.sidecar import sidecar_args

REPO = Path(__file__).resolve().parents[1]
CAPTURES = REPO / "captures"
SIDECARS = sorted(p for p in CAPTURES.glob("*.json") if (CAPTURES / json.loads(p.read_text())["pcap"]).exists())
SHOTS = REPO / "tests" / "out" / "html"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]


def carpscope(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=str(REPO))
    env.pop("COLUMNS", None)
    p = subprocess.run([sys.executable, "-m", "carpscope", *map(str, args)], capture_output=True, text=True,
                       cwd=REPO, env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    return p


def reports(name: str, tmp_path: Path) -> tuple[Path, dict]:
    side = json.loads((CAPTURES / f"{name}.json").read_text())
    args = [f"captures/{side['pcap']}", *sidecar_args(side, tmp_path), "--isolated"]
    page = tmp_path / f"{name}.html"
    p = carpscope("analyze", *args, "-f", "html", "-o", page)
    assert p.returncode in (0, 1), p.stderr
    doc = json.loads(carpscope("analyze", *args, "-f", "json").stdout)
    return page, doc


def chromium(tmp_path: Path, *args) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    return subprocess.run([shutil.which("chromium") or "chromium", *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)


class Dom(HTMLParser):
    """Elements of the dumped DOM: (tag, attributes, id of the enclosing group section, text)."""

    def __init__(self):
        super().__init__()
        self.elements: list[list] = []
        self.section: str | None = None
        self.open: list[list] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section" and "group" in (a.get("class") or "").split():
            self.section = a.get("id")
        el = [tag, a, self.section, ""]
        self.elements.append(el)
        if tag in ("text", "td", "title"):
            self.open.append(el)

    def handle_endtag(self, tag):
        if self.open and self.open[-1][0] == tag:
            self.open.pop()

    def handle_data(self, data):
        if self.open:
            self.open[-1][3] += data

    def find(self, tag: str, cls: str | None = None, section: str | None = None) -> list[list]:
        return [e for e in self.elements if e[0] == tag and (cls is None or cls in (e[1].get("class") or "").split())
                and (section is None or e[2] == section)]


def dump(page: Path, tmp_path: Path) -> Dom:
    p = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert p.returncode == 0 and "<svg" in p.stdout, p.stderr[-2000:]
    dom = Dom()
    dom.feed(p.stdout)
    return dom


def xs(svg: dict):
    t0, t1, x0, x1 = (float(svg[k]) for k in ("data-t0", "data-t1", "data-x0", "data-x1"))
    return lambda t: x0 + (t - t0) / max(t1 - t0, 1e-3) * (x1 - x0)


@pytest.mark.chromium
@pytest.mark.parametrize("sidecar", SIDECARS, ids=lambda p: p.stem)
def test_timeline_in_the_browser(sidecar, tmp_path):
    page, doc = reports(sidecar.stem, tmp_path)
    side = json.loads(sidecar.read_text())
    dom = dump(page, tmp_path)
    sections = dom.find("section", "group")
    assert len(sections) == len(doc["groups"])
    splits_seen = 0
    for g, sec in zip(doc["groups"], sections):
        sid = sec[1]["id"]
        assert sec[1]["data-vhid"] == str(g["vhid"]) and sec[1]["data-protocol"] == g["protocol"]
        svg = dom.find("svg", "timeline", sid)[0][1]
        x = xs(svg)
        # a lane per speaker
        lanes = [e[1]["data-speaker"] for e in dom.find("g", "lane", sid)]
        assert sorted(lanes) == sorted(s["ip"] for s in g["speakers"])
        # each mastership run where its times put it
        runs = dom.find("rect", "run", sid)
        assert sorted((float(r[1]["data-from"]), float(r[1]["data-to"])) for r in runs) == \
            sorted((m["from"], m["to"]) for m in g["masters"])
        for r in runs:
            a = r[1]
            assert float(a["x"]) == pytest.approx(x(float(a["data-from"])), abs=0.01)
            assert float(a["x"]) + float(a["width"]) == pytest.approx(
                max(x(float(a["data-to"])), x(float(a["data-from"])) + 1.5), abs=0.02)
            assert a["data-first-packet"].isdigit() and "frames" in next(
                t[3] for t in dom.elements if t[0] == "title" and t[2] == sid and a["data-from"] and
                t is dom.elements[dom.elements.index(r) + 1])
        # split-brain windows: those of the findings, across the lanes
        windows = sorted((w["from"], w["to"]) for f in doc["findings"] if f["rule"] == "split-brain"
                         and f["vhid"] == g["vhid"] and f["segment"] == g["segment"]
                         for w in f["evidence"]["windows"])
        bands = dom.find("rect", "split", sid)
        assert sorted((float(b[1]["data-from"]), float(b[1]["data-to"])) for b in bands) == windows
        for b in bands:
            assert float(b[1]["x"]) == pytest.approx(x(float(b[1]["data-from"])), abs=0.01)
        splits_seen += len(bands)
        # markers: every event but the end, centred on its time
        evs = [e for e in group_events(g, doc["findings"], doc.get("hosts"), Clock())
               if e.kind not in ("end", "split-brain-end")]
        marks = dom.find("path", "marker", sid)
        assert sorted(float(m[1]["data-ts"]) for m in marks) == sorted(e.ts for e in evs)
        for m in marks:
            centre = float(re.findall(r"[-\d.]+", m[1]["d"])[4])
            assert centre == pytest.approx(x(float(m[1]["data-ts"])), abs=0.01)
        for c in g["changes"]:
            assert any(float(m[1]["data-ts"]) == c["ts"] for m in marks), c
        # tick labels: the clock time of their tick, at its x
        labels = dom.find("text", "tick-label", sid)
        assert len(labels) >= 2
        for lab in labels:
            t = float(lab[1]["data-ts"])
            assert float(lab[1]["x"]) == pytest.approx(x(t), abs=0.01)
            assert lab[3] in (Clock().clock(t, 0), Clock().clock(t, 1))
        # the event list under it
        rows = dom.find("tr", "event", sid)
        assert len(rows) == len(group_events(g, doc["findings"], doc.get("hosts"), Clock()))
    assert (splits_seen > 0) == ("split-brain" in side["expect"]["findings_present"])


@pytest.mark.chromium
@pytest.mark.parametrize("name", ["failover-preempt", "passphrase-mismatch"])
def test_screenshot_for_a_person(name, tmp_path):
    page, _ = reports(name, tmp_path)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(page, SHOTS / page.name)
    shot = SHOTS / f"{name}.png"
    shot.unlink(missing_ok=True)
    p = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,1400", page.as_uri())
    assert p.returncode == 0 and shot.stat().st_size > 20_000, p.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot: {shot}")


def hostile_doc() -> dict:
    evil = '<script>alert("x")</script>"\'&'
    return {"carpscope": "0", "sources": [{"name": f"cap{evil}.pcap", "packets": 3, "adverts": 2, "malformed": 0,
                                           "linktype": "EN10MB", "error": evil}],
            "groups": [{"segment": f"seg{evil}", "protocol": "carp", "family": 4, "vhid": 7,
                        "speakers": [{"ip": "10.0.0.2", "mac": evil, "adverts": 2, "first_seen": 10.0, "last_seen": 11.0,
                                      "advbase": 1, "advskew": 0, "demote": 0, "auth": {"status": "ok", "key": evil},
                                      "period": None, "host": None}],
                        "masters": [{"ip": "10.0.0.2", "from": 10.0, "to": 11.0, "adverts": 2,
                                     "first_packet": 1, "last_packet": 2}],
                        "master": "10.0.0.2", "masters_at_end": ["10.0.0.2"],
                        "changes": [{"ts": 10.0, "from": None, "to": "10.0.0.2", "kind": "initial", "packet": 1}],
                        "intent": None}],
            "findings": [{"rule": "split-brain", "code": "CS401", "severity": "error", "protocol": "carp", "vhid": 7,
                          "segment": f"seg{evil}", "message": f"message {evil}", "first_seen": 10.0, "last_seen": 11.0,
                          "packets": [1, 2], "evidence": {"speakers": ["10.0.0.2", evil],
                                                          "windows": [{"from": 10.2, "to": 10.8, "adverts": {}}]},
                          "cause": evil}],
            "hosts": {"10.0.0.2": evil}}


def test_everything_from_a_capture_is_escaped_and_nothing_is_loaded():
    page = html_report.render(hostile_doc())
    assert "<script" not in page and "<" + "/script" not in page
    assert "&lt;script&gt;" in page
    # one self-contained file: no script, no stylesheet, image, font or frame from anywhere
    assert not re.search(r"<(script|link|iframe|img|object|embed)\b", page)
    assert not re.search(r"\b(src|href)=\"(?!#)", page) and "@import" not in page and "url(" not in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    # addresses of the web appear only as text (rule pages cite their sources), never in an attribute
    assert re.findall(r"=\"https?://[^\"]*\"", page) == ['="http://www.w3.org/2000/svg"'] * page.count("<svg")


@pytest.mark.chromium
def test_hostile_names_stay_text_in_the_browser(tmp_path):
    page = tmp_path / "evil.html"
    page.write_text(html_report.render(hostile_doc()))
    dom = dump(page, tmp_path)
    assert not dom.find("script")
    assert any('<script>alert("x")</script>' in e[3] for e in dom.elements if e[0] == "td")


def test_markdown_of_the_rule_pages_is_escaped():
    out = html_report.markdown("# t <b>\n\nA `x<y>` **bold**\n\n- one\n  two\n\n```\n<raw>\n```\n")
    assert "<h3>t &lt;b&gt;</h3>" in out and "<code>x&lt;y&gt;</code>" in out and "<b>bold</b>" in out
    assert "<li>one two</li>" in out and "<pre>&lt;raw&gt;</pre>" in out


def test_lint_and_sniff_formats_list_html(tmp_path):
    conf = REPO / "tests" / "fixtures" / "configs" / "handbook" / "hosta.rc.conf"
    p = carpscope("lint", conf, "-f", "html")
    assert p.returncode in (0, 1) and p.stdout.startswith("<!DOCTYPE html>") and "Findings" in p.stdout
    assert "html" in carpscope("analyze", "--help").stdout
