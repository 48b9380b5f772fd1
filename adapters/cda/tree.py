"""HL7 CDA R2 XML read safely, as located elements: the tree the WS/T 500 mapping walks.

Parsing is ``adapters._tree.parse_xml`` (defusedxml, DTDs, entity declarations and external
references forbidden: ``unsafe_xml`` before anything is expanded or fetched). Chinese hospital
systems often declare ``encoding="GB2312"`` or ``GBK``, which expat cannot read (it knows only
single-byte charsets besides UTF-8/16): such a document is decoded as GB 18030 (the superset
of both) and handed to the parser as UTF-8. Only elements in the HL7 v3 namespace
``urn:hl7-org:v3`` are read; foreign extensions (``sdtc:``) are skipped.

Locations are element paths such as
``/ClinicalDocument/component/structuredBody/component[3]/section/entry[2]/observation/value/@code``:
``[n]`` only on repeated siblings of the same name, ``@name`` for attributes.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # noqa: N817 - only for the Element type
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

from adapters._clinical import check_size, utc_text
from adapters._tree import parse_xml
from adapters._values import clean_text
from gateway.core.errors import AdapterError

HL7 = "urn:hl7-org:v3"
_NS = "{" + HL7 + "}"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
MAX_DEPTH = 64
"""Deeper than any CDA document (the front page nests about 14 levels); refused beyond."""
CST = timezone(timedelta(hours=8), "CST")
"""WS/T 500 times carry no offset: they are China Standard Time."""

_DECLARATION = re.compile(
    rb"^(\xef\xbb\xbf)?\s*<\?xml[^>]*?encoding\s*=\s*([\"'])([A-Za-z0-9_.-]+)\2")
_GB = frozenset({"gb2312", "gbk", "gb18030", "cp936", "gb_2312-80", "x-gbk", "euc-cn"})
_TS = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})?(\d{2})?(?:\.\d{1,6})?)?([+-]\d{4})?$")
_ISO_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?$")


class El:
    """An element of the document with its path; attributes and text read stripped."""

    __slots__ = ("e", "path")

    def __init__(self, element: ET.Element, path: str) -> None:
        self.e = element
        self.path = path

    @property
    def name(self) -> str:
        return _local(self.e.tag) or ""

    def children(self, name: str | None = None) -> Iterator[El]:
        """HL7 children (all, or those named ``name``) with their indexed paths."""
        kids = [k for k in self.e if _local(k.tag) is not None]
        counts: dict[str, int] = {}
        for kid in kids:
            counts[_local(kid.tag) or ""] = counts.get(_local(kid.tag) or "", 0) + 1
        seen: dict[str, int] = {}
        for kid in kids:
            local = _local(kid.tag) or ""
            seen[local] = seen.get(local, 0) + 1
            if name is not None and local != name:
                continue
            step = f"{local}[{seen[local]}]" if counts[local] > 1 else local
            yield El(kid, f"{self.path}/{step}")

    def child(self, *names: str) -> El | None:
        """The first element down the chain of names, or None."""
        node: El | None = self
        for name in names:
            node = next(node.children(name), None) if node is not None else None
        return node

    def attr_at(self, attr: str, *names: str) -> str:
        """``attr`` of the element down the chain of names; '' when any is absent."""
        node = self.child(*names)
        return node.attr(attr) if node is not None else ""

    def text_at(self, *names: str) -> str:
        """Text of the element down the chain of names; '' when any is absent."""
        node = self.child(*names)
        return node.text() if node is not None else ""

    def attr(self, name: str) -> str:
        """The attribute's value, whitespace-collapsed; '' when absent."""
        key = XSI_TYPE if name == "xsi:type" else name
        return clean_text(self.e.get(key, ""))

    def where(self, attr: str | None = None) -> str:
        return f"{self.path}/@{attr}" if attr else self.path

    def text(self) -> str:
        """All text inside the element (CDA narrative may hold markup), whitespace-collapsed."""
        return clean_text("".join(self.e.itertext()))

    def value_type(self) -> str:
        """``xsi:type`` without any prefix: ``ST``, ``CD``, ``MO``, ``TS``, ``PQ``..."""
        return self.attr("xsi:type").rsplit(":", 1)[-1].upper()

    def error(self, msg: str, code: str, attr: str | None = None) -> AdapterError:
        return AdapterError(msg, code=code, loc=(self.where(attr),))

    def descendants(self, name: str) -> Iterator[El]:
        """Every HL7 descendant named ``name``, in document order, with its path."""
        stack: list[El] = [self]
        while stack:  # explicit stack: depth is bounded by load(), recursion is not needed
            node = stack.pop()
            kids = list(node.children())
            for kid in kids:
                if kid.name == name:
                    yield kid
            stack.extend(reversed(kids))


def _local(tag: object) -> str | None:
    """Local name of an element in the HL7 v3 namespace; None for comments, PIs and others."""
    if isinstance(tag, str) and tag.startswith(_NS):
        return tag[len(_NS):]
    return None


def load(raw: bytes, file: str | None) -> El:
    """Parse a CDA document safely and return its ``ClinicalDocument`` root."""
    check_size(raw, file)
    root = parse_xml(_as_parseable(raw))
    if _local(root.tag) != "ClinicalDocument":
        raise AdapterError("expected an HL7 CDA R2 document: a ClinicalDocument root element "
                           f"in the namespace {HL7}", code="not_cda", loc=("/",))
    _check_depth(root)
    return El(root, "/ClinicalDocument")


def _as_parseable(raw: bytes) -> bytes:
    """GB2312/GBK/GB18030 documents re-encoded as UTF-8 (expat reads no multi-byte charset)."""
    match = _DECLARATION.match(raw[:512])
    if match is None or match[3].decode().lower() not in _GB:
        return raw
    try:
        text = raw.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise AdapterError("document declares a GB encoding but is not valid GB 18030",
                           code="bad_encoding", loc=("/",), line=1) from exc
    return _replace_declared(text)


def _replace_declared(text: str) -> bytes:
    """The decoded document with its declaration saying UTF-8, encoded as UTF-8."""
    fixed = re.sub(r"(<\?xml[^>]*?encoding\s*=\s*[\"'])[A-Za-z0-9_.-]+", r"\1UTF-8", text,
                   count=1)
    return fixed.encode("utf-8")


def _check_depth(root: ET.Element) -> None:
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise AdapterError(f"XML nested deeper than {MAX_DEPTH} elements", code="too_deep",
                               loc=("/ClinicalDocument",))
        stack.extend((kid, depth + 1) for kid in element)


def cda_time(node: El, attr: str = "value") -> str | None:
    """A CDA TS (``YYYYMMDD[HHMM[SS[.s]]][+ZZZZ]``) as a date or RFC 3339 UTC; None if empty.

    Local times are China Standard Time (WS/T 500 writes no offset). ``2012-10-24 15:48:23``,
    which some exporters write, is read the same way. A bare date stays a date.
    """
    text = node.attr(attr)
    if not text or node.e.get("nullFlavor"):
        return None
    match = _TS.match(text)
    try:
        if match is None and _ISO_LIKE.match(text):
            moment = datetime.fromisoformat(text.replace(" ", "T"))
            if len(text) == 10:
                return moment.date().isoformat()
            return utc_text(moment.replace(tzinfo=CST))
        if match is None:
            raise ValueError(text)
        year, month, day = int(match[1]), int(match[2]), int(match[3])
        if match[4] is None:
            return datetime(year, month, day).date().isoformat()
        moment = datetime(year, month, day, int(match[4]), int(match[5] or 0), int(match[6] or 0))
    except ValueError as exc:
        raise node.error("not a CDA time (YYYYMMDDHHMMSS, optional +ZZZZ)", "bad_datetime",
                         attr) from exc
    zone = CST
    if match[7]:
        sign = 1 if match[7][0] == "+" else -1
        zone = timezone(sign * timedelta(hours=int(match[7][1:3]), minutes=int(match[7][3:])))
    return utc_text(moment.replace(tzinfo=zone).astimezone(UTC))
