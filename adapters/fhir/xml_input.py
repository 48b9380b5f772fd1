"""FHIR R4 XML -> the JSON shape of the same resource, walked by ``_fhir_json.Node``.

The conversion follows the specification's own mapping between its XML and JSON forms
(R4 "XML Representation" and "JSON Representation"), so the adapter reads one shape:

- the root element's name is ``resourceType``; only elements in the FHIR namespace
  ``http://hl7.org/fhir`` are read, the XHTML narrative (``text/div``) and foreign elements
  are dropped;
- an element with a ``value`` attribute is a primitive: its value as a string (XML has no
  numbers or booleans: ``Node(xml=True)`` reads ``"48"`` as a decimal and ``"true"`` as a
  boolean); its ``id`` attribute and ``extension`` children go to ``_name`` as in JSON;
- any other element is an object, with ``id`` (and on extensions ``url``) from its attributes;
- an element whose only child is named like a resource type (capitalised: ``<resource>
  <Patient>``, ``<contained><Observation>``) holds that resource, with its ``resourceType``;
- siblings of the same name become an array, a single element stays single: without the
  structure definitions the converter cannot know cardinality, and the walker reads a lone
  element as a one-element array.

Parsing is ``defusedxml`` with DTDs, entity declarations and external references forbidden
(``unsafe_xml``, before anything is expanded or fetched), as ``adapters._tree`` does for police
XML; malformed XML is ``bad_xml`` with its line. Locations are element paths such as
``/Bundle/entry[2]/resource/Claim/item/net/value`` (``[n]`` only on repeated siblings).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # noqa: N817 - only for ParseError and Element types
from typing import Any

from adapters._tree import parse_xml
from adapters.fhir.tree import MAX_DEPTH, Node, Resource, check_depth
from gateway.core.errors import AdapterError

FHIR_NS = "http://hl7.org/fhir"
_NS = "{" + FHIR_NS + "}"
_HEAD = 65536
"""Bytes the detector looks at: enough for a DOCTYPE before the root (which adapt refuses)."""
_SKIP = re.compile(rb"\s*(?:<\?.*?\?>|<!--.*?-->|<!DOCTYPE(?:[^\[>]|\[.*?\])*>)", re.S)
_START = re.compile(rb"<(?:([A-Za-z_][\w.-]*):)?([A-Za-z_][\w.-]*)((?:\s+[^>]*)?)/?>", re.S)
_XMLNS = re.compile(rb"""xmlns(?::([A-Za-z_][\w.-]*))?\s*=\s*(["'])([^"']*)\2""")


def is_xml(raw: bytes) -> bool:
    """The input starts like XML (after an optional BOM and whitespace)."""
    return raw.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<"


def detect(raw: bytes) -> bool:
    """The root element is in the FHIR namespace (read from the start tag, nothing parsed)."""
    head = raw[:_HEAD].removeprefix(b"\xef\xbb\xbf")
    pos = 0
    while (skipped := _SKIP.match(head, pos)) is not None:
        pos = skipped.end()
    tag = _START.match(head, pos + len(head[pos:]) - len(head[pos:].lstrip()))
    if tag is None:
        return False
    prefix = tag[1] or b""
    return any((m[1] or b"") == prefix and m[3] == FHIR_NS.encode()
               for m in _XMLNS.finditer(tag[3]))


def load_xml(raw: bytes) -> Node:
    """Parse FHIR XML safely and convert it; the root Node has ``xml=True`` and path ''."""
    root = parse_xml(raw)
    name = _fhir_name(root)
    if name is None or not _is_resource_name(name):
        raise AdapterError("expected a FHIR resource: a root element in the namespace "
                           f"{FHIR_NS}", code="not_fhir", loc=("/",))
    value = _resource(root, name, 0)
    check_depth(value)
    return Node(value, "", xml=True)


def _fhir_name(element: ET.Element) -> str | None:
    tag = element.tag
    return tag[len(_NS):] if isinstance(tag, str) and tag.startswith(_NS) else None


def _is_resource_name(name: str) -> bool:
    return name[:1].isupper()


def _resource(element: ET.Element, name: str, depth: int) -> Resource:
    return Resource({"resourceType": name, **_members(element, depth)})


def _members(element: ET.Element, depth: int) -> dict[str, Any]:
    """The FHIR children of an element, grouped by name in document order."""
    if depth > MAX_DEPTH:
        raise AdapterError("XML nested too deeply", code="too_deep", loc=("/",))
    groups: dict[str, list[ET.Element]] = {}
    for kid in element:
        name = _fhir_name(kid)
        if name is not None and name != "resourceType":
            groups.setdefault(name, []).append(kid)
    out: dict[str, Any] = {}
    for name, kids in groups.items():
        values, extras = zip(*(_value(kid, depth + 1) for kid in kids), strict=True)
        out[name] = values[0] if len(values) == 1 else list(values)
        if any(extras):
            out[f"_{name}"] = extras[0] if len(extras) == 1 else list(extras)
    return out


def _value(element: ET.Element, depth: int) -> tuple[Any, dict[str, Any] | None]:
    """(value, the ``_name`` object of a primitive's id and extensions, or None)."""
    attrs = {k: v for k, v in element.attrib.items() if k in ("id", "url", "value")}
    if "value" in attrs:
        extra = _members(element, depth)
        if "id" in attrs:
            extra["id"] = attrs["id"]
        return attrs["value"], extra or None
    kids = [k for k in element if _fhir_name(k) is not None]
    if len(kids) == 1 and _is_resource_name(name := _fhir_name(kids[0]) or ""):
        return _resource(kids[0], name, depth + 1), None
    return {**attrs, **_members(element, depth)}, None
