"""Police records as JSON or XML -> ``police.accident_determination`` / ``police.incident_report``.

The accident determination follows the 道路交通事故认定书 of the Ministry of Public
Security's Provisions on the Handling of Road Traffic Accidents (case number, time, place,
parties with vehicles and liability, facts, date, bureau); the incident report follows a
接处警/受案 registration. The document schema (Chinese or English names, either syntax) is
in docs/adapters/police.md. XML is read by adapters._tree with defusedxml: no DTD, no
entities, no external references. Party names are dropped; identity numbers become
pseudonyms; free text has names, ID-like numbers and mobile numbers redacted.
"""

from __future__ import annotations

from typing import Any

from adapters import _parties as parties_
from adapters._tree import Node, load, xml_root_name
from adapters._values import norm_key, parse_date, parse_datetime, source_ref
from adapters.registry import Adapter, AdapterContext, register
from gateway.core.errors import AdapterError
from gateway.core.packet import Packet, new_packet

FORMAT = "police"

ACCIDENT_NAMES = ("道路交通事故认定书", "交通事故认定书", "事故认定书", "accident_determination",
                  "road_traffic_accident_determination")
INCIDENT_NAMES = ("接处警登记表", "受案登记表", "受案回执", "报警回执", "incident_report",
                  "police_incident_report")
_KINDS = {norm_key(n): "police.accident_determination" for n in ACCIDENT_NAMES} | {
    norm_key(n): "police.incident_report" for n in INCIDENT_NAMES}
_TYPE_FIELD = ("document_type", "文书类型", "文书名称", "type")

F: dict[str, tuple[str, ...]] = {
    "case_number": ("case_number", "case_no", "认定书编号", "文书编号", "案件编号", "接警编号",
                    "受案编号", "编号"),
    "occurred_at": ("occurred_at", "accident_time", "事故时间", "事故发生时间", "发生时间",
                    "发案时间", "事发时间"),
    "reported_at": ("reported_at", "报警时间", "接警时间", "报案时间"),
    "place": ("place", "location", "事故地点", "发生地点", "发案地点", "事发地点", "地点"),
    "parties": ("parties", "party", "当事人", "当事人信息", "当事人列表"),
    "party": ("party", "当事人"),
    "facts": ("facts", "事故事实", "基本事实", "事故经过", "事实"),
    "grounds": ("grounds", "认定理由", "责任认定理由", "理由"),
    "determination_date": ("determination_date", "issued_on", "认定日期", "出具日期",
                           "制作日期"),
    "bureau": ("bureau", "authority", "issued_by", "公安机关", "认定机关", "交通管理部门",
               "办案单位", "接警单位"),
    "category": ("category", "案件类别", "警情类别", "类别"),
    "summary": ("summary", "简要案情", "警情摘要", "案情", "报警内容"),
    "outcome": ("outcome", "处理结果", "处警结果", "处理意见"),
}


def _kind_and_root(node: Node) -> tuple[str, Node]:
    """Which police document this is: XML root name, a single wrapping key, or a type field."""
    if node.syntax == "xml" and node.path and norm_key(node.path[0]) in _KINDS:
        return _KINDS[norm_key(node.path[0])], node
    if not node.is_object():
        raise node.error("document must be a JSON object or an XML element", "wrong_type")
    if len(node.value) == 1:
        key = next(iter(node.value))
        inner = node.value[key][0]
        if key in _KINDS and inner.is_object():
            return _KINDS[key], inner
    type_text = node.opt_text("document_type", _TYPE_FIELD)
    if type_text and norm_key(type_text) in _KINDS:
        return _KINDS[norm_key(type_text)], node
    raise node.error("not a police accident determination or incident report: set "
                     "document_type", "unknown_document", "document_type")


def detect(raw: bytes) -> bool:
    """JSON with a police document type, or XML whose root element names one."""
    root = xml_root_name(raw)
    if root is not None:
        return norm_key(root) in _KINDS
    head = raw.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head != b"{" or b"resourceType" in raw[:4096]:
        return False
    try:
        _kind_and_root(load(raw))
    except AdapterError:
        return False
    return True


def adapt(raw: bytes, ctx: AdapterContext) -> list[Packet]:
    """Map one police document to one packet of its kind."""
    kind, root = _kind_and_root(load(raw))
    if kind == "police.accident_determination":
        body, subject = _accident(root, ctx)
    else:
        body, subject = _incident(root, ctx)
    return [new_packet(kind=kind, issuer=ctx.issuer, subject=subject, body=body,
                       source=source_ref(FORMAT, raw))]


def _parties(root: Node, ctx: AdapterContext, required: bool) -> list[parties_.Party]:
    nodes = root.items("parties", F["parties"], F["party"], required=required)
    if required and not nodes:
        raise root.error("at least one party is required", "missing_field", "parties")
    return [parties_.read_party(n, i, ctx) for i, n in enumerate(nodes)]


def _time(root: Node, field: str, required: bool = True) -> str | None:
    node = root.need(field, F[field]) if required else root.get(F[field])
    if node is None or not node.text(field):
        return None
    return parse_datetime(node.text(field), loc=(node.where,), what=field)


def _common(root: Node, parties: list[parties_.Party]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "case_number": root.req_text("case_number", F["case_number"]),
        "occurred_at": _time(root, "occurred_at"),
        "place": parties_.redact(root.req_text("place", F["place"]), parties),
    }
    bureau = root.opt_text("bureau", F["bureau"])
    if bureau:
        body["bureau"] = bureau
    return body


def _accident(root: Node, ctx: AdapterContext) -> tuple[dict[str, Any], str]:
    parties = _parties(root, ctx, required=True)
    parties_.check_split(parties, root)
    body = _common(root, parties)
    body["parties"] = [p.out for p in parties]
    body["facts"] = parties_.redact(root.req_text("facts", F["facts"]), parties)
    grounds = root.opt_text("grounds", F["grounds"])
    if grounds:
        body["grounds"] = parties_.redact(grounds, parties)
    date_node = root.need("determination_date", F["determination_date"])
    body["determination_date"] = parse_date(date_node.text("determination_date"),
                                            loc=(date_node.where,), what="determination_date")
    return body, parties_.choose_subject(parties, root)


def _incident(root: Node, ctx: AdapterContext) -> tuple[dict[str, Any], str]:
    parties = _parties(root, ctx, required=True)
    body = _common(root, parties)
    reported = _time(root, "reported_at", required=False)
    if reported:
        body["reported_at"] = reported
    body["parties"] = [{k: v for k, v in p.out.items() if k not in ("liability", "share")}
                       for p in parties]
    for field in ("category", "summary", "outcome"):
        text = root.opt_text(field, F[field])
        if text:
            body[field] = parties_.redact(text, parties) if field != "category" else text
    if "summary" not in body:
        raise root.error("required field summary is missing", "missing_field", "summary")
    return body, parties_.choose_subject(parties, root)


register(Adapter(
    name=FORMAT,
    description="police road traffic accident determination (道路交通事故认定书) or incident "
    "report, as JSON or XML",
    kinds=("police.accident_determination", "police.incident_report"),
    adapt=adapt,
    detect=detect,
    extensions=(".json", ".xml"),
))
