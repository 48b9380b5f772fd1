"""Who a FHIR resource is about: the subject identifier to pseudonymise, and how it was found.

Official examples and single-resource exports point at a Patient that is not in the file
(``"subject": {"reference": "Patient/f001"}``). Such a resource is still claims evidence, so the
subject is derived, in this order (docs/adapters/fhir.md, "Subject"):

1. ``patient_resource``: the reference resolves to a Patient in the input -> its identifiers.
   A Claim whose (often contained) Patient has no identifier at all ->
   ``coverage_member_id``: the member number of the Coverage it claims under whose
   beneficiary is that Patient (scheme ``mrn:<Coverage.identifier.system>``).
2. ``reference_identifier``: the Reference carries ``identifier`` (a logical reference) -> that
   identifier, pseudonymised by its system like a Patient identifier.
3. ``literal_reference``: a literal ``Patient/<id>`` (relative, or absolute
   ``<base>/Patient/<id>``) that is not in the input, and the input holds no Patient at all ->
   the logical id, as a record number of the server that assigned it: scheme
   ``mrn:<base>/Patient`` where ``<base>`` is the server base of the reference (absolute URL, or
   the Bundle entry's ``fullUrl``), else the packet issuer (the hospital member) for a bare
   relative reference.

An input that carries Patients but not the one referenced is inconsistent
(``unresolved_reference``); a display-only reference is a name and is never pseudonymised
(``missing_identifier``).
"""

from __future__ import annotations

from adapters.fhir.tree import Index, Node
from adapters.fhir.values import subject
from gateway.core.errors import AdapterError

Subject = tuple[str, str, tuple[str | int, ...]]


def subject_of(res: Node, field: str, index: Index, issuer: str) -> tuple[Subject, str]:
    """The (scheme, raw value, location) to pseudonymise, and the ``subject_from`` tag."""
    ref = res[field]
    if not ref.present:
        raise ref.error("the patient reference is required", "missing_field")
    if not isinstance(ref.value, dict):
        raise ref.error("expected a Reference object", "bad_type")
    found = index.lookup(ref, res)
    if found is not None:
        if found["resourceType"].string() != "Patient":
            raise ref["reference"].error("reference must point to Patient", "wrong_reference_type")
        try:
            return subject(found, ref), "patient_resource"
        except AdapterError as exc:
            member = _coverage_member(res, found, index) if exc.code == "missing_identifier" \
                else None
            if member is None:
                raise
            return member, "coverage_member_id"
    if ref["identifier"]["value"].string():
        return subject(None, ref), "reference_identifier"
    target = ref["reference"]
    if not target.string():
        raise ref.error("the patient reference has neither a literal reference nor an "
                        "identifier (a display name is not an identifier)", "missing_identifier")
    return _literal(target, res, index, issuer), "literal_reference"


def _coverage_member(claim: Node, patient: Node, index: Index) -> Subject | None:
    """A claim's patient with no identifier of its own (the spec's contained-Patient claims)
    is still named by the Coverage it claims under: the member number (``identifier`` or
    ``subscriberId``) of a Coverage whose beneficiary is that patient, scoped by its system."""
    for insurance in claim["insurance"].items():
        coverage = index.lookup(insurance["coverage"], claim)
        if coverage is None or coverage["resourceType"].string() != "Coverage":
            continue
        beneficiary = index.lookup(coverage["beneficiary"], claim)  # '#id' is the claim's
        if beneficiary is None or beneficiary.value is not patient.value:
            continue
        for ident in coverage["identifier"].items():
            if ident["value"].string():
                authority = ident["system"].string() or "coverage"
                return (f"mrn:{authority}", ident["value"].string(), (ident["value"].ptr,))
        if coverage["subscriberId"].string():
            return ("mrn:coverage-subscriber", coverage["subscriberId"].string(),
                    (coverage["subscriberId"].ptr,))
    return None


def _literal(target: Node, res: Node, index: Index, issuer: str) -> Subject:
    text = target.string().split("/_history/", 1)[0].rstrip("/")
    parts = text.split("/")
    if index.of_type("Patient") or text.startswith(("#", "urn:")) or len(parts) < 2:
        raise target.error("reference does not resolve to a resource in this input; include "
                           "the Patient in the Bundle", "unresolved_reference")
    if parts[-2] != "Patient":
        raise target.error("reference must point to Patient", "wrong_reference_type")
    base = "/".join(parts[:-2]) if "://" in text else _entry_base(index, res)
    return (f"mrn:{base or issuer}/Patient", parts[-1], (target.ptr,))


def _entry_base(index: Index, res: Node) -> str:
    """The server base of the Bundle entry holding ``res`` (``<base>/<Type>/<id>`` fullUrl)."""
    full_url = index.full_urls.get(id(res.value), "")
    parts = full_url.rstrip("/").split("/")
    return "/".join(parts[:-2]) if "://" in full_url and len(parts) > 3 else ""
