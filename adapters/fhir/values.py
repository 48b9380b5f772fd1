"""FHIR R4 data types the clinical adapters read: date/dateTime/instant, CodeableConcept,
Quantity/Money, Period, HumanName and the Identifier that becomes the subject pseudonym.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from adapters._clinical import compact, dec_str, person_name, utc_text
from adapters.fhir.tree import Index, Node
from adapters.pseudonym import cn_resident_id_valid

_DATETIME = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?"
                       r"(Z|[+-]\d{2}:\d{2})?)?)?)?$")
_RESIDENT_SYSTEMS = ("2.16.156.10011.1.3", "resident", "idcard", "id-card", "shenfenzheng",
                     "sfz", "身份证", "nnchn")
_PASSPORT_SYSTEM = re.compile(r"passport-([A-Za-z]{2,3})$")
_COUNTRY = re.compile(r"^[A-Z]{2,3}$")


def when(node: Node) -> str | None:
    """A FHIR date/dateTime/instant: dates stay dates, times become RFC 3339 UTC.

    A time without an offset (allowed only in R4 dateTime with no time part, but sent anyway)
    is read as UTC.
    """
    text = node.string()
    if not text:
        return None
    found = _DATETIME.match(text)
    if found is None:
        raise node.error("not a FHIR date or dateTime", "bad_timestamp")
    year, month, day, hour, minute, second, frac, tz_text = found.groups()
    try:
        if hour is None:
            datetime(int(year), int(month or 1), int(day or 1))
            return text
        tz = _zone(tz_text)
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute),
                          int(second or 0), int((frac or ".0")[1:7].ljust(6, "0")), tzinfo=tz)
    except ValueError as exc:
        raise node.error("not a valid calendar date or time", "bad_timestamp") from exc
    return utc_text(moment)


def _zone(text: str | None) -> timezone:
    if not text or text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    hours, minutes = int(text[1:3]), int(text[4:6])
    if hours > 14 or minutes > 59:
        raise ValueError("offset out of range")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def moment_of(node: Node) -> datetime | None:
    """An instant for ``issued_at`` (a bare date means its midnight UTC)."""
    text = when(node)
    if text is None:
        return None
    if "T" in text:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    parts = [int(p) for p in text.split("-")] + [1, 1]
    return datetime(parts[0], parts[1], parts[2], tzinfo=UTC)


def period_or_time(res: Node, stem: str) -> str | None:
    """``{stem}DateTime``, else the start of ``{stem}Period``, else ``{stem}Instant``."""
    return (when(res[f"{stem}DateTime"]) or when(res[f"{stem}Period"]["start"])
            or when(res[f"{stem}Instant"]) or when(res[f"{stem}Date"]))


STANDARD_SYSTEMS = ("http://loinc.org", "http://snomed.info/sct", "http://hl7.org/fhir/sid/icd",
                    "http://www.ama-assn.org/go/cpt", "http://unitsofmeasure.org")
"""Code systems a claims engine can map without the sender's tables (prefix match)."""


def concept(node: Node) -> dict[str, str] | None:
    """CodeableConcept -> a coding with a code (code, text, system), a standard terminology's
    (LOINC, SNOMED CT, ICD, CPT) before a local one, else the concept's text."""
    codings = [c for c in node["coding"].items() if c["code"].string()]
    standard = [c for c in codings if c["system"].string().startswith(STANDARD_SYSTEMS)]
    for coding in standard[:1] or codings[:1]:
        text = coding["display"].string() or node["text"].string()
        return compact({"code": coding["code"].string(), "text": text,
                        "system": coding["system"].string()})
    text = node["text"].string()
    return {"text": text} if text else None


def concept_label(node: Node) -> str:
    found = concept(node) or {}
    return found.get("text") or found.get("code", "")


def amount(node: Node) -> tuple[Decimal | None, str]:
    """Money or Quantity value (exact) and currency/unit."""
    value = node["value"].dec()
    return value, (node["currency"].string() or node["unit"].string() or node["code"].string())


def quantity_text(node: Node) -> str | None:
    value = node["value"].dec()
    return None if value is None else node["comparator"].string() + dec_str(value)


def staff(node: Node, index: Index, container: Node) -> dict[str, str] | None:
    """A Practitioner reference as staff id and name (staff data, kept on purpose)."""
    if not node.present:
        return None
    found = index.resolve_soft(node, container)
    if found is None:
        return compact({"name": node["display"].string(),
                        "id": node["identifier"]["value"].string()}) or None
    names = found["name"].items()
    name = ""
    if names:
        given = " ".join(g.string() for g in names[0]["given"].items())
        name = names[0]["text"].string() or person_name(names[0]["family"].string(), given)
    ident = next((v for i in found["identifier"].items() if (v := i["value"].string())), "")
    return compact({"id": ident or found["id"].string(),
                    "name": name or node["display"].string()})


def subject(patient: Node | None, ref: Node) -> tuple[str, str, tuple[str | int, ...]]:
    """Pick the subject identifier: resident ID, else passport, else MRN (see the module doc)."""
    idents = [i for i in (patient["identifier"].items() if patient else [])
              if i["value"].string() and i["use"].string() != "old"]
    if not idents and ref["identifier"]["value"].string():
        idents = [ref["identifier"]]
    if not idents:
        where = patient["identifier"] if patient else ref
        raise where.error("the patient has no identifier to pseudonymise",
                          "missing_identifier")
    for ident in idents:
        if _is_resident(ident):
            return ("cn_resident_id", ident["value"].string(), (ident["value"].ptr,))
    for ident in idents:
        country = _passport_country(ident)
        if country:
            return (f"passport:{country}", ident["value"].string(), (ident["value"].ptr,))
    mrn = next((i for i in idents if "MR" in _type_codes(i)), idents[0])
    authority = (mrn["system"].string() or mrn["assigner"]["display"].string()
                 or mrn["assigner"]["identifier"]["value"].string())
    if not authority:
        raise mrn["system"].error("medical record number needs a system (its assigning "
                                  "authority)", "missing_authority")
    return (f"mrn:{authority}", mrn["value"].string(), (mrn["value"].ptr,))


def _type_codes(ident: Node) -> set[str]:
    codes = {c["code"].string().upper() for c in ident["type"]["coding"].items()}
    return codes | {ident["type"]["text"].string().upper()} - {""}


def _is_resident(ident: Node) -> bool:
    system = ident["system"].string().lower()
    hint = system + " " + ident["type"]["text"].string().lower()
    if any(h in hint for h in _RESIDENT_SYSTEMS) or "NNCHN" in _type_codes(ident):
        return True
    value = ident["value"].string()
    return len(value) == 18 and cn_resident_id_valid(value) and "PPN" not in _type_codes(ident)


def _passport_country(ident: Node) -> str | None:
    found = _PASSPORT_SYSTEM.search(ident["system"].string())
    if found:
        return found.group(1).upper()
    if "PPN" not in _type_codes(ident):
        return None
    for ext in ident["assigner"]["identifier"]["value"], ident["assigner"]["display"]:
        if _COUNTRY.match(ext.string().upper()):
            return ext.string().upper()
    return "UNK"
