"""The systemd unit of docs/ (docs/carpscope-sensor.service): systemd accepts it, its command
line is one carpscope parses, and the privilege set it gives (CAP_NET_RAW alone) is enough for
a sensor with promiscuous capture, the exporter and evidence on a real bridge with a real ucarp.

systemd itself is not running here: `systemd-analyze verify` reads the unit as systemd would,
and `setpriv` gives the sensor exactly the unit's capability sets (inheritable, ambient and
bounding = CAP_NET_RAW, no new privileges). Root's identity stays (the interpreter may live
where only root reads, and the kernel checks capabilities, not the user, for capture); the
change of user is `DynamicUser`'s job, and `sniff -Z` is tested in test_sniff.py.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from carpscope import cli

try:
    from tests.harness import Host, Lab, Ucarp, require_root, tool
except ImportError:
    from harness import Host, Lab, Ucarp, require_root, tool

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "docs" / "carpscope-sensor.service"


def unit() -> dict[str, list[str]]:
    text = UNIT.read_text().replace("\\\n", " ")
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z]+)=(.*)$", line.strip())
        if m:
            out.setdefault(m.group(1), []).append(m.group(2))
    return out


def exec_argv(interfaces: str = "em0 em1", metrics: str = "127.0.0.1:9417", opts: str = "") -> list[str]:
    """ExecStart as systemd expands it (specifiers %S and %d, $VAR split, ${VAR} whole)."""
    (line,) = unit()["ExecStart"]
    words = []
    for w in shlex.split(line):
        w = w.replace("%S", "/var/lib").replace("%d", "/run/credentials/carpscope-sensor.service")
        if w == "$INTERFACES":
            words += interfaces.split()
        elif w == "$CARPSCOPE_OPTS":
            words += opts.split()
        else:
            words.append(w.replace("${METRICS}", metrics))
    return words


def test_unit_privileges_restart_and_state():
    u = unit()
    assert u["DynamicUser"] == ["yes"] and u["NoNewPrivileges"] == ["yes"]
    assert u["AmbientCapabilities"] == ["CAP_NET_RAW"] and u["CapabilityBoundingSet"] == ["CAP_NET_RAW"]
    assert u["Restart"] == ["on-failure"] and u["StateDirectory"] == ["carpscope"]
    assert u["LoadCredential"] == ["keys:/etc/carpscope/keys"]
    assert "1" in u["SuccessExitStatus"][0].split()


def test_exec_start_is_a_carpscope_command_line():
    argv = exec_argv(opts="--inventory /etc/carpscope/site.toml")
    assert argv[0] == "/opt/carpscope/bin/carpscope"
    args = cli.build_parser().parse_args(argv[1:])
    assert args.command == "sniff" and args.interfaces == ["em0", "em1"]
    assert args.metrics == "127.0.0.1:9417" and args.evidence == "/var/lib/carpscope"
    assert args.passphrase_file == ["/run/credentials/carpscope-sensor.service/keys"]
    assert args.format == "jsonl" and args.quiet and args.inventory == ["/etc/carpscope/site.toml"]


def test_systemd_analyze_verify(tmp_path):
    sa = shutil.which("systemd-analyze")
    if sa is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("systemd-analyze is not installed but CI=true (apt-get install systemd)", pytrace=False)
        pytest.skip("systemd-analyze not installed")
    carpscope = shutil.which("carpscope", path=os.path.dirname(sys.executable))
    assert carpscope, "the carpscope script beside this interpreter"
    (tmp_path / "sensor.env").write_text("INTERFACES=lo\nMETRICS=9417\n")
    (tmp_path / "keys").write_text("k:v\n")
    text = UNIT.read_text().replace("/opt/carpscope/bin/carpscope", carpscope)
    text = text.replace("/etc/carpscope/sensor.env", str(tmp_path / "sensor.env"))
    text = text.replace("/etc/carpscope/keys", str(tmp_path / "keys"))
    path = tmp_path / "carpscope-sensor.service"
    path.write_text(text)
    r = subprocess.run([sa, "verify", str(path)], capture_output=True, text=True, timeout=60)
    said = [ln for ln in (r.stdout + r.stderr).splitlines() if "carpscope-sensor.service" in ln]
    assert r.returncode == 0 and not said, r.stdout + r.stderr
    # the check can fail: a key systemd does not know is reported
    (tmp_path / "bad.service").write_text(text.replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"))
    r = subprocess.run([sa, "verify", str(tmp_path / "bad.service")], capture_output=True, text=True, timeout=60)
    assert "Unknown key" in r.stdout + r.stderr


_SCRAPE = """
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())
"""


@pytest.mark.live
def test_cap_net_raw_alone_is_enough(tmp_path):
    require_root(("ip", "ucarp", "setpriv"))
    caps = ["--inh-caps=-all,+net_raw", "--ambient-caps=-all,+net_raw", "--bounding-set=-all,+net_raw",
            "--no-new-privs"]
    ev = tmp_path / "evidence"
    ev.mkdir()
    with Lab([Host("a", "10.79.8.2/24")]) as lab:
        lab.start(Ucarp("a", 4, "unit-pass", "10.79.8.1"))
        lab.wait_state("a", "carp:4", "MASTER", 9.0)
        sensor = lab.spawn_in_switch([tool("setpriv"), *caps, "--", sys.executable, "-m", "carpscope", "sniff",
                                      lab.bridge, "--metrics", "9417", "--evidence", str(ev), "-f", "jsonl", "-q"],
                                     "sensor")
        got, status = "", ""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            r = lab.exec_in_switch([sys.executable, "-c", _SCRAPE, "http://127.0.0.1:9417/metrics"], check=False)
            got = r.stdout
            if 'carpscope_masters{family="4",protocol="carp",segment="br0",vhid="4"} 1.0' in got:
                break
            time.sleep(0.5)
        status = Path(f"/proc/{sensor.pid}/status").read_text()
        link = lab.exec_in_switch(["ip", "-d", "link", "show", lab.bridge]).stdout
        alive = sensor.alive()
        lab.stop(sensor)
        log = sensor.output()
    assert alive, log
    assert 'carpscope_masters{family="4",protocol="carp",segment="br0",vhid="4"} 1.0' in got, got[-2000:] + log
    assert 'carpscope_interface_up{interface="br0"} 1.0' in got
    eff = int(re.search(r"^CapEff:\s*([0-9a-f]+)", status, re.M).group(1), 16)
    assert eff == 1 << 13, hex(eff)                     # CAP_NET_RAW, and nothing else
    assert re.search(r"promiscuity [1-9]", link), link    # promiscuous without CAP_NET_ADMIN
    events = [json.loads(ln) for ln in log.splitlines() if ln.startswith("{")]
    assert events[0]["type"] == "start" and events[0]["promiscuous"] is True
    assert "carpscope: error" not in log and "Traceback" not in log and events[-1]["type"] == "summary"
