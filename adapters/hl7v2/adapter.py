"""HL7 v2 (2.3-2.8) messages -> claim packets: ADT^A01/A03, ORU^R01 and DFT^P03.

Parser choice: python-hl7 (``hl7``) splits messages. It is small, fast (about 0.4 ms for an
ADT message against about 27 ms for hl7apy) and lenient about what real interfaces send
(Z-segments, missing optional fields, any 2.x version), and it honours custom MSH-2 separators.
hl7apy validates against each version's message structures, but in its tolerant mode it
silently drops segments it cannot place (a Z-segment vanished in our trial), its strict mode
rejects messages we can map, and neither mode gives segment-numbered errors. What python-hl7
lacks we add in ``_hl7_parse``: MSH-18 character sets, ``\\n``/``\\r\\n`` segment ends, escape
decoding that never logs values, and errors with a location. See docs/adapters/hl7v2.md for
the field mapping.

Times: HL7 times without an offset are read in the offset MSH-7 carries (HL7's "sender's time
zone"); when MSH-7 has none either, they are taken as UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, timezone
from typing import Any

from adapters._clinical import (
    check_size,
    compact,
    dec_str,
    locate,
    make_packet,
    sum_amounts,
    utc_text,
)
from adapters.hl7v2 import fields as f
from adapters.hl7v2.parse import Segment, decode, split_messages
from adapters.registry import Adapter, AdapterContext, register
from gateway.core.errors import AdapterError
from gateway.core.packet import Packet

FORMAT = "hl7v2"
KINDS = {
    ("ADT", "A01"): "hospital.admission_summary",
    ("ADT", "A03"): "hospital.discharge_summary",
    ("ORU", "R01"): "hospital.lab_report",
    ("DFT", "P03"): "hospital.invoice",
}
"""Message type and trigger event -> evidence kind; other messages are not claims evidence."""

_TEXT_TYPES = frozenset({"ST", "TX", "FT"})
_CODED_TYPES = frozenset({"CE", "CWE", "CNE", "CF"})
_OMITTED_TYPES = {
    "ED": "encapsulated data: send the document as an attachment",
    "RP": "encapsulated data: send the document as an attachment",
    "CX": "identifier: not carried in packets",
}
"""OBX-2 value types whose OBX-5 is left out, and why (CX is an identifier, often the patient's)."""
_ID_FIELDS = (2, 3, 4, 18, 19, 20)
"""PID fields holding raw identifiers (IDs, account, SSN, licence): never copied into a packet."""
_MIN_REDACTED = 5
"""Identifiers shorter than this are not searched for in packet text (they match dates, codes)."""


def detect(raw: bytes) -> bool:
    """An HL7 v2 message or batch: starts with MSH (or FHS/BHS) after a BOM, MLLP or whitespace."""
    head = raw[:64].lstrip(b"\x0b")
    head = head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n\x0b")
    return head[:3] in (b"MSH", b"FHS", b"BHS") and len(head) > 3 and not head[3:4].isalnum()


def adapt(raw: bytes, ctx: AdapterContext) -> list[Packet]:
    """Map every message of the input to packets; any unmappable message fails the whole input."""
    check_size(raw, ctx.file)
    try:
        text, codec = decode(raw)
        packets: list[Packet] = []
        for segments in split_messages(text, codec):
            packets.extend(_adapt_message(segments, raw, ctx))
        return packets
    except AdapterError as exc:
        locate(exc, file=ctx.file)
        raise


def _adapt_message(segments: list[Segment], raw: bytes, ctx: AdapterContext) -> list[Packet]:
    msh = segments[0]
    code, event = msh.text(9, 1, 1).upper(), msh.text(9, 1, 2).upper()
    if not event and code == "ADT":
        event = next((s.text(1) for s in segments if s.name == "EVN"), "").upper()
    kind = KINDS.get((code, event))
    if kind is None:
        raise msh.error("message type is not claims evidence (supported: ADT^A01, ADT^A03, "
                        "ORU^R01, DFT^P03)", "unsupported_message", 9)
    version = msh.text(12, 1, 1)
    if version and not version.startswith("2."):
        raise msh.error("MSH-12 is not an HL7 version 2 number", "unsupported_version", 12)
    issued = f.stamp(msh, 7, UTC)
    if issued is None:
        raise msh.error("MSH-7 (message date/time) is required", "missing_field", 7)
    tz = f.message_tz(msh)
    header = compact({"type": f"{code}^{event}", "control_id": msh.text(10),
                      "version": version, "sending_application": msh.text(3, 1, 1),
                      "sending_facility": msh.text(4, 1, 1)})
    packets = []
    for group in _patient_groups(segments, msh):
        pid = group[0]
        body = _redact({"message": header, **_BODIES[kind](group, tz, segments)},
                       _raw_ids(pid))
        packets.append(make_packet(kind=kind, ctx=ctx, subject=f.subject(pid, msh), body=body,
                                   issued_at=utc_text(issued.moment), raw=raw, fmt=FORMAT,
                                   line=pid.line))
    return packets


def _patient_groups(segments: list[Segment], msh: Segment) -> list[list[Segment]]:
    """Split at each PID (ORU^R01 may carry several patients); segments before the first go with
    none and are read through the whole message (EVN)."""
    groups: list[list[Segment]] = []
    for seg in segments[1:]:
        if seg.name == "PID":
            groups.append([seg])
        elif groups:
            groups[-1].append(seg)
    if not groups:
        raise AdapterError("message has no PID segment", code="missing_segment", loc=("PID",),
                           line=msh.line)
    return groups


def _raw_ids(pid: Segment) -> list[re.Pattern[str]]:
    """Patterns matching the patient's raw identifiers as whole tokens."""
    values = {pid.text(f, r, 1) for f in _ID_FIELDS for r in range(1, pid.repetitions(f) + 1)}
    return [re.compile(rf"(?<![0-9A-Za-z]){re.escape(v)}(?![0-9A-Za-z])", re.IGNORECASE)
            for v in sorted(values) if len(v) >= _MIN_REDACTED]


def _redact(node: Any, ids: list[re.Pattern[str]]) -> Any:
    """Replace any raw patient identifier a sender copied into another field (visit number,
    specimen ID, free text) so that packets never carry it."""
    if isinstance(node, dict):
        return {k: _redact(v, ids) for k, v in node.items()}
    if isinstance(node, list):
        return [_redact(v, ids) for v in node]
    if isinstance(node, str):
        for pattern in ids:
            node = pattern.sub("[patient identifier removed]", node)
    return node


def _first(group: list[Segment], name: str) -> Segment | None:
    return next((s for s in group if s.name == name), None)


def _encounter(pv1: Segment | None, tz: timezone, evn: Segment | None,
               fallback: str) -> dict[str, Any]:
    """PV1 visit facts; the event time (EVN-6, else EVN-2) stands in for a missing PV1-44/45."""
    if pv1 is None:
        return {}
    event_time = None
    if evn is not None:
        event_time = f.time_text(evn, 6, tz) or f.time_text(evn, 2, tz)
    admitted, discharged = f.time_text(pv1, 44, tz), f.time_text(pv1, 45, tz)
    if fallback == "admitted_at":
        admitted = admitted or event_time
    elif fallback == "discharged_at":
        discharged = discharged or event_time
    department = compact({"location": pv1.text(3, 1, 1), "facility": pv1.text(3, 1, 4, 1),
                          "service": pv1.text(10)})
    return compact({
        "visit_number": pv1.text(19, 1, 1), "patient_class": pv1.text(2),
        "admission_type": pv1.text(4), "department": department,
        "attending_doctor": f.doctor(pv1, 7), "admitted_at": admitted,
        "discharged_at": discharged, "discharge_disposition": pv1.text(36),
    })


def _diagnoses(group: list[Segment], tz: timezone) -> list[dict[str, Any]]:
    """DG1-3 coded diagnosis (DG1-4/DG1-2 for old senders), type DG1-6, time DG1-5."""
    out = []
    for dg1 in (s for s in group if s.name == "DG1"):
        code = f.coded(dg1, 3) or {}
        if "text" not in code and dg1.text(4):
            code["text"] = dg1.text(4)
        if "system" not in code and dg1.text(2):
            code["system"] = dg1.text(2)
        if not code:
            raise dg1.error("DG1-3 (diagnosis code) is empty", "missing_field", 3)
        out.append(compact({**code, "type": dg1.text(6), "time": f.time_text(dg1, 5, tz)}))
    return out


def _procedures(group: list[Segment], tz: timezone) -> list[dict[str, Any]]:
    out = []
    for pr1 in (s for s in group if s.name == "PR1"):
        code = f.coded(pr1, 3) or compact({"text": pr1.text(4)})
        out.append(compact({**code, "time": f.time_text(pr1, 5, tz)}))
    return out


def _adt_body(kind_time: str) -> Any:
    def body(group: list[Segment], tz: timezone, segments: list[Segment]) -> dict[str, Any]:
        pv1, evn = _first(group, "PV1"), _first(segments, "EVN")
        if pv1 is None:  # minimal senders: the event itself is the evidence, dated by EVN/MSH
            msh = _first(segments, "MSH")
            when = ((f.time_text(evn, 6, tz) or f.time_text(evn, 2, tz)) if evn else None) \
                or (f.time_text(msh, 7, tz) if msh else None)
            return compact({"encounter": compact({kind_time: when}),
                            "diagnoses": _diagnoses(group, tz),
                            "procedures": _procedures(group, tz),
                            "notes": ["no PV1 segment: no visit details; time from EVN or MSH"]})
        return compact({"encounter": _encounter(pv1, tz, evn, kind_time),
                        "diagnoses": _diagnoses(group, tz), "procedures": _procedures(group, tz)})
    return body


def _lab_body(group: list[Segment], tz: timezone, segments: list[Segment]) -> dict[str, Any]:
    """OBR starts a report, the OBX after it are its observations (NTE free text is dropped)."""
    reports: list[dict[str, Any]] = []
    for seg in group:
        if seg.name == "OBR":
            reports.append(compact({
                "placer_order": seg.text(2, 1, 1), "filler_order": seg.text(3, 1, 1),
                "test": f.coded(seg, 4), "observed_at": f.time_text(seg, 7, tz),
                "reported_at": f.time_text(seg, 22, tz), "status": seg.text(25),
            }) | {"observations": []})
        elif seg.name == "OBX":
            if not reports:
                reports.append({"observations": []})
            reports[-1]["observations"].append(_observation(seg, tz))
    if not reports:
        raise AdapterError("ORU message has no OBR or OBX segment", code="missing_segment",
                           loc=("OBR",), line=group[0].line)
    encounter = _encounter(_first(group, "PV1"), tz, None, "")
    return compact({"encounter": encounter, "diagnoses": _diagnoses(group, tz),
                    "reports": [compact(r) | {"observations": r["observations"]}
                                for r in reports]})


def _observation(obx: Segment, tz: timezone) -> dict[str, Any]:
    value_type = obx.text(2, 1, 1).upper()
    obs: dict[str, Any] = {
        "set_id": obx.text(1), "value_type": value_type, "code": f.coded(obx, 3),
        "sub_id": obx.text(4), "units": obx.text(6, 1, 1) or obx.text(6, 1, 2),
        "reference_range": _joined(obx, 7, 1),
        "abnormal_flags": [obx.text(8, r) for r in range(1, obx.repetitions(8) + 1)
                           if obx.text(8, r)],
        "status": obx.text(11), "observed_at": f.time_text(obx, 14, tz),
    }
    reps = range(1, obx.repetitions(5) + 1)
    if value_type in _OMITTED_TYPES:
        obs["value_omitted"] = _OMITTED_TYPES[value_type]
    elif value_type in _CODED_TYPES:
        codes = [c for r in reps if (c := f.coded(obx, 5, r))]
        obs["value"] = "\n".join(c.get("text") or c.get("code", "") for c in codes)
        obs["value_coded"] = codes[0] if codes else None
    elif value_type == "SN":  # comparator^num1^separator/suffix^num2
        obs["value"] = "\n".join("".join(obx.text(5, r, c) for c in range(1, 5)) for r in reps)
    else:
        obs["value"] = "\n".join(_joined(obx, 5, r) for r in reps)
    return compact(obs)


def _joined(seg: Segment, field: int, rep: int) -> str:
    """A repetition's text with its components re-joined as sent (for ST/TX/FT, unknown types
    and OBX-7 ranges some senders split into components)."""
    comps = [seg.text(field, rep, c) for c in range(1, seg.components(field, rep) + 1)]
    return "^".join(comps).rstrip("^")


def _invoice_body(group: list[Segment], tz: timezone, segments: list[Segment]) -> dict[str, Any]:
    """FT1 lines; charges sent without a price (most DFT feeds: the billing system prices them
    from its charge master) are kept with their codes, dates and quantities but no amount, and
    the bill then has no total (``unpriced_items`` counts them) rather than a partial one."""
    items = [_charge(ft1, tz) for ft1 in group if ft1.name == "FT1"]
    if not items:
        raise AdapterError("DFT message has no FT1 segment", code="missing_segment",
                           loc=("FT1",), line=group[0].line)
    currencies = {item.pop("_currency") for item in items} - {""}
    if len(currencies) > 1:
        raise AdapterError("FT1 amounts are in more than one currency", code="mixed_currency",
                           loc=("FT1", 11), line=group[0].line)
    payments = [i for i in items if i.get("category") == "PY"]
    unpriced = sum(1 for i in items if "amount" not in i)
    return compact({
        "encounter": _encounter(_first(group, "PV1"), tz, None, ""),
        "diagnoses": _diagnoses(group, tz), "items": items,
        "total": None if unpriced else sum_amounts(items, skip=frozenset({"PY"})),
        "paid": sum_amounts(payments) if payments and not unpriced else None,
        "unpriced_items": unpriced or None,
        "currency": currencies.pop() if currencies else None,
    })


def _charge(ft1: Segment, tz: timezone) -> dict[str, Any]:
    """FT1: code FT1-7 (else FT1-25 procedure code), description FT1-8, date FT1-4, quantity
    FT1-10, amounts FT1-11 (extended) / FT1-12 (unit, else FT1-22 unit cost)."""
    quantity = f.decimal_at(ft1, 10)
    unit_field = 12 if ft1.text(12, 1, 1, 1) else 22
    unit = f.decimal_at(ft1, unit_field, 1, 1, 1)
    amount = f.decimal_at(ft1, 11, 1, 1, 1)
    if amount is None and unit is not None:
        amount = unit * (quantity if quantity is not None else 1)
    code = f.coded(ft1, 7) or f.coded(ft1, 25) or {}
    if not code and not ft1.text(8) and amount is None:
        raise ft1.error("FT1 names no charge: FT1-7 (transaction code), FT1-8 and FT1-11 are "
                        "empty", "missing_field", 7)
    return compact({
        "set_id": ft1.text(1), "transaction_id": ft1.text(2), "date": f.time_text(ft1, 4, tz),
        "category": ft1.text(6), "code": code.get("code"),
        "description": ft1.text(8) or code.get("text"), "code_system": code.get("system"),
        "quantity": dec_str(quantity) if quantity is not None else None,
        "unit_price": dec_str(unit) if unit is not None else None,
        "amount": dec_str(amount) if amount is not None else None,
        "department": (f.coded(ft1, 13) or {}).get("text") or ft1.text(13, 1, 1),
    }) | {"_currency": (ft1.text(11, 1, 1, 2) or ft1.text(unit_field, 1, 1, 2)).upper()}


_BODIES = {
    "hospital.admission_summary": _adt_body("admitted_at"),
    "hospital.discharge_summary": _adt_body("discharged_at"),
    "hospital.lab_report": _lab_body,
    "hospital.invoice": _invoice_body,
}

ADAPTER = register(Adapter(
    name=FORMAT, description="HL7 v2.3-2.8 messages: ADT^A01/A03, ORU^R01, DFT^P03",
    kinds=tuple(sorted(set(KINDS.values()))), adapt=adapt, detect=detect,
    extensions=(".hl7", ".hl7v2", ".er7")))
