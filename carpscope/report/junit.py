"""JUnit XML (``--format junit``), ruff's mapping: a ``<testsuite>`` per file read (capture or
configuration), a ``<testcase name="carpscope.CODE" classname="path-minus-extension">`` with a
``<failure>`` per finding; a file without findings gets one passing case ("No errors found"),
so CI shows it green rather than "no tests"; a file that could not be read gets an ``<error>``
case (and the run exits 2).
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from carpscope.policy import Context, Placed, finding_text, speakers

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
        lines.append("packets: " + ",".join(str(n) for n in f.packets[:20]))
    if f.line:
        lines.append(f"line {f.line}")
    if f.cause:
        lines.append(f"cause: {f.cause}")
    lines.append(f"fingerprint: {p.fingerprint}")
    lines.append(f"docs: carpscope rules {f.rule}")
    return "\n".join(lines)


def junit_tree(placed: list[Placed], ctx: Context) -> ET.Element:
    order: list[str] = []
    by_file: dict[str, list[Placed]] = {}
    for path in [ctx.shown(x) for x in ctx.files]:
        if path not in by_file:
            order.append(path)
            by_file[path] = []
    for p in placed:
        key = p.path or "carpscope"
        if key not in by_file:
            order.append(key)
            by_file[key] = []
        by_file[key].append(p)
    errors = [(ctx.shown(path), msg) for path, msg in ctx.errors]
    root = ET.Element("testsuites", name="carpscope")
    tests = failures = nerr = 0
    for path in order:
        items = by_file[path]
        suite = ET.SubElement(root, "testsuite", name=clean(path))
        cname = clean(classname(path))
        for p in items:
            f = p.finding
            case = ET.SubElement(suite, "testcase", name=f"carpscope.{f.code}", classname=cname, file=clean(path))
            if f.line:
                case.set("line", str(f.line))
            fail = ET.SubElement(case, "failure", message=clean(finding_text(f)), type=f.severity.value)
            fail.text = clean(_body(p))
        if not items:
            ET.SubElement(suite, "testcase", name="No errors found", classname=cname, file=clean(path))
        n = max(len(items), 1)
        suite.set("tests", str(n))
        suite.set("failures", str(len(items)))
        suite.set("errors", "0")
        suite.set("skipped", "0")
        tests += n
        failures += len(items)
    for path, msg in errors:
        suite = ET.SubElement(root, "testsuite", name=clean(path), tests="1", failures="0", errors="1", skipped="0")
        case = ET.SubElement(suite, "testcase", name="carpscope.read", classname=clean(classname(path)),
                             file=clean(path))
        err = ET.SubElement(case, "error", message=clean(msg), type="unreadable")
        err.text = clean(msg)
        tests += 1
        nerr += 1
    root.set("tests", str(tests))
    root.set("failures", str(failures))
    root.set("errors", str(nerr))
    return root


def render(placed: list[Placed], ctx: Context) -> str:
    root = junit_tree(placed, ctx)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
