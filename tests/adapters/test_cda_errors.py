"""WS/T 500 CDA: detection, registration, unsafe XML and malformed documents (located errors)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

import adapters
from adapters import cda
from adapters.registry import AdapterContext
from gateway.core.errors import AdapterError

from .conftest import asset

RECORD = asset("cda", "discharge_record_c0049.xml")
FRONT = asset("cda", "front_page_c0032.xml")
BODY = "/ClinicalDocument/component/structuredBody"
COSTS = f"{BODY}/component[8]/section"
"""The front page's cost section (the eighth component of the body)."""


def error_of(raw: bytes, ctx: AdapterContext) -> AdapterError:
    with pytest.raises(AdapterError) as info:
        cda.adapt(raw, ctx)
    return info.value


def where(raw: bytes, ctx: AdapterContext) -> tuple[str, str]:
    error = error_of(raw, ctx)
    return error.code, str(error.loc[0])


def test_registered_listed_and_detected_apart_from_fhir_and_police_xml() -> None:
    assert "cda" in adapters.adapters()
    for name in ("discharge_record_c0049.xml", "front_page_c0032.xml", "bomb.xml", "xxe.xml"):
        assert adapters.detect_format(asset("cda", name)) == "cda", name
    assert adapters.detect_format(asset("fhir", "cn_discharge_document.xml")) == "fhir"
    assert adapters.detect_format(asset("police", "accident_zh.xml")) == "police"
    assert not cda.detect(asset("fhir", "cn_discharge_document.xml"))
    assert not cda.detect(b'<ClinicalDocument xmlns="urn:example:other"/>')
    assert cda.detect(b'<?xml version="1.0"?><!-- c --><v3:ClinicalDocument '
                      b'xmlns:v3="urn:hl7-org:v3"/>')


def test_claimx_adapt_list_shows_the_format() -> None:
    run = subprocess.run([sys.executable, "-m", "gateway.cli", "adapt", "--list"],
                         capture_output=True, text=True, timeout=60, check=True)
    assert "cda" in run.stdout and "住院病案首页" in run.stdout


def test_claimx_adapt_auto_maps_a_front_page(tmp_path: object) -> None:
    run = subprocess.run([sys.executable, "-m", "gateway.cli", "adapt", "--issuer",
                          "hospital.dev", "tests/assets/cda/front_page_c0032.xml"],
                         capture_output=True, text=True, timeout=60, check=True)
    [result] = json.loads(run.stdout)
    assert result["format"] == "cda"
    assert [p["kind"] for p in result["packets"]] == ["hospital.discharge_summary",
                                                      "hospital.invoice"]


@pytest.mark.timeout(5)
@pytest.mark.parametrize("name", ["bomb.xml", "xxe.xml", "external_dtd.xml"])
def test_unsafe_xml_is_refused_fast_and_located(ctx: AdapterContext, name: str) -> None:
    started = time.monotonic()
    error = error_of(asset("cda", name), ctx)
    assert (error.code, error.loc) == ("unsafe_xml", ("/",))
    assert time.monotonic() - started < 1
    with pytest.raises(AdapterError) as auto:
        adapters.adapt_bytes(asset("cda", name))
    assert auto.value.code == "unsafe_xml"


def test_malformed_xml_names_its_line(ctx: AdapterContext) -> None:
    error = error_of(RECORD.replace(b"</title>", b"</titel>", 1), ctx)
    assert error.code == "bad_xml" and error.line == 14  # the <title> line


@pytest.mark.parametrize(("old", "new", "code", "loc"), [
    (b'2.16.156.10011.2.1.1.69"/>', b'2.16.156.10011.2.1.1.54"/>', "unsupported_document",
     "/ClinicalDocument/templateId/@root"),
    (b'code="C0049"', b'code="C0032"', "inconsistent_document_type",
     "/ClinicalDocument/code/@code"),
    (b'extension="320502197602281353"', b'extension="320502197602281354"',
     "invalid_resident_id", "/ClinicalDocument/recordTarget/patientRole/patient/id/@extension"),
    (b'<effectiveTime value="20260321103015"/>', b'<effectiveTime value="2026-13-21"/>',
     "bad_datetime", "/ClinicalDocument/effectiveTime/@value"),
    (b'<effectiveTime value="20260321103015"/>', b"", "missing_field", "/ClinicalDocument"),
    (b'code="S82.201" codeSystem="2.16.156.10011.2.3.3.11"', b'code="82-201" '
     b'codeSystem="2.16.156.10011.2.3.3.11"', "bad_icd10",
     f"{BODY}/component[2]/section/entry[1]/observation/value/@code"),
])
def test_a_malformed_discharge_record_gives_a_located_error(
        ctx: AdapterContext, old: bytes, new: bytes, code: str, loc: str) -> None:
    assert old in RECORD
    assert where(RECORD.replace(old, new, 1), ctx) == (code, loc)


def test_no_patient_identifier_at_all_is_missing_subject(ctx: AdapterContext) -> None:
    raw = RECORD.replace(b'extension="320502197602281353"', b'nullFlavor="NI"').replace(
        b'extension="ZY2026031400123"', b'nullFlavor="NI"')
    assert where(raw, ctx) == ("missing_subject", "/ClinicalDocument/recordTarget/patientRole")


def test_not_a_clinical_document_and_no_body(ctx: AdapterContext) -> None:
    assert where(b'<Bundle xmlns="http://hl7.org/fhir"/>', ctx) == ("not_cda", "/")
    head = RECORD[:RECORD.index(b"  <component>\n    <structuredBody>")] + b"</ClinicalDocument>"
    assert where(head, ctx) == ("missing_field", "/ClinicalDocument")


def test_a_bad_procedure_code_is_located(ctx: AdapterContext) -> None:
    raw = FRONT.replace(b'code="79.3601"', b'code="ABC"')
    code, loc = where(raw, ctx)
    assert code == "bad_procedure_code"
    assert loc.endswith("section/entry[1]/procedure/code/@code") and "component[5]" in loc


def test_one_unit_of_the_last_place_is_rounding_not_a_mismatch(ctx: AdapterContext) -> None:
    bill = cda.adapt(FRONT.replace(b'value="27038.18"', b'value="27038.19"'), ctx)[1].to_obj()
    assert (bill["body"]["total"], bill["body"]["declared_total"]) == ("27038.18", "27038.19")


@pytest.mark.parametrize(("old", "new", "code", "tail"), [
    (b'value="27038.18"', b'value="27038.20"', "total_mismatch",
     "entry[2]/observation/value/@value"),
    (b'value="5234.18"', b'value="27038.20"', "self_pay_exceeds_total", "entryRelationship/"
     "observation/value/@value"),
    (b'value="180.00"', b'value="641.00"', "part_exceeds_category", "entryRelationship/"
     "observation/value/@value"),
    (b'value="1156.00"', b'value="1,156.0O"', "bad_decimal", "observation/value/@value"),
    (b'value="96.00" currency="\xe5\x85\x83"', b'value="96.00" currency="USD"',
     "unsupported_currency", "observation/value/@currency"),
    (b'value="48.00"', b'value="-48.00"', "negative_amount", "entry[12]/observation/value/@value"),
    (b'value="3456.7800"', b'value="3456.78001"', "bad_decimal",
     "entry[8]/observation/value/@value"),
])
def test_inconsistent_costs_are_refused_at_their_amount(
        ctx: AdapterContext, old: bytes, new: bytes, code: str, tail: str) -> None:
    assert FRONT.count(old) == 1
    got_code, loc = where(FRONT.replace(old, new), ctx)
    assert (got_code, loc.startswith(COSTS), loc.endswith(tail)) == (code, True, True), loc


def test_a_too_deep_document_is_refused(ctx: AdapterContext) -> None:
    deep = b'<ClinicalDocument xmlns="urn:hl7-org:v3">' + b"<x>" * 100 + b"</x>" * 100 + \
        b"</ClinicalDocument>"
    assert where(deep, ctx) == ("too_deep", "/ClinicalDocument")


def test_empty_and_oversized_input(ctx: AdapterContext) -> None:
    assert error_of(b"  ", ctx).code == "empty_input"
    assert error_of(b"<" + b" " * (9 << 20), ctx).code == "too_large"


def test_errors_carry_the_file_name_and_no_values(ctx: AdapterContext) -> None:
    named = AdapterContext(issuer=ctx.issuer, file="discharge.xml")
    with pytest.raises(AdapterError) as info:
        cda.adapt(RECORD.replace(b"320502197602281353", b"320502197602281354"), named)
    assert info.value.file == "discharge.xml"
    assert "320502197602281354" not in str(info.value)
