"""Secrets never leave carpscope: no passphrase (nor its hex, base64 or BSD key form) in any
output format, the -o report, stderr, the inventory it writes, exception text (internal
errors, with and without --debug) or the process's command line; a passphrase file that
group or others can read gives a warning (naming the file, not the content).

Every key source is used at once: --passphrase-file, $CARPSCOPE_PASSPHRASES, --passphrase,
an inventory's passphrase_file, rc.conf ``pass``, keepalived ``auth_pass``, ucarp ``--pass``;
the capture has adverts signed with each (so every key is exercised: verified, mismatched,
diagnosed) plus a VRRPv2 simple-text password on the wire. The formats are whatever
``carpscope analyze --help`` / ``carpscope lint --help`` list, so formats added later are
covered without editing this file.
"""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time

import pytest

from carpscope import synth
from conftest import REPO, run_cli, stderr_messages

SECRETS = {
    "file": "Fi1e-Passphrase-Qx7",
    "wrong": "Wr0ng-Passphrase-Zz9",       # in the file, matches nothing: diagnosis tries it
    "long": "L0ng-Passphrase-Longer-Than-19-Bytes",
    "env": "Env-Passphrase-Kk3",
    "cli": "Cli-Passphrase-Mm1",
    "inv": "Inventory-File-Pass-Ll4",
    "rc": "RcConf-Pass-Hh5",
    "ka": "KaPw8x!z",                      # keepalived auth_pass (8 characters at most)
    "ucarp": "Ucarp-Pass-Jj2",
    "wire": "WirePw77",                    # VRRPv2 simple password, on the wire
    "unknown": "N0body-Kn0ws-This-1",      # signs vhid 12; carpscope is never told
}


def leak_forms(secret: str) -> list[str]:
    raw = secret.encode()
    forms = {secret, raw.hex(), raw.hex().upper(), base64.b64encode(raw).decode().rstrip("=")}
    if len(raw) > 19:
        forms.add(raw[:19].decode())            # what BSD ifconfig keeps
    forms.add(synth.bsd_key(secret).hex())
    return sorted(forms)


def assert_clean(text: str, where: str, allowed=()) -> None:
    for name, secret in SECRETS.items():
        if name in allowed:
            continue
        for form in leak_forms(secret):
            assert form not in text, f"{name} secret ({form!r}) leaked in {where}"


def format_choices(command: str) -> list[str]:
    rc, out, err = run_cli(command, "--help")
    m = re.search(r"--format \{([^}]*)\}", out)
    assert rc == 0 and m, out
    return m.group(1).split(",")


# ------------------------------------------------------------------ the scene

@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    d = tmp_path_factory.mktemp("secrets")
    keys = d / "keys"
    keys.write_text(f"main:{SECRETS['file']}\nother:{SECRETS['wrong']}\nlong:{SECRETS['long']}\n")
    keys.chmod(0o600)
    env_keys = d / "env.keys"
    env_keys.write_text(f"envkey:{SECRETS['env']}\n")
    env_keys.chmod(0o600)
    (d / "inv.pass").write_text(SECRETS["inv"] + "\n")
    (d / "inv.pass").chmod(0o600)
    (d / "site.toml").write_text(f"""version = 1
[[segment]]
name = "lan"
network = "192.0.2.0/24"
[[group]]
name = "g9"
protocol = "carp"
id = 9
segment = "lan"
vips = ["192.0.2.109"]
passphrase_label = "g9"
passphrase_file = "inv.pass"
[[host]]
name = "h9"
addresses = ["192.0.2.9/24"]
[[host.member]]
group = "g9"
advskew = 0
""")
    (d / "fw1.rc.conf").write_text(f"""hostname="fw1"
ifconfig_em0="inet 192.0.2.6/24"
ifconfig_em0_alias0="inet vhid 6 pass {SECRETS['rc']} 192.0.2.106/32"
""")
    (d / "lb1.keepalived.conf").write_text(f"""vrrp_instance VI_7 {{
    state MASTER
    interface eth0
    virtual_router_id 7
    priority 150
    advert_int 1
    authentication {{
        auth_type PASS
        auth_pass {SECRETS['ka']}
    }}
    virtual_ipaddress {{
        192.0.2.107/24
    }}
}}
""")
    (d / "web.service").write_text(f"""[Service]
ExecStart=/usr/sbin/ucarp --interface=eth0 --srcip=192.0.2.8 --vhid=8 --pass={SECRETS['ucarp']} --addr=192.0.2.108
""")
    cap = d / "scene.pcap"
    signed = [(5, "file"), (6, "rc"), (8, "ucarp"), (9, "inv"), (10, "env"), (11, "cli"), (12, "unknown"),
              (14, "long")]
    with open(cap, "wb") as f:
        w = synth.PcapWriter(f)
        t = 1_700_000_000.0
        for i in range(4):
            for vhid, who in signed:
                w.write(t, synth.carp_frame(f"192.0.2.{vhid}", vhid, counter=i + 1, passphrase=SECRETS[who],
                                            vips=[f"192.0.2.{100 + vhid}"]))
                t += 0.05
            # vrid 7: the wire password differs from keepalived's auth_pass (a mismatch to report)
            w.write(t, synth.vrrp_frame("192.0.2.7", 7, 150, ["192.0.2.107"], auth_type=1,
                                        auth_data=SECRETS["wire"].encode()))
            w.write(t, synth.vrrp_frame("192.0.2.17", 7, 100, ["192.0.2.107"], auth_type=1,
                                        auth_data=SECRETS["ka"].encode()))
            t += 1
    env = {"CARPSCOPE_PASSPHRASES": str(env_keys)}
    args = ["--passphrase-file", keys, "--passphrase", SECRETS["cli"], "--inventory", d / "site.toml",
            "--rc-conf", d / "fw1.rc.conf", "--config", d / "lb1.keepalived.conf", "--config", d / "web.service",
            "--vip", "5=192.0.2.105", "--vip", "10=192.0.2.110", "--vip", "11=192.0.2.111",
            "--vip", "12=192.0.2.112", "--vip", "14=192.0.2.114"]
    return dict(dir=d, cap=cap, args=[str(a) for a in args], env=env,
                configs=[d / "site.toml", d / "fw1.rc.conf", d / "lb1.keepalived.conf", d / "web.service"])


def run(*args, env=None, stdin=None, timeout=120):
    e = dict(os.environ, NO_COLOR="1")
    e.pop("COLUMNS", None)
    e.update(env or {})
    p = subprocess.run([sys.executable, "-m", "carpscope", *map(str, args)], capture_output=True, cwd=REPO,
                       env=e, timeout=timeout, input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


# ------------------------------------------------------------------ every output

ANALYZE_FORMATS = format_choices("analyze")
LINT_FORMATS = format_choices("lint")


def test_formats_found():
    assert {"text", "json", "jsonl"} <= set(ANALYZE_FORMATS) and {"text", "json"} <= set(LINT_FORMATS)


@pytest.mark.parametrize("fmt", ANALYZE_FORMATS)
def test_analyze_output_has_no_secret(scene, fmt, tmp_path):
    out_file = tmp_path / f"report.{fmt}"
    rc, out, err = run("analyze", scene["cap"], *scene["args"], "--format", fmt, "-o", out_file, env=scene["env"])
    assert rc in (0, 1), err
    assert "internal error" not in err and "Traceback" not in err, err
    report = out_file.read_text()
    assert report.strip(), "the -o report is empty"
    for text, where in ((out, "stdout"), (err, "stderr"), (report, f"-o report ({fmt})")):
        assert_clean(text, where)
    # the keys were really used: the report knows vhid 5 by its label
    rc, out, err = run("analyze", scene["cap"], *scene["args"], "--format", fmt, env=scene["env"])
    assert_clean(out, f"stdout ({fmt})")
    assert_clean(err, f"stderr ({fmt})")


def test_keys_were_used(scene):
    """The scene exercises the keys: vhid 5 verifies with label 'main', vhid 12 fails."""
    rc, out, err = run("analyze", scene["cap"], *scene["args"], "--format", "json", env=scene["env"])
    rep = json.loads(out)
    by_vhid = {g["vhid"]: g for g in rep["groups"]}
    assert "main" in json.dumps(by_vhid[5]) and "envkey" in json.dumps(by_vhid[10])
    assert any(f["rule"].startswith("auth") or "auth" in f["rule"] for f in rep["findings"]), \
        [f["rule"] for f in rep["findings"]]


@pytest.mark.parametrize("extra", [["--adverts"], ["--adverts", "--all-frames"], ["--format", "jsonl"]],
                         ids=["adverts", "adverts-all-frames", "jsonl-adverts"])
def test_advert_lines_have_no_secret(scene, extra):
    rc, out, err = run("analyze", scene["cap"], *scene["args"], *extra, env=scene["env"])
    assert rc in (0, 1), err
    assert out.count("\n") > 30
    assert_clean(out, "advert lines")
    assert_clean(err, "stderr")


def test_stdin_source_has_no_secret(scene):
    rc, out, err = run("analyze", "-", *scene["args"], "--format", "json", env=scene["env"],
                       stdin=scene["cap"].read_bytes())
    assert rc in (0, 1), err
    assert_clean(out + err, "stdin analysis")


@pytest.mark.parametrize("fmt", LINT_FORMATS)
def test_lint_output_has_no_secret(scene, fmt, tmp_path):
    rc, out, err = run("lint", *scene["configs"], "--format", fmt, env=scene["env"])
    assert "internal error" not in err and "Traceback" not in err, err
    assert_clean(out, f"lint {fmt} stdout")
    assert_clean(err, f"lint {fmt} stderr")
    out_file = tmp_path / "lint.out"
    run("lint", *scene["configs"], "--format", fmt, "-o", out_file, env=scene["env"])
    if out_file.exists():
        assert_clean(out_file.read_text(), f"lint {fmt} -o")


def test_inventory_written_has_no_secret(scene, tmp_path):
    rc, out, err = run("inventory", *scene["configs"][1:], env=scene["env"])
    assert rc == 0, err
    assert_clean(out + err, "inventory TOML")
    assert "passphrase_env" in out        # the secrets became references


def test_config_errors_have_no_secret(tmp_path):
    """Configuration errors quote words of the file: never the passphrase next to them."""
    s = SECRETS["rc"]
    bad = {
        "a.rc.conf": f'ifconfig_em0="inet vhid 1 pass {s} advskew x{s} 192.0.2.1/32"\n'
                     f'ifconfig_em1="inet vhid 300 pass {s}"\nifconfig_em2="vhid pass {s} {s}"\n',
        "b.keepalived.conf": f"vrrp_instance X {{\n virtual_router_id {s}\n priority {s}\n"
                             f" authentication {{\n auth_pass {s} {s}\n }}\n}}\n",
        "c.service": f"ExecStart=/usr/sbin/ucarp -i eth0 -s 192.0.2.1 -v 1 -a 192.0.2.2 -p {s} --vhid={s} {s}\n",
        "d.service": f"ExecStart=/usr/sbin/ucarp -i eth0 -s 192.0.2.1 -v x{s} -a 192.0.2.2 --pass={s}\n",
        "e.toml": f'version = 1\n[[group]]\nname = "g"\nprotocol = "carp"\nid = 1\npassphrase = "{s}"\n',
        "f.toml": f'version = 1\n[[group]]\nname = "g"\nprotocol = "carp"\nid = "{s}"\n',
    }
    for name, text in bad.items():
        p = tmp_path / name
        p.write_text(text)
        for cmd in (("lint", p, "--format", "json"), ("lint", p), ("inventory", p),
                    ("analyze", REPO / "tests" / "data" / "eth.pcap", "--config", p)):
            rc, out, err = run(*cmd)
            assert "internal error" not in err, err
            assert s not in out + err, f"{name}: {cmd[0]} printed the passphrase: {(out + err)[:2000]}"


# ------------------------------------------------------------------ passphrase files

@pytest.mark.parametrize("mode,warned", [(0o600, False), (0o400, False), (0o640, True), (0o604, True), (0o644, True)])
def test_readable_passphrase_file_warns(tmp_path, mode, warned):
    keys = tmp_path / "keys"
    keys.write_text(f"main:{SECRETS['file']}\n")
    keys.chmod(mode)
    rc, out, err = run("analyze", REPO / "tests" / "data" / "eth.pcap", "--passphrase-file", keys, "--format", "json")
    assert rc in (0, 1), err
    msgs = [m for m in stderr_messages(err) if "readable by group or others" in m]
    if warned:
        assert len(msgs) == 1 and msgs[0].startswith("carpscope: warning: ") and str(keys) in msgs[0], err
        assert f"{mode:04o}" in msgs[0] and "chmod 600" in msgs[0]
    else:
        assert not msgs, err
    assert_clean(out + err, "passphrase-file warnings")


def test_env_passphrase_file_mode_warns_too(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text(f"{SECRETS['env']}\n")
    keys.chmod(0o644)
    rc, out, err = run("analyze", REPO / "tests" / "data" / "eth.pcap", env={"CARPSCOPE_PASSPHRASES": str(keys)})
    assert "readable by group or others" in err and str(keys) in err
    assert_clean(out + err, "env passphrase file")


def test_passphrase_file_problems_name_lines_not_secrets(tmp_path):
    """Duplicate label, white space, too long, unreadable bytes: warnings by line and label."""
    keys = tmp_path / "keys"
    keys.write_bytes(f"a:{SECRETS['file']}\na:{SECRETS['wrong']}\nb: {SECRETS['cli']} \nc:{SECRETS['long']}\n"
                     .encode() + b"d:\xff\xfe" + SECRETS["env"].encode() + b"\n")
    keys.chmod(0o600)
    rc, out, err = run("analyze", REPO / "tests" / "data" / "eth.pcap", "--passphrase-file", keys)
    assert "internal error" not in err and "Traceback" not in err, err
    assert f"{keys}:2" in err and f"{keys}:3" in err and f"{keys}:4" in err
    assert_clean(out + err, "passphrase-file line warnings")
    assert "\\xff" not in err


def test_unreadable_passphrase_file(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text(SECRETS["file"])
    rc, out, err = run("analyze", REPO / "tests" / "data" / "eth.pcap", "--passphrase-file", keys / "nope")
    assert rc == 2 and len(stderr_messages(err)) == 1
    rc, out, err = run("analyze", REPO / "tests" / "data" / "eth.pcap", "--passphrase-file", tmp_path)
    assert rc == 2 and "internal error" not in err and len(stderr_messages(err)) == 1, err


# ------------------------------------------------------------------ process title

def test_process_title_has_no_secret(scene):
    """While carpscope runs (reading a pipe that stays open), its command line, name and
    environment hold file names only. (--passphrase is documented as visible: not used here.)"""
    if not os.path.isdir("/proc/self"):
        pytest.skip("no /proc")
    args = [a for a in scene["args"] if a not in ("--passphrase", SECRETS["cli"])]
    e = dict(os.environ, NO_COLOR="1", **scene["env"])
    p = subprocess.Popen([sys.executable, "-m", "carpscope", "analyze", "-", *args, "--format", "json"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=e)
    try:
        data = scene["cap"].read_bytes()
        p.stdin.write(data[:len(data) // 2])
        p.stdin.flush()
        time.sleep(1.5)                     # keys loaded, adverts being verified
        seen = ""
        for name in ("cmdline", "comm", "environ"):
            seen += open(f"/proc/{p.pid}/{name}", "rb").read().replace(b"\0", b" ").decode("utf-8", "replace")
        for t in os.listdir(f"/proc/{p.pid}/task"):
            seen += open(f"/proc/{p.pid}/task/{t}/comm").read()
        assert "carpscope" in seen
        assert_clean(seen, "the process's cmdline/comm/environ")
        p.stdin.write(data[len(data) // 2:])
        p.stdin.close()
        p.stdin = None
        out, err = p.communicate(timeout=60)
        assert_clean((out + err).decode(), "output")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


# ------------------------------------------------------------------ crash paths

INTERNAL_ERROR = """
import sys
from carpscope import cli
from carpscope.auth import verify as auth
MODE = sys.argv.pop(1)

def verify(self, advert, holder=None):
    secret_in_scope = [k for k in self.keyring.keys()]          # noqa: F841 (the keys, in scope)
    passphrase = {passphrase!r}                                  # noqa: F841
    if MODE == "plain":
        raise RuntimeError("decoder blew up")
    if MODE == "message":
        raise ValueError("cannot use key " + passphrase)
    if MODE == "keyerror":
        raise KeyError(passphrase.encode())
    if MODE == "unicode":
        passphrase.encode("ascii", "strict") and b"\\xff".decode("utf-8")
    raise AssertionError(MODE)

auth.Verifier.verify = verify
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("mode", ["plain", "message", "keyerror", "unicode"])
@pytest.mark.parametrize("debug", [False, True], ids=["", "debug"])
def test_internal_error_never_prints_the_secret(scene, tmp_path, mode, debug):
    """An internal error while the keys are in scope: one line (a traceback with --debug),
    never the passphrase - even when the exception's own text carries it."""
    script = tmp_path / "crash.py"
    script.write_text(INTERNAL_ERROR.format(passphrase=SECRETS["file"]))
    # the Python engine (compiled classes cannot be patched to fail)
    e = dict(os.environ, NO_COLOR="1", CARPSCOPE_PURE_PYTHON="1", **scene["env"])
    p = subprocess.run([sys.executable, str(script), mode, "analyze", str(scene["cap"]), *scene["args"],
                        *(["--debug"] if debug else [])], capture_output=True, cwd=REPO, env=e, timeout=120)
    out, err = p.stdout.decode(), p.stderr.decode()
    assert p.returncode != 0
    if not debug:
        msgs = stderr_messages(err)
        internal = [m for m in msgs if "internal error" in m or "error:" in m]
        assert internal, err
    leaked = [n for n in SECRETS if any(f in out + err for f in leak_forms(SECRETS[n]))]
    assert not leaked, err
    if debug:
        assert "Traceback" in err        # --debug still shows where it happened
