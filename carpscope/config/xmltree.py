"""A hardened, bounded XML reader that keeps line numbers: enough of a tree for config backups.

Configuration backups are files people are handed and asked to look at, so the reader assumes
the worst: a document type declaration (where entity bombs and external entities live) is
refused outright (defusedxml, ``forbid_dtd``), nesting and the number of kept elements are
capped, and only the parts of the document the caller asks for are kept in memory — a
pfSense/OPNsense backup also holds RRD data, certificates and users, none of which is needed.

Element positions come from the parser's locator (the line of the start tag), so a finding can
point at ``config.xml:212``; ElementTree does not keep them.
"""
from __future__ import annotations

import xml.sax
from collections.abc import Callable
from dataclasses import dataclass, field
from xml.sax.handler import ContentHandler

import defusedxml
import defusedxml.sax

MAX_DEPTH = 64              # config.xml nests about 6 deep
MAX_KEPT = 200_000          # kept elements (a large real config keeps a few thousand)


class XMLProblem(ValueError):
    """The document cannot be read safely or is not well-formed; ``line`` when known."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass
class XNode:
    tag: str
    line: int
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[XNode] = field(default_factory=list)
    text: str = ""

    def child(self, tag: str) -> XNode | None:
        return next((c for c in self.children if c.tag == tag), None)

    def all(self, tag: str) -> list[XNode]:
        return [c for c in self.children if c.tag == tag]

    def value(self, tag: str) -> str | None:
        """The stripped text of the first child ``tag``; None when there is no such child."""
        c = self.child(tag)
        return None if c is None else c.text.strip()


class _Builder(ContentHandler):
    def __init__(self, keep: Callable[[tuple[str, ...]], bool]):
        super().__init__()
        self.keep = keep
        self.path: list[str] = []
        self.stack: list[XNode | None] = []      # None: an element that is not kept
        self.root: XNode | None = None
        self.kept = 0
        self._text: list[list[str]] = []

    def _line(self) -> int:
        loc = getattr(self, "_locator", None)
        return loc.getLineNumber() if loc is not None else 0

    def startElement(self, name, attrs):  # noqa: N802 (SAX API)
        if len(self.path) >= MAX_DEPTH:
            raise XMLProblem(f"elements nested deeper than {MAX_DEPTH}", self._line())
        self.path.append(name)
        parent = self.stack[-1] if self.stack else None
        node = None
        if not self.stack:
            node = self.root = XNode(name, self._line(), dict(attrs))
        elif parent is not None and self.keep(tuple(self.path[1:])):
            self.kept += 1
            if self.kept > MAX_KEPT:
                raise XMLProblem(f"more than {MAX_KEPT} elements in the parts read", self._line())
            node = XNode(name, self._line(), dict(attrs))
            parent.children.append(node)
        self.stack.append(node)
        self._text.append([] if node is not None else None)

    def endElement(self, name):  # noqa: N802
        node = self.stack.pop()
        text = self._text.pop()
        self.path.pop()
        if node is not None and text:
            node.text = "".join(text)

    def characters(self, content):
        if self._text and self._text[-1] is not None:
            self._text[-1].append(content)


def parse(data: bytes, keep: Callable[[tuple[str, ...]], bool]) -> XNode:
    """The root element with the descendants ``keep(path)`` accepts (path below the root, e.g.
    ``("virtualip", "vip", "vhid")``; a rejected element's subtree is skipped). Raises XMLProblem.
    """
    b = _Builder(keep)
    try:
        defusedxml.sax.parseString(data, b, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except XMLProblem:
        raise
    except defusedxml.DTDForbidden:
        raise XMLProblem("has a document type declaration (<!DOCTYPE ...>): refused, config.xml has "
                         "none and it is where entity expansion attacks live", b._line() or 1) from None
    except (defusedxml.EntitiesForbidden, defusedxml.ExternalReferenceForbidden):
        raise XMLProblem("declares entities or external references: refused", b._line() or 1) from None
    except xml.sax.SAXParseException as exc:
        raise XMLProblem(f"not well-formed XML ({exc.getMessage()})", exc.getLineNumber()) from None
    except (xml.sax.SAXException, ValueError, UnicodeError) as exc:
        raise XMLProblem(f"cannot be read as XML ({type(exc).__name__})") from None
    if b.root is None:
        raise XMLProblem("holds no XML element", 1)
    return b.root
