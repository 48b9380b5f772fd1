"""Structured documents as one located tree: JSON (RFC 8259) and XML (parsed by defusedxml).

The police and civil adapters read fields by alias (Chinese or English names) from a
:class:`Node`, whichever syntax the document came in, and every error points into the
source: an RFC 6901 JSON pointer (``/parties/1/liability``) or an XPath-like element path
(``/道路交通事故认定书/当事人[2]/责任``). XML goes through ``defusedxml`` with DTDs,
entity declarations and external references forbidden, so billion-laughs bombs and XXE
files stop at their ``<!DOCTYPE`` with code ``unsafe_xml`` before anything is expanded.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET  # noqa: N817 - only for ParseError and Element types
from decimal import Decimal
from typing import Any

import defusedxml
import defusedxml.ElementTree as SafeET

from adapters._values import check_size, clean_text, exact_decimal, norm_key
from gateway.core.errors import AdapterError
from gateway.core.jsondepth import json_depth

MAX_DEPTH = 48
"""Deeper nesting than any real record has; deeper input is refused, not recursed into."""

Scalar = str | Decimal | int | bool | None


class Node:
    """One value in a document with its location.

    ``value`` is ``dict[str, list[Node]]`` for objects and elements (keyed by normalised
    name; XML repeats an element, JSON never does), ``list[Node]`` for JSON arrays, or a
    scalar. ``path`` holds the source's own names, so locations read like the source.
    """

    __slots__ = ("value", "path", "syntax")

    def __init__(self, value: Any, path: tuple[str, ...], syntax: str) -> None:
        self.value = value
        self.path = path
        self.syntax = syntax

    @property
    def where(self) -> str:
        """JSON pointer or XML path of this node."""
        if self.syntax == "json":
            return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in self.path)
        return "/" + "/".join(self.path)

    def error(self, msg: str, code: str, field: str | None = None) -> AdapterError:
        """An error located at this node (or at its missing child ``field``)."""
        where = self.where if field is None else f"{self.where.rstrip('/')}/{field}"
        return AdapterError(msg, code=code, loc=(where,))

    def is_object(self) -> bool:
        return isinstance(self.value, dict)

    def get(self, aliases: tuple[str, ...]) -> Node | None:
        """The child under the first alias present; repeated XML elements come as a list."""
        if not isinstance(self.value, dict):
            return None
        for alias in aliases:
            found = self.value.get(norm_key(alias))
            if found:
                if len(found) == 1:
                    first: Node = found[0]
                    return first
                return Node(found, (*self.path, found[0].path[-1].split("[")[0]), self.syntax)
        return None

    def need(self, field: str, aliases: tuple[str, ...]) -> Node:
        node = self.get(aliases)
        if node is None or node.value in (None, ""):
            raise self.error(f"required field {field} is missing", "missing_field", field)
        return node

    def text(self, what: str) -> str:
        """The scalar as text; objects, arrays and booleans are type errors."""
        value = self.value
        if isinstance(value, bool) or isinstance(value, dict | list):
            raise self.error(f"{what} must be text", "wrong_type")
        if value is None:
            return ""
        return clean_text(str(value))

    def opt_text(self, field: str, aliases: tuple[str, ...]) -> str | None:
        node = self.get(aliases)
        if node is None:
            return None
        return node.text(field) or None

    def req_text(self, field: str, aliases: tuple[str, ...]) -> str:
        text = self.need(field, aliases).text(field)
        if not text:
            raise self.error(f"required field {field} is empty", "missing_field", field)
        return text

    def items(self, field: str, aliases: tuple[str, ...], item_aliases: tuple[str, ...],
              required: bool = True) -> list[Node]:
        """A repeated field: a JSON array, repeated XML elements, or a wrapper element."""
        node = self.get(aliases)
        if node is None:
            if required:
                raise self.error(f"required field {field} is missing", "missing_field", field)
            return []
        if isinstance(node.value, list):
            return list(node.value)
        if isinstance(node.value, dict):
            keys = list(node.value)
            inner = {norm_key(a) for a in item_aliases}
            if len(keys) == 1 and keys[0] in inner:
                return list(node.value[keys[0]])
            return [node]
        raise node.error(f"{field} must be a list", "wrong_type")


def load_json(raw: bytes) -> Node:
    """Parse JSON with exact decimals (``parse_float=Decimal``): a float never exists."""
    check_size(raw)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AdapterError("JSON must be UTF-8", code="bad_encoding") from exc
    if json_depth(raw) > MAX_DEPTH:  # before the recursive parser (gateway.core.jsondepth)
        raise AdapterError(f"JSON nested deeper than {MAX_DEPTH} levels", code="too_deep",
                           loc=("/",))
    try:
        obj = json.loads(text, parse_float=exact_decimal, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise AdapterError(f"invalid JSON: {exc.msg}", code="bad_json", loc=("/",),
                           line=exc.lineno) from exc
    except (ValueError, RecursionError) as exc:
        raise AdapterError("JSON number or nesting out of range", code="bad_json",
                           loc=("/",)) from exc
    return _from_json(obj, (), 0)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _from_json(obj: Any, path: tuple[str, ...], depth: int) -> Node:
    if depth > MAX_DEPTH:
        raise AdapterError("document nested too deeply", code="too_deep",
                           loc=("/" + "/".join(path),))
    if isinstance(obj, dict):
        children: dict[str, list[Node]] = {}
        for key, value in obj.items():
            children[norm_key(key)] = [_from_json(value, (*path, key), depth + 1)]
        return Node(children, path, "json")
    if isinstance(obj, list):
        return Node([_from_json(v, (*path, str(i)), depth + 1) for i, v in enumerate(obj)],
                    path, "json")
    return Node(obj, path, "json")


def load_xml(raw: bytes) -> Node:
    """Parse XML safely: any DTD, entity declaration or external reference is refused."""
    check_size(raw)
    root = parse_xml(raw)
    return _from_xml(root, (_local(root.tag),), 0)


def parse_xml(raw: bytes) -> ET.Element:
    """defusedxml with DTDs, entity declarations and external references forbidden (bombs
    and XXE stop at their ``<!DOCTYPE``); every failure a located AdapterError."""
    try:
        root: ET.Element = SafeET.fromstring(raw, forbid_dtd=True, forbid_entities=True,
                                             forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        raise AdapterError("XML with a DTD, entity declarations or external references is "
                           "refused", code="unsafe_xml", loc=("/",)) from exc
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else None
        raise AdapterError("malformed XML", code="bad_xml", loc=("/",), line=line) from exc
    except (LookupError, ValueError) as exc:  # unknown or unsupported declared encoding
        raise AdapterError("XML declares an encoding this parser cannot read",
                           code="bad_xml", loc=("/",), line=1) from exc
    return root


def _local(tag: str) -> str:
    """Element name without its namespace: ``{urn:x}party`` -> ``party``."""
    return tag.rsplit("}", 1)[-1]


def _from_xml(element: ET.Element, path: tuple[str, ...], depth: int) -> Node:
    if depth > MAX_DEPTH:
        raise AdapterError("document nested too deeply", code="too_deep",
                           loc=("/" + "/".join(path),))
    kids = list(element)
    if not kids and not element.attrib:
        return Node((element.text or "").strip(), path, "xml")
    counts: dict[str, int] = {}
    for kid in kids:
        counts[_local(kid.tag)] = counts.get(_local(kid.tag), 0) + 1
    children: dict[str, list[Node]] = {}
    for name, value in element.attrib.items():
        children.setdefault(norm_key(_local(name)), []).append(
            Node(value.strip(), (*path, "@" + _local(name)), "xml"))
    seen: dict[str, int] = {}
    for kid in kids:
        name = _local(kid.tag)
        seen[name] = seen.get(name, 0) + 1
        step = f"{name}[{seen[name]}]" if counts[name] > 1 else name
        children.setdefault(norm_key(name), []).append(_from_xml(kid, (*path, step), depth + 1))
    return Node(children, path, "xml")


_XML_ROOT = re.compile(rb"<([^\s>/?!]+)")
_COMMENT = re.compile(rb"<!--.*?-->|<\?.*?\?>|<!DOCTYPE(?:[^\[>]|\[.*?\])*>", re.S)


def xml_root_name(raw: bytes) -> str | None:
    """The root element's local name, read without parsing (DTDs are skipped, not run)."""
    head = raw[:65536].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"<"):
        return None
    match = _XML_ROOT.search(_COMMENT.sub(b"", head))
    if match is None:
        return None
    try:
        return _local(match[1].decode("utf-8"))
    except UnicodeDecodeError:
        return None


def load(raw: bytes) -> Node:
    """JSON or XML by the first significant byte."""
    head = raw.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head == b"<":
        return load_xml(raw)
    if head in (b"{", b"["):
        return load_json(raw)
    raise AdapterError("expected a JSON object or an XML document", code="bad_syntax",
                       loc=("/",), line=1)
