#!/usr/bin/env python3
"""Set up and run carpscope's two everyday jobs on a fresh machine with only Python 3.11+.

    python3 tasks.py demo   # venv + install, then analyze the bundled captures
    python3 tasks.py test   # venv + install with test extras (+ Debian packages as root), run pytest

Extra arguments after `test` go to pytest (e.g. `python3 tasks.py test -k decode`).
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
# chromium: the HTML report tests (headless); jq: `sniff | jq` in the live tests; prometheus
# (with promtool) and prometheus-alertmanager: the shipped alert rules and the fleet test (their
# own services are never left running: the tests start their instances in namespaces);
# systemd: systemd-analyze checks the unit of docs/
APT_PACKAGES = ["ucarp", "keepalived", "tcpdump", "tshark", "nftables", "iproute2", "tmux", "chromium", "jq",
                "prometheus", "prometheus-alertmanager", "systemd", "tcpreplay"]
APT_COMMANDS = {"ucarp": "ucarp", "keepalived": "keepalived", "tcpdump": "tcpdump", "tshark": "tshark",
                "nftables": "nft", "iproute2": "ip", "tmux": "tmux", "chromium": "chromium", "jq": "jq",
                "prometheus": "promtool", "prometheus-alertmanager": "prometheus-alertmanager",
                "systemd": "systemd-analyze", "tcpreplay": "tcpreplay"}
SERVICES_OFF = ["prometheus", "prometheus-alertmanager"]    # started by Debian's packages on a systemd host


def run(cmd: list[str], **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def apt_install(packages: list[str]) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-qq"], env=env)
    # tshark asks whether non-root users may capture: answer no, without a prompt
    subprocess.run(["debconf-set-selections"], input=b"wireshark-common wireshark-common/install-setuid boolean false\n",
                   check=False)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], env=env)
    if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        off = [s for s in SERVICES_OFF if s in packages]
        if off:      # the tests run their own instances; the packages' own must not stay running
            subprocess.run(["systemctl", "disable", "--now", *off], check=False)


def ensure_venv(extras: str = "") -> None:
    if not PY.exists():
        try:
            run([sys.executable, "-m", "venv", str(VENV)])
        except subprocess.CalledProcessError:
            if not is_root() or not shutil.which("apt-get"):
                sys.exit("tasks.py: python3 -m venv failed; install the venv module (Debian: apt-get install python3-venv)")
            shutil.rmtree(VENV, ignore_errors=True)
            apt_install([f"python3.{sys.version_info.minor}-venv"])
            run([sys.executable, "-m", "venv", str(VENV)])
    run([str(PY), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", f".{extras}"], cwd=ROOT)


def ensure_system_packages() -> None:
    missing = [p for p in APT_PACKAGES if not shutil.which(APT_COMMANDS[p])
               and not Path("/usr/sbin", APT_COMMANDS[p]).exists()]
    if not missing:
        return
    if is_root() and shutil.which("apt-get"):
        apt_install(missing)
    else:
        print(f"tasks.py: not root: the live tests that need {', '.join(missing)} will be skipped", flush=True)


def ensure_build_tools() -> None:
    """A C compiler and the Python headers, so that `pip install` compiles the engine (mypyc)
    and the HMAC kernel: the tests compare the compiled engine with the Python source. Without
    them the install still works (the source runs), and those tests skip outside CI."""
    import sysconfig
    missing = []
    if not (shutil.which("gcc") or shutil.which("cc")):
        missing.append("gcc")
    if not Path(sysconfig.get_paths()["include"], "Python.h").exists():
        missing.append(f"python3.{sys.version_info.minor}-dev")
    if missing and is_root() and shutil.which("apt-get"):
        apt_install(missing)
    elif missing:
        print(f"tasks.py: no {', '.join(missing)}: carpscope installs as pure Python (slower)", flush=True)


def demo(argv: list[str]) -> int:
    ensure_venv()
    caps = sorted(glob.glob(str(ROOT / "captures" / "**" / "*.pcap*"), recursive=True))
    keys = sorted(glob.glob(str(ROOT / "captures" / "*.keys")))
    cmd = [str(VENV / "bin" / "carpscope"), "analyze", *caps]
    for k in keys:
        os.chmod(k, 0o600)          # git does not keep file modes: keys files are private
        cmd += ["--passphrase-file", k]
    print("+", "carpscope analyze captures/**/*.pcap* --passphrase-file captures/*.keys", flush=True)
    rc = subprocess.run(cmd + argv, cwd=ROOT).returncode
    # the bundled captures hold planted problems: findings (exit 1) are the expected outcome
    return 0 if rc in (0, 1) else rc


def test(argv: list[str]) -> int:
    ensure_system_packages()
    ensure_build_tools()
    ensure_venv("[test]")
    return subprocess.run([str(PY), "-m", "pytest", *argv], cwd=ROOT).returncode


def main() -> int:
    jobs = {"demo": demo, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in jobs:
        print(__doc__)
        return 2
    return jobs[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
