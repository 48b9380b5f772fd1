"""FHIR R4 adapter (JSON): spec-modelled examples, Chinese-hospital Bundles, errors, fuzzing."""

from __future__ import annotations

import copy
import decimal
import importlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import fhir
from adapters.pseudonym import pseudonymise
from adapters.registry import adapters
from gateway.core.errors import AdapterError
from tests.adapters.fhir_helpers import (
    ASSETS,
    CTX,
    DELETE,
    FUZZ_EXAMPLES,
    KEY,
    RESIDENT,
    adapt,
    asset,
    dumps,
    edit,
    error,
    load,
)


@pytest.mark.parametrize("path", sorted(ASSETS.glob("*.json")), ids=lambda p: p.name)
def test_assets_are_valid_fhir(path: Path) -> None:
    """The samples are real FHIR: the R4B models of fhir.resources accept each of them."""
    obj = json.loads(path.read_bytes(), parse_float=decimal.Decimal)
    rtype = obj["resourceType"]
    model = getattr(importlib.import_module(f"fhir.resources.R4B.{rtype.lower()}"), rtype)
    model.model_validate(obj)


def test_registered_and_detected() -> None:
    assert adapters()["fhir"].adapt is fhir.adapt
    assert all(fhir.detect(p.read_bytes()) for p in ASSETS.glob("*.json"))
    assert not fhir.detect(b"MSH|^~\\&|")
    assert not fhir.detect(b'["resourceType"]')


def test_discharge_document() -> None:
    [packet] = adapt(asset("cn_discharge_document.json"))
    assert packet["kind"] == "hospital.discharge_summary"
    assert packet["subject"] == RESIDENT
    assert packet["issued_at"] == "2024-03-01T02:00:00Z"
    body = packet["body"]
    enc = body["encounter"]
    assert (enc["admitted_at"], enc["discharged_at"]) == ("2024-02-20T00:10:00Z",
                                                          "2024-03-01T02:00:00Z")
    assert enc["attending_doctor"] == {"id": "D0088", "name": "李建国"}
    assert enc["department"] == {"service": "心血管内科", "location": "心内科病区",
                                 "facility": "北京协和医院"}
    assert [(d["code"], d["type"]) for d in body["diagnoses"]] == [
        ("I21.9", "Admission diagnosis"), ("I25.103", "Discharge diagnosis")]
    assert body["procedures"][0]["code"] == "00.6601"
    assert packet["source"]["format"] == "fhir"


def test_patient_data_never_reaches_packets() -> None:
    for path in ASSETS.glob("cn_*.json"):
        text = json.dumps(adapt(path.read_bytes()), ensure_ascii=False)
        for personal in ("张三", "13800138000", "帅府园", "1980-01-01", "110105198001010016",
                         "MR0012345", "Smith", "X12345678", "1970-07-07"):
            assert personal not in text, (path.name, personal)


def test_lab_transaction_resolves_contained_and_members() -> None:
    [packet] = adapt(asset("cn_lab_transaction.json"))
    assert packet["kind"] == "hospital.lab_report"  # the context Encounter gives no packet
    assert packet["subject"] == pseudonymise("passport:USA", "X12345678", key=KEY)
    [report] = packet["body"]["reports"]
    wbc, hb, plt, panel = report["observations"]
    assert (wbc["value"], wbc["units"], wbc["reference_range"], wbc["abnormal_flags"]) == (
        "12.60", "10*9/L", "3.5-9.5", ["H"])  # trailing zero kept: decimals are exact
    assert hb["abnormal_flags"] == ["L"] and plt["value"] == "210"
    assert panel["members"][0]["value"] == "88.4"
    assert report["reported_at"] == "2024-03-11T02:15:00Z"


def test_claim_amounts_exact() -> None:
    [packet] = adapt(asset("cn_claim_searchset.json"))
    body = packet["body"]
    assert packet["kind"] == "hospital.invoice" and packet["subject"] == RESIDENT
    assert [i["amount"] for i in body["items"]] == ["50.00", "16.50", "4320.00"]
    assert body["items"][1]["unit_price"] == "0.55"  # net computed from 30 x 0.55
    assert body["total"] == body["declared_total"] == "4386.50"
    assert body["currency"] == "CNY" and body["diagnoses"][0]["code"] == "I21.9"
    assert "float" not in repr(packet)


def test_a_claim_item_without_net_or_unit_price_is_kept_and_noted() -> None:
    """Synthea writes the encounter line of a Claim so: kept without an amount, noted, not
    summed; the Claim's total is carried as the declared total (issue 13, item 7)."""
    [packet] = adapt(edit("cn_claim_searchset.json", "entry/0/resource/item/1/unitPrice",
                          DELETE))
    body = packet["body"]
    assert "amount" not in body["items"][1]
    assert body["items"][1]["note"] == "the source gives neither net nor unitPrice"
    assert body["items"][1]["quantity"] == "30"
    assert (body["total"], body["declared_total"], body["unpriced_items"]) == (
        "4370.00", "4386.50", 1)


def test_a_claim_with_only_unpriced_items_carries_its_total() -> None:
    obj = load("cn_claim_searchset.json")
    for item in obj["entry"][0]["resource"]["item"]:
        item.pop("net", None)
        item.pop("unitPrice", None)
    [packet] = adapt(dumps(obj))
    assert "total" not in packet["body"] and packet["body"]["declared_total"] == "4386.50"
    assert packet["body"]["unpriced_items"] == 3
    del obj["entry"][0]["resource"]["total"]
    assert error(dumps(obj)).code == "missing_field"


def test_loose_charge_items_form_one_bill() -> None:
    [packet] = adapt(asset("cn_chargeitems_collection.json"))
    assert packet["body"]["total"] == "43.10"
    assert [i["quantity"] for i in packet["body"]["items"]] == ["1", "1", "3"]


def test_spec_examples_bundle() -> None:
    invoice, claim = adapt(asset("r4_examples_bundle.json"))
    assert invoice["body"]["total"] == invoice["body"]["declared_total"] == "48"
    assert invoice["body"]["items"][0]["code"] == "01510"
    assert claim["body"]["items"][0]["amount"] == "135.57" and claim["issued_at"].startswith(
        "2014-08-16")
    mrn = pseudonymise("mrn:urn:oid:1.2.36.146.595.217.0.1", "12345", key=KEY)
    assert invoice["subject"] == claim["subject"] == mrn


def test_spec_lab_searchset() -> None:
    [packet] = adapt(asset("r4_lab_searchset.json"))
    [obs] = packet["body"]["reports"][0]["observations"]
    assert (obs["value"], obs["reference_range"], obs["observed_at"]) == (
        "6.3", "3.1-6.2", "2013-04-02T08:30:10Z")


def test_claim_whose_patient_is_not_in_the_file() -> None:
    """Claim/100150 points at Patient/1, absent: the literal reference is the subject, scoped by
    the issuer, and the packet says so."""
    [packet] = adapt(asset("r4_claim_example_unresolved.json"))
    assert packet["subject"] == pseudonymise(f"mrn:{CTX.issuer}/Patient", "1", key=KEY)
    assert packet["body"]["subject_from"] == "literal_reference"
    assert packet["body"]["items"][0]["amount"] == "135.57"


@pytest.mark.parametrize(("name", "code", "pointer"), [
    ("r4_patient_example.json", "unsupported_resource", "/resourceType"),
    ("r4_medication_searchset.json", "unsupported_resource", "/entry"),
])
def test_spec_examples_that_are_not_evidence(name: str, code: str, pointer: str) -> None:
    exc = error(asset(name))
    assert (exc.code, exc.loc, exc.file) == (code, (pointer,), "bundle.json")




@pytest.mark.parametrize(("path", "value", "code", "pointer"), [
    ("entry/0/resource/item/0/net/value", "50", "bad_type", "/entry/0/resource/item/0/net/value"),
    ("entry/0/resource/patient/reference", "Patient/zz", "unresolved_reference",
     "/entry/0/resource/patient/reference"),
    ("entry/0/resource/created", "2024-02-30", "bad_timestamp", "/entry/0/resource/created"),
    ("entry/0/resource/item/2/net/currency", "USD", "mixed_currency", "/entry/0/resource/item"),
    ("entry/1/resource/identifier/0/value", "110105198001010017", "invalid_resident_id",
     "/entry/1/resource/identifier/0/value"),
    ("entry/0/resource/status", "entered-in-error", "entered_in_error",
     "/entry/0/resource/status"),
])
def test_claim_errors_located_by_pointer(path: str, value: Any, code: str, pointer: str) -> None:
    exc = error(edit("cn_claim_searchset.json", path, value))
    assert (exc.code, exc.loc) == (code, (pointer,))
    assert "110105198001010017" not in json.dumps(exc.to_dict())


def test_wrong_reference_type() -> None:
    raw = edit("cn_lab_transaction.json", "entry/2/resource/result/0/reference", "Patient/f1")
    assert error(raw).code == "wrong_reference_type"


@pytest.mark.parametrize(("raw", "code"), [
    (b"", "empty_input"), (b"{", "bad_json"), (b"[]", "not_fhir"), (b'{"a": 1}', "not_fhir"),
    (b'\xff{"resourceType": "Claim"}', "bad_encoding"),
    (b'{"resourceType": "Claim", "x": NaN}', "bad_number"),
    (b'{"resourceType": "Bundle", "type": "bogus"}', "bad_bundle"),
    (b'{"resourceType": "Bundle", "entry": [{"resource": 3}]}', "not_fhir"),
    (b'{"resourceType": "Bundle", "entry": 5}', "bad_type"),
    (b'{"resourceType": "Claim", "item": ' + b"[" * 104 + b"]" * 104 + b"}", "too_deep"),
    (b'{"resourceType": "Claim", "item": ' + b"[" * 5000 + b"]" * 5000 + b"}", "too_deep"),
])
def test_error_codes(raw: bytes, code: str) -> None:
    assert error(raw).code == code


def test_bom_accepted() -> None:
    assert adapt(b"\xef\xbb\xbf" + asset("cn_chargeitems_collection.json"))


def test_oversized_input_refused_quickly() -> None:
    raw = b'{"resourceType": "Bundle", "entry": [' + b" " * (10 * 1024 * 1024) + b"]}"
    started = time.perf_counter()
    assert error(raw).code == "too_large"
    assert time.perf_counter() - started < 1.0


SAMPLES = [load(p.name) for p in sorted(ASSETS.glob("*.json"))] + [
    load(f"public/{p.name}") for p in sorted((ASSETS / "public").glob("*.json"))]
"""Our samples and the specification's examples: mutated, each must map or fail located."""
_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=12),
                    st.sampled_from(["Patient/p1", "#plt", "2024-13-01", "1.5", "urn:uuid:x",
                                     "entered-in-error", "laboratory"]),
                    st.just([]), st.just({}), st.decimals(allow_nan=False, places=2))


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_resources_raise_only_adapter_errors(data: st.DataObject) -> None:
    obj = copy.deepcopy(data.draw(st.sampled_from(SAMPLES)))
    for _ in range(data.draw(st.integers(1, 4))):
        if len(_paths(obj)) < 2:
            break  # every member deleted: a bare {} is mutated enough
        path = data.draw(st.sampled_from(_paths(obj)[1:]))
        parent = obj
        for part in path[:-1]:
            parent = parent[part]
        if data.draw(st.booleans()):
            parent[path[-1]] = data.draw(_VALUES)
        elif isinstance(parent, dict):
            del parent[path[-1]]
    raw = dumps(obj)
    try:
        fhir.adapt(raw, CTX)
    except AdapterError as exc:
        assert exc.code and len(exc.loc) <= 1


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(
    lambda t: ('{"resourceType": "Bundle", "entry": [' + t).encode()))
def test_random_input_raises_only_adapter_errors(raw: bytes) -> None:
    try:
        fhir.adapt(raw, CTX)
    except AdapterError as exc:
        assert exc.code
