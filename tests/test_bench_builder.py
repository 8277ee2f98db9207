"""The benchmark's mixed capture, built small, yields exactly what was planted in it.

bench/make_captures.py builds the 2M-frame benchmark capture with ``mixed(path, scale)``; here
the same generator runs at scale 0.01 (20,000 frames), so a benchmark number always measures
an analysis that finds the split brain with its cause, keeps quiet about the failover and
verifies every CARP group with the key it was signed with.
"""
from __future__ import annotations

import json
import stat
import sys

import pytest

from conftest import REPO, run_cli

sys.path.insert(0, str(REPO / "bench"))
import make_captures  # noqa: E402

SCALE = 0.01


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    man = make_captures.mixed(d / "mixed.pcap", scale=SCALE)
    args = [str(d / "mixed.pcap"), "--passphrase-file", man["keys"], "--format", "json", "--fail-on", "never"]
    for v in man["vip_args"]:
        args += ["--vip", v]
    rc, out, err = run_cli("analyze", *args)
    assert rc == 0, err
    return d, man, json.loads(out), err


def test_capture_shape(built):
    d, man, rep, _ = built
    assert man["frames"] == int(2_000_000 * SCALE)
    assert rep["sources"][0]["adverts"] == man["protocol112"]
    assert rep["sources"][0]["malformed"] == 0
    # CARP is about 1 % of the frames (plus VRRP and the GARPs of new masters)
    assert 0.01 <= man["protocol112"] / man["frames"] <= 0.03
    assert man["garp"] > 0 and man["background"] > 0.95 * man["frames"]


def test_keys_file(built):
    d, man, _, err = built
    keys = d / "mixed.keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    labels = [line.split(":", 1)[0] for line in keys.read_text().splitlines()]
    assert labels == ["prod", "dmz", "lab"]
    assert "readable by group" not in err


def test_exactly_the_planted_findings(built):
    _, _, rep, _ = built
    found = sorted((f["rule"], f["vhid"], f["cause"]) for f in rep["findings"])
    assert found == [("passphrase-mismatch", 5, "passphrase"), ("split-brain", 5, "passphrase")]


def test_split_brain_and_its_cause(built):
    _, man, rep, _ = built
    sb = next(f for f in rep["findings"] if f["rule"] == "split-brain")
    assert sb["evidence"]["speakers"] == ["10.0.5.2", "10.0.5.3"]
    assert "10.0.5.2 verifies with key 'prod', 10.0.5.3 with 'lab'" in sb["evidence"]["why"]
    start, stop = man["planted"]["split-brain"]["from_to"]
    base = make_captures.BASE_TS
    # the window opens with the rogue's third advert at the latest and closes when the rogue
    # has been silent for its master-down interval
    assert base + start <= sb["first_seen"] <= base + start + 3 * 1.2
    assert base + stop - 1.2 <= sb["last_seen"] <= base + stop + 3.5 * 1.2
    pm = next(f for f in rep["findings"] if f["rule"] == "passphrase-mismatch")
    assert pm["evidence"]["key_labels"] == ["lab", "prod"]


def test_failover_without_finding(built):
    _, man, rep, _ = built
    g = next(g for g in rep["groups"] if g["protocol"] == "carp" and g["vhid"] == 4)
    # the backup takes over one master-down interval (3 x 1 s + 100/256 s) after the master's
    # last advert: a change of master after a short silence, not an outage (no master-gap)
    assert [(c["from"], c["to"], c["kind"]) for c in g["changes"]] == [
        (None, "10.0.4.2", "initial"), (None, "10.0.4.3", "after-gap")]
    a, b = g["masters"]
    assert (a["ip"], b["ip"]) == ("10.0.4.2", "10.0.4.3") and g["master"] == "10.0.4.3"
    assert 3 + 100 / 256 <= b["from"] - a["to"] <= 3 + 100 / 256 + 0.02
    assert abs(a["to"] - (make_captures.BASE_TS + man["planted"]["failover"]["at"])) <= 1.01
    assert not [f for f in rep["findings"] if f["vhid"] == 4]


def test_every_carp_group_verifies_with_its_key(built):
    _, man, rep, _ = built
    want = man["planted"]["auth"] | {"5": {"prod", "lab"}}
    got = {}
    for g in rep["groups"]:
        if g["protocol"] != "carp":
            continue
        for s in g["speakers"]:
            assert s["auth"]["status"] == "ok", (g["vhid"], s)
            assert s["auth"]["inferred_vips"] is False
            got.setdefault(str(g["vhid"]), set()).add(s["auth"]["key"])
    assert {k: (v if isinstance(v, set) else {v}) for k, v in want.items()} == got
    protos = sorted((g["protocol"], g["vhid"]) for g in rep["groups"])
    assert protos == [("carp", 1), ("carp", 2), ("carp", 3), ("carp", 4), ("carp", 5), ("carp", 6),
                      ("vrrp2", 21), ("vrrp3", 20)]


def test_builder_is_deterministic(built, tmp_path):
    d, man, _, _ = built
    again = make_captures.mixed(tmp_path / "mixed.pcap", scale=SCALE)
    assert (tmp_path / "mixed.pcap").read_bytes() == (d / "mixed.pcap").read_bytes()
    assert {k: v for k, v in again.items() if k != "keys"} == {k: v for k, v in man.items() if k != "keys"}
