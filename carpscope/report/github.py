"""GitHub Actions workflow commands (``--format github``): one annotation per finding,

    ::error file=captures/lab1.pcap,title=carpscope CS301 (hmac-mismatch)::packet 42: ...

``error`` / ``warning`` / ``notice`` by severity; configuration findings carry ``line=``.
Escaping as in @actions/core (``toCommandValue``/``escapeData``/``escapeProperty``): in the
message ``%`` -> ``%25``, CR -> ``%0D``, LF -> ``%0A``; in property values also ``:`` -> ``%3A``
and ``,`` -> ``%2C``. ``step_summary`` is the Markdown table written to ``$GITHUB_STEP_SUMMARY``.
"""
from __future__ import annotations

from carpscope.model import Severity
from carpscope.policy import Context, Placed, finding_text

COMMAND = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def escape_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(s: str) -> str:
    return escape_data(s).replace(":", "%3A").replace(",", "%2C")


def annotation(p: Placed) -> str:
    f = p.finding
    props = []
    if p.path:
        props.append(f"file={escape_property(p.path)}")
    if f.line:
        props.append(f"line={f.line}")
    props.append(f"title={escape_property(f'carpscope {f.code} ({f.rule})')}")
    return f"::{COMMAND[f.severity]} {','.join(props)}::{escape_data(finding_text(f))}"


def render(placed: list[Placed], ctx: Context) -> str:
    lines = [annotation(p) for p in placed]
    for path, msg in ctx.errors:
        lines.append(f"::error file={escape_property(ctx.shown(path))},title=carpscope::{escape_data(msg)}")
    return "".join(line + "\n" for line in lines)


def _cell(s: str) -> str:
    return " ".join(s.split()).replace("|", "\\|")


def step_summary(placed: list[Placed], ctx: Context) -> str:
    n = {sev: sum(1 for p in placed if p.finding.severity is sev) for sev in Severity}
    head = f"### carpscope: {len(placed)} finding{'s' if len(placed) != 1 else ''}"
    if placed:
        head += " (" + ", ".join(f"{k} {sev.value}" for sev, k in n.items() if k) + ")"
    out = [head, ""]
    if ctx.errors:
        out += [f"- **unreadable** `{_cell(ctx.shown(path))}`: {_cell(msg)}" for path, msg in ctx.errors] + [""]
    if placed:
        out += ["| severity | rule | file | finding |", "| --- | --- | --- | --- |"]
        for p in placed:
            f = p.finding
            where = (p.path or "") + (f":{f.line}" if f.line else "")
            out.append(f"| {f.severity.value} | {f.code} `{f.rule}` | `{_cell(where)}` | {_cell(finding_text(f))} |")
    return "\n".join(out) + "\n"
