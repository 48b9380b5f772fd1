"""FHIR R4 JSON: decoding, a located walker, and reference resolution inside a Bundle.

Every value is read through :class:`Node`, which knows its RFC 6901 JSON pointer, so each
error names the exact place (``/entry/3/resource/code``) and never the value. Numbers are
decoded as ``decimal.Decimal`` (FHIR decimals keep their precision; packets never see floats).
FHIR XML (``adapters.fhir.xml_input``) is converted to the same JSON shape and walked by the same
Node with ``xml=True``: locations are then element paths (``/Bundle/entry[2]/resource/Claim``),
numbers and booleans arrive as text, and a lone element stands for a one-element array.
References are resolved as FHIR R4 section 2.36 "Resolving references in Bundles" describes:
by ``fullUrl``, by ``Type/id`` relative to the Bundle, and ``#id`` to contained resources.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from adapters._values import exact_decimal
from gateway.core.errors import AdapterError
from gateway.core.jsondepth import json_depth

BUNDLE_TYPES = frozenset({"collection", "document", "transaction", "searchset", "batch",
                          "transaction-response", "batch-response", "history", "message"})
MAX_DEPTH = 64
_XML_NUMBER = re.compile(r"^[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$")
_EXTENSION_ONLY = frozenset({"id", "extension"})
_WANTED = {False: {"object": "expected a JSON object", "array": "expected a JSON array",
                   "string": "expected a JSON string", "number": "expected a JSON number"},
           True: {"object": "expected an element with child elements",
                  "array": "expected elements", "string": "expected a value attribute",
                  "number": "expected a value attribute"}}


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


class Resource(dict[str, Any]):
    """A resource converted from FHIR XML: its members sit under its type's element, so the
    element path of a member is ``<path>/<resourceType>/<member>``."""


@dataclass(frozen=True)
class Node:
    """A JSON value and where it is; absent members are Nodes holding None.

    ``xml`` marks values converted from FHIR XML: ``ptr`` is then an element path, repeated
    elements are numbered from 1 (``item[2]``), primitives are strings (decimals and booleans
    included) and a lone primitive is a one-element array, as a lone object already is.
    """

    value: Any
    ptr: str
    xml: bool = False

    def __getitem__(self, key: str | int) -> Node:
        if isinstance(key, int):
            items = self.value if isinstance(self.value, list) else []
            child = f"{self.ptr}[{key + 1}]" if self.xml else f"{self.ptr}/{key}"
            return Node(items[key] if 0 <= key < len(items) else None, child, self.xml)
        if not self.xml:
            return Node(self.obj().get(key), f"{self.ptr}/{_escape(key)}")
        base = self.ptr
        if isinstance(self.value, Resource):
            base = f"{base}/{self.value.get('resourceType', '')}"
            if key == "resourceType":
                return Node(self.value.get(key), base, True)
        return Node(self.obj().get(key), f"{base}/{key}", True)

    def error(self, msg: str, code: str) -> AdapterError:
        return AdapterError(msg, code=code, loc=(self.ptr or "/",))

    def obj(self) -> dict[str, Any]:
        if self.value is None:
            return {}
        if not isinstance(self.value, dict):
            raise self.error(_WANTED[self.xml]["object"], "bad_type")
        return self.value

    def items(self) -> list[Node]:
        """Elements of an array (a lone object is tolerated as a one-element array; from XML a
        lone primitive too)."""
        if self.value is None:
            return []
        if isinstance(self.value, dict) or (self.xml and isinstance(self.value, str)):
            return [self]
        if not isinstance(self.value, list):
            raise self.error(_WANTED[self.xml]["array"], "bad_type")
        return [self[i] for i in range(len(self.value))]

    def _extension_only(self) -> bool:
        """From XML, a primitive that carries only an id or extensions (no value attribute)
        cannot be told from a complex element; it is read as absent, as JSON's ``_name``."""
        return self.xml and isinstance(self.value, dict) and self.value.keys() <= _EXTENSION_ONLY

    def string(self) -> str:
        """A string member, '' when absent; numbers and booleans are refused."""
        if self.value is None or self._extension_only():
            return ""
        if not isinstance(self.value, str):
            raise self.error(_WANTED[self.xml]["string"], "bad_type")
        return self.value.strip()

    def text(self) -> str:
        """A string, integer or decimal member as text ('' when absent)."""
        if isinstance(self.value, int | Decimal) and not isinstance(self.value, bool):
            return str(self.value)
        return self.string()

    def boolean(self) -> bool | None:
        """A boolean member; None when absent or not a boolean (from XML: ``true``/``false``)."""
        if isinstance(self.value, bool):
            return self.value
        if self.xml and isinstance(self.value, str) and self.value.strip() in ("true", "false"):
            return self.value.strip() == "true"
        return None

    def dec(self) -> Decimal | None:
        if self.value is None or self._extension_only():
            return None
        if self.xml and isinstance(self.value, str):
            if not _XML_NUMBER.match(self.value.strip()):
                raise self.error("expected a decimal number", "bad_number")
            try:
                return self._in_range(exact_decimal(self.value.strip()))
            except ValueError as exc:
                raise self.error("number out of range", "bad_number") from exc
        if isinstance(self.value, bool) or not isinstance(self.value, int | Decimal):
            raise self.error(_WANTED[self.xml]["number"], "bad_type")
        return self._in_range(Decimal(self.value))

    def _in_range(self, value: Decimal) -> Decimal:
        if not value.is_finite() or abs(value.adjusted()) > 30:
            raise self.error("number out of range", "bad_number")
        return value

    @property
    def present(self) -> bool:
        return self.value not in (None, "", [], {})


def load(raw: bytes) -> Node:
    """Decode UTF-8 (a BOM is allowed) JSON into a Node at the root pointer ''."""
    text = raw.decode("utf-8-sig", errors="strict") if _utf8(raw) else None
    if text is None:
        raise AdapterError("FHIR JSON must be UTF-8", code="bad_encoding", loc=("/",))
    if json_depth(raw) > MAX_DEPTH:  # before the recursive parser (gateway.core.jsondepth)
        raise AdapterError("JSON nested too deeply", code="too_deep", loc=("/",))
    try:
        value = json.loads(text, parse_float=exact_decimal, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise AdapterError(f"not valid JSON ({exc.msg})", code="bad_json", loc=("/",),
                           line=exc.lineno) from exc
    except RecursionError as exc:
        raise AdapterError("JSON nested too deeply", code="too_deep", loc=("/",)) from exc
    except ValueError as exc:  # NaN/Infinity, or an integer with too many digits
        raise AdapterError("JSON number not allowed in FHIR", code="bad_number",
                           loc=("/",)) from exc
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        raise AdapterError("expected a FHIR resource: a JSON object with resourceType",
                           code="not_fhir", loc=("/resourceType",))
    check_depth(value)
    return Node(value, "")


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return False
    return True


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def check_depth(value: Any) -> None:
    """Refuse a decoded document nested deeper than FHIR resources ever are (``too_deep``)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise AdapterError("JSON nested too deeply", code="too_deep", loc=("/",))
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


@dataclass
class Index:
    """All resources of the input with their pointers, addressable the ways FHIR references are."""

    resources: list[Node] = field(default_factory=list)
    by_key: dict[str, Node] = field(default_factory=dict)
    full_urls: dict[int, str] = field(default_factory=dict)
    missing: int = 0
    """Clinical references (results, diagnoses, charge items) not found in the input."""
    _typed: dict[tuple[str, ...], list[Node]] = field(default_factory=dict)
    """of_type answers: asked once per resource in large Bundles, so cached (resources are
    only added while building)."""

    @classmethod
    def build(cls, root: Node) -> Index:
        index = cls()
        if root["resourceType"].string() != "Bundle":
            index._add(root, "")
            return index
        kind = root["type"].string()
        if kind and kind not in BUNDLE_TYPES:
            raise root["type"].error("unknown Bundle.type", "bad_bundle")
        for entry in root["entry"].items():
            resource = entry["resource"]
            if resource.value is None:
                continue  # e.g. a DELETE request in a transaction carries no resource
            if not isinstance(resource.value, dict) or not resource["resourceType"].string():
                raise resource.error("Bundle entry resource needs a resourceType", "not_fhir")
            index._add(resource, entry["fullUrl"].string())
        return index

    def _add(self, resource: Node, full_url: str) -> None:
        self._typed.clear()
        self.resources.append(resource)
        self.full_urls[id(resource.value)] = full_url
        rtype, rid = resource["resourceType"].string(), resource["id"].string()
        keys = [full_url] if full_url else []
        if rid:
            keys.append(f"{rtype}/{rid}")
            if full_url.endswith(f"/{rtype}/{rid}"):
                keys.append(full_url)
        for key in keys:
            self.by_key.setdefault(key, resource)

    def of_type(self, *types: str) -> list[Node]:
        if types not in self._typed:
            self._typed[types] = [r for r in self.resources
                                  if r["resourceType"].string() in types]
        return list(self._typed[types])

    def resolve(self, ref: Node, container: Node, *types: str) -> Node | None:
        """The resource a Reference points to; None for a logical (identifier-only) reference.

        Raises ``unresolved_reference`` when a literal reference is not in the input and
        ``wrong_reference_type`` when it names another resource type.
        """
        target = ref["reference"].string()
        if not target:
            if ref["identifier"].present or ref["display"].present:
                return None
            raise ref.error("reference is empty", "unresolved_reference")
        found = self._lookup(target, container)
        if found is None:
            raise ref["reference"].error("reference does not resolve to a resource in this "
                                         "input; include the resource in the Bundle",
                                         "unresolved_reference")
        if types and found["resourceType"].string() not in types:
            raise ref["reference"].error(f"reference must point to {' or '.join(types)}",
                                         "wrong_reference_type")
        return found

    def find(self, ref: Node, container: Node, *types: str) -> Node | None:
        """Like :meth:`resolve` for content that may live outside the input (a report's results,
        an encounter's diagnoses): a reference not found is counted in :attr:`missing`."""
        target = ref["reference"].string()
        found = self._lookup(target, container) if target else None
        if found is None:
            if not isinstance(ref.value, dict) or not ref.present:
                raise ref.error("expected a Reference object", "bad_type")
            self.missing += 1
            return None
        if types and found["resourceType"].string() not in types:
            raise ref["reference"].error(f"reference must point to {' or '.join(types)}",
                                         "wrong_reference_type")
        return found

    def lookup(self, ref: Node, container: Node) -> Node | None:
        """The resource a literal reference names, or None (never raises)."""
        target = ref["reference"].string()
        return self._lookup(target, container) if target else None

    def resolve_soft(self, ref: Node, container: Node) -> Node | None:
        """Like :meth:`resolve` for references that are context only (staff, locations)."""
        target = ref["reference"].string()
        return self._lookup(target, container) if target else None

    def _lookup(self, target: str, container: Node) -> Node | None:
        if target.startswith("#"):
            return next((c for c in container["contained"].items()
                         if c["id"].string() == target[1:]), None)
        target = target.split("/_history/", 1)[0]
        if target in self.by_key:
            return self.by_key[target]
        parts = target.rstrip("/").split("/")
        return self.by_key.get("/".join(parts[-2:])) if len(parts) >= 2 else None
