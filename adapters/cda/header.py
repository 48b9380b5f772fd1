"""The CDA header of a WS/T 500 document: its type, the patient, the staff and the stay.

Identifiers use the national OID arc 2.16.156.10011.1 (WS/T 500 and WS 363 "卫生信息标识"):
``.1.3`` resident ID number (身份证号), ``.1.12`` inpatient number (住院号), ``.1.13`` medical
record number (病案号), ``.1.4`` staff, ``.1.5`` organisation, ``.1.21``/``.1.22`` room and bed,
``.1.26`` department, ``.1.27`` ward. Document templates are ``2.16.156.10011.2.1.1.(20+n)`` for
WS/T 500.n, with the document code ``C00nn`` in code system ``2.16.156.10011.2.4``.

The subject is the resident ID (the consortium-wide pseudonym), else the 病案号 then the 住院号
scoped to the publishing hospital; every patient identifier, name and phone number found in
the header is kept only to redact it from the packet's text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from adapters._clinical import compact
from adapters.cda.tree import El, cda_time
from adapters.pseudonym import pseudonymise
from adapters.registry import AdapterContext
from gateway.core.errors import AdapterError

OID_RESIDENT_ID = "2.16.156.10011.1.3"
OID_INPATIENT_NO = "2.16.156.10011.1.12"
OID_RECORD_NO = "2.16.156.10011.1.13"
OID_DEPARTMENT = "2.16.156.10011.1.26"
OID_WARD = "2.16.156.10011.1.27"
OID_ORGANISATION = "2.16.156.10011.1.5"
DOC_CODE_SYSTEM = "2.16.156.10011.2.4"
TEMPLATE_ARC = "2.16.156.10011.2.1.1."


@dataclass(frozen=True)
class DocType:
    part: int
    """n of WS/T 500.n (2016 series)."""
    title: str
    front_page: bool = False

    @property
    def template(self) -> str:
        return f"{TEMPLATE_ARC}{self.part + 20}"

    @property
    def code(self) -> str:
        return f"C{self.part:04d}"


SUPPORTED = (DocType(32, "住院病案首页", front_page=True), DocType(49, "出院记录"),
             DocType(53, "出院小结"))
"""The documents mapped: the inpatient front page, the discharge record and summary."""
_BY_TEMPLATE = {d.template: d for d in SUPPORTED}
_BY_CODE = {d.code: d for d in SUPPORTED}

STAFF_ROLES = {
    "科主任": "department_head", "主任医师": "chief_physician",
    "主任(副主任)医师": "chief_physician", "副主任医师": "chief_physician",
    "上级医师": "senior_physician", "主治医师": "attending", "住院医师": "resident",
    "责任护士": "nurse", "进修医师": "visiting_physician", "实习医师": "intern",
    "编码员": "coder", "质控医师": "quality_physician", "质控医生": "quality_physician",
    "质控护士": "quality_nurse",
}
"""Signature roles of WS/T 500 headers (``assignedEntity/code/@displayName``)."""
_PHONE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
_ID_LIKE = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
_MIN_NAME = 2
_MIN_ID = 5
"""Shorter identifiers are not searched for (they would match dates, codes, amounts)."""


def doc_type(root: El) -> DocType:
    """The WS/T 500 document type, from the templateId (else the document code)."""
    templates = [t for t in root.children("templateId") if t.attr("root").startswith(TEMPLATE_ARC)]
    by_template = next((_BY_TEMPLATE[t.attr("root")] for t in templates
                        if t.attr("root") in _BY_TEMPLATE), None)
    code = root.child("code")
    by_code = None
    if code is not None and code.attr("codeSystem") == DOC_CODE_SYSTEM:
        by_code = _BY_CODE.get(code.attr("code").upper())
    if by_template and by_code and by_template != by_code:
        raise code.error("the document code and the templateId name different documents",  # type: ignore[union-attr]
                         "inconsistent_document_type", "code")
    found = by_template or (by_code if not templates else None)  # a WS/T 500 template rules
    if found is None:
        where = templates[0] if templates else (root.child("templateId") or root)
        supported = ", ".join(f"{d.title} (WS/T 500.{d.part}, {d.template})" for d in SUPPORTED)
        raise where.error("not a WS/T 500 document this adapter maps; supported: " + supported,
                          "unsupported_document", "root" if where is not root else None)
    return found


@dataclass
class Patient:
    """The pseudonymised subject and what must never reach the packet."""

    subject: str
    subject_from: str
    ids: list[str] = field(default_factory=list)
    """Raw patient identifiers (5+ characters), removed as whole tokens everywhere."""
    names: list[str] = field(default_factory=list)
    """Names and phone numbers of the patient and contacts, removed from free text."""

    def redact(self, value: Any, *, text: bool = False) -> Any:
        """Remove the patient's identifiers from ``value`` (a body, or one of its strings);
        with ``text`` (free text, staff names) also names, ID-like and mobile numbers."""
        if isinstance(value, dict):
            return {k: self.redact(v, text=text) for k, v in value.items()}
        if isinstance(value, list):
            return [self.redact(v, text=text) for v in value]
        if not isinstance(value, str):
            return value
        for raw in sorted(self.ids, key=len, reverse=True):
            value = re.sub(rf"(?<![0-9A-Za-z]){re.escape(raw)}(?![0-9A-Za-z])",
                           "[patient identifier removed]", value, flags=re.IGNORECASE)
        if text:
            for name in sorted(self.names, key=len, reverse=True):
                value = value.replace(name, "[removed]")
            value = _PHONE.sub("[phone]", _ID_LIKE.sub("[id]", value))
        return value


def patient(root: El, ctx: AdapterContext) -> Patient:
    """Subject from recordTarget: resident ID, else 病案号, else 住院号 (scoped to the issuer)."""
    role = root.child("recordTarget", "patientRole")
    if role is None:
        raise root.error("recordTarget/patientRole is required", "missing_field")
    person = role.child("patient")
    ids = [*(person.children("id") if person is not None else ()), *role.children("id")]
    raw_ids = [i.attr("extension") for i in ids if len(i.attr("extension")) >= _MIN_ID]
    chosen = _choose(ids, ctx)
    if chosen is None:
        raise role.error("no patient identifier: recordTarget needs a resident ID (root "
                         f"{OID_RESIDENT_ID}), a 病案号 or a 住院号", "missing_subject")
    scheme, node, source = chosen
    try:
        subject = pseudonymise(scheme, node.attr("extension"), loc=(node.where("extension"),),
                               key=ctx.pseudonym_key)
    except AdapterError as exc:
        exc.loc = (node.where("extension"),)
        exc.detail["loc"] = list(exc.loc)
        raise
    return Patient(subject, source, raw_ids, _names(root))


def _choose(ids: list[El], ctx: AdapterContext) -> tuple[str, El, str] | None:
    usable = [i for i in ids if i.attr("extension") and not i.e.get("nullFlavor")]
    for oid, scheme, source in ((OID_RESIDENT_ID, "cn_resident_id", "resident_id"),
                                (OID_RECORD_NO, f"mrn:{ctx.issuer}", "record_number"),
                                (OID_INPATIENT_NO, f"mrn:{ctx.issuer}", "inpatient_number")):
        node = next((i for i in usable if i.attr("root") == oid), None)
        if node is not None:
            return scheme, node, source
    return None


def _names(root: El) -> list[str]:
    """Names and phone numbers of the patient and of contacts (participant/associatedEntity)."""
    out = []
    for name in ("patient", "associatedPerson", "guardianPerson"):
        for holder in root.descendants(name):
            for node in holder.children("name"):
                if len(node.text()) >= _MIN_NAME:
                    out.append(node.text())
    for telecom in root.descendants("telecom"):
        value = telecom.attr("value").removeprefix("tel:")
        if len(value) >= 5:
            out.append(value)
    return out


def staff(root: El) -> list[dict[str, str]]:
    """Signers by role (legalAuthenticator, authenticator): role, title, staff id, name."""
    out = []
    for kind in ("legalAuthenticator", "authenticator"):
        for signer in root.children(kind):
            entity = signer.child("assignedEntity")
            if entity is None:
                continue
            title = entity.attr_at("displayName", "code")
            entry = compact({"role": STAFF_ROLES.get(title.replace("（", "(").replace("）", ")"),
                                                     "other" if title else None),
                             "title": title, "id": entity.attr_at("extension", "id"),
                             "name": entity.text_at("assignedPerson", "name")})
            if "id" in entry or "name" in entry:
                out.append(entry)
    return out


def encounter(root: El, found: dict[str, str],
              staff_list: list[dict[str, str]]) -> dict[str, Any]:
    """Stay facts: componentOf/encompassingEncounter times, route and departments.

    ``found`` holds admission/discharge times read from body entries (DE06.00.092.00,
    DE06.00.017.00), used when the header leaves effectiveTime empty (as the discharge record's
    template does)."""
    enc = root.child("componentOf", "encompassingEncounter")
    admitted = discharged = None
    admit_source: dict[str, str] = {}
    department: dict[str, str] = {}
    if enc is not None:
        low, high = enc.child("effectiveTime", "low"), enc.child("effectiveTime", "high")
        admitted = cda_time(low) if low is not None else None
        discharged = cda_time(high) if high is not None else None
        code = enc.child("code")
        if code is not None:
            admit_source = compact({"code": code.attr("code"), "text": code.attr("displayName")})
        department = _department(enc)
    attending = next((s for s in staff_list if s.get("role") == "attending"), None)
    return compact({
        "admitted_at": admitted or found.get("admitted_at"),
        "discharged_at": discharged or found.get("discharged_at"),
        "admit_source": admit_source, "department": department,
        "attending_doctor": compact({"id": attending.get("id"), "name": attending.get("name")})
        if attending else None,
    })


def _department(enc: El) -> dict[str, str]:
    """Department (.1.26), ward (.1.27) and hospital (.1.5) from the nested organisations;
    room and bed numbers are dropped."""
    out: dict[str, str] = {}
    keys = {OID_DEPARTMENT: "service", OID_WARD: "location", OID_ORGANISATION: "facility"}
    for org in enc.descendants("wholeOrganization"):
        org_id, name = org.child("id"), org.child("name")
        key = keys.get(org_id.attr("root")) if org_id is not None else None
        if key and name is not None and name.text() and key not in out:
            out[key] = name.text()
    return out


def document(root: El, kind: DocType) -> dict[str, Any]:
    """Which document this is and who keeps it."""
    custodian = root.child("custodian", "assignedCustodian", "representedCustodianOrganization")
    doc_id = root.child("id")
    return compact({
        "type": kind.title, "standard": f"WS/T 500.{kind.part}-2016", "template_id": kind.template,
        "id": doc_id.attr("extension") if doc_id is not None else None,
        "custodian": compact({"name": custodian.text_at("name"),
                              "id": custodian.attr_at("extension", "id")})
        if custodian is not None else None,
    })
