"""JUnit XML (``--format junit``): what a CI test view shows, and in agreement with the exit
status.

A ``<testsuite>`` per file read (capture or configuration). In it:

- one passing test case per group seen there (``CARP 42 on captures/x.pcap``), whose
  ``<system-out>`` says who was master and lists the group's events;
- one test case per finding: **failing** when its severity is at or above ``--fail-on`` (the
  findings that make carpscope exit 1), **passing** with the finding's text in ``<system-out>``
  when below it. So the failures count is non-zero exactly when the exit status is 1 (with
  ``--exit-zero`` nothing fails).

Test case names are unique in their suite: ``CS401 split-brain: CARP 42 10.0.0.2, 10.0.0.3``,
with `` #2`` added to a repeat. A file without groups or findings gets one passing case ("No
errors found"), so CI shows it green rather than "no tests"; a file that could not be read gets
an ``<error>`` case (and the run exits 2). Groups come from the JSON report document.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from types import SimpleNamespace

from carpscope.model import protocol_name
from carpscope.policy import FAIL_ON, Context, Placed, finding_text, source_of, speakers
from carpscope.report.view import Clock, group_events, group_name, group_vips, left_out, named, packets_total

_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def clean(s: str) -> str:
    """Characters XML 1.0 cannot carry at all are dropped (ElementTree escapes the rest)."""
    return _XML_BAD.sub("", s)


def classname(path: str) -> str:
    slash = path.rfind("/")
    dot = path.rfind(".")
    return path[:dot] if dot > slash + 1 else path


def _body(p: Placed) -> str:
    f = p.finding
    lines = [f"{f.code} {f.rule} ({f.severity.value})"]
    where = []
    if f.protocol:
        where.append(f.protocol)
    if f.vhid is not None:
        where.append(f"vhid {f.vhid}")
    if f.segment:
        where.append(f"segment {f.segment}")
    if where:
        lines.append(", ".join(where))
    who = speakers(f)
    if who:
        lines.append("speakers: " + ", ".join(who))
    if f.packets:
        shown = f.packets[:20]
        lines.append("packets: " + ",".join(str(n) for n in shown) + left_out(len(shown), packets_total(f.to_json())))
    if f.line:
        lines.append(f"line {f.line}")
    if f.cause:
        lines.append(f"cause: {f.cause}")
    lines.append(f"fingerprint: {p.fingerprint}")
    lines.append(f"docs: carpscope rules {f.rule}")
    return "\n".join(lines)


def _case_name(f) -> str:
    where = []
    if f.protocol or f.vhid is not None:
        where.append(f"{protocol_name(f.protocol) if f.protocol else 'id'} {f.vhid if f.vhid is not None else ''}".strip())
    who = speakers(f)
    if who:
        where.append(", ".join(who))
    if f.line:
        where.append(f"line {f.line}")
    return f"{f.code} {f.rule}" + (": " + " ".join(where) if where else "")


def _group_out(g: dict, findings: list[dict], clock: Clock, hosts: dict) -> str:
    at_end = g.get("masters_at_end") or []
    lines = [f"{group_name(g)} on {g['segment']}",
             "master at the end: " + (" + ".join(named(m, hosts) for m in at_end) or "none"),
             "speakers: " + ", ".join(named(s["ip"], hosts) for s in g.get("speakers") or [])]
    vips = group_vips(g)
    if vips:
        lines.append("VIPs: " + ", ".join(vips))
    lines.append("events:")
    lines += [f"  {clock.iso(e.ts)}  {e.text}" for e in group_events(g, findings, hosts, clock)]
    return "\n".join(lines)


def junit_tree(placed: list[Placed], ctx: Context, doc: dict | None = None, fail_on: str = "error") -> ET.Element:
    limit = FAIL_ON[fail_on]
    clock = Clock()
    hosts = (doc or {}).get("hosts") or {}
    fdocs = (doc or {}).get("findings") or [p.finding.to_json() for p in placed]
    order: list[str] = []
    by_file: dict[str, list[Placed]] = {}
    groups: dict[str, list[dict]] = {}

    def suite_of(path: str) -> None:
        if path not in by_file:
            order.append(path)
            by_file[path] = []
            groups[path] = []
    for path in [ctx.shown(x) for x in ctx.files]:
        suite_of(path)
    for g in (doc or {}).get("groups") or []:
        file = source_of(SimpleNamespace(source=None, segment=g["segment"]), list(ctx.files))
        path = ctx.shown(file) if file else g["segment"]
        suite_of(path)
        groups[path].append(g)
    for p in placed:
        key = p.path or "carpscope"
        suite_of(key)
        by_file[key].append(p)
    errors = [(ctx.shown(path), msg) for path, msg in ctx.errors]
    root = ET.Element("testsuites", name="carpscope")
    tests = failures = nerr = 0
    for path in order:
        items = by_file[path]
        suite = ET.SubElement(root, "testsuite", name=clean(path))
        cname = clean(classname(path))
        names: Counter = Counter()

        def case(name: str) -> ET.Element:
            names[name] += 1
            if names[name] > 1:
                name = f"{name} #{names[name]}"
            return ET.SubElement(suite, "testcase", name=clean(name), classname=cname, file=clean(path))
        n = failed = 0
        for g in groups[path]:
            c = case(f"{group_name(g)} on {g['segment']}")
            ET.SubElement(c, "system-out").text = clean(_group_out(g, fdocs, clock, hosts))
            n += 1
        for p in items:
            f = p.finding
            c = case(_case_name(f))
            if f.line:
                c.set("line", str(f.line))
            if f.severity.rank >= limit:
                fail = ET.SubElement(c, "failure", message=clean(finding_text(f)), type=f.severity.value)
                fail.text = clean(_body(p))
                failed += 1
            else:
                ET.SubElement(c, "system-out").text = clean(
                    f"{finding_text(f)}\n(below --fail-on {fail_on}: reported, not failed)\n{_body(p)}")
            n += 1
        if not n:
            ET.SubElement(suite, "testcase", name="No errors found", classname=cname, file=clean(path))
            n = 1
        suite.set("tests", str(n))
        suite.set("failures", str(failed))
        suite.set("errors", "0")
        suite.set("skipped", "0")
        tests += n
        failures += failed
    for path, msg in errors:
        suite = ET.SubElement(root, "testsuite", name=clean(path), tests="1", failures="0", errors="1", skipped="0")
        case_ = ET.SubElement(suite, "testcase", name="carpscope.read", classname=clean(classname(path)),
                              file=clean(path))
        err = ET.SubElement(case_, "error", message=clean(msg), type="unreadable")
        err.text = clean(msg)
        tests += 1
        nerr += 1
    root.set("tests", str(tests))
    root.set("failures", str(failures))
    root.set("errors", str(nerr))
    return root


def render(placed: list[Placed], ctx: Context, doc: dict | None = None, fail_on: str = "error") -> str:
    root = junit_tree(placed, ctx, doc, fail_on)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
