"""The structured body of a WS/T 500 document: diagnoses, operations, stay facts, narrative.

Entries are recognised by their data-element code (``observation/code/@code`` in the 卫生信息
数据元目录, code system 2.16.156.10011.2.2.1, WS 363), never by position, so the same reader
serves the front page (organizer clusters of name + code + 入院病情), the discharge record
(a name observation with its code in an entryRelationship) and exporters that add, drop or
reorder entries. A diagnosis's role (admission, discharge, outpatient, pathology, external
cause) comes from the element's own display name or qualifier first (public implementations
of the discharge record put the admission diagnoses in a section coded 11535-2, "discharge
diagnosis"), then from the section's LOINC code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from adapters._clinical import compact
from adapters._values import decimal_str, parse_decimal
from adapters.cda.tree import El, cda_time

DE_SYSTEM = "2.16.156.10011.2.2.1"
DX_CODE, DX_NAME = "DE05.01.024.00", "DE05.01.025.00"
TCM_CODE, TCM_NAME = "DE05.10.130.00", "DE05.10.172.00"
CAUSE_CODE, CAUSE_NAME = "DE05.01.078.00", "DE05.10.152.00"
ON_ADMISSION = "DE09.00.104.00"
ADMITTED, DISCHARGED = "DE06.00.092.00", "DE06.00.017.00"
STAY_DAYS, DISPOSITION, ADMISSIONS = "DE06.00.310.00", "DE06.00.223.00", "DE02.10.090.00"
OP_NAME, OP_LEVEL, OP_INCISION = "DE06.00.094.00", "DE06.00.255.00", "DE06.00.257.00"
OP_HEALING, OP_ANAESTHESIA = "DE05.10.147.00", "DE06.00.073.00"
NARRATIVE = {"DE05.10.148.00": "admission_condition", "DE06.00.296.00": "treatment_course",
             "DE06.00.193.00": "discharge_condition", "DE04.01.117.00": "discharge_signs",
             "DE06.00.287.00": "discharge_orders"}
"""Free-text data elements kept (redacted) under ``body.narrative``."""
_CODES = frozenset({DX_CODE, TCM_CODE, CAUSE_CODE})
_NAMES = frozenset({DX_NAME, TCM_NAME, CAUSE_NAME})
SECTION_ROLES = {"46241-6": "admission", "11535-2": "discharge", "29548-5": None,
                 "11450-4": None}
CODE_SYSTEMS = {"2.16.156.10011.2.3.3.11": "ICD-10", "2.16.840.1.113883.6.3": "ICD-10",
                "2.16.156.10011.2.3.3.12": "ICD-9-CM-3", "2.16.840.1.113883.6.104": "ICD-9-CM-3",
                "2.16.156.10011.2.3.3.14": "GB/T 15657"}
"""Code-system OIDs (and their sub-arcs, e.g. 2.16.156.10011.2.3.3.11.3) by name."""
_ICD10 = re.compile(r"^[A-Z][0-9][0-9A-Z](\.?[0-9A-Za-z+*]{0,12})?(/[0-9])?$")
_ICD9CM3 = re.compile(r"^[0-9]{2}(\.?[0-9A-Za-z+]{0,12})?$")


@dataclass
class Body:
    """What the sections yielded, and which sections yielded nothing."""

    diagnoses: list[dict[str, Any]] = field(default_factory=list)
    procedures: list[dict[str, Any]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    narrative: dict[str, str] = field(default_factory=dict)
    unmapped: list[dict[str, str]] = field(default_factory=list)


def sections(root: El) -> Iterator[El]:
    body = root.child("component", "structuredBody")
    if body is None:
        raise root.error("the document has no structuredBody", "missing_field", None)
    for component in body.children("component"):
        yield from component.children("section")


def de_code(obs: El) -> str:
    code = obs.child("code")
    return code.attr("code").upper() if code is not None else ""


def read(root: El, *, skip: frozenset[str] = frozenset()) -> Body:
    """Diagnoses, procedures, stay facts and narrative of every section (``skip``: LOINC codes
    of sections read by someone else, the costs)."""
    out = Body()
    for section in sections(root):
        loinc = section.attr_at("code", "code")
        if loinc in skip:
            continue
        before = (len(out.diagnoses), len(out.procedures), len(out.facts), len(out.narrative))
        for entry in section.children("entry"):
            _entry(entry, section, loinc, out)
        if loinc == "8648-8" and "treatment_course" not in out.narrative:
            text = section.child("text")
            if text is not None and text.text():
                out.narrative["treatment_course"] = text.text()
        if before == (len(out.diagnoses), len(out.procedures), len(out.facts),
                      len(out.narrative)):
            out.unmapped.append(compact({"code": loinc,
                                         "name": section.attr_at("displayName", "code")}))
    out.diagnoses = _merged(out.diagnoses)
    return out


def _entry(entry: El, section: El, loinc: str, out: Body) -> None:
    procedures = list(entry.descendants("procedure"))
    if procedures:
        out.procedures.extend(_procedure(p) for p in procedures)
        return
    observations = list(entry.descendants("observation"))
    if not any(de_code(o) in _CODES | _NAMES for o in observations):
        for obs in observations:
            _fact(obs, out)
        return
    names = [o for o in observations if de_code(o) in _NAMES]
    codes = [o for o in observations if de_code(o) in _CODES]
    condition = next((o for o in observations if de_code(o) == ON_ADMISSION), None)
    for i in range(max(len(names), len(codes))):
        name = names[i] if i < len(names) else None
        code = codes[i] if i < len(codes) else None
        dx = _diagnosis(name, code, condition, loinc)
        if "code" in dx or "text" in dx:  # templates leave unused entries empty
            out.diagnoses.append(dx)


def _fact(obs: El, out: Body) -> None:
    de, value = de_code(obs), obs.child("value")
    if value is None:
        return
    if de in NARRATIVE and value.text():
        key = NARRATIVE[de]
        out.narrative[key] = "\n".join(p for p in (out.narrative.get(key), value.text()) if p)
    elif de in (ADMITTED, DISCHARGED):
        moment = cda_time(value)
        if moment:
            out.facts["admitted_at" if de == ADMITTED else "discharged_at"] = moment
    elif de in (STAY_DAYS, ADMISSIONS) and value.attr("value"):
        number = parse_decimal(value.attr("value"), loc=(value.where("value"),),
                               what=de, max_places=2)
        out.facts["length_of_stay_days" if de == STAY_DAYS else "admission_number"] = \
            decimal_str(number)
    elif de == DISPOSITION:
        coded = _coded(value)
        if coded:
            out.facts["discharge_disposition"] = coded


def _coded(value: El) -> dict[str, str]:
    return compact({"code": value.attr("code"), "text": value.attr("displayName")})


def _label(obs: El | None) -> str:
    """Display name and qualifier name of an observation's code: where its role is said."""
    if obs is None:
        return ""
    return obs.attr_at("displayName", "code") + " " + obs.attr_at("displayName", "code",
                                                                    "qualifier", "name")


def _role(label: str, loinc: str, cause: bool) -> str | None:
    if cause or "外部原因" in label:
        return "external_cause"
    for word, role in (("出院", "discharge"), ("入院", "admission"), ("门急诊", "outpatient"),
                       ("门(急)诊", "outpatient"), ("门（急）诊", "outpatient"),
                       ("病理", "pathology")):
        if word in label:
            return role
    return SECTION_ROLES.get(loinc)


def _diagnosis(name: El | None, code: El | None, condition: El | None,
               loinc: str) -> dict[str, Any]:
    label = _label(name) + " " + _label(code)
    kinds = {de_code(o) for o in (name, code) if o is not None}
    out: dict[str, Any] = {"type": _role(label, loinc, bool(kinds & {CAUSE_CODE, CAUSE_NAME}))}
    if "主要诊断" in label:
        out["rank"] = 1
    if kinds & {TCM_CODE, TCM_NAME}:
        out["tcm"] = "syndrome" if ("证候" in label or "症候" in label) else "disease"
    value = code.child("value") if code is not None else None
    if value is not None and value.attr("code"):
        out.update(_checked_code(value))
    if name is not None and name.text_at("value"):
        out["text"] = name.text_at("value")
    elif value is not None and value.attr("displayName"):
        out["text"] = value.attr("displayName")
    when = next((t for o in (name, code) if o is not None
                 and (t := o.child("effectiveTime")) is not None and t.attr("value")), None)
    if when is not None:
        out["time"] = cda_time(when)
    poa = condition.child("value") if condition is not None else None
    if poa is not None:
        out["present_on_admission"] = _coded(poa)
    return compact(out)


def system_name(value: El) -> tuple[str, str]:
    """(name, OID) of a coded value's code system: ICD-10, ICD-9-CM-3, GB/T 15657 or as written."""
    oid = value.attr("codeSystem")
    for arc, name in CODE_SYSTEMS.items():
        if oid == arc or oid.startswith(arc + "."):
            return name, oid
    return value.attr("codeSystemName") or oid, oid


def _checked_code(value: El) -> dict[str, str]:
    system, oid = system_name(value)
    code = value.attr("code").replace(" ", "")
    if system == "ICD-10" and not _ICD10.match(code.upper()):
        raise value.error("not an ICD-10 code (letter, two characters, optional subcode)",
                          "bad_icd10", "code")
    if system == "ICD-9-CM-3" and not _ICD9CM3.match(code):
        raise value.error("not an ICD-9-CM-3 procedure code (two digits, optional subcode)",
                          "bad_procedure_code", "code")
    return compact({"code": code.upper() if system == "ICD-10" else code, "system": system,
                    "code_system_oid": oid})


def _procedure(proc: El) -> dict[str, Any]:
    """An operation: ICD-9-CM-3 code, name (DE06.00.094.00), time, level, incision, healing,
    anaesthesia. The surgical team's names stay out (staff on the header are enough)."""
    code = proc.child("code")
    out: dict[str, Any] = {}
    if code is not None and code.attr("code"):
        out.update(_checked_code(code))
    if code is not None and code.attr("displayName"):
        out["text"] = code.attr("displayName")
    time = proc.child("effectiveTime")
    if time is not None:
        low = time.child("low")
        out["time"] = cda_time(time) if time.attr("value") else (
            cda_time(low) if low is not None else None)
    keys = {OP_LEVEL: "level", OP_INCISION: "incision_class", OP_HEALING: "healing_grade",
            OP_ANAESTHESIA: "anaesthesia"}
    for obs in proc.descendants("observation"):
        de, value = de_code(obs), obs.child("value")
        if value is None:
            continue
        if de == OP_NAME and value.text():
            out["text"] = value.text()
        elif de in keys and _coded(value):
            out[keys[de]] = _coded(value)
    if "code" not in out and "text" not in out:
        raise proc.error("an operation needs a code or a name (DE06.00.094.00)",
                         "missing_field", None)
    return compact(out)


def _merged(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One diagnosis per (role, code): exporters repeat a code entry beside its named one."""
    out: list[dict[str, Any]] = []
    for dx in found:
        twin = next((o for o in out if "code" in dx and o.get("code") == dx["code"]
                     and o.get("type") == dx.get("type")), None)
        if twin is None:
            out.append(dx)
        else:
            for key, value in dx.items():
                twin.setdefault(key, value)
    return out


def amount_text(value: Decimal) -> str:
    """An amount with at least two places, as the source wrote it (``0.8532`` kept)."""
    return decimal_str(value, 2)
