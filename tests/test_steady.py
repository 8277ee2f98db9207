"""The steady-state fold (carpscope/steady.py, carpscope/_steady.c) changes speed, never results.

Every capture is analysed three ways — the full pipeline for every frame ($CARPSCOPE_STEADY=off),
the Python fold and the compiled fold — and the JSON reports must be identical. Random
scripts (hypothesis) mix what breaks a steady state: replays, copies, wrong keys, checksum
errors, TTL changes, skew changes, gratuitous ARPs that change the inferred VIP set, pauses,
takeovers, two masters, timestamps stepping back, VLANs. Other tests show the fold really
runs (a test that compares two paths proves nothing if neither folds).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from carpscope import cli, steady, synth
from carpscope.analysis import Analysis
from carpscope.auth import AuthFindings, Keyring, Verifier
from carpscope.capture import open_source
from carpscope.vipinfer import VipInference
from tests.harness.sidecar import sidecar_args

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = ROOT / "captures"
BUILT = steady._steady is not None
ENGINES = ["off", "python"] + (["c"] if BUILT else [])


def test_the_compiled_fold_is_built_where_ci_runs():
    """CI has a C compiler (tasks.py installs one): there the compiled fold must exist, or the
    comparisons below would silently cover only the Python fold."""
    if os.environ.get("CI"):
        assert BUILT, "carpscope._steady was not built (setup.py: optional extension failed)"
    assert steady.engine("auto") == ("c" if BUILT else "python")


def run_cli(monkeypatch, engine: str, *argv: str) -> dict:
    monkeypatch.setenv(steady.ENV, engine)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = cli.main(["analyze", *argv, "--format", "json", "--fail-on", "never"])
    assert rc in (0, 1), rc
    return json.loads(out.getvalue())


def same_everywhere(monkeypatch, *argv: str) -> dict:
    reports = {e: run_cli(monkeypatch, e, *argv) for e in ENGINES}
    for e in ENGINES[1:]:
        assert reports[e] == reports["off"], f"engine {e} differs from the full pipeline on {argv}"
    return reports["off"]


@pytest.mark.parametrize("sidecar", sorted(CAPTURES.glob("*.json")), ids=lambda p: p.stem)
def test_bundled_captures_same_report(sidecar, tmp_path, monkeypatch):
    side = json.loads(sidecar.read_text())
    cap = str(CAPTURES / side["pcap"])
    same_everywhere(monkeypatch, cap, *sidecar_args(side, tmp_path))
    same_everywhere(monkeypatch, cap)              # no keys: unchecked HMACs, VIPs inferred only


OTHER = sorted((CAPTURES / "public").glob("*.pcap*")) + sorted((ROOT / "tests" / "data").glob("*.pcap*"))


@pytest.mark.parametrize("path", OTHER, ids=lambda p: p.name)
def test_public_and_link_type_captures_same_report(path, monkeypatch):
    same_everywhere(monkeypatch, str(path))


def test_several_files_merged_same_report(monkeypatch):
    files = [str(CAPTURES / n) for n in ("failover.pcap", "ttl.pcap", "equal-skew.pcap")]
    same_everywhere(monkeypatch, *files)
    same_everywhere(monkeypatch, *files, "--segment", "lan")


# ------------------------------------------------------------------ the fold really runs

def _analysis(engine: str, keys: dict[str, str] | None = None, vips: dict[int, list[str]] | None = None,
              *, vipinfer: bool = True, verifier: bool = True):
    ring = Keyring()
    for label, secret in (keys or {}).items():
        ring.add_passphrase(label, secret)
    for vhid, addrs in (vips or {}).items():
        ring.add_vips(vhid, addrs)
    return Analysis(Verifier(ring) if verifier else None, VipInference(ring) if vipinfer else None,
                    AuthFindings(), steady=engine)


def _steady_capture(path: Path, n: int = 300) -> Path:
    with open(path, "wb") as f:
        w = synth.PcapWriter(f)
        for i in range(n):
            w.write(1000.0 + i, synth.carp_frame("10.0.0.1", 7, counter=100 + i, passphrase="s3cret",
                                                 vips=["10.0.0.7"]))
            w.write(1000.3 + i, synth.vrrp_frame("10.0.1.1", 9, 200, ["10.0.1.9"], version=3))
    return path


@pytest.mark.parametrize("engine", ENGINES[1:])
def test_a_steady_master_is_folded_and_still_verified(engine, tmp_path):
    path = _steady_capture(tmp_path / "steady.pcap")
    an = _analysis(engine, {"k": "s3cret"}, {7: ["10.0.0.7"]})
    an.feed_source(open_source(str(path)))
    rep = an.finish()
    assert an.steady.engine == engine
    assert an.steady.folded >= 2 * 300 - 10          # all but the first adverts of each speaker
    carp = next(g for g in rep.groups if g.protocol == "carp")
    sp = next(iter(carp.speakers.values()))
    assert sp.adverts == 300 and sp.auth == {"ok": 300}          # every HMAC was checked
    assert sp.p_n == 299 and abs(sp.p_sum - 299.0) < 1e-6


@pytest.mark.parametrize("engine", ENGINES[1:])
def test_a_forged_advert_in_a_steady_stream_fails(engine, tmp_path):
    """The fold checks each HMAC: one advert with a wrong HMAC amid good ones is caught."""
    path = tmp_path / "forged.pcap"
    with open(path, "wb") as f:
        w = synth.PcapWriter(f)
        for i in range(50):
            kw = dict(md=bytes(20)) if i == 30 else dict(passphrase="s3cret", vips=["10.0.0.7"])
            w.write(1000.0 + i, synth.carp_frame("10.0.0.1", 7, counter=100 + i, **kw))
    an = _analysis(engine, {"k": "s3cret"}, {7: ["10.0.0.7"]})
    an.feed_source(open_source(str(path)))
    rep = an.finish()
    sp = next(iter(rep.groups[0].speakers.values()))
    assert sp.auth == {"ok": 49, "fail": 1}
    assert an.steady.folded >= 40
    assert any(f.rule == "hmac-mismatch" for f in rep.findings)


@pytest.mark.skipif(not BUILT, reason="the compiled fold is not built here")
@pytest.mark.parametrize("key_len", [0, 1, 20, 63, 64, 65, 200])
@pytest.mark.parametrize("prefix_len", [0, 3, 7, 47, 48, 55, 56, 63, 64, 119, 120])
def test_compiled_hmac_equals_the_hmac_module(key_len, prefix_len):
    import hmac
    key, prefix = os.urandom(key_len), os.urandom(prefix_len)
    st_ = steady._steady.hmac_state(key, prefix)
    for msg in (b"", os.urandom(8), os.urandom(20)):
        assert steady._steady.hmac(st_, msg) == hmac.digest(key, prefix + msg, "sha1")


def test_unknown_engine_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setenv(steady.ENV, "turbo")
    rc = cli.main(["analyze", str(CAPTURES / "failover.pcap"), "--format", "json"])
    err = capsys.readouterr().err
    assert rc == 2 and "CARPSCOPE_STEADY" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------ random scripts

PASS = "tr4nsit"
SPEAKERS = [
    # (kind, src, id, advskew/priority, vips, vlan)
    ("carp", "10.0.0.1", 5, 0, ["10.0.0.50"], ()),
    ("carp", "10.0.0.2", 5, 100, ["10.0.0.50"], ()),
    ("carp", "2001:db8::1", 6, 0, ["2001:db8::60"], ()),
    ("carp", "10.0.0.1", 5, 0, ["10.0.0.50"], (10,)),
    ("vrrp2", "10.0.0.3", 7, 200, ["10.0.0.70"], ()),
    ("vrrp3", "10.0.0.4", 8, 150, ["10.0.0.80"], ()),
]

step = st.one_of(
    st.tuples(st.just("adverts"), st.integers(0, len(SPEAKERS) - 1), st.integers(1, 25)),
    st.tuples(st.sampled_from(["replay", "copy", "wrongkey", "ttl", "badck", "skew", "garp-vmac",
                               "garp-real", "newvip", "gap", "back", "same-counter"]),
              st.integers(0, len(SPEAKERS) - 1), st.integers(0, 6)),
)


def _frame(sp, counter, *, passphrase=PASS, ttl=255, bad=False, skew=None, vips=None):
    kind, src, vid, prio, default_vips, vlans = sp
    if kind == "carp":
        return synth.carp_frame(src, vid, counter=counter, advskew=prio if skew is None else skew,
                                passphrase=passphrase, vips=vips or default_vips, ttl=ttl,
                                bad_checksum=bad, vlans=vlans)
    ver = 2 if kind == "vrrp2" else 3
    return synth.vrrp_frame(src, vid, prio if skew is None else max(1, skew), default_vips, version=ver,
                            ttl=ttl, vlans=vlans, variant="bad" if bad else "pseudo",
                            auth_type=1 if ver == 2 else 0, auth_data=b"pw" if ver == 2 else b"")


def _script_capture(path: Path, script) -> None:
    t = 5000.0
    counters = [1000 * (i + 1) for i in range(len(SPEAKERS))]
    last: dict[int, bytes] = {}
    sent: dict[int, list[bytes]] = {}
    skew: dict[int, int] = {}
    vips: dict[int, list[str]] = {}
    with open(path, "wb") as f:
        w = synth.PcapWriter(f)

        def emit(i, data, dt=1.0):
            nonlocal t
            w.write(t, data)
            last[i] = data
            sent.setdefault(i, []).append(data)
            t += dt

        for kind, i, arg in script:
            sp = SPEAKERS[i]
            nxt = lambda **kw: _frame(sp, counters[i], skew=skew.get(i), vips=vips.get(i), **kw)  # noqa: E731
            if kind == "adverts":
                for _ in range(arg):
                    counters[i] += 1
                    emit(i, nxt())
            elif kind == "replay" and sent.get(i):
                emit(i, sent[i][arg % len(sent[i])])
            elif kind == "copy" and i in last:
                t -= 0.999
                emit(i, last[i], 0.999)
            elif kind == "same-counter":
                emit(i, nxt())
            elif kind == "wrongkey":
                counters[i] += 1
                emit(i, nxt(passphrase="other"))
            elif kind == "ttl":
                counters[i] += 1
                emit(i, nxt(ttl=64))
            elif kind == "badck":
                counters[i] += 1
                emit(i, nxt(bad=True))
            elif kind == "skew":
                skew[i] = 10 * (arg + 1)
            elif kind in ("garp-vmac", "garp-real"):
                mac = synth.vmac(sp[2]) if kind == "garp-vmac" else "02:00:00:00:00:%02x" % (i + 1)
                if ":" not in sp[1]:
                    emit(i, synth.garp_frame(mac, (vips.get(i) or sp[4])[0]), 0.001)
            elif kind == "newvip" and ":" not in sp[1]:
                vips[i] = sp[4] + [f"10.0.9.{arg + 1}"]
                emit(i, synth.garp_frame(synth.vmac(sp[2]), vips[i][-1]), 0.002)
            elif kind == "gap":
                # around the thresholds: copy (<50 ms), master down (3-4.4 s), VIP inference
                # master change (3.5-4.7 s), well past them
                t += (1.6, 2.45, 2.7, 3.2, 7.0, 19.0, -0.96)[arg]
            elif kind == "back":
                t -= 0.5


@settings(max_examples=int(os.environ.get("STEADY_EXAMPLES", "60")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(script=st.lists(step, min_size=1, max_size=30), with_vips=st.booleans())
def test_random_scripts_same_report(script, with_vips, monkeypatch):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "script.pcap"
        _script_capture(path, script)
        keys = Path(d) / "keys"
        keys.write_text(f"lab:{PASS}\n")
        os.chmod(keys, 0o600)
        args = [str(path), "--passphrase-file", str(keys)]
        if with_vips:
            args += ["--vip", "5=10.0.0.50", "--vip", "6=2001:db8::60"]
        same_everywhere(monkeypatch, *args)


def test_a_pause_inside_master_down_is_still_a_master_change_for_vip_inference(tmp_path, monkeypatch):
    """VRRPv3 (priority 150) pauses 3.52 s: still master for the tracker (master down is 3.41 s,
    runs close after 1.1 of it), but a master change for VIP inference (after 3.5 s). A GARP from
    a real MAC then has two candidate groups and must not be attributed to the CARP group; a
    fold that skipped the change would attribute it and verify with another VIP set."""
    path = tmp_path / "pause.pcap"
    carp = dict(passphrase=PASS, vips=["10.0.0.50", "10.0.0.99"])
    with open(path, "wb") as f:
        w = synth.PcapWriter(f)
        t = 100.0
        for i in range(10):
            w.write(t + i, synth.vrrp_frame("10.0.0.4", 8, 150, ["10.0.0.80"], version=3))
        t += 9 + 3.52                                                   # the pause
        w.write(t - 0.2, synth.carp_frame("10.0.0.1", 5, counter=1, **carp))   # CARP's first advert
        w.write(t, synth.vrrp_frame("10.0.0.4", 8, 150, ["10.0.0.80"], version=3))
        w.write(t + 0.3, synth.garp_frame("02:00:00:00:00:01", "10.0.0.99"))
        for i in range(1, 6):
            w.write(t - 0.2 + i, synth.carp_frame("10.0.0.1", 5, counter=1 + i, **carp))
            w.write(t + i, synth.vrrp_frame("10.0.0.4", 8, 150, ["10.0.0.80"], version=3))
    keys = tmp_path / "keys"
    keys.write_text(f"lab:{PASS}\n")
    os.chmod(keys, 0o600)
    rep = same_everywhere(monkeypatch, str(path), "--passphrase-file", str(keys))
    carp_group = next(g for g in rep["groups"] if g["protocol"] == "carp")
    assert carp_group["speakers"][0]["auth"]["status"] != "ok"       # 10.0.0.99 was not attributed


def test_an_advert_after_its_run_was_closed_out_of_time_order(tmp_path):
    """A falls silent; B's advert closes A's run; then a late A advert with an earlier time
    (unordered input) is within A's master-down of its last: not a repeat, its run is closed.
    (Through the CLI VIP inference's group cell already tells; the Analysis API may run
    without VIP inference, so the fold checks the run itself.)"""
    from carpscope.report.jsonreport import report_json
    path = tmp_path / "late.pcap"
    a = dict(passphrase=PASS, vips=["10.0.0.50"])
    with open(path, "wb") as f:
        w = synth.PcapWriter(f)
        for i in range(5):
            w.write(100.0 + i, synth.carp_frame("10.0.0.1", 5, counter=10 + i, **a))
        w.write(108.0, synth.carp_frame("10.0.0.2", 5, counter=500, advskew=100, **a))   # A closed
        w.write(107.0, synth.carp_frame("10.0.0.1", 5, counter=15, **a))                 # late A
        for i in range(1, 4):
            w.write(108.0 + i, synth.carp_frame("10.0.0.2", 5, counter=500 + i, advskew=100, **a))
    reports = {}
    for engine in ENGINES:
        an = _analysis(engine, {"lab": PASS}, {5: ["10.0.0.50"]}, vipinfer=False)
        an.feed_source(open_source(str(path)))
        reports[engine] = report_json(an.finish())
        if engine != "off":
            assert an.steady.folded >= 4
    for engine in ENGINES[1:]:
        assert reports[engine] == reports["off"], engine
    runs = reports["off"]["groups"][0]["masters"]
    assert [r["ip"] for r in runs].count("10.0.0.1") == 2      # the late advert is a run of its own


@settings(max_examples=int(os.environ.get("STEADY_EXAMPLES", "60")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(script=st.lists(step, min_size=1, max_size=30), with_verifier=st.booleans())
def test_random_scripts_same_state_without_vip_inference(script, with_verifier):
    """The Analysis API with fewer stages (no VIP inference, maybe no verifier): the fold's
    own checks must stand without the group cell of VIP inference."""
    from carpscope.report.jsonreport import report_json
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "script.pcap"
        _script_capture(path, script)
        reports = {}
        for engine in ENGINES:
            an = _analysis(engine, {"lab": PASS}, {5: ["10.0.0.50"]}, vipinfer=False, verifier=with_verifier)
            an.feed_source(open_source(str(path)))
            rep = an.finish()
            reports[engine] = (report_json(rep), [f.to_json() for f in rep.findings])
        for engine in ENGINES[1:]:
            assert reports[engine] == reports["off"], engine
