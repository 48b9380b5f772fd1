"""Chinese national EMR sharing documents (WS/T 500-2016 电子病历共享文档规范, HL7 CDA R2) ->
claim packets.

Mapped: the inpatient front page 住院病案首页 (WS/T 500.32, template 2.16.156.10011.2.1.1.52)
into ``hospital.discharge_summary`` plus, from its cost section, ``hospital.invoice``; the
discharge record 出院记录 (WS/T 500.49, ….69) and discharge summary 出院小结 (WS/T 500.53, ….73)
into ``hospital.discharge_summary``. The bodies are those of the HL7 v2 and FHIR adapters
(encounter, diagnoses, procedures; items, total), with WS/T 500 extras beside them (documented
in docs/adapters/cda.md). The resident ID becomes the subject pseudonym and, with every other
patient identifier, name and phone number of the header, never reaches a packet.
"""

from __future__ import annotations

import re
from typing import Any

from adapters._clinical import compact, locate
from adapters._values import source_ref
from adapters.cda import body as body_
from adapters.cda import header
from adapters.cda.costs import COST_SECTION, invoice
from adapters.cda.tree import HL7, El, cda_time, load
from adapters.registry import Adapter, AdapterContext, register
from gateway.core.errors import AdapterError
from gateway.core.packet import Packet, new_packet

FORMAT = "cda"
_HEAD = 65536
_SKIP = re.compile(rb"\s*(?:<\?.*?\?>|<!--.*?-->|<!DOCTYPE(?:[^\[>]|\[.*?\])*>)", re.S)
_START = re.compile(rb"<(?:([A-Za-z_][\w.-]*):)?ClinicalDocument[\s/>]")
_XMLNS = re.compile(rb"""xmlns(?::([A-Za-z_][\w.-]*))?\s*=\s*(["'])([^"']*)\2""")


def detect(raw: bytes) -> bool:
    """The root start tag is ``ClinicalDocument`` in the HL7 v3 namespace (read, not parsed):
    FHIR XML (namespace http://hl7.org/fhir) and the police and civil XML roots never match."""
    head = raw[:_HEAD].removeprefix(b"\xef\xbb\xbf")
    pos = 0
    while (skipped := _SKIP.match(head, pos)) is not None and skipped.end() > pos:
        pos = skipped.end()
    start = _START.match(head, pos + len(head[pos:]) - len(head[pos:].lstrip()))
    if start is None:
        return False
    tag_end = head.find(b">", start.end() - 1)
    attrs = head[start.end() - 1: tag_end if tag_end >= 0 else len(head)]
    prefix = start[1] or b""
    return any((m[1] or b"") == prefix and m[3] == HL7.encode() for m in _XMLNS.finditer(attrs))


def adapt(raw: bytes, ctx: AdapterContext) -> list[Packet]:
    """One discharge-summary packet per document, and an invoice for a front page with costs."""
    try:
        return _adapt(raw, ctx)
    except AdapterError as exc:
        locate(exc, file=ctx.file)
        raise


def _adapt(raw: bytes, ctx: AdapterContext) -> list[Packet]:
    root = load(raw, ctx.file)
    kind = header.doc_type(root)
    person = header.patient(root, ctx)
    issued = _issued(root)
    read = body_.read(root, skip=frozenset({COST_SECTION}) if kind.front_page else frozenset())
    staff = person.redact(header.staff(root), text=True)
    encounter = header.encounter(root, read.facts, staff)
    encounter.update({k: v for k, v in read.facts.items()
                      if k not in ("admitted_at", "discharged_at")})
    common = {"document": header.document(root, kind), "subject_from": person.subject_from}
    summary = compact({
        **common, "encounter": encounter, "diagnoses": read.diagnoses,
        "procedures": read.procedures, "staff": staff,
        "narrative": person.redact(read.narrative, text=True),
        "unmapped_sections": read.unmapped,
    })
    packets = [_packet("hospital.discharge_summary", person, summary, issued, raw, ctx)]
    costs = invoice(root) if kind.front_page else None
    if costs is not None:
        stay = compact({k: encounter.get(k) for k in ("admitted_at", "discharged_at")})
        bill = compact({**common, **costs, "encounter": stay,
                        "diagnoses": [d for d in read.diagnoses if d.get("type") == "discharge"]})
        packets.append(_packet("hospital.invoice", person, bill, issued, raw, ctx))
    return packets


def _packet(kind: str, person: header.Patient, body: dict[str, Any], issued: str, raw: bytes,
            ctx: AdapterContext) -> Packet:
    return new_packet(kind=kind, issuer=ctx.issuer, subject=person.subject,
                      body=person.redact(body), issued_at=issued, source=source_ref(FORMAT, raw))


def _issued(root: El) -> str:
    """The document's effectiveTime (文档机器生成时间), as UTC with seconds."""
    node = root.child("effectiveTime")
    moment = cda_time(node) if node is not None else None
    if moment is None:
        where = node or root
        raise where.error("the document's effectiveTime is required", "missing_field",
                          "value" if node is not None else None)
    if "T" not in moment:
        moment += "T00:00:00Z"  # a date alone: its midnight UTC, as the FHIR adapter reads one
    return moment


ADAPTER = register(Adapter(
    name=FORMAT,
    description="WS/T 500 EMR sharing documents (HL7 CDA R2 XML): 住院病案首页, 出院记录, 出院小结",
    kinds=("hospital.discharge_summary", "hospital.invoice"),
    adapt=adapt, detect=detect, extensions=(".xml", ".cda")))
