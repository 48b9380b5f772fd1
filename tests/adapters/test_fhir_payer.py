"""ExplanationOfBenefit, Coverage and DocumentReference (issue 13, item 7): a Synthea encounter,
Blue Button adjudications, attachments by hash, and the attacks on them."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from typing import Any

import pytest

from adapters import detect_format, fhir
from adapters.pseudonym import pseudonymise
from adapters.registry import AdapterContext
from gateway.core.errors import AdapterError
from tests.adapters.fhir_helpers import CTX, KEY, asset, dumps, load

SYNTHEA = "synthea/synthea_encounter_subset.json"
NOTE = hashlib.sha256(base64.b64decode(
    load(SYNTHEA)["entry"][3]["resource"]["content"][0]["attachment"]["data"])).hexdigest()
_BB = "https://bluebutton.cms.gov/resources/variables/"


def packets(raw: bytes, ctx: AdapterContext = CTX) -> list[dict[str, Any]]:
    return [p.to_obj() for p in fhir.adapt(raw, ctx)]


def error(raw: bytes, ctx: AdapterContext = CTX) -> AdapterError:
    with pytest.raises(AdapterError) as info:
        fhir.adapt(raw, ctx)
    return info.value


def test_synthea_encounter_gives_bill_adjudication_note_and_visit() -> None:
    """Checked by hand against the Synthea bundle: Claim total 129.16 USD with two unpriced
    lines; its EOB submitted 129.16, paid 0.0, under a contained Humana Coverage; the clinical
    note (599 bytes of text/plain) attached by hash; the visit with its period."""
    raw = asset(SYNTHEA)
    assert detect_format(raw) == "fhir"
    claim, eob, note, visit = packets(raw)
    assert [p["kind"] for p in (claim, eob, note, visit)] == [
        "hospital.invoice", "payer.adjudication", "attachment", "hospital.discharge_summary"]
    assert len({p["subject"] for p in (claim, eob, note, visit)}) == 1
    assert claim["body"]["declared_total"] == "129.16" and claim["body"]["unpriced_items"] == 2
    body = eob["body"]
    assert eob["issued_at"] == "1979-01-02T16:59:52Z"
    assert (body["totals"], body["payment"], body["currency"]) == (
        {"submitted": "129.16"}, {"amount": "0.0"}, "USD")
    assert body["coverage"] == [{"focal": True, "status": "active", "type": {"text": "Humana"},
                                 "payor": ["Humana"]}]
    assert body["claim"] == "urn:uuid:d0fbb53e-5571-bf4f-50fe-f4257ee5b6f7"
    assert body["diagnoses"][0]["code"] == "15777000" and body["unpriced_items"] == 2
    assert note["attachments"] == [{"sha256": NOTE, "media_type": "text/plain",
                                    "doc_type": "other", "size": 599}]
    assert note["body"]["content"] == [{"media_type": "text/plain", "size": 599,
                                        "sha256": NOTE, "format":
                                        "urn:ihe:iti:xds:2017:mimeTypeSufficient"}]
    assert note["issued_at"] == "1979-01-02T16:44:52Z"
    text = json.dumps([claim, eob, note, visit])
    for leak in ("Lindsay928", "Gerlach374", "999-34-2070", "X89909962X", "smoker",
                 "CjE5NzktMDEtMDIK"):
        assert leak not in text  # names, SSN, passport, the note's words, its bytes


def _eob_with_blue_button(amounts: dict[str, Any]) -> dict[str, Any]:
    """The Synthea EOB with one priced line adjudicated as Synthea writes Medicare claims (CMS
    Blue Button categories, 20 % coinsurance)."""
    bundle = load(SYNTHEA)
    eob = bundle["entry"][5]["resource"]
    eob["item"][1]["net"] = {"value": amounts["net"], "currency": "USD"}
    eob["item"][1]["adjudication"] = [
        {"category": {"coding": [{"system": "https://bluebutton.cms.gov/resources/codesystem/"
                                  "adjudication", "code": _BB + code}]},
         **({"amount": {"value": value, "currency": "USD"}} if value is not None else {})}
        for code, value in amounts["lines"]]
    return bundle


def test_blue_button_adjudication_is_named_and_exact() -> None:
    import decimal
    d = decimal.Decimal
    bundle = _eob_with_blue_button({"net": d("136"), "lines": [
        ("line_coinsrnc_amt", d("27.20")), ("line_prvdr_pmt_amt", d("108.80")),
        ("line_sbmtd_chrg_amt", d("136")), ("line_alowd_chrg_amt", d("136")),
        ("line_bene_ptb_ddctbl_amt", d("0")), ("line_prcsg_ind_cd", None)]})
    [eob] = [p for p in packets(dumps(bundle)) if p["kind"] == "payer.adjudication"]
    line = eob["body"]["items"][1]
    assert line["amount"] == "136" and eob["body"]["total"] == "136"
    assert line["adjudication"] == {"coinsurance": "27.20", "benefit": "108.80",
                                    "submitted": "136", "eligible": "136", "deductible": "0"}
    assert eob["body"]["adjudicated"] == line["adjudication"]


def test_float_artefacts_stay_exact_decimals() -> None:
    """Synthea writes 0.2 x 136 as 27.200000000000003: kept digit for digit, never a float."""
    import decimal
    bundle = _eob_with_blue_button({"net": decimal.Decimal("136"), "lines": [
        ("line_coinsrnc_amt", decimal.Decimal("27.200000000000003"))]})
    [eob] = [p for p in packets(dumps(bundle)) if p["kind"] == "payer.adjudication"]
    assert eob["body"]["items"][1]["adjudication"] == {"coinsurance": "27.200000000000003"}


@pytest.mark.parametrize(("edit", "code", "pointer"), [
    (lambda r: r["item"][0].update(adjudication=[
        {"category": {"coding": [{"code": "benefit"}]}, "amount": {"value": 1}},
        {"category": {"coding": [{"code": "benefit"}]}, "amount": {"value": 2}}]),
     "duplicate_category", "/entry/5/resource/item/0/adjudication/1/category"),
    (lambda r: r["payment"]["amount"].update(currency="CNY"), "mixed_currency",
     "/entry/5/resource/item"),
    (lambda r: r.update(use="preauthorization"), "unsupported_resource",
     "/entry/5/resource/use"),
    (lambda r: r["total"][0]["amount"].update(value="129.16"), "bad_type",
     "/entry/5/resource/total/0/amount/value"),
])
def test_bad_explanation_of_benefit_is_located(edit: Any, code: str, pointer: str) -> None:
    bundle = load(SYNTHEA)
    bundle["entry"] = [e for i, e in enumerate(bundle["entry"]) if i in (0, 5)] \
        if code == "unsupported_resource" else bundle["entry"]
    edit(bundle["entry"][-1 if code == "unsupported_resource" else 5]["resource"])
    if code == "unsupported_resource":
        pointer = "/entry/1/resource/use"
    failure = error(dumps(bundle))
    assert (failure.code, failure.loc) == (code, (pointer,))


def test_eob_without_items_totals_or_payment_is_refused() -> None:
    eob = copy.deepcopy(load(SYNTHEA)["entry"][5]["resource"])
    for key in ("item", "total", "payment", "contained", "insurance"):
        eob.pop(key)
    eob["patient"] = {"reference": "Patient/1"}
    failure = error(dumps(eob))
    assert (failure.code, failure.loc) == ("missing_field", ("/total",))


def _coverage(**extra: Any) -> dict[str, Any]:
    cov = {"resourceType": "Coverage", "id": "c1", "status": "active",
           "identifier": [{"system": "urn:cn:insurer:member", "value": "M-0001"}],
           "beneficiary": {"reference": "Patient/p1"},
           "payor": [{"reference": "Organization/o1"}],
           "costToBeneficiary": [{"type": {"coding": [{"code": "copaypct"}]},
                                  "valueQuantity": {"value": 20, "unit": "%"}},
                                 {"type": {"coding": [{"code": "gpvisit"}]},
                                  "valueMoney": {"value": 15.50, "currency": "CNY"}}]}
    patient = {"resourceType": "Patient", "id": "p1", "identifier": [
        {"system": "urn:oid:2.16.156.10011.1.3", "value": "110105198001010016"}]}
    spouse = {"resourceType": "Patient", "id": "p2", "identifier": [
        {"system": "urn:oid:2.16.156.10011.1.3", "value": "11010519491231002X"}]}
    insurer = {"resourceType": "Organization", "id": "o1", "name": "中国人寿保险"}
    return {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": r} for r in ({**cov, **extra}, patient, spouse, insurer)]}


def test_coverage_pseudonymises_subscriber_and_member_numbers() -> None:
    [packet] = packets(json.dumps(_coverage(subscriber={"reference": "Patient/p2"},
                                            subscriberId="SUB-77")).encode())
    body = packet["body"]
    assert packet["kind"] == "payer.coverage"
    assert packet["subject"] == pseudonymise("cn_resident_id", "110105198001010016", key=KEY)
    assert body["subscriber"] == pseudonymise("cn_resident_id", "11010519491231002X", key=KEY)
    assert body["subscriber_from"] == "patient_resource"
    assert body["member_id"] == pseudonymise("mrn:urn:cn:insurer:member", "M-0001", key=KEY)
    assert body["subscriber_id"] == pseudonymise("mrn:coverage-subscriber", "SUB-77", key=KEY)
    assert body["payor"] == ["中国人寿保险"]
    assert body["cost_to_beneficiary"] == [
        {"type": "copaypct", "value": "20", "units": "%"},
        {"type": "gpvisit", "currency": "CNY", "amount": "15.5"}]
    text = json.dumps(packet, ensure_ascii=False)
    for leak in ("M-0001", "SUB-77", "110105198001010016", "11010519491231002X"):
        assert leak not in text


def test_a_person_as_policy_holder_or_payor_is_never_named() -> None:
    raw = json.dumps(_coverage(policyHolder={"reference": "Patient/p2"}, payor=[
        {"reference": "Patient/p2", "display": "张三"}])).encode()
    [packet] = packets(raw)
    assert packet["body"]["policy_holder"] == {"kind": "Patient"}
    assert "payor" not in packet["body"] and "张三" not in json.dumps(packet, ensure_ascii=False)


def _document(**attachment: Any) -> dict[str, Any]:
    return {"resourceType": "DocumentReference", "status": "current",
            "type": {"coding": [{"system": "http://loinc.org", "code": "18842-5",
                                 "display": "Discharge summary"}]},
            "subject": {"reference": "Patient/p1"}, "date": "2026-03-21T10:00:00+08:00",
            "content": [{"attachment": attachment}]}


PDF = b"%PDF-1.4\n% a discharge summary\n"


def test_inline_pdf_is_attached_by_hash_and_checked() -> None:
    sha1 = base64.b64encode(hashlib.sha1(PDF).digest()).decode()  # noqa: S324 - FHIR's hash
    doc = _document(contentType="application/pdf", data=base64.b64encode(PDF).decode(),
                    size=len(PDF), hash=sha1, title="出院小结 张三")
    [packet] = packets(json.dumps(doc).encode())
    assert packet["attachments"] == [{"sha256": hashlib.sha256(PDF).hexdigest(),
                                      "media_type": "application/pdf",
                                      "doc_type": "discharge_summary", "size": len(PDF)}]
    assert packet["issued_at"] == "2026-03-21T02:00:00Z"
    assert "张三" not in json.dumps(packet, ensure_ascii=False)  # the title is not kept


def test_title_classifies_when_the_type_code_does_not() -> None:
    doc = _document(contentType="application/pdf", data=base64.b64encode(PDF).decode(),
                    title="道路交通事故认定书")
    doc["type"] = {"text": "扫描件"}
    [packet] = packets(json.dumps(doc).encode())
    assert packet["body"]["doc_type"] == "accident_determination"
    assert packet["attachments"][0]["doc_type"] == "accident_determination"


@pytest.mark.parametrize(("attachment", "code", "field"), [
    ({"contentType": "application/pdf", "data": "not base64!"}, "bad_base64", "data"),
    ({"contentType": "application/pdf", "data": base64.b64encode(PDF).decode(), "size": 3},
     "size_mismatch", "size"),
    ({"contentType": "application/pdf", "data": base64.b64encode(PDF).decode(),
      "hash": base64.b64encode(b"\0" * 20).decode()}, "hash_mismatch", "hash"),
    ({"contentType": "image/png", "data": base64.b64encode(PDF).decode()},
     "media_type_mismatch", "contentType"),
    ({"contentType": "pdf please", "data": base64.b64encode(PDF).decode()}, "bad_media_type",
     "contentType"),
    ({"contentType": "application/pdf"}, "missing_field", None),
])
def test_forged_or_broken_attachment_is_refused_located(attachment: dict[str, Any], code: str,
                                                         field: str | None) -> None:
    failure = error(json.dumps(_document(**attachment)).encode())
    where = "/content/0/attachment" + (f"/{field}" if field else "")
    assert (failure.code, failure.loc) == (code, (where,))


def test_url_only_is_noted_without_query_and_never_fetched() -> None:
    doc = _document(contentType="application/pdf", size=10,
                    url="https://his.example.cn/docs/123.pdf?patient=110105198001010016#p1")
    [packet] = packets(json.dumps(doc).encode())
    assert packet["attachments"] == []
    assert packet["body"]["content"] == [{
        "media_type": "application/pdf", "url": "https://his.example.cn/docs/123.pdf",
        "url_query_dropped": True, "size": 10, "fetched": False}]
    assert "110105198001010016" not in json.dumps(packet)


def test_url_to_a_binary_in_the_bundle_is_read_from_it() -> None:
    binary = {"resourceType": "Binary", "id": "b1", "contentType": "application/pdf",
              "data": base64.b64encode(PDF).decode()}
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:4b6f", "resource": _document(url="urn:uuid:4b6f")},
        {"resource": binary}]}
    bundle["entry"][0]["resource"]["content"][0]["attachment"]["url"] = "Binary/b1"
    [packet] = packets(json.dumps(bundle).encode())
    assert packet["attachments"][0]["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert packet["body"]["content"][0]["from_binary"] is True


def test_publisher_subject_links_a_document_and_a_wrong_resident_id_is_refused() -> None:
    """CDex: the MemberId's pseudonym (ctx.subject) links the document; a DocumentReference
    whose own patient is another resident must not attach to this member's claim."""
    member = pseudonymise("cn_resident_id", "11010519491231002X", key=KEY)
    given = AdapterContext(issuer=CTX.issuer, pseudonym_key=KEY, subject=member)
    doc = _document(contentType="application/pdf", data=base64.b64encode(PDF).decode())
    [packet] = packets(json.dumps(doc).encode(), given)
    assert (packet["subject"], packet["body"]["subject_from"]) == (member, "publisher")
    del doc["subject"]
    [alone] = packets(json.dumps(doc).encode())
    assert (alone["subject"], alone["body"]["subject_from"]) == ("0" * 64, "none")
    patient = {"resourceType": "Patient", "id": "p1", "identifier": [
        {"system": "urn:oid:2.16.156.10011.1.3", "value": "110105198001010016"}]}
    doc["subject"] = {"reference": "Patient/p1"}
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": doc}, {"resource": patient}]}
    failure = error(json.dumps(bundle).encode(), given)
    assert (failure.code, failure.loc) == ("subject_mismatch", ("/entry/0/resource/subject",))
