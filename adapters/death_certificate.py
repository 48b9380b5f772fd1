"""Death certificates (居民死亡医学证明（推断）书) as JSON -> ``civil.death_certificate``.

The cause of death follows the WHO international form of the medical certificate (ICD-10
volume 2, 4.1.3), which the Chinese certificate copies: part I lines (a) to (d), each due
to the next, the last filled line being the underlying cause; part II other significant
conditions. Codes are ICD-10 (WHO or the Chinese clinical extension, e.g. ``I21.900``).
The deceased's identity number becomes the subject pseudonym; names and addresses are
dropped. XML with the same names is accepted too (read safely, see adapters._tree).
"""

from __future__ import annotations

import re
from typing import Any

from adapters._tree import Node, load, xml_root_name
from adapters._values import norm_key, parse_date, parse_datetime, source_ref, subject_of
from adapters.registry import Adapter, AdapterContext, register
from gateway.core.errors import AdapterError
from gateway.core.packet import Packet, new_packet

FORMAT = "death_certificate"
ROOT_NAMES = ("death_certificate", "居民死亡医学证明书", "居民死亡医学证明(推断)书",
              "死亡医学证明书", "死亡证明")
_ROOTS = {norm_key(n) for n in ROOT_NAMES}
_TYPE_FIELD = ("document_type", "文书类型", "type")

F: dict[str, tuple[str, ...]] = {
    "certificate_number": ("certificate_number", "证明编号", "死亡证明编号", "编号"),
    "deceased": ("deceased", "死者", "死者信息"),
    "id_type": ("id_type", "证件类型"),
    "id_number": ("id_number", "身份证号", "身份证号码", "公民身份号码", "证件号码",
                  "resident_id"),
    "country": ("country", "nationality", "国籍"),
    "date_of_death": ("date_of_death", "time_of_death", "死亡日期", "死亡时间"),
    "place_of_death": ("place_of_death", "死亡地点"),
    "cause_of_death": ("cause_of_death", "死亡原因", "死因"),
    "other_conditions": ("other_conditions", "part_ii", "其他疾病诊断", "其他疾病"),
    "manner": ("manner", "manner_of_death", "死亡方式", "死亡性质"),
    "institution": ("institution", "certifier", "签发机构", "医疗机构", "医疗卫生机构"),
    "issued_on": ("issued_on", "签发日期", "填报日期"),
    "text": ("text", "condition", "疾病名称", "名称", "诊断"),
    "icd10": ("icd10", "icd_10", "icd", "icd编码", "icd_10编码", "编码"),
    "interval": ("interval", "发病至死亡大概间隔时间", "间隔时间", "间隔"),
}
LINES = ("a", "b", "c", "d")
_LINE_ALIASES: dict[str, tuple[str, ...]] = {
    line: (line, f"({line})", f"line_{line}", f"{line}_line") for line in LINES}
_LINE_ALIASES["a"] += ("直接死因", "直接死亡原因")

PLACES = {"医疗卫生机构": "hospital", "医院": "hospital", "hospital": "hospital",
          "来院途中": "en_route", "en_route": "en_route", "家中": "home", "home": "home",
          "养老服务机构": "care_home", "care_home": "care_home", "其他场所": "other",
          "其他": "other", "other": "other", "不详": "unknown", "unknown": "unknown"}
MANNERS = {"自然死亡": "natural", "疾病": "natural", "natural": "natural",
           "意外": "accident", "意外死亡": "accident", "accident": "accident",
           "自杀": "suicide", "suicide": "suicide", "他杀": "homicide", "homicide": "homicide",
           "待定": "pending", "pending": "pending", "pending_investigation": "pending",
           "无法确定": "undetermined", "undetermined": "undetermined",
           "不详": "unknown", "unknown": "unknown"}
_ICD10 = re.compile(r"^([A-Z][0-9][0-9A-Z])(?:\.?([0-9A-Z]{1,10}))?$")


def _root(node: Node) -> Node:
    if node.syntax == "xml" and norm_key(node.path[0]) in _ROOTS:
        return node
    if node.is_object() and len(node.value) == 1:
        key = next(iter(node.value))
        inner: Node = node.value[key][0]
        if key in _ROOTS and inner.is_object():
            return inner
    type_text = node.opt_text("document_type", _TYPE_FIELD) if node.is_object() else None
    if type_text and norm_key(type_text) in _ROOTS:
        return node
    raise node.error("not a death certificate: set document_type to death_certificate",
                     "unknown_document", "document_type")


def detect(raw: bytes) -> bool:
    root = xml_root_name(raw)
    if root is not None:
        return norm_key(root) in _ROOTS
    if raw.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] != b"{" or b"resourceType" in raw[:4096]:
        return False
    try:
        _root(load(raw))
    except AdapterError:
        return False
    return True


def adapt(raw: bytes, ctx: AdapterContext) -> list[Packet]:
    root = _root(load(raw))
    person = root.get(F["deceased"])
    person = person if person is not None and person.is_object() else root
    id_node = person.need("id_number", F["id_number"])
    subject = subject_of(id_node.text("id_number"), ctx=ctx, loc=(id_node.where,),
                         id_type=person.opt_text("id_type", F["id_type"]),
                         country=person.opt_text("country", F["country"]))
    death = root.need("date_of_death", F["date_of_death"])
    body: dict[str, Any] = {
        "certificate_number": root.req_text("certificate_number", F["certificate_number"]),
        "date_of_death": parse_datetime(death.text("date_of_death"), loc=(death.where,),
                                        what="date_of_death"),
        "place_of_death": _coded(root, "place_of_death", PLACES, "bad_place", required=True),
        "cause_of_death": _cause(root),
    }
    manner = _coded(root, "manner", MANNERS, "bad_manner", required=False)
    if manner:
        body["manner"] = manner
    institution = root.opt_text("institution", F["institution"])
    if institution:
        body["institution"] = institution
    issued = root.get(F["issued_on"])
    if issued is not None and issued.text("issued_on"):
        body["issued_on"] = parse_date(issued.text("issued_on"), loc=(issued.where,),
                                       what="issued_on")
    return [new_packet(kind="civil.death_certificate", issuer=ctx.issuer, subject=subject,
                       body=body, source=source_ref(FORMAT, raw))]


def _coded(root: Node, field: str, table: dict[str, str], code: str,
           required: bool) -> str | None:
    node = root.need(field, F[field]) if required else root.get(F[field])
    if node is None or not node.text(field):
        return None
    value = table.get(norm_key(node.text(field)))
    if value is None:
        raise node.error(f"{field} must be one of {', '.join(sorted(set(table.values())))}",
                         code)
    return value


def icd10(node: Node) -> str:
    """Normalise an ICD-10 code: upper case, the dot after the category (``I219`` -> ``I21.9``)."""
    text = node.text("icd10").replace(" ", "").upper()
    match = _ICD10.match(text)
    if match is None:
        raise node.error("not an ICD-10 code (letter, two characters, optional .subcode)",
                         "bad_icd10")
    return match[1] + (f".{match[2]}" if match[2] else "")


def _condition(node: Node) -> dict[str, str]:
    """One condition: an object with text/ICD-10/interval, or plain text."""
    if not node.is_object():
        return {"text": node.text("condition")}
    out: dict[str, str] = {}
    text = node.opt_text("text", F["text"])
    code = node.get(F["icd10"])
    if text:
        out["text"] = text
    if code is not None and code.text("icd10"):
        out["icd10"] = icd10(code)
    if not out:
        raise node.error("a cause needs a text or an ICD-10 code", "missing_field", "icd10")
    interval = node.opt_text("interval", F["interval"])
    if interval:
        out["interval"] = interval
    return out


def _cause(root: Node) -> dict[str, Any]:
    """Part I lines a-d without gaps, the underlying cause, and part II conditions."""
    node = root.need("cause_of_death", F["cause_of_death"])
    found: dict[str, Node] = {}
    if isinstance(node.value, list):
        if len(node.value) > len(LINES):
            raise node.error("part I has at most four lines (a-d)", "too_many_causes")
        found = dict(zip(LINES, node.value, strict=False))
    elif node.is_object():
        for line in LINES:
            sub = node.get(_LINE_ALIASES[line])
            if sub is not None and sub.value not in (None, ""):
                found[line] = sub
    else:
        raise node.error("cause_of_death must be an object with lines a-d or a list",
                         "wrong_type")
    if "a" not in found:
        raise node.error("part I line (a), the direct cause, is required", "missing_field", "a")
    present = [line for line in LINES if line in found]
    if present != list(LINES[: len(present)]):
        raise node.error("part I lines must be filled from (a) without gaps", "cause_chain_gap")
    out: dict[str, Any] = {line: _condition(found[line]) for line in present}
    if "icd10" in out[present[-1]]:
        out["underlying_icd10"] = out[present[-1]]["icd10"]
    others = (node.items("other_conditions", F["other_conditions"], ("condition", "疾病"),
                         required=False) if node.is_object() else [])
    others = others or root.items("other_conditions", F["other_conditions"],
                                  ("condition", "疾病"), required=False)
    if others:
        out["other_conditions"] = [_condition(o) for o in others]
    return out


register(Adapter(
    name=FORMAT,
    description="death certificate (居民死亡医学证明书) as JSON (or XML with the same names)",
    kinds=("civil.death_certificate",),
    adapt=adapt,
    detect=detect,
    extensions=(".json", ".xml"),
))
