"""FHIR R4 resources and Bundles, JSON or XML -> claim packets.

Validator choice: a lenient walker over the decoded JSON (``_fhir_json.Node``) with our own
errors located by JSON pointer, not ``fhir.resources``. fhir.resources 8.x models R5 by
default; its ``fhir.resources.R4B`` models validate quickly (about 0.15 ms a Claim) but R4B is
not R4, they refuse a whole document over elements we never read (an unknown extension-less
field, a missing ``Claim.provider``), and their messages echo input values (patient data)
unless rewritten. Hospitals' exports are often imperfect exactly there, so we check the
elements we map, strictly, and ignore the rest. The tests still validate our sample assets
with the R4B models so the samples are real FHIR.

Packets (see docs/adapters/fhir.md): Encounter (+ Condition, Procedure) -> discharge summary
(admission summary while the stay is open); DiagnosticReport (+ Observation) -> lab report;
Claim, Invoice (+ ChargeItem), loose ChargeItems -> itemised bill; ExplanationOfBenefit ->
adjudicated bill (``payer.adjudication``); Coverage -> policy (``payer.coverage``);
DocumentReference -> ``attachment`` (adapters.fhir.documents); loose Procedures -> procedure
record; loose Conditions -> diagnosis; loose laboratory Observations -> lab report. The
Patient supplies only the subject pseudonym. Numbers are decoded as ``Decimal`` and written
as strings, never floats.

XML (``adapters.fhir.xml_input``): parsed with defusedxml and converted to the JSON shape by the
specification's own XML/JSON correspondence, then mapped by the same code; errors are located
by element path (``/Bundle/entry[2]/resource/Claim/item/net/value``) instead of JSON pointer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from adapters._clinical import check_size, locate, utc_text
from adapters.attachment import UNLINKED_SUBJECT
from adapters.fhir import documents, financial
from adapters.fhir import mapping as m
from adapters.fhir.subject import Subject, subject_of
from adapters.fhir.tree import Index, Node, load
from adapters.fhir.values import concept, concept_label, moment_of
from adapters.fhir.xml_input import detect as detect_xml
from adapters.fhir.xml_input import is_xml, load_xml
from adapters.pseudonym import pseudonymise
from adapters.registry import Adapter, AdapterContext, register
from gateway.core.errors import AdapterError
from gateway.core.packet import AttachmentRef, Packet, SourceRef, new_packet

FORMAT = "fhir"
_SUBJECT_FIELD = {"Claim": "patient", "ExplanationOfBenefit": "patient",
                  "Coverage": "beneficiary"}
_ISSUED_FIELDS = {
    "ExplanationOfBenefit": ("created",),
    "DocumentReference": ("date", "context/period/end", "context/period/start"),
    "Encounter": ("period/end", "period/start"),
    "DiagnosticReport": ("issued", "effectiveDateTime", "effectivePeriod/start"),
    "Claim": ("created",), "Invoice": ("date",),
    "ChargeItem": ("enteredDate", "occurrenceDateTime", "occurrencePeriod/start"),
    "Condition": ("recordedDate", "onsetDateTime"),
    "Procedure": ("performedDateTime", "performedPeriod/end", "performedPeriod/start"),
    "Observation": ("issued", "effectiveDateTime", "effectivePeriod/start"),
}
"""Candidates for ``issued_at``, before the resource's meta.lastUpdated and the Bundle's time."""

Packets = list[tuple[str, Node, dict[str, Any]]]


def detect(raw: bytes) -> bool:
    """A JSON object whose first members include ``resourceType`` (cheap: looks at 4 KiB), or
    XML whose root element is in the FHIR namespace (its start tag, within 64 KiB)."""
    head = raw[:4096].removeprefix(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"<"):
        return detect_xml(raw)
    return head.startswith(b"{") and b'"resourceType"' in head


def adapt(raw: bytes, ctx: AdapterContext) -> list[Packet]:
    """Map every claims-evidence resource of a FHIR resource or Bundle to a packet."""
    check_size(raw, ctx.file)
    try:
        root = load_xml(raw) if is_xml(raw) else load(raw)
        index = Index.build(root)
        source = SourceRef(format=FORMAT, sha256=hashlib.sha256(raw).hexdigest())
        out: list[Packet] = []
        for kind, res, body in _bodies(root, index):
            who, how = _pseudonym_of(res, index, ctx)
            issued_at = _issued_at(res, root)
            refs: list[AttachmentRef] = body.pop(documents.ATTACHMENTS, [])
            for field, ident in body.pop(financial.PSEUDONYMISE, {}).items():
                body[field] = _pseudonymise(ident, ctx)
            body = {**body, "subject_from": how, **({} if issued_at else {"undated": True})}
            out.append(new_packet(kind=kind, issuer=ctx.issuer, subject=who, body=body,
                                  issued_at=issued_at, source=source, attachments=refs))
        return out
    except AdapterError as exc:
        locate(exc, file=ctx.file)
        raise


def _pseudonymise(ident: Subject, ctx: AdapterContext) -> str:
    scheme, value, loc = ident
    return pseudonymise(scheme, value, loc=loc, key=ctx.pseudonym_key)


def _pseudonym_of(res: Node, index: Index, ctx: AdapterContext) -> tuple[str, str]:
    """The subject pseudonym and how it was found. A DocumentReference is an attachment: the
    publisher's subject (CDex MemberId, ``--subject``) links it when given, and it may name
    nobody (then it is unlinked, as a scan naming nobody is); a resident ID it names that is
    not the publisher's subject is refused, as the attachment adapter refuses such a scan."""
    if res["resourceType"].string() != "DocumentReference":
        who, how = _subject_of(res, index, ctx.issuer)
        return _pseudonymise(who, ctx), how
    own = None
    if res["subject"].present:
        who, how = _subject_of(res, index, ctx.issuer)
        own = (_pseudonymise(who, ctx), how, who[0])
    if ctx.subject is not None:
        if own is not None and own[2] == "cn_resident_id" and own[0] != ctx.subject:
            raise res["subject"].error("the document's patient is not the given subject",
                                       "subject_mismatch")
        return ctx.subject, "publisher"
    return (own[0], own[1]) if own is not None else (UNLINKED_SUBJECT, "none")


def _bodies(root: Node, index: Index) -> Packets:
    used = m.Used()
    packets: Packets = []
    refused: list[AdapterError] = []
    context = _context_encounters(index)
    for rtype, build in _PRIMARY:
        for res in index.of_type(rtype):
            if res in used or (rtype == "Encounter" and res in context
                               and not _has_clinical(res, index)):
                continue
            bad = m.not_evidence(res)
            if bad is not None:
                refused.append(bad)
                continue
            used.add(res)
            index.missing = 0
            kind, body = build(res, index, used)
            if index.missing:
                body["references_not_included"] = index.missing
            packets.append((kind, res, {"resource": _header(res), **body}))
    packets += _loose(index, used)
    if not packets and refused:
        raise refused[0]  # entered in error, or a preauthorization: say which and where
    if not packets:
        where = root["entry"] if root["resourceType"].string() == "Bundle" else root["resourceType"]
        raise where.error("no resource here is claims evidence (supported: Encounter, "
                          "DiagnosticReport, Claim, Invoice, ChargeItem, ExplanationOfBenefit, "
                          "Coverage, DocumentReference, Condition, Procedure, laboratory "
                          "Observation)", "unsupported_resource")
    return packets


def _header(res: Node) -> dict[str, str]:
    return {k: v for k, v in (("type", res["resourceType"].string()), ("id", res["id"].string()),
                              ("status", res["status"].string())) if v}


def _encounter(res: Node, index: Index, used: m.Used) -> tuple[str, dict[str, Any]]:
    closed = res["status"].string() == "finished" or res["period"]["end"].present
    kind = "hospital.discharge_summary" if closed else "hospital.admission_summary"
    return kind, m.encounter_body(res, index, used)


def _report(res: Node, index: Index, used: m.Used) -> tuple[str, dict[str, Any]]:
    return "hospital.lab_report", {"reports": [m.lab_report(res, index, used)]}


def _diagnoses(res: Node, index: Index, used: m.Used) -> list[dict[str, str]]:
    """Claim or ExplanationOfBenefit ``diagnosis``: coded, or a referenced Condition's code."""
    diagnoses = []
    for diag in res["diagnosis"].items():
        code = concept(diag["diagnosisCodeableConcept"])
        if code is None and diag["diagnosisReference"].present:
            found = index.find(diag["diagnosisReference"], res, "Condition")
            used.add(found)
            code = concept(found["code"]) if found else None
        if code:
            label = concept_label(next(iter(diag["type"].items()), Node(None, "")))
            diagnoses.append({**code, **({"type": label} if label else {})})
    return diagnoses


def _claim(res: Node, index: Index, used: m.Used) -> tuple[str, dict[str, Any]]:
    diagnoses = _diagnoses(res, index, used)
    body = m.bill(m.claim_items(res), res["total"], res["item"])
    return "hospital.invoice", {"use": res["use"].string(), **body,
                                **({"diagnoses": diagnoses} if diagnoses else {})}


def _eob(res: Node, index: Index, used: m.Used) -> tuple[str, dict[str, Any]]:
    diagnoses = _diagnoses(res, index, used)
    return "payer.adjudication", {**financial.eob_body(res, index, used),
                                  **({"diagnoses": diagnoses} if diagnoses else {})}


def _coverage(res: Node, index: Index, used: m.Used) -> tuple[str, dict[str, Any]]:
    return "payer.coverage", financial.coverage_body(res, index, used)


def _document(res: Node, index: Index, used: m.Used) -> tuple[str, dict[str, Any]]:
    return "attachment", documents.document_body(res, index, used)


def _invoice(res: Node, index: Index, used: m.Used) -> tuple[str, dict[str, Any]]:
    declared = res["totalGross"] if res["totalGross"].present else res["totalNet"]
    return "hospital.invoice", m.bill(m.invoice_items(res, index, used), declared,
                                      res["lineItem"])


_PRIMARY: list[tuple[str, Callable[[Node, Index, m.Used], tuple[str, dict[str, Any]]]]] = [
    ("Invoice", _invoice), ("Claim", _claim), ("ExplanationOfBenefit", _eob),
    ("Coverage", _coverage), ("DocumentReference", _document), ("DiagnosticReport", _report),
    ("Encounter", _encounter),
]
"""Invoices first so the ChargeItems they bill are not billed again on their own."""


def _context_encounters(index: Index) -> m.Used:
    """Encounters that other evidence only points to (a lab Bundle's visit): no packet of their
    own unless they carry diagnoses or procedures."""
    refs = m.Used()
    for res in index.of_type("DiagnosticReport", "Observation", "ChargeItem", "Claim",
                             "ExplanationOfBenefit", "DocumentReference"):
        if res["resourceType"].string() == "Observation" and not _is_lab(res):
            continue
        for ref in (res["encounter"], res["context"], *res["context"]["encounter"].items(),
                    *(e for i in res["item"].items() for e in i["encounter"].items())):
            if ref.present and isinstance(ref.value, dict):
                refs.add(index.resolve_soft(ref, res))
    return refs


def _has_clinical(enc: Node, index: Index) -> bool:
    if enc["diagnosis"].present:
        return True
    return any(m.points_to(index, r["encounter"], r, enc)
               for r in index.of_type("Condition", "Procedure"))


_LOOSE_KINDS = {"ChargeItem": "hospital.invoice", "Condition": "hospital.diagnosis",
                "Procedure": "hospital.procedure", "Observation": "hospital.lab_report"}


def _loose(index: Index, used: m.Used) -> Packets:
    """ChargeItems, Conditions, Procedures and lab Observations not folded into a document: one
    packet per type and patient."""
    groups: dict[tuple[str, str], tuple[Node, list[dict[str, Any]], list[int]]] = {}
    for res in index.of_type(*_LOOSE_KINDS):
        if res in used or m.not_evidence(res) is not None:
            continue
        rtype = res["resourceType"].string()
        if rtype == "Observation" and not _is_lab(res):
            continue
        index.missing = 0
        entry = _loose_entry(res, rtype, index, used)
        key = (rtype, repr(_subject_of(res, index, "")[0][:2]))
        group = groups.setdefault(key, (res, [], [0]))
        group[1].append(entry)
        group[2][0] += index.missing
    packets: Packets = []
    for (rtype, _), (first, entries, missing) in groups.items():
        body: dict[str, Any] = (
                m.bill(entries, Node(None, ""), first) if rtype == "ChargeItem"
                else {"diagnoses": entries} if rtype == "Condition"
                else {"procedures": entries} if rtype == "Procedure"
                else {"reports": [{"observations": entries}]})
        if missing[0]:
            body["references_not_included"] = missing[0]
        packets.append((_LOOSE_KINDS[rtype], first, body))
    return packets


def _loose_entry(res: Node, rtype: str, index: Index, used: m.Used) -> dict[str, Any]:
    if rtype == "ChargeItem":
        return m.charge_item(res)
    if rtype == "Condition":
        return m.condition(res, "", "")
    if rtype == "Procedure":
        entry = m.procedure(res)
        if "code" not in entry and "text" not in entry:
            raise res["code"].error("Procedure.code is required for a procedure record",
                                    "missing_field")
        return entry
    return m.observation(res, index, used, res, 0)


def _is_lab(obs: Node) -> bool:
    """A laboratory result: category ``laboratory``, or no category at all (a bare result such
    as the spec's glucose f001); vital signs, imaging, surveys and the like are not lab reports.
    An uncategorised Observation whose only value is free text (the spec's discharge-summary
    document: "Reason for admission", a ``valueString``) is a note, not a result."""
    if not obs["category"].present:
        return not (obs["valueString"].present and not obs["component"].present
                    and not obs["hasMember"].present)
    return any(c["code"].string() == "laboratory" for cat in obs["category"].items()
               for c in cat["coding"].items())


def _subject_of(res: Node, index: Index, issuer: str) -> tuple[Subject, str]:
    field = _SUBJECT_FIELD.get(res["resourceType"].string(), "subject")
    return subject_of(res, field, index, issuer)


def _issued_at(res: Node, root: Node) -> str | None:
    candidates = []
    for path in _ISSUED_FIELDS.get(res["resourceType"].string(), ()):
        node = res
        for part in path.split("/"):
            node = node[part]
        candidates.append(node)
    candidates += [res["meta"]["lastUpdated"], root["timestamp"], root["meta"]["lastUpdated"]]
    for node in candidates:
        moment: datetime | None = moment_of(node)
        if moment is not None:
            return utc_text(moment)
    return None  # undated (several spec Encounters): issued now, marked ``undated``


ADAPTER = register(Adapter(
    name=FORMAT, description="FHIR R4 JSON or XML resources and Bundles: Encounter, "
    "DiagnosticReport, Observation, Condition, Procedure, Claim, Invoice, ChargeItem, "
    "ExplanationOfBenefit, Coverage, DocumentReference (Patient gives the subject)",
    kinds=("hospital.admission_summary", "hospital.diagnosis", "hospital.procedure",
           "hospital.discharge_summary", "hospital.invoice", "hospital.lab_report",
           "payer.adjudication", "payer.coverage", "attachment"),
    adapt=adapt, detect=detect, extensions=(".json", ".fhir.json", ".xml", ".fhir.xml")))
