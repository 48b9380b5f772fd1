"""The FHIR specification's own examples (tests/assets/fhir/public, CC0) through the adapter.

Every expectation below was checked by hand against the example's JSON or XML: the packet kind,
a date, a code and an amount or value, or the error code and its JSON pointer or element path.
An example published in both forms must give the same packets from each.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters import detect_format, fhir
from adapters.pseudonym import pseudonymise
from adapters.registry import AdapterContext
from gateway.core.errors import AdapterError

PUBLIC = Path(__file__).resolve().parents[1] / "assets" / "fhir" / "public"
KEY = bytes(range(32))
CTX = AdapterContext(issuer="0x" + "ab" * 32, file="example", pseudonym_key=KEY)


def _first(body: dict[str, Any]) -> dict[str, Any]:
    return body["reports"][0]  # type: ignore[no-any-return]


# name -> (kind, issued_at or None for undated, check(body) -> the hand-checked facts)
PACKETS: dict[str, tuple[str, str | None, Any]] = {
    "claim-example-institutional.json": (
        "hospital.invoice", "2014-08-16T00:00:00Z",
        lambda b: (b["items"][0]["code"], b["items"][0]["amount"], b["declared_total"],
                   b["currency"], b["diagnoses"][0]["code"]),
        ),
    "claim-example-pharmacy-medication.json": (
        "hospital.invoice", "2014-08-16T00:00:00Z",
        lambda b: (b["items"][0]["code"], b["items"][0]["quantity"], b["items"][0]["amount"],
                   b["total"], b["currency"])),
    "diagnosticreport-example-f001-bloodexam.json": (
        "hospital.lab_report", "2013-05-15T18:32:52Z",
        lambda b: (_first(b)["test"]["code"], _first(b)["conclusion"],
                   b["references_not_included"])),
    "diagnosticreport-example-f201-brainct.json": (
        "hospital.lab_report", "2012-12-01T11:00:00Z",
        lambda b: (_first(b)["test"]["code"], _first(b)["conclusion_codes"][0]["code"],
                   _first(b)["observed_at"])),
    "diagnosticreport-example-f202-bloodculture.json": (
        "hospital.lab_report", "2013-03-11T09:28:00Z",
        lambda b: (_first(b)["test"]["code"], _first(b)["conclusion_codes"][0]["code"],
                   b["references_not_included"])),
    "diagnosticreport-example-ultrasound.json": (
        "hospital.lab_report", "2012-12-01T11:00:00Z",
        lambda b: (_first(b)["test"]["code"], _first(b)["conclusion"])),
    "encounter-example-f001-heart.json": (
        "hospital.discharge_summary", None,
        lambda b: (b["encounter"]["visit_number"], b["encounter"]["patient_class"],
                   b["encounter"]["discharge_disposition"])),
    "encounter-example-f002-lung.json": (
        "hospital.discharge_summary", None,
        lambda b: (b["encounter"]["visit_number"], b["encounter"]["admit_source"])),
    "encounter-example-f201-20130404.json": (
        "hospital.discharge_summary", None,
        lambda b: (b["encounter"]["encounter_type"], b["encounter"]["patient_class"])),
    "encounter-example-f202-20130128.json": (
        "hospital.discharge_summary", None,
        lambda b: (b["encounter"]["encounter_type"], b["references_not_included"])),
    "encounter-example-f203-20130311.json": (
        "hospital.discharge_summary", "2013-03-20T00:00:00Z",
        lambda b: (b["encounter"]["admitted_at"], b["encounter"]["discharged_at"],
                   b["encounter"]["patient_class"], b["references_not_included"])),
    "encounter-example-xcda.json": (
        "hospital.discharge_summary", None,
        lambda b: (b["encounter"]["visit_number"], b["encounter"]["status"])),
    "observation-example-f001-glucose.json": (
        "hospital.lab_report", "2013-04-03T14:30:10Z",
        lambda b: tuple(_first(b)["observations"][0][k] for k in (
            "value", "units", "reference_range", "abnormal_flags", "observed_at"))
        + (_first(b)["observations"][0]["code"]["code"],)),
    "observation-example-f206-staphylococcus.json": (
        "hospital.lab_report", "2013-03-11T09:28:00Z",
        lambda b: (_first(b)["observations"][0]["code"]["code"],
                   _first(b)["observations"][0]["value_coded"]["code"],
                   _first(b)["observations"][0]["abnormal_flags"])),
    "procedure-example-f201-tpf.json": (  # a chemotherapy session outside any discharge
        "hospital.procedure", "2013-01-28T13:27:00Z",  # performedPeriod.end 14:27+01:00
        lambda b: (b["procedures"][0]["code"], b["procedures"][0]["system"],
                   b["procedures"][0]["status"], b["procedures"][0]["time"], b["subject_from"])),
    # contained Patients with a name and address but no identifier: the subject is the
    # member number of the contained Coverage whose beneficiary they are
    "claim-example-cms1500-medical.json": (
        "hospital.invoice", "2015-10-16T07:00:00Z",
        lambda b: (b["subject_from"], b["items"][0]["code"], b["items"][0]["amount"],
                   b["total"], b["currency"], [d["code"] for d in b["diagnoses"]])),
    "claim-example-oral-contained.xml": (
        "hospital.invoice", "2014-08-16T00:00:00Z",
        lambda b: (b["subject_from"], b["items"][0]["code"], b["items"][0]["amount"],
                   b["total"], b["currency"])),
    "invoice-example.xml": (  # totals only, no lineItem
        "hospital.invoice", "2017-01-25T07:00:00Z",
        lambda b: (b["declared_total"], b["currency"], "items" in b, b["resource"]["id"])),
    "chargeitem-example.xml": (  # issued at enteredDate 23:55:04+01:00
        "hospital.invoice", "2017-01-25T22:55:04Z",
        lambda b: (b["items"][0]["code"], b["items"][0]["quantity"], b["items"][0]["amount"],
                   b["items"][0]["date"], b["total"], b["currency"])),
    "chargeitem-example.json": (  # the JSON twin; issued at enteredDate 23:55:04+01:00
        "hospital.invoice", "2017-01-25T22:55:04Z",
        lambda b: (b["items"][0]["code"], b["items"][0]["quantity"], b["items"][0]["amount"],
                   b["items"][0]["date"], b["total"], b["currency"])),
    "claim-example-pharmacy-compound.json": (  # item net 155.00; details are not extra lines
        "hospital.invoice", "2014-08-16T00:00:00Z",
        lambda b: (len(b["items"]), b["items"][0]["code"], b["items"][0]["quantity"],
                   b["items"][0]["amount"], b["total"], b["declared_total"], b["currency"],
                   b["use"])),
    "condition-example-f001-heart.json": (  # issued at recordedDate, time = onset
        "hospital.diagnosis", "2011-10-05T00:00:00Z",
        lambda b: (b["diagnoses"][0]["code"], b["diagnoses"][0]["system"],
                   b["diagnoses"][0]["clinical_status"], b["diagnoses"][0]["time"])),
    "condition-example-f003-abscess.json": (
        "hospital.diagnosis", "2012-02-20T00:00:00Z",
        lambda b: (b["diagnoses"][0]["code"], b["diagnoses"][0]["time"])),
    "condition-example-f201-fever.json": (  # category SNOMED "Problem" before the HL7 code
        "hospital.diagnosis", "2013-04-04T00:00:00Z",
        lambda b: (b["diagnoses"][0]["code"], b["diagnoses"][0]["type"],
                   b["diagnoses"][0]["clinical_status"], b["diagnoses"][0]["time"])),
    "condition-example-f202-malignancy.json": (  # onsetAge only: time falls to recordedDate
        "hospital.diagnosis", "2012-12-01T00:00:00Z",
        lambda b: (b["diagnoses"][0]["code"], b["diagnoses"][0]["type"],
                   b["diagnoses"][0]["time"])),
    "encounter-example-f003-abscess.json": (  # no period: undated
        "hospital.discharge_summary", None,
        lambda b: (b["encounter"]["patient_class"], b["encounter"]["admit_source"],
                   b["encounter"]["discharge_disposition"], "diagnoses" in b)),
    "procedure-example-f004-tracheotomy.json": (  # performedPeriod 09:30:10-10:30:10+01:00
        "hospital.procedure", "2013-03-22T09:30:10Z",
        lambda b: (b["procedures"][0]["code"], b["procedures"][0]["status"],
                   b["procedures"][0]["time"])),
    "observation-example-f203-bicarbonate.json": (  # issued 14:34+01:00
        "hospital.lab_report", "2013-04-04T13:34:00Z",
        lambda b: tuple(_first(b)["observations"][0][k] for k in (
            "value", "units", "reference_range", "abnormal_flags"))
        + (_first(b)["observations"][0]["code"]["code"],)),
    # the payer's adjudication: item 1 eligible 120.00 at 80 % -> benefit 96.00; item 2 (a
    # group of 200.00) benefit 180.00; its totals say submitted 135.57, benefit 96.00 (the
    # example does not count item 2 in them: both are kept, neither is corrected)
    "explanationofbenefit-example.xml": (
        "payer.adjudication", "2014-08-16T00:00:00Z",
        lambda b: (b["items"][0]["code"], b["items"][0]["adjudication"],
                   b["items"][1]["adjudication"], b["total"], b["adjudicated"], b["totals"],
                   b["currency"], b["outcome"], b["claim"])),
    "coverage-example.xml": (  # no date of its own: undated
        "payer.coverage", None,
        lambda b: (b["type"]["code"], b["period"], b["relationship"], b["subscriber"],
                   [c["type"] for c in b["class"]][:3], b["class"][7], b["policy_holder"],
                   len(b["member_id"]))),
    "documentreference-example.json": (  # URL only: noted, never fetched
        "attachment", "2005-12-23T22:43:41Z",
        lambda b: (b["doc_type"], b["document_type"]["code"], b["content"][0]["url"],
                   b["content"][0]["fetched"], b["content"][0]["sha1"], b["size"],
                   b["security_labels"])),
}

FACTS: dict[str, tuple[Any, ...]] = {
    "claim-example-institutional.json": ("exam", "125.00", "125.00", "USD", "654456"),
    "claim-example-pharmacy-medication.json": ("562721", "90", "90.00", "90.00", "USD"),
    "diagnosticreport-example-f001-bloodexam.json": ("58410-2", "Core lab", 5),
    "diagnosticreport-example-f201-brainct.json": ("429858000", "188340000",
                                                   "2012-12-01T11:00:00Z"),
    "diagnosticreport-example-f202-bloodculture.json": ("104177005", "428763004", 1),
    "diagnosticreport-example-ultrasound.json": ("45036003", "Unremarkable study"),
    "encounter-example-f001-heart.json": ("v1451", "AMB", "Discharge to home"),
    "encounter-example-f002-lung.json": ("v3251", "Referral by radiologist"),
    "encounter-example-f201-20130404.json": ("Consultation", "AMB"),
    "encounter-example-f202-20130128.json": ("Chemotherapy", 2),
    "encounter-example-f203-20130311.json": ("2013-03-11", "2013-03-20", "IMP", 2),
    "encounter-example-xcda.json": ("1234213.52345873", "finished"),
    "claim-example-cms1500-medical.json": ("coverage_member_id", "62264", "12500.00",
                                           "12500.00", "USD",
                                           ["M96.1", "G89.4", "M53.88", "M47.816"]),
    "claim-example-oral-contained.xml": ("coverage_member_id", "1200", "135.57", "135.57",
                                         "USD"),
    "procedure-example-f201-tpf.json": ("367336001", "http://snomed.info/sct", "completed",
                                        "2013-01-28T12:31:00Z", "literal_reference"),
    "observation-example-f001-glucose.json": ("6.3", "mmol/l", "3.1-6.2", ["H"],
                                              "2013-04-02T08:30:10Z", "15074-8"),
    # LOINC 600-7 preferred over the lab's local code 104177 listed first
    "observation-example-f206-staphylococcus.json": ("600-7", "3092008", ["POS"]),
    "invoice-example.xml": ("48", "EUR", False, "example"),
    "chargeitem-example.xml": ("01510", "1", "40", "2017-01-25T07:00:00Z", "40", "EUR"),
    "chargeitem-example.json": ("01510", "1", "40", "2017-01-25T07:00:00Z", "40", "EUR"),
    "claim-example-pharmacy-compound.json": (1, "compound", "30", "155.00", "155.00", "155.00",
                                             "USD", "claim"),
    "condition-example-f001-heart.json": ("368009", "http://snomed.info/sct", "active",
                                          "2011-08-05"),
    "condition-example-f003-abscess.json": ("18099001", "2012-02-27"),
    "condition-example-f201-fever.json": ("386661006", "Problem", "resolved", "2013-04-02"),
    "condition-example-f202-malignancy.json": ("363346000", "encounter-diagnosis", "2012-12-01"),
    "encounter-example-f003-abscess.json": ("AMB", "Referral by physician", "Discharge to home",
                                            False),
    "procedure-example-f004-tracheotomy.json": ("48387007", "completed", "2013-03-22T08:30:10Z"),
    "observation-example-f203-bicarbonate.json": ("28", "mmol/L", "22-29", ["N"], "1963-8"),
    "explanationofbenefit-example.xml": (
        "1205", {"eligible": "120.00", "eligible_percent": "0.80", "benefit": "96.00"},
        {"benefit": "180.00"}, "335.57", {"eligible": "120.00", "benefit": "276.00"},
        {"submitted": "135.57", "benefit": "96.00"}, "USD", "complete", "Claim/100150"),
    "coverage-example.xml": (
        "EHCPOL", {"start": "2011-05-23", "end": "2012-05-23"}, "self", "beneficiary",
        ["group", "subgroup", "plan"], {"type": "rxid"}, {"kind": "Organization"}, 64),
    "documentreference-example.json": (
        "other", "34108-1",
        "http://example.org/xds/mhd/Binary/07a6483f-732b-461e-86b6-edb665c45510", False,
        "da39a3ee5e6b4b0d3255bfef95601890afd80709", 3654, ["V"]),
}

SUBJECT_FROM = {"claim-example-cms1500-medical.json": "coverage_member_id",
                "claim-example-oral-contained.xml": "coverage_member_id"}
"""How the subject was found, where it is not the literal ``Patient/<id>`` reference."""

ERRORS: dict[str, tuple[str, str]] = {
    "bundle-example.json": ("unsupported_resource", "/entry"),  # MedicationRequest+Medication
    "capabilitystatement-example.json": ("unsupported_resource", "/resourceType"),
    "operationoutcome-example.json": ("unsupported_resource", "/resourceType"),
    "observation-example-bloodpressure.json": ("unsupported_resource", "/resourceType"),
    "observation-example-sample-data.json": ("unsupported_resource", "/resourceType"),
    "bundle-example.xml": ("unsupported_resource", "/Bundle/entry"),
    # a preauthorization asks about care not yet given: not a bill
    "claim-example-oral-orthoplan.json": ("unsupported_resource", "/use"),
    # a vital sign, and entered in error: neither lab evidence nor anything else
    "observation-example-f202-temperature.json": ("unsupported_resource", "/resourceType"),
    "patient-example-f001-pieter.json": ("unsupported_resource", "/resourceType"),
}
"""Vital signs and an ECG (category ``vital-signs`` / ``procedure``) are not lab reports."""

XML_TWINS = sorted(p.name for p in PUBLIC.glob("*.xml") if p.with_suffix(".json").exists())
"""Examples published as XML and JSON: each XML one expects what its JSON twin does."""
for _xml in XML_TWINS:
    _json = _xml.removesuffix(".xml") + ".json"
    if _json in PACKETS:
        PACKETS[_xml], FACTS[_xml] = PACKETS[_json], FACTS[_json]


def test_every_public_example_has_an_expectation() -> None:
    names = {p.name for p in PUBLIC.iterdir() if p.suffix in (".json", ".xml")}
    assert names == set(PACKETS) | set(ERRORS)
    assert set(PACKETS) == set(FACTS)
    assert len(names) >= 20
    assert len(XML_TWINS) >= 7 and len([n for n in PACKETS if n.endswith(".xml")]) >= 8


@pytest.mark.parametrize("name", sorted(PACKETS))
def test_public_example_yields_packet(name: str) -> None:
    raw = (PUBLIC / name).read_bytes()
    assert detect_format(raw) == "fhir"
    kind, issued_at, check = PACKETS[name]
    [packet] = [p.to_obj() for p in fhir.adapt(raw, CTX)]
    body = packet["body"]
    assert packet["kind"] == kind
    if issued_at is None:
        assert body["undated"] is True
    else:
        assert packet["issued_at"] == issued_at and "undated" not in body
    assert check(body) == FACTS[name]
    assert body["subject_from"] == SUBJECT_FROM.get(name, "literal_reference")
    text = json.dumps(packet)
    for name_part in ("Heuvel", "Roel's", "Patient/", "Ashcraft", '"10138556"', '"12345"',
                      "MDF12345", "Smitty"):
        assert name_part not in text  # subject displays, names, member numbers


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_public_example_not_evidence(name: str) -> None:
    raw = (PUBLIC / name).read_bytes()
    assert detect_format(raw) == "fhir"
    with pytest.raises(AdapterError) as info:
        fhir.adapt(raw, CTX)
    assert (info.value.code, info.value.loc) == (ERRORS[name][0], (ERRORS[name][1],))
    assert "Donald" not in json.dumps(info.value.to_dict())


def _comparable(raw: bytes) -> list[dict[str, Any]] | str:
    """Packets without what differs by construction (source hash, random salt, id), or the
    error code; an undated packet's issued_at is the adaptation time and is left out too."""
    try:
        packets = [p.to_obj() for p in fhir.adapt(raw, CTX)]
    except AdapterError as exc:
        return exc.code
    for packet in packets:
        for key in ("source", "salt", "id"):
            packet.pop(key, None)
        if packet["body"].get("undated"):
            del packet["issued_at"]
    return packets


@pytest.mark.parametrize("name", XML_TWINS)
def test_xml_example_gives_the_packets_of_its_json_twin(name: str) -> None:
    """Kind, issued_at, subject (same pseudonym, same subject_from) and the whole body."""
    xml = _comparable((PUBLIC / name).read_bytes())
    assert xml == _comparable((PUBLIC / name).with_suffix(".json").read_bytes())
    assert xml  # a packet or an error code, never nothing


def test_literal_reference_scoped_by_server_base() -> None:
    """A relative reference inside a Bundle entry with an absolute fullUrl belongs to that
    server; a bare resource's relative reference belongs to the issuer."""
    [report] = fhir.adapt((PUBLIC / "diagnosticreport-example-f001-bloodexam.json").read_bytes(),
                          CTX)
    assert report.subject == pseudonymise("mrn:https://example.com/base/Patient", "f001", key=KEY)
    [enc] = fhir.adapt((PUBLIC / "encounter-example-f001-heart.json").read_bytes(), CTX)
    assert enc.subject == pseudonymise(f"mrn:{CTX.issuer}/Patient", "f001", key=KEY)


def _with_subject(ref: dict[str, Any], extra: list[dict[str, Any]] | None = None) -> bytes:
    obs = json.loads((PUBLIC / "observation-example-f001-glucose.json").read_bytes())
    obs["subject"] = ref
    if extra is None:
        return json.dumps(obs).encode()
    entries = [{"resource": r} for r in [obs, *extra]]
    return json.dumps({"resourceType": "Bundle", "type": "collection",
                       "entry": entries}).encode()


def test_reference_identifier_is_pseudonymised_by_its_system() -> None:
    raw = _with_subject({"identifier": {"system": "urn:oid:1.2.3", "value": "MRN-77"},
                         "display": "Some Name"})
    [packet] = fhir.adapt(raw, CTX)
    assert packet.subject == pseudonymise("mrn:urn:oid:1.2.3", "MRN-77", key=KEY)
    assert packet.body["subject_from"] == "reference_identifier"
    assert "MRN-77" not in json.dumps(packet.to_obj()) and "Some Name" not in str(packet.body)


@pytest.mark.parametrize(("ref", "extra", "code", "pointer"), [
    ({"display": "P. van de Heuvel"}, None, "missing_identifier", "/subject"),
    ({"reference": "Group/101"}, None, "wrong_reference_type", "/subject/reference"),
    ({"reference": "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"}, None,
     "unresolved_reference", "/subject/reference"),
    ({"reference": "#p1"}, None, "unresolved_reference", "/subject/reference"),
    ({"reference": "Patient/" + "x" * 70}, None, "invalid_mrn", "/subject/reference"),
    ({"reference": "Patient/zz"},
     [{"resourceType": "Patient", "id": "p1",
       "identifier": [{"system": "urn:oid:1.2.3", "value": "1"}]}],
     "unresolved_reference", "/entry/0/resource/subject/reference"),
])
def test_subject_reference_errors(ref: dict[str, Any], extra: list[dict[str, Any]] | None,
                                  code: str, pointer: str) -> None:
    with pytest.raises(AdapterError) as info:
        fhir.adapt(_with_subject(ref, extra), CTX)
    assert (info.value.code, info.value.loc) == (code, (pointer,))
    assert "Heuvel" not in json.dumps(info.value.to_dict())


def test_invoice_without_lines_gives_its_declared_total() -> None:
    """The spec's Invoice/example (its XML form is a fixture) has totals but no lineItem; this
    is the JSON of the elements the adapter reads, and it maps as the XML does."""
    invoice = {"resourceType": "Invoice", "id": "example", "status": "issued",
               "subject": {"reference": "Patient/example"}, "date": "2017-01-25T08:00:00+01:00",
               "totalNet": {"value": 40, "currency": "EUR"},
               "totalGross": {"value": 48, "currency": "EUR"}}
    [packet] = fhir.adapt(json.dumps(invoice).encode(), CTX)
    assert (packet.kind, packet.issued_at) == ("hospital.invoice", "2017-01-25T07:00:00Z")
    assert (packet.body["declared_total"], packet.body["currency"]) == ("48", "EUR")
    assert "items" not in packet.body
    assert _comparable(json.dumps(invoice).encode()) == _comparable(
        (PUBLIC / "invoice-example.xml").read_bytes())
    del invoice["totalGross"], invoice["totalNet"]
    with pytest.raises(AdapterError) as info:
        fhir.adapt(json.dumps(invoice).encode(), CTX)
    assert (info.value.code, info.value.loc) == ("missing_field", ("/lineItem",))


def test_discharge_document_note_is_not_a_lab_result() -> None:
    """The spec's discharge-summary document Bundle (document-example-dischargesummary: a
    Composition, Patient d1, Encounter doc-example, an uncategorised Observation "Reason for
    admission" with a ``valueString``), here with the identifier its Patient lacks: the
    Encounter gives the discharge summary and the free-text note is no lab report. Without
    an identifier the published Bundle is refused, located (``missing_identifier``)."""
    note = {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "46241-6"}],
                     "text": "Reason for admission"},
            "subject": {"reference": "Patient/d1"},
            "encounter": {"reference": "Encounter/doc-example"},
            "valueString": "Acute Asthmatic attack. Was wheezing for days prior to admission."}
    encounter = {"resourceType": "Encounter", "id": "doc-example", "status": "finished",
                 "class": {"code": "IMP"}, "subject": {"reference": "Patient/d1"},
                 "period": {"start": "2013-01-20T12:30:02Z", "end": "2013-02-01T12:30:02Z"}}
    patient: dict[str, Any] = {"resourceType": "Patient", "id": "d1",
                               "name": [{"text": "Eve Everywoman"}]}
    base = "http://fhir.healthintersections.com.au/open/"
    bundle = {"resourceType": "Bundle", "type": "document", "entry": [
        {"fullUrl": base + "Patient/d1", "resource": patient},
        {"fullUrl": base + "Encounter/doc-example", "resource": encounter},
        {"fullUrl": "urn:uuid:541a72a8-df75-4484-ac89-ac4923f03b81", "resource": note}]}
    with pytest.raises(AdapterError) as info:
        fhir.adapt(json.dumps(bundle).encode(), CTX)
    assert (info.value.code, info.value.loc) == ("missing_identifier",
                                                 ("/entry/0/resource/identifier",))
    patient["identifier"] = [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345"}]
    [packet] = [p.to_obj() for p in fhir.adapt(json.dumps(bundle).encode(), CTX)]
    assert (packet["kind"], packet["issued_at"]) == ("hospital.discharge_summary",
                                                     "2013-02-01T12:30:02Z")
    assert "Asthmatic" not in json.dumps(packet) and "Everywoman" not in json.dumps(packet)
    note["category"] = [{"coding": [{"code": "laboratory"}]}]  # a categorised result still is one
    kinds = sorted(p.kind for p in fhir.adapt(json.dumps(bundle).encode(), CTX))
    assert kinds == ["hospital.lab_report"]  # and its Encounter is then context


def test_preauthorization_in_a_bundle_does_not_sink_the_claim_beside_it() -> None:
    """claim-example-oral-orthoplan (use: preauthorization) next to the pharmacy compound
    claim: one invoice, for the real claim; alone, the preauthorization is refused at /use."""
    pre, claim = ((PUBLIC / f"claim-example-{n}.json").read_text()
                  for n in ("oral-orthoplan", "pharmacy-compound"))
    bundle = ('{"resourceType": "Bundle", "type": "collection", "entry": '
              f'[{{"resource": {pre}}}, {{"resource": {claim}}}]}}')
    packets = [p.to_obj() for p in fhir.adapt(bundle.encode(), CTX)]
    assert [(p["kind"], p["body"]["resource"]["id"]) for p in packets] == [
        ("hospital.invoice", "760152")]
