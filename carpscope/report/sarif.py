"""SARIF 2.1.0 (``--format sarif``): one run, the whole rule catalogue with its documentation
as ``tool.driver.rules``, one result per finding.

A capture is a binary artifact. A result is located at the capture file (URI relative to the
root, ``uriBaseId`` ``%SRCROOT%``), the frame as a logical location (``frame 42``,
``captures/lab1.pcap#frame=42``: Wireshark's frame number unless the run asked for the filtered
numbering), and ``startLine: 1``, which GitHub code scanning requires of every region (sarif-sdk
rule GH1003). The capture is not read again to find byte offsets (it may be a pipe, or have
changed): only the record where a damaged capture stopped carries its byte offset. Further frames of the finding are related locations.
Configuration findings (``lint``) carry their real line. ``partialFingerprints`` holds the
carpscope fingerprint (policy.py) under ``carpscope/v1``, so an alert keeps its identity when a
capture is re-recorded. Severity overrides are reported as ``ruleConfigurationOverrides``;
captures that could not be read as error notifications with ``executionSuccessful: false``.
"""
from __future__ import annotations

import json
import re
from urllib.parse import quote

from carpscope import __version__
from carpscope.model import Severity
from carpscope.policy import FINGERPRINT_KEY, Context, Placed, finding_text, speakers
from carpscope.rules import catalogue, page as rule_page

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
MIME = {".pcap": "application/vnd.tcpdump.pcap", ".cap": "application/vnd.tcpdump.pcap",
        ".pcapng": "application/x-pcapng"}
RELATED_MAX = 10


def uri(path: str) -> dict:
    if path.startswith("/"):
        return {"uri": "file://" + quote(path)}
    return {"uri": quote(path), "uriBaseId": "%SRCROOT%"}


def _doc(rule) -> tuple[str, str | None, list[str]]:
    """(first paragraph of 'What it detects', the whole page, tags) of a rule's page."""
    page = rule_page(rule)
    if page is None:
        return rule.title, None, []
    m = re.search(r"^## What it detects\s*\n(.+?)(?:\n\s*\n|\n#)", page, re.S | re.M)
    full = " ".join(m.group(1).split()) if m else rule.title
    fam = re.search(r"·\s*Family:\s*([^·\n]+?)\s*(?:·|$)", page, re.M)
    return full, page, [fam.group(1)] if fam else []


def rule_descriptors() -> list[dict]:
    out = []
    for rule in sorted(catalogue().values(), key=lambda r: r.code):
        full, page, tags = _doc(rule)
        d = {"id": rule.code, "name": rule.slug,
             "shortDescription": {"text": rule.title},
             "fullDescription": {"text": full},
             "defaultConfiguration": {"level": LEVEL[rule.severity]},
             "properties": {"tags": ["carp", "vrrp", *tags]}}
        if page:
            d["help"] = {"text": page, "markdown": page}
        # the page's place in the repository declared as the project URL (no web site of its own)
        d["helpUri"] = rule.help_uri
        out.append(d)
    return out


def _location(p: Placed, frame: int | None, where: dict, record: bool = False) -> dict:
    f = p.finding
    region: dict = {"startLine": f.line or 1}
    if frame is not None and frame in where:
        region["byteOffset"], region["byteLength"] = where[frame]
    phys = {"artifactLocation": uri(p.path), "region": region} if p.path else None
    loc: dict = {}
    if phys:
        loc["physicalLocation"] = phys
    if frame is not None and p.path:
        kind = "record" if record else "frame"
        loc["logicalLocations"] = [{"name": f"{kind} {frame}",
                                    "fullyQualifiedName": f"{p.path}#{kind}={frame}"}]
    return loc


def result(p: Placed, rule_index: dict[str, int], where: dict, baseline: bool) -> dict:
    f = p.finding
    r: dict = {"ruleId": f.code, "ruleIndex": rule_index[f.code], "level": LEVEL[f.severity],
               "message": {"text": finding_text(f)}}
    # frame numbers locate a frame only in the file they were counted in
    frames = list(f.packets) if not f.line and not p.guessed else []
    if f.rule == "capture-truncated" and isinstance(f.evidence.get("offset"), int):
        # the record where reading stopped, by its offset in the file (not a filtered frame)
        rec = f.evidence.get("record")
        loc = _location(p, rec if isinstance(rec, int) else None, {}, record=True)
        loc.setdefault("physicalLocation", {}).setdefault("region", {})["byteOffset"] = f.evidence["offset"]
        r["locations"] = [loc] if p.path else []
    elif p.path:
        r["locations"] = [_location(p, frames[0] if frames else None, where)]
        related = [dict(id=i, message={"text": f"frame {n}"}, **_location(p, n, where))
                   for i, n in enumerate(frames[1:RELATED_MAX + 1], 1)]
        if related:
            r["relatedLocations"] = related
    r["partialFingerprints"] = {FINGERPRINT_KEY: p.fingerprint}
    if baseline:
        r["baselineState"] = "new"
    props = {"rule": f.rule, "severity": f.severity.value, "protocol": f.protocol, "vhid": f.vhid,
             "segment": f.segment, "speakers": speakers(f), "packets": list(f.packets), "cause": f.cause,
             "first_seen": f.first_seen, "last_seen": f.last_seen, "evidence": f.evidence}
    r["properties"] = {k: v for k, v in props.items() if v not in (None, [], {})}
    return r


class _Results(list):
    """The results as a list the JSON encoder walks, each made when it is reached: a report of
    thousands of findings is never held as SARIF objects all at once (json's encoder, which
    indented output uses, takes ``len`` and iterates; nothing else reads it)."""

    def __init__(self, placed: list[Placed], make) -> None:
        super().__init__()
        self.placed, self.make = placed, make

    def __len__(self) -> int:
        return len(self.placed)

    def __bool__(self) -> bool:
        return bool(self.placed)

    def __iter__(self):
        return (self.make(p) for p in self.placed)


def sarif_json(placed: list[Placed], ctx: Context) -> dict:
    rules = rule_descriptors()
    rule_index = {d["id"]: i for i, d in enumerate(rules)}
    files = [ctx.shown(x) for x in ctx.files] + [ctx.shown(x) for x, _ in ctx.errors]
    for p in placed:
        if p.path and p.path not in files:
            files.append(p.path)
    artifacts = []
    for path in files:
        a = {"location": uri(path), "roles": ["analysisTarget"]}
        ext = path[path.rfind("."):].lower() if "." in path else ""
        if ext in MIME:
            a["mimeType"] = MIME[ext]
        artifacts.append(a)
    art_index = {path: i for i, path in enumerate(files)}

    def make(p: Placed) -> dict:
        r = result(p, rule_index, {}, ctx.baseline)
        for loc in r.get("locations", []) + r.get("relatedLocations", []):
            al = loc.get("physicalLocation", {}).get("artifactLocation")
            if al is not None and p.path in art_index:
                al["index"] = art_index[p.path]
        return r
    results = _Results(placed, make)
    invocation: dict = {"executionSuccessful": not ctx.errors}
    if ctx.overrides:
        invocation["ruleConfigurationOverrides"] = [
            {"descriptor": {"id": code, "index": rule_index[code]}, "configuration": {"level": LEVEL[sev]}}
            for code, sev in sorted(ctx.overrides.items())]
    if ctx.errors:
        invocation["toolExecutionNotifications"] = [
            {"level": "error", "message": {"text": msg},
             "locations": [{"physicalLocation": {"artifactLocation": uri(ctx.shown(path))}}]}
            for path, msg in ctx.errors]
    run = {"tool": {"driver": {"name": "carpscope", "version": __version__, "semanticVersion": __version__,
                               "rules": rules}},
           "invocations": [invocation],
           "artifacts": artifacts,
           "results": results}
    return {"version": "2.1.0", "$schema": SCHEMA, "runs": [run]}


def render(placed: list[Placed], ctx: Context) -> str:
    return json.dumps(sarif_json(placed, ctx), indent=2, default=str) + "\n"
