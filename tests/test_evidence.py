"""`sniff --evidence DIR`: the rolling window, the pcapng files a finding at or above --fail-on
starts (window, then frames until it ends), their names in the events and the final report,
their bounds (size, count), and the safety of the writes. The sniff loop runs on a fake clock
with scripted frames; the files are read back with dpkt (an independent reader) and tshark.
A live split brain's evidence is checked in test_fleet_live.py.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys

import dpkt
import pytest

from carpscope import evidence as ev_mod
from carpscope.capture.taps import Tap
from carpscope.commands import sniff as sniff_cmd
from carpscope.commands.keys import build_auth
from carpscope.engine import Engine
from carpscope.evidence import Evidence, EvidenceError, Window, check_dir

from tests.test_sniff import T0, Clock, FakeSource, carp, make_args

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(tmp_path, frames, duration, *, extra=(), window=20.0, max_files=100, fail_on=None):
    clock = Clock()
    args = make_args(tmp_path, *extra)
    verifier, vipinfer, intent, _ = build_auth(args)
    engine = Engine(verifier, vipinfer, intent)
    out = io.StringIO()
    emit = sniff_cmd.JsonLines(out, "fake0")
    taps = [Tap(FakeSource(clock, frames))]
    d = tmp_path / "ev"
    d.mkdir(exist_ok=True)
    ev = Evidence(str(d), fail_on or args.policy.fail_on, taps, window=window, max_files=max_files, emit=emit)
    s = sniff_cmd.Sniffer(engine, taps, emit=emit, duration=duration, clock=clock.time, mono=clock.mono,
                          wait=clock.wait, evidence=ev, policy=sniff_cmd.live_policy(args, ["fake0"]))
    s.run()
    report = s.finish()
    return s, report, [json.loads(line) for line in out.getvalue().splitlines()], d


def frames_of(path) -> list[tuple[float, str]]:
    """(time, IPv4 source) of each frame, read by dpkt."""
    out = []
    with open(path, "rb") as f:
        for ts, buf in dpkt.pcapng.Reader(f):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            out.append((float(ts), ".".join(str(b) for b in ip.src) if isinstance(ip, dpkt.ip.IP) else ""))
    return out


def sniff_ts(ev: dict) -> float:
    import datetime as dt
    return dt.datetime.strptime(ev["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc).timestamp()


def test_window_is_bounded_by_time_and_bytes():
    w = Window(10.0, limit=1000)
    for i in range(30):
        w.add(T0 + i, b"x" * 60)
    w.trim(T0 + 29)
    assert [t - T0 for t, _ in w.frames] == list(range(19, 30)) and w.bytes == 11 * 60
    for i in range(30):                      # a flood: the byte bound shortens the window
        w.add(T0 + 29.5, b"y" * 100)
    assert w.bytes <= 1000 and len(w.frames) == 10


def split_brain(b_from=8.3, b_until=16.0, until=40.0):
    return carp("10.0.0.2", 0, until, "secret-one") + carp("10.0.0.3", b_from, b_until, "secret-two", advskew=100)


def test_split_brain_evidence_window_then_until_it_ends(tmp_path):
    # split brain alone (passphrase-mismatch, whose evidence goes on with A's adverts, ignored)
    s, report, events, d = run(tmp_path, split_brain(), 38, extra=("--ignore", "passphrase-mismatch"))
    started = [e for e in events if e["type"] == "evidence" and e["state"] == "started"]
    closed = [e for e in events if e["type"] == "evidence" and e["state"] == "closed"]
    assert len(started) == 1 and len(closed) == 1
    path = started[0]["pcapng"]
    assert os.path.dirname(path) == str(d) and os.path.basename(path).startswith("carpscope-")
    assert closed[0]["reason"] == "ended" and set(closed[0]["rules"]) >= {"split-brain"}
    raised = [e for e in events if e["type"] == "finding-raised" and e["severity"] == "error"]
    assert raised and all(e["evidence"]["pcapng"] == [path] for e in raised)
    # the final report names it in the finding
    sb = next(f for f in report.findings if f.rule == "split-brain")
    assert sb.evidence["pcapng"] == [path]
    got = frames_of(path)
    assert {src for _, src in got} == {"10.0.0.2", "10.0.0.3"}
    first_raise = min(sniff_ts(ev) for ev in raised)
    # the window: 20 s before the raise (the capture started at 0, so from its start)
    assert got[0][0] == pytest.approx(T0) and first_raise - 20 < T0
    # until the split brain ended and TAIL_S more, not to the end of the capture: the episode
    # ends with the last advert of the overlap (A's, until B's master-down interval ran out)
    last_b = max(t for t, src in got if src == "10.0.0.3")
    assert last_b == pytest.approx(T0 + 15.3)
    assert T0 + 15.3 <= sb.last_seen <= T0 + 15.3 + 4
    assert sb.last_seen + ev_mod.TAIL_S - 1 <= got[-1][0] <= sb.last_seen + ev_mod.TAIL_S + 1.5
    assert got[-1][0] < T0 + 37 and first_raise > 0
    assert closed[0]["frames"] == len(got)
    data = open(path, "rb").read()
    assert b"secret-one" not in data and b"secret-two" not in data        # adverts carry digests only


def test_a_second_episode_gets_a_second_file(tmp_path):
    frames = (carp("10.0.0.2", 0, 70, "secret-one") + carp("10.0.0.3", 8.3, 14, "secret-two", advskew=100)
              + carp("10.0.0.3", 45.3, 52, "secret-two", advskew=100))
    s, report, events, d = run(tmp_path, frames, 68, extra=("--ignore", "passphrase-mismatch"))
    files = [e["pcapng"] for e in events if e["type"] == "evidence" and e["state"] == "started"]
    assert len(files) == 2 and len(set(files)) == 2
    sb = next(f for f in report.findings if f.rule == "split-brain")
    assert sb.evidence["pcapng"] == files
    second = frames_of(files[1])
    assert any(src == "10.0.0.3" and t > T0 + 45 for t, src in second)


def test_below_fail_on_nothing_is_written(tmp_path):
    # a demoted speaker is a warning: no file with the default --fail-on error ...
    from carpscope.synth import carp_frame
    frames = [(T0 + t, carp_frame("10.0.0.2", 7, advskew=240, counter=t + 1, passphrase="secret-one",
                                  vips=["10.0.0.1"])) for t in range(12)]
    _, report, events, d = run(tmp_path, frames, 11)
    assert any(f.rule == "demoted" for f in report.findings)
    assert not os.listdir(d) and not [e for e in events if e["type"] == "evidence"]
    # ... and one with --fail-on warning
    _, _, events, d = run(tmp_path, frames, 11, fail_on="warning")
    assert len(os.listdir(d)) == 1


def test_file_count_is_bounded_and_foreign_files_are_left(tmp_path):
    d = tmp_path / "ev"
    d.mkdir()
    (d / "notes.txt").write_text("mine")
    os.symlink("/etc/hostname", d / "carpscope-20000101T000000Z-x-y.pcapng")     # not a regular file
    for n in range(4):
        (d / f"carpscope-2001010{n + 1}T000000Z-old-split-brain.pcapng").write_bytes(b"old")
    _, _, events, _ = run(tmp_path, split_brain(), 30, max_files=3)
    names = sorted(os.listdir(d))
    assert "notes.txt" in names and "carpscope-20000101T000000Z-x-y.pcapng" in names
    ours = [n for n in names if ev_mod.NAME_RE.match(n) and not os.path.islink(d / n)]
    assert len(ours) == 3 and "carpscope-20010104T000000Z-old-split-brain.pcapng" in ours
    new = next(e["pcapng"] for e in events if e["type"] == "evidence")
    assert os.path.basename(new) in ours


def test_size_bound_closes_the_file_and_does_not_restart_it(tmp_path, monkeypatch):
    monkeypatch.setattr(ev_mod, "FILE_BYTES", 1500)
    _, report, events, d = run(tmp_path, split_brain(b_until=30), 28, extra=("--ignore", "passphrase-mismatch"))
    closed = [e for e in events if e["type"] == "evidence" and e["state"] == "closed"]
    assert [e["reason"] for e in closed] == ["size"]
    assert len(os.listdir(d)) == 1 and os.path.getsize(closed[0]["pcapng"]) < 1500 + 200


def test_a_finding_that_goes_on_keeps_one_file_of_bounded_duration(tmp_path, monkeypatch):
    """passphrase-mismatch goes on as long as either speaker advertises: the file stops after
    RECORD_S, and no other file is started for it while it stays raised."""
    monkeypatch.setattr(ev_mod, "RECORD_S", 12.0)
    _, _, events, d = run(tmp_path, split_brain(b_until=16, until=60), 58)
    closed = [e for e in events if e["type"] == "evidence" and e["state"] == "closed"]
    assert [e["reason"] for e in closed] == ["duration"] and len(os.listdir(d)) == 1
    got = frames_of(closed[0]["pcapng"])
    started = next(e for e in events if e["type"] == "evidence")
    assert got[-1][0] - T0 < 8.3 + 12 + 2 and "since" in started


def test_existing_file_is_never_overwritten(tmp_path):
    d = tmp_path / "ev"
    d.mkdir()
    # the name the first recording will take (same second, same rule): taken already
    _, _, events, _ = run(tmp_path, split_brain(), 20)
    first = next(e["pcapng"] for e in events if e["type"] == "evidence")
    for f in os.listdir(d):
        os.unlink(d / f)
    with open(first, "wb") as f:
        f.write(b"precious")
    _, _, events, _ = run(tmp_path, split_brain(), 20)
    again = next(e["pcapng"] for e in events if e["type"] == "evidence")
    assert again != first and again.endswith("-2.pcapng")
    assert open(first, "rb").read() == b"precious"


def test_check_dir_refuses_what_is_not_a_directory(tmp_path):
    (tmp_path / "file").write_text("x")
    os.symlink(tmp_path, tmp_path / "link")
    for name, why in (("missing", "no such directory"), ("file", "not a directory"),
                      ("link", "is a symbolic link")):
        with pytest.raises(EvidenceError, match=why):
            check_dir(str(tmp_path / name))
    assert check_dir(str(tmp_path)) == str(tmp_path)


def test_bad_evidence_dir_is_one_line_before_capture(tmp_path):
    r = subprocess.run([sys.executable, "-m", "carpscope", "sniff", "lo", "--evidence", str(tmp_path / "nope"),
                        "--duration", "1"], capture_output=True, text=True, timeout=30, cwd=REPO,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == f"carpscope: error: --evidence {tmp_path / 'nope'}: no such directory"


@pytest.mark.tshark
def test_tshark_opens_the_evidence(tmp_path):
    _, _, events, _ = run(tmp_path, split_brain(), 30)
    path = next(e["pcapng"] for e in events if e["type"] == "evidence")
    tshark = shutil.which("tshark")
    r = subprocess.run([tshark, "-r", path, "-T", "fields", "-e", "frame.interface_name", "-e", "ip.src"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert {row[0] for row in rows} == {"fake0"} and {row[1] for row in rows} == {"10.0.0.2", "10.0.0.3"}
    capinfos = shutil.which("capinfos")
    if capinfos:
        info = subprocess.run([capinfos, path], capture_output=True, text=True, timeout=60).stdout
        assert "carpscope evidence: " in info
