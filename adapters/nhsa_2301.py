"""The medical-insurance fee-detail upload as JSON (interface 2301) -> ``hospital.invoice``.

A hospital information system uploads each inpatient stay's fee details to the National
Healthcare Security Administration's platform (国家医疗保障信息平台) with interface 2301
(住院费用明细上传; 2204 is the outpatient twin with the same detail fields). The request body is
``{"infno": "2301", ..., "input": {"feedetail": [{...}, ...]}}`` with the interface's snake_case
field codes (``feedetl_sn``, ``med_list_codg``, ``medins_list_codg``, ``det_item_fee_sumamt``,
``cnt``, ``pric``, ``psn_no``, ``mdtrt_id``, ``fee_ocur_time``...); HIS exports also keep the
``feedetail`` object alone, a plain list of details, and the platform's answer merged into each
detail (``fulamt_ownpay_amt``, ``overlmt_amt``, ``preselfpay_amt``, ``inscp_scp_amt``). All are
read here, by the field names of the CSV form (``adapters._bill_layout``: codes or Chinese
names), and checked by the same code (``adapters._bill_items``): exact decimals at the
interface's precision, ``det_item_fee_sumamt`` = ``cnt`` x ``pric``, policy parts within the
amount. Errors are located as ``feedetail[3].pric`` (``input.feedetail[3].pric`` in a request
body), never with the value.

Subject: a resident ID on the details (``certno``, 身份证号), else the platform's personnel
number ``psn_no`` (人员编号, issued by the national platform, so the same person has the same one
at every hospital: scheme ``mrn:nhsa-psn_no``), else a hospital record number (scoped to the
issuer), else the subject the publisher gave. One upload is one person and one stay: a
``psn_no`` or ``mdtrt_id`` that changes between details is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from adapters import _bill_layout as layout
from adapters._bill_items import Bill, add_item
from adapters._tree import Node, load_json
from adapters._values import Loc, clean_text, norm_key, parse_datetime, source_ref, subject_of
from adapters.pseudonym import pseudonymise
from adapters.registry import Adapter, AdapterContext, register
from gateway.core.errors import AdapterError
from gateway.core.packet import Packet, new_packet

FORMAT = "nhsa_2301"
INTERFACES = {"2301": "inpatient", "2204": "outpatient"}
"""Fee-detail uploads read here: 2301 住院费用明细上传, 2204 门诊费用明细信息上传."""
MAX_DETAILS = 100_000
PSN_SCHEME = "mrn:nhsa-psn_no"
_MARKS = (b'"feedetl_sn"', b'"med_list_codg"', b'"feedetail"', '"费用明细流水号"'.encode())
_SCALARS = (str, int, Decimal)


@dataclass(frozen=True)
class _Detail:
    """One feedetail object seen through the shared field names (adapters._bill_items.Line)."""

    fields: dict[str, Node]
    where: str
    """``feedetail[3]`` or ``input.feedetail[3]``."""
    line: int | None = None

    def has(self, key: str) -> bool:
        return key in self.fields

    def text(self, key: str) -> str:
        node = self.fields.get(key)
        if node is None or node.value is None:
            return ""
        if isinstance(node.value, bool) or not isinstance(node.value, _SCALARS):
            raise AdapterError(f"{self.name(key)} must be a string or a number",
                               code="wrong_type", loc=self.loc(key))
        if isinstance(node.value, Decimal):  # a JSON number: exact, exponent or not
            return format(node.value, "f")
        return str(node.value).strip()

    def loc(self, key: str) -> Loc:
        return (f"{self.where}.{self.name(key)}",)

    def name(self, key: str) -> str:
        node = self.fields.get(key)
        return node.path[-1] if node is not None else _SOURCE_NAME.get(key, key)


_SOURCE_NAME = {"amount": "det_item_fee_sumamt", "quantity": "cnt", "unit_price": "pric",
                "code": "med_list_codg", "line_id": "feedetl_sn", "insured_person": "psn_no",
                "visit_id": "mdtrt_id"}
"""A missing field is named by its interface code."""


def detect(raw: bytes) -> bool:
    """A JSON object or list naming fee-detail fields in its first 64 KiB (never a FHIR one)."""
    head = raw[:65536].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] not in (b"{", b"[") or b'"resourceType"' in head:
        return False
    if b'"infno"' in head and not any(f'"{n}"'.encode() in head for n in INTERFACES):
        return False
    return any(mark in head for mark in _MARKS)


def adapt(raw: bytes, ctx: AdapterContext) -> list[Packet]:
    """One upload (one person's stay) -> one ``hospital.invoice`` packet."""
    root = load_json(raw)
    base, details, interface = _details(root)
    bill = Bill()
    seen: dict[str, str] = {}
    once: dict[str, tuple[str, _Detail]] = {}
    med_types: set[str] = set()
    for i, node in enumerate(details):
        detail = _detail(node, f"{base}[{i}]")
        item = add_item(bill, detail)
        line_id = item.get("line_id")
        if line_id:
            if line_id in seen:
                raise AdapterError("feedetl_sn repeats an earlier detail's (unique within a "
                                   "stay)", code="duplicate_line_id", loc=detail.loc("line_id"))
            seen[line_id] = detail.where
        if detail.text("time"):
            item["date"] = parse_datetime(detail.text("time"), loc=detail.loc("time"),
                                          what="fee_ocur_time")
        if detail.text("original_line_id"):
            item["refund_of"] = clean_text(detail.text("original_line_id"))
        if detail.text("med_type"):
            med_types.add(clean_text(detail.text("med_type")))
        for key, code in (("insured_person", "inconsistent_subject"),
                          ("resident_id", "inconsistent_subject"), ("mrn", "inconsistent_subject"),
                          ("visit_id", "inconsistent_visit")):
            _same(key, code, detail, once)
    body: dict[str, object] = {"currency": "CNY", "items": bill.items,
                               "total": bill.totals()["amount"], "totals": bill.totals(),
                               "interface": interface}
    if "visit_id" in once:
        body["visit_id"] = clean_text(once["visit_id"][0])
    if len(med_types) == 1:
        body["med_type"] = med_types.pop()
    subject, how = _subject(once, ctx, base)
    body["subject_from"] = how
    return [new_packet(kind="hospital.invoice", issuer=ctx.issuer, subject=subject, body=body,
                       source=source_ref(FORMAT, raw))]


def _details(root: Node) -> tuple[str, list[Node], str]:
    """(location prefix, the feedetail objects, the interface number)."""
    if isinstance(root.value, list):
        return "feedetail", _listed(root, "feedetail"), "2301"
    if not root.is_object():
        raise root.error("expected a JSON object or list of fee details", "wrong_type")
    interface = "2301"
    infno = root.get(("infno",))
    if infno is not None:
        interface = infno.text("infno")
        if interface not in INTERFACES:
            raise AdapterError("infno names no fee-detail upload (2301, 2204)",
                               code="unsupported_infno", loc=("infno",))
    body, prefix = root, ""
    inner = root.get(("input",))
    if inner is not None:
        if not inner.is_object():
            raise AdapterError("input must be an object", code="wrong_type", loc=("input",))
        body, prefix = inner, "input."
    elif infno is not None:
        raise AdapterError("the request has no input", code="missing_field", loc=("input",))
    node = body.get(("feedetail", "费用明细"))
    if node is None:
        raise AdapterError("no feedetail list", code="missing_field",
                           loc=(f"{prefix}feedetail",))
    return f"{prefix}feedetail", _listed(node, f"{prefix}feedetail"), interface


def _listed(node: Node, where: str) -> list[Node]:
    items = node.value if isinstance(node.value, list) else [node] if node.is_object() else None
    if items is None:
        raise AdapterError("feedetail must be a list of objects", code="wrong_type", loc=(where,))
    if not items:
        raise AdapterError("feedetail is empty", code="no_items", loc=(where,))
    if len(items) > MAX_DETAILS:
        raise AdapterError(f"more than {MAX_DETAILS} details", code="too_many_rows", loc=(where,))
    return list(items)


def _detail(node: Node, where: str) -> _Detail:
    if not node.is_object():
        raise AdapterError("a fee detail must be an object", code="wrong_type", loc=(where,))
    fields: dict[str, Node] = {}
    for key, children in node.value.items():
        canonical = layout.ALIASES.get(norm_key(key))
        if canonical is not None and canonical not in fields:
            fields[canonical] = children[0]
    return _Detail(fields, where)


def _same(key: str, code: str, detail: _Detail, once: dict[str, tuple[str, _Detail]]) -> None:
    """A bill-wide field repeated on each detail must not change (one person, one stay)."""
    value = detail.text(key)
    if not value:
        return
    first = once.setdefault(key, (value, detail))
    if "".join(first[0].split()).upper() != "".join(value.split()).upper():
        raise AdapterError(f"{detail.name(key)} differs from an earlier detail's: one upload, "
                           "one person and one stay", code=code, loc=detail.loc(key))


def _subject(once: dict[str, tuple[str, _Detail]], ctx: AdapterContext,
             base: str) -> tuple[str, str]:
    if "resident_id" in once:
        value, detail = once["resident_id"]
        return subject_of(value, ctx=ctx, loc=detail.loc("resident_id")), "resident_id"
    for key, scheme in (("insured_person", PSN_SCHEME), ("mrn", f"mrn:{ctx.issuer}")):
        if key in once:
            value, detail = once[key]
            return pseudonymise(scheme, value, loc=detail.loc(key),
                                key=ctx.pseudonym_key), key
    if ctx.subject is not None:
        return ctx.subject, "publisher"
    raise AdapterError("no person on the details: psn_no, certno or a record number is needed",
                       code="missing_subject", loc=(f"{base}[0].psn_no",))


register(Adapter(
    name=FORMAT,
    description="national medical-insurance fee-detail upload as JSON (2301/2204 feedetail: "
    "request body, feedetail object or a plain list)",
    kinds=("hospital.invoice",),
    adapt=adapt,
    detect=detect,
    extensions=(".json",),
))
