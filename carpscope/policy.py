"""What a run reports and when it fails: settings files, rule selection, severity overrides,
fingerprints and baselines. Pure functions over findings; the CLI only wires them.

Settings come from the first of these found walking up from the working directory (stopping at
the repository root, the directory holding ``.git``): ``carpscope.toml`` or ``.carpscope.toml``
(keys at the top level, or under ``[tool.carpscope]``), then ``pyproject.toml`` with a
``[tool.carpscope]`` table. ``--settings FILE`` names one; ``--isolated`` ignores them all.
Paths in a settings file are relative to its directory; that directory is also the *root*
against which file paths are shown in reports and fingerprints (else the working directory).

Keys (ruff's names where ruff has one)::

    select = ["CS2", "split-brain"]       # only these (slugs or code prefixes); empty = all
    extend-select = []                    # added to select (from here or --select)
    ignore = ["CS206"]
    per-file-ignores = {"captures/old/**" = ["CS3"]}
    severity = {"weak-passphrase" = "error", "CS2" = "info"}
    fail-on = "error"                     # error | warning | info | never
    baseline = "carpscope-baseline.json"
    inventory = ["inventory/site.toml"]   # also: rc-conf, configs, passphrase-files, vip

A fingerprint names a finding across runs: sha256 over (code, file, protocol, vhid, speakers)
where file is the path from the root and speakers the addresses or hosts the evidence names.
No packet numbers and no timestamps, so re-recording or trimming a capture keeps it. When two
findings of one report share those, the second gets the same inputs plus ``#2`` (and so on, in
report order), so that fingerprints are unique within a report (GitLab shows only the first of
equal fingerprints) and a baseline accepts exactly as many of them as it was written with.
"""
from __future__ import annotations

import fnmatch
import json
import os
import re
from collections import Counter

TYPE_CHECKING = False     # typing.TYPE_CHECKING without importing typing at run time (start-up)

from carpscope.digests import sha256
from carpscope.files import read_limited, read_text_limited, text_error
from carpscope.model import Finding, Severity
from carpscope.rules import catalogue

if TYPE_CHECKING:
    from pathlib import Path

# Paths are strings and os.path here: pathlib is imported only where a settings file, a
# per-file-ignores pattern or a file outside the root needs it, not on every run.

FAIL_ON = {"error": 3, "warning": 2, "info": 1, "never": 99}
LEVELS = {s.value: s for s in Severity}
SETTINGS_FILES = ("carpscope.toml", ".carpscope.toml")
FINGERPRINT_KEY = "carpscope/v1"
BASELINE_VERSION = 1
MAX_BASELINE = 256 << 20     # a baseline may be an earlier JSON/SARIF report (20 MB for 8192 speakers)

_LIST_KEYS = ("select", "extend-select", "ignore", "inventory", "rc-conf", "configs",
              "passphrase-files", "vip")
_PATH_KEYS = ("inventory", "rc-conf", "configs", "passphrase-files")
KNOWN_KEYS = set(_LIST_KEYS) | {"per-file-ignores", "severity", "fail-on", "baseline"}


class PolicyError(ValueError):
    """A settings file, rule name or baseline the user gave cannot be used: one line, exit 2."""


# ------------------------------------------------------------------ rule patterns

def check_pattern(p: str, where: str) -> str:
    """A rule selector: a slug, or a code prefix (``CS``, ``CS3``, ``CS301``, any case)."""
    rules = catalogue()
    if p in rules or any(r.code.startswith(p.upper()) for r in rules.values()):
        return p
    raise PolicyError(f"{where}: no rule or code prefix {p!r} (see: carpscope rules)")


def matches(f: Finding, patterns) -> bool:
    return any(f.rule == p or f.code.upper().startswith(p.upper()) for p in patterns)


def _specificity(f: Finding, p: str) -> int:
    """How closely a pattern names a finding's rule: a slug or the full code beats a prefix."""
    if f.rule == p:
        return 100
    return len(p) if f.code.upper().startswith(p.upper()) else -1


def split_list(values) -> list[str]:
    """``--select a,b --select c`` -> [a, b, c]."""
    return [x.strip() for v in values for x in str(v).split(",") if x.strip()]


def parse_severity_overrides(values, where: str) -> dict[str, Severity]:
    """``RULE=LEVEL`` items (comma lists allowed) -> {pattern: Severity}."""
    out: dict[str, Severity] = {}
    for item in split_list(values):
        rule, sep, level = item.partition("=")
        if not sep or not rule.strip() or level.strip().lower() not in LEVELS:
            raise PolicyError(f"{where}: {item!r}: expected RULE=error|warning|info")
        out[check_pattern(rule.strip(), where)] = LEVELS[level.strip().lower()]
    return out


# ------------------------------------------------------------------ settings files

class Settings:
    """What a settings file says (none read: the defaults), its paths made absolute."""

    def __init__(self, path: Path | None = None, root: str | None = None) -> None:
        self.path = path                        # the file read, None when none was
        self.root = root or os.getcwd()         # paths in reports are shown from here
        self.select: list[str] = []
        self.extend_select: list[str] = []
        self.ignore: list[str] = []
        self.per_file_ignores: list[tuple[str, list[str]]] = []
        self.severity: dict[str, Severity] = {}
        self.fail_on: str | None = None
        self.baseline: str | None = None
        self.inventory: list[str] = []
        self.rc_conf: list[str] = []
        self.configs: list[str] = []
        self.passphrase_files: list[str] = []
        self.vip: list[str] = []


def find_settings(start: str | None = None) -> tuple[str, dict] | None:
    """The nearest settings file at or above ``start`` (not above the repository root)."""
    d = os.path.realpath(start or os.getcwd())
    while True:
        for name in SETTINGS_FILES:
            p = os.path.join(d, name)
            if os.path.isfile(p):
                return p, _read_toml(p, standalone=True)
        p = os.path.join(d, "pyproject.toml")
        if os.path.isfile(p):
            table = _read_toml(p, standalone=False)
            if table is not None:
                return p, table
        if os.path.exists(os.path.join(d, ".git")) or os.path.dirname(d) == d:
            return None
        d = os.path.dirname(d)


def _read_toml(path: str | Path, standalone: bool) -> dict | None:
    import tomllib           # only when there is a settings file to read
    try:
        data = tomllib.loads(read_text_limited(path))
    except UnicodeDecodeError as e:
        raise PolicyError(f"{path}: {text_error(e)}") from None
    except OSError as e:
        raise PolicyError(f"{path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise PolicyError(f"{path}: not valid TOML: {e}") from None
    tool = data.get("tool", {}).get("carpscope") if isinstance(data.get("tool"), dict) else None
    if not standalone:
        return tool if isinstance(tool, dict) else None
    if tool is not None:
        rest = {k: v for k, v in data.items() if k != "tool"}
        if rest:
            raise PolicyError(f"{path}: put the settings either at the top level or under [tool.carpscope], not both")
        return tool
    return data


def load_settings(path: Path | str | None = None, isolated: bool = False) -> Settings:
    """Read the named settings file, or discover one; ``isolated`` reads none."""
    if isolated:
        return Settings()
    if path is not None:
        from pathlib import Path
        p = Path(path)
        if not p.exists():
            raise PolicyError(f"--settings {path}: no such file")
        table = _read_toml(p, standalone=p.name != "pyproject.toml")
        if table is None:
            raise PolicyError(f"--settings {path}: no [tool.carpscope] table")
        found = (p, table)
    else:
        found = find_settings()
    if found is None:
        return Settings()
    return settings_from_table(*found)


def settings_from_table(path: str | Path, table: dict) -> Settings:
    from pathlib import Path
    path = Path(path)
    where = str(path)
    unknown = sorted(set(table) - KNOWN_KEYS)
    if unknown:
        raise PolicyError(f"{where}: unknown setting {unknown[0]!r} (known: {', '.join(sorted(KNOWN_KEYS))})")
    base = path.resolve().parent
    s = Settings(path=path, root=str(base))

    def strings(key: str) -> list[str]:
        v = table.get(key, [])
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise PolicyError(f"{where}: {key} must be a list of strings")
        return v

    def rel(p: str) -> str:
        return str(base / os.path.expanduser(p))

    s.select = [check_pattern(p, f"{where}: select") for p in split_list(strings("select"))]
    s.extend_select = [check_pattern(p, f"{where}: extend-select") for p in split_list(strings("extend-select"))]
    s.ignore = [check_pattern(p, f"{where}: ignore") for p in split_list(strings("ignore"))]
    pfi = table.get("per-file-ignores", {})
    if not isinstance(pfi, dict):
        raise PolicyError(f"{where}: per-file-ignores must be a table of glob = [rules]")
    for pattern, rules in pfi.items():
        if isinstance(rules, str):
            rules = [rules]
        if not isinstance(rules, list) or not all(isinstance(x, str) for x in rules):
            raise PolicyError(f"{where}: per-file-ignores {pattern!r} must be a list of rules")
        s.per_file_ignores.append((pattern, [check_pattern(r, f"{where}: per-file-ignores")
                                             for r in split_list(rules)]))
    sev = table.get("severity", {})
    if not isinstance(sev, dict) or not all(isinstance(v, str) for v in sev.values()):
        raise PolicyError(f"{where}: severity must be a table of rule = \"error|warning|info\"")
    s.severity = parse_severity_overrides([f"{k}={v}" for k, v in sev.items()], f"{where}: severity")
    fail_on = table.get("fail-on")
    if fail_on is not None and fail_on not in FAIL_ON:
        raise PolicyError(f"{where}: fail-on must be one of {', '.join(FAIL_ON)}")
    s.fail_on = fail_on
    bl = table.get("baseline")
    if bl is not None and not isinstance(bl, str):
        raise PolicyError(f"{where}: baseline must be a path")
    s.baseline = rel(bl) if bl else None
    for key in _PATH_KEYS:
        setattr(s, key.replace("-", "_"), [rel(p) for p in strings(key)])
    s.vip = strings("vip")
    return s


# ------------------------------------------------------------------ the policy of one run

class Policy:
    """The settings file and the command line merged: which findings a run keeps, at which
    level, when it fails, and its baseline."""

    def __init__(self, root: str | None = None, select: list[str] | None = None,
                 ignore: list[str] | None = None,
                 per_file_ignores: list[tuple[str, list[str]]] | None = None,
                 severity: dict[str, Severity] | None = None, fail_on: str = "error",
                 baseline: str | None = None, baseline_optional: bool = False,
                 write_baseline: str | None = None) -> None:
        self.root = root or os.getcwd()
        self.select = select if select is not None else []
        self.ignore = ignore if ignore is not None else []
        self.per_file_ignores = per_file_ignores if per_file_ignores is not None else []
        self.severity = severity if severity is not None else {}
        self.fail_on = fail_on
        self.baseline = baseline
        self.baseline_optional = baseline_optional    # named by the settings file: may not exist yet
        self.write_baseline = write_baseline

    def keep(self, f: Finding, path: str | None) -> bool:
        if self.select and not matches(f, self.select):
            return False
        if self.ignore and matches(f, self.ignore):
            return False
        if path is not None:
            for pattern, rules in self.per_file_ignores:
                if glob_match(pattern, path) and matches(f, rules):
                    return False
        return True

    def level(self, f: Finding) -> Severity:
        best, level = -1, f.severity
        for p, sev in self.severity.items():
            s = _specificity(f, p)
            if s > best:
                best, level = s, sev
        return level


def build_policy(settings: Settings, *, select=(), extend_select=(), ignore=(), severity=(),
                 fail_on: str | None = None, baseline: str | None = None,
                 write_baseline: str | None = None) -> Policy:
    """The settings file with the command line on top: --select replaces the file's select,
    --extend-select, --ignore and --severity add to (and for one rule, override) the file's."""
    cli_select = [check_pattern(p, "--select") for p in split_list(select)]
    extend = settings.extend_select + [check_pattern(p, "--extend-select") for p in split_list(extend_select)]
    sel = cli_select or settings.select
    if sel and extend:
        sel = sel + extend
    sev = dict(settings.severity)
    sev.update(parse_severity_overrides(severity, "--severity"))
    return Policy(root=settings.root, select=sel,
                  ignore=settings.ignore + [check_pattern(p, "--ignore") for p in split_list(ignore)],
                  per_file_ignores=list(settings.per_file_ignores), severity=sev,
                  fail_on=fail_on or settings.fail_on or "error",
                  baseline=baseline if baseline is not None else settings.baseline,
                  baseline_optional=baseline is None and settings.baseline is not None,
                  write_baseline=write_baseline)


def glob_match(pattern: str, path: str) -> bool:
    """ruff-style per-file pattern: ``**`` spans directories; a pattern without ``/`` also
    matches the file name alone."""
    from pathlib import PurePosixPath
    path = path.replace(os.sep, "/")
    if "/" not in pattern and fnmatch.fnmatchcase(PurePosixPath(path).name, pattern):
        return True
    return re.fullmatch(_glob_re(pattern), path) is not None


def _glob_re(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


# ------------------------------------------------------------------ placing findings

def display_path(path: str, root: str | os.PathLike) -> str:
    """A file as reports show it: relative to the root when inside it, '/'-separated; outside
    it, as given (in pathlib's normal form)."""
    if path in ("-", "stdin"):
        return "stdin"
    try:
        rel = os.path.relpath(os.path.realpath(path), os.path.realpath(root))
    except (ValueError, OSError):
        rel = os.pardir
    if rel != os.pardir and not rel.startswith(os.pardir + os.sep):
        return rel.replace(os.sep, "/")
    from pathlib import Path
    return Path(path).as_posix()


def source_of(f: Finding, sources: list[str]) -> str | None:
    """The file a finding belongs to: its own ``source``, else the capture its segment was
    seen in (a segment is the capture's name plus VLAN/interface suffixes), else None."""
    if f.source:
        return f.source
    seg = f.segment or ""
    best = None
    for name in sources:
        if seg == name or seg.startswith(name + "/"):
            if best is None or len(name) > len(best):
                best = name
    return best


def finding_key(f: Finding) -> tuple:
    """Identity of a finding across live snapshots: (rule, segment, vhid, speakers), the
    speakers read from the evidence as the baseline fingerprints read them."""
    return (f.rule, f.segment, f.vhid, tuple(speakers(f)))


def speakers(f: Finding) -> list[str]:
    """The addresses or hosts a finding is about, from its evidence (no times, no packets)."""
    ev = f.evidence or {}
    out: set[str] = set()

    def walk(v) -> None:
        if isinstance(v, str):
            out.add(v)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)
        elif isinstance(v, dict):
            if isinstance(v.get("ip"), str):
                out.add(v["ip"])
            else:
                for k, x in v.items():
                    out.add(str(k))
                    walk(x)

    for key in ("speaker", "speakers", "host", "hosts", "master", "primary", "primary_ip", "others",
                "previous", "next", "group", "groups", "key"):
        if key in ev and ev[key] is not None:
            walk(ev[key])
    for key in ("values", "addresses", "vips"):   # {speaker: ...}
        if isinstance(ev.get(key), dict):
            out.update(str(k) for k in ev[key])
    return sorted(out)


def fingerprint_inputs(f: Finding, path: str | None) -> list[str]:
    return [f.code, path or "", f.protocol or "", "" if f.vhid is None else str(f.vhid), ",".join(speakers(f))]


def fingerprint(f: Finding, path: str | None, occurrence: int = 1) -> str:
    parts = fingerprint_inputs(f, path)
    if occurrence > 1:
        parts.append(f"#{occurrence}")
    return sha256("\0".join(parts).encode()).hexdigest()[:32]


class Placed:
    """A finding with where it is (``path`` as shown, ``file`` as read) and its fingerprint."""

    __slots__ = ("finding", "path", "file", "fingerprint", "guessed")

    def __init__(self, finding: Finding, path: str | None, file: str | None, fingerprint: str,
                 guessed: bool = False) -> None:
        self.finding = finding
        self.path = path
        self.file = file
        self.fingerprint = fingerprint
        self.guessed = guessed     # no source or segment names the file: the first file read stands in


def place(findings: list[Finding], sources: list[str], root: str | os.PathLike | None = None) -> list[Placed]:
    """Locate every finding and give it a fingerprint unique within the report."""
    root = root or os.getcwd()
    seen: Counter = Counter()
    out = []
    for f in findings:
        file = source_of(f, sources)
        guessed = file is None and bool(sources)
        if guessed:
            file = sources[0]
        path = display_path(file, root) if file else None
        base = fingerprint(f, path)
        seen[base] += 1
        out.append(Placed(f, path, file, fingerprint(f, path, seen[base]), guessed))
    return out


def apply(policy: Policy, findings: list[Finding], sources: list[str]) -> list[Finding]:
    """Severity overrides, then select / ignore / per-file-ignores; most severe first again
    when an override changed a severity (otherwise the analysis's order is kept)."""
    kept, changed = [], False
    for f in findings:
        level = policy.level(f)
        if level is not f.severity:
            f.severity, changed = level, True
        src = source_of(f, sources)
        if policy.keep(f, display_path(src, policy.root) if src else None):
            kept.append(f)
    if changed:
        kept.sort(key=lambda f: -f.severity.rank)
    return kept


def exit_status(findings, fail_on: str) -> int:
    limit = FAIL_ON[fail_on]
    return 1 if any(f.severity.rank >= limit for f in findings) else 0


# ------------------------------------------------------------------ baselines

def baseline_json(placed: list[Placed], version: str) -> dict:
    """What --write-baseline writes: the fingerprint and its inputs, never messages or times,
    so that re-running on the same captures rewrites the same file."""
    return {"carpscope_baseline": BASELINE_VERSION, "tool": {"name": "carpscope", "version": version},
            "findings": [{"fingerprint": p.fingerprint, "code": p.finding.code, "rule": p.finding.rule,
                          "file": p.path, "protocol": p.finding.protocol, "vhid": p.finding.vhid,
                          "speakers": speakers(p.finding)} for p in placed]}


def write_baseline(out, placed: list[Placed], version: str) -> None:
    """Write the baseline to ``out`` (a files.Output: whole or not at all)."""
    try:
        out.write(json.dumps(baseline_json(placed, version), indent=2) + "\n")
    except OSError as e:
        raise PolicyError(str(e)) from None


def load_baseline(path: str) -> Counter:
    """Fingerprints accepted by a baseline: a file from --write-baseline, or an earlier report
    in the json, sarif or gitlab format."""
    try:
        data = json.loads(read_limited(path, MAX_BASELINE))
    except OSError as e:
        raise PolicyError(f"--baseline {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise PolicyError(f"--baseline {path}: not JSON: {e}") from None
    fps: list = []
    if isinstance(data, dict) and isinstance(data.get("findings"), list):
        fps = [x.get("fingerprint") for x in data["findings"] if isinstance(x, dict)]
    elif isinstance(data, dict) and isinstance(data.get("runs"), list):
        fps = [(r.get("partialFingerprints") or {}).get(FINGERPRINT_KEY)
               for run in data["runs"] if isinstance(run, dict) for r in run.get("results") or []
               if isinstance(r, dict)]
    elif isinstance(data, list):
        fps = [x.get("fingerprint") for x in data if isinstance(x, dict)]
    else:
        raise PolicyError(f"--baseline {path}: not a carpscope baseline or report")
    if any(not isinstance(x, str) for x in fps):
        raise PolicyError(f"--baseline {path}: a finding without a fingerprint (written by an older carpscope?)")
    return Counter(fps)


def filter_baseline(placed: list[Placed], accepted: Counter) -> tuple[list[Placed], int, int]:
    """Drop findings the baseline accepts; returns (new findings, accepted, stale entries)."""
    left = Counter(accepted)
    out, hit = [], 0
    for p in placed:
        if left[p.fingerprint] > 0:
            left[p.fingerprint] -= 1
            hit += 1
        else:
            out.append(p)
    return out, hit, sum(left.values())


def finding_text(f: Finding) -> str:
    """One line for annotations and CI reports: the first packet, then the message."""
    msg = " ".join(f.message.split())
    return f"packet {f.packets[0]}: {msg}" if f.packets else msg


class Context:
    """What the CI renderers need besides the findings: the files read (as given), the files
    that could not be read, which captures were numbered through the capture filter, the
    severity overrides in force and whether a baseline filtered the findings."""

    def __init__(self, files: list[str] | None = None, root: str | os.PathLike | None = None,
                 errors: list[tuple[str, str]] | None = None, filtered: dict[str, bool] | None = None,
                 overrides: dict[str, Severity] | None = None, baseline: bool = False,
                 kind: str = "capture") -> None:
        self.files = files if files is not None else []
        self.root = root or os.getcwd()
        self.errors = errors if errors is not None else []
        self.filtered = filtered if filtered is not None else {}
        self.overrides = overrides if overrides is not None else {}
        self.baseline = baseline
        self.kind = kind                 # capture | config

    def shown(self, file: str) -> str:
        return display_path(file, self.root)


def rule_overrides(policy: Policy) -> dict[str, Severity]:
    """code -> level for every catalogue rule whose level the policy changes."""
    out: dict[str, Severity] = {}
    if not policy.severity:
        return out           # nothing changes a level: no need to import every detector
    for rule in catalogue().values():
        level = policy.level(rule.finding(""))
        if level is not rule.severity:
            out[rule.code] = level
    return out
