"""FHIR R4 adapter: spec-modelled examples, Chinese-hospital Bundles, errors, fuzzing."""

from __future__ import annotations

import copy
import decimal
import importlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import fhir
from adapters.pseudonym import pseudonymise
from adapters.registry import AdapterContext, adapters
from gateway.core.errors import AdapterError

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "fhir"
KEY = bytes(range(32))
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
"""Hypothesis examples per fuzz test; raise it (e.g. 5000) for a longer local run."""
CTX = AdapterContext(issuer="0x" + "cd" * 32, file="bundle.json", pseudonym_key=KEY)
RESIDENT = pseudonymise("cn_resident_id", "110105198001010016", key=KEY)


def asset(name: str) -> bytes:
    return (ASSETS / name).read_bytes()


def load(name: str) -> dict[str, Any]:
    return json.loads(asset(name), parse_float=decimal.Decimal)  # type: ignore[no-any-return]


def dumps(obj: Any) -> bytes:
    """JSON with Decimals written as exact JSON numbers (json.dumps cannot)."""
    def mark(value: Any) -> Any:
        if isinstance(value, decimal.Decimal):
            return f"\u0000{value}\u0000"
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value
    text = json.dumps(mark(obj), ensure_ascii=False)
    return re.sub(r'"\\u0000([^"\\]*)\\u0000"', r"\1", text).encode()


def adapt(raw: bytes) -> list[dict[str, Any]]:
    return [p.to_obj() for p in fhir.adapt(raw, CTX)]


def error(raw: bytes) -> AdapterError:
    with pytest.raises(AdapterError) as info:
        fhir.adapt(raw, CTX)
    return info.value


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


def _edit(name: str, path: str, value: Any) -> bytes:
    obj = load(name)
    node = obj
    parts = path.split("/")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    if value is _DELETE:
        del node[int(last) if isinstance(node, list) else last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return dumps(obj)


_DELETE = object()


@pytest.mark.parametrize(("path", "value", "code", "pointer"), [
    ("entry/0/resource/item/1/unitPrice", _DELETE, "missing_field", "/entry/0/resource/item/1/net"),
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
    exc = error(_edit("cn_claim_searchset.json", path, value))
    assert (exc.code, exc.loc) == (code, (pointer,))
    assert "110105198001010017" not in json.dumps(exc.to_dict())


def test_wrong_reference_type() -> None:
    raw = _edit("cn_lab_transaction.json", "entry/2/resource/result/0/reference", "Patient/f1")
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


# --- FHIR XML -------------------------------------------------------------------------------
# The cn_*.xml samples are the cn_*.json ones in FHIR's XML form (written once by a throwaway
# script following the spec's XML/JSON correspondence; only the XML files are kept). The
# specification's own XML examples are in tests/assets/fhir/public (test_fhir_public.py).

FHIR_NS = "http://hl7.org/fhir"
NS = {"f": FHIR_NS}
XML_SAMPLES = sorted(p.name for p in ASSETS.glob("*.xml"))


def comparable(raw: bytes) -> list[dict[str, Any]]:
    """Packets without what differs by construction: source hash, random salt, packet id."""
    out = adapt(raw)
    for packet in out:
        for key in ("source", "salt", "id"):
            packet.pop(key, None)
    return out


@pytest.mark.parametrize("name", XML_SAMPLES)
def test_xml_sample_gives_the_packets_of_its_json_twin(name: str) -> None:
    """Same kind, issued_at, subject pseudonym, amounts, codes, names: the whole packet."""
    xml, json_twin = comparable(asset(name)), comparable(asset(name[:-4] + ".json"))
    assert xml == json_twin and xml
    assert fhir.detect(asset(name)) and adapters()["fhir"].detect(asset(name))


def test_xml_samples_exist() -> None:
    assert len(XML_SAMPLES) == 4


def test_xml_reads_patient_names_and_lone_repeating_elements() -> None:
    """A single <given> is a one-element array; the attending doctor's name comes from it."""
    [packet] = adapt(asset("cn_discharge_document.xml"))
    assert packet["subject"] == RESIDENT and packet["body"]["subject_from"] == "patient_resource"
    assert packet["body"]["encounter"]["attending_doctor"] == {"id": "D0088", "name": "李建国"}


def xml_edit(name: str, path: str, attr: str | None, value: str | None) -> bytes:
    """Set (or with value None delete) the element at ``path`` (ElementTree path from the root,
    FHIR prefix ``f:``) or its attribute ``attr``. Test-only: the assets are trusted."""
    import xml.etree.ElementTree as ET  # noqa: N817

    ET.register_namespace("", FHIR_NS)
    root = ET.fromstring(asset(name))
    if value is None:
        parent_path, _, leaf = path.rpartition("/")
        parent = root.find(parent_path, NS)
        target = root.find(path, NS)
        assert parent is not None and target is not None
        parent.remove(target)
    else:
        found = root.find(path, NS)
        assert found is not None and attr is not None
        found.set(attr, value)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


CLAIM = "f:entry[1]/f:resource/f:Claim"
PATIENT = "f:entry[2]/f:resource/f:Patient"


@pytest.mark.parametrize(("path", "attr", "value", "code", "where"), [
    (f"{CLAIM}/f:item[2]/f:unitPrice", None, None, "missing_field",
     "/Bundle/entry[1]/resource/Claim/item[2]/net"),
    (f"{CLAIM}/f:item[1]/f:net/f:value", "value", "5O.00", "bad_number",
     "/Bundle/entry[1]/resource/Claim/item[1]/net/value"),
    (f"{CLAIM}/f:item[1]/f:net/f:value", "value", "1e999", "bad_number",
     "/Bundle/entry[1]/resource/Claim/item[1]/net/value"),
    (f"{CLAIM}/f:patient/f:reference", "value", "Patient/zz", "unresolved_reference",
     "/Bundle/entry[1]/resource/Claim/patient/reference"),
    (f"{CLAIM}/f:created", "value", "2024-02-30", "bad_timestamp",
     "/Bundle/entry[1]/resource/Claim/created"),
    (f"{CLAIM}/f:item[3]/f:net/f:currency", "value", "USD", "mixed_currency",
     "/Bundle/entry[1]/resource/Claim/item"),
    (f"{PATIENT}/f:identifier[1]/f:value", "value", "110105198001010017",
     "invalid_resident_id", "/Bundle/entry[2]/resource/Patient/identifier[1]/value"),
    (f"{CLAIM}/f:status", "value", "entered-in-error", "entered_in_error",
     "/Bundle/entry[1]/resource/Claim/status"),
    ("f:type", "value", "bogus", "bad_bundle", "/Bundle/type"),
])
def test_xml_errors_located_by_element_path(path: str, attr: str | None, value: str | None,
                                            code: str, where: str) -> None:
    exc = error(xml_edit("cn_claim_searchset.xml", path, attr, value))
    assert (exc.code, exc.loc) == (code, (where,))
    assert "110105198001010017" not in json.dumps(exc.to_dict())


def test_xml_numbers_are_exact_and_json_strings_still_refused() -> None:
    """XML has no number type, so value="16.50" is a decimal; JSON "16.50" stays bad_type."""
    [packet] = adapt(xml_edit("cn_claim_searchset.xml", f"{CLAIM}/f:item[1]/f:net/f:value",
                              "value", "50.000"))
    assert packet["body"]["items"][0]["amount"] == "50.000"
    exc = error(_edit("cn_claim_searchset.json", "entry/0/resource/item/0/net/value", "50"))
    assert (exc.code, exc.loc) == ("bad_type", ("/entry/0/resource/item/0/net/value",))


def test_xml_boolean_value() -> None:
    raw = (b'<Observation xmlns="http://hl7.org/fhir"><status value="final"/>'
           b'<code><text value="HBsAg"/></code><subject><reference value="Patient/1"/>'
           b'</subject><valueBoolean value="false"/></Observation>')
    [packet] = adapt(raw)
    assert packet["body"]["reports"][0]["observations"][0]["value"] == "false"


def test_xml_prefixed_namespace_and_extensions() -> None:
    """A namespace prefix, primitive extensions (``_name``) and an extension-only primitive
    (no value attribute) are all FHIR XML; the extension-only one reads as absent."""
    raw = (b'<?xml version="1.0"?><!-- c --><f:Claim xmlns:f="http://hl7.org/fhir">'
           b'<f:status value="active"><f:extension url="urn:x"><f:valueString value="x"/>'
           b'</f:extension></f:status><f:use><f:extension url="urn:absent">'
           b'<f:valueCode value="unknown"/></f:extension></f:use>'
           b'<f:patient><f:reference value="Patient/1"/></f:patient>'
           b'<f:created value="2024-01-02"/><f:item><f:sequence value="1"/>'
           b'<f:productOrService><f:text value="X"/></f:productOrService>'
           b'<f:net><f:value value="3.10"/><f:currency value="CNY"/></f:net></f:item>'
           b'</f:Claim>')
    assert fhir.detect(raw)
    [packet] = adapt(raw)
    assert packet["body"]["resource"]["status"] == "active" and packet["body"]["use"] == ""
    assert packet["body"]["total"] == "3.10"


ITEM = b"<item><sequence value='1'/><net><value value='1.5'/></net></item>"


@pytest.mark.parametrize(("raw", "code", "where"), [
    (b"<Claim xmlns='http://hl7.org/fhir'><status value='active'>", "bad_xml", "/"),
    (b"<Claim><status value='active'/></Claim>", "not_fhir", "/"),
    (b"<claim xmlns='http://hl7.org/fhir'/>", "not_fhir", "/"),
    (b"<Patient xmlns='http://hl7.org/fhir'><id value='p'/></Patient>",
     "unsupported_resource", "/Patient"),
    (b"<Bundle xmlns='http://hl7.org/fhir'><type value='collection'/></Bundle>",
     "unsupported_resource", "/Bundle/entry"),
    (b"<Claim xmlns='http://hl7.org/fhir'>" + ITEM + b"<patient value='Patient/1'/></Claim>",
     "bad_type", "/Claim/patient"),
    (b"<Claim xmlns='http://hl7.org/fhir'>" + ITEM + b"<patient><reference value='Patient/1'/>"
     b"</patient><patient><reference value='Patient/1'/></patient></Claim>", "bad_type",
     "/Claim/patient"),
    (b"<Claim xmlns='http://hl7.org/fhir'>" + ITEM + ITEM.replace(b"1.5", b"NaN")
     + b"</Claim>", "bad_number", "/Claim/item[2]/net/value"),
    (b"<Bundle xmlns='http://hl7.org/fhir'><entry><resource><link/></resource></entry></Bundle>",
     "not_fhir", "/Bundle/entry/resource"),
    (b"<Claim xmlns='http://hl7.org/fhir'>" + b"<item>" * 80 + b"</item>" * 80 + b"</Claim>",
     "too_deep", "/"),
    (b"<Claim xmlns='http://hl7.org/fhir'>" + b"<a>" * 50000 + b"</a>" * 50000
     + b"</Claim>", "too_deep", "/"),
], ids=["malformed", "no_namespace", "lowercase_root", "patient_only", "empty_bundle",
        "reference_as_primitive", "repeated_single", "bad_decimal", "resource_not_named",
        "deep", "very_deep"])
def test_xml_error_codes(raw: bytes, code: str, where: str) -> None:
    exc = error(raw)
    assert (exc.code, exc.loc) == (code, (where,))


BILLION_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE Bundle [<!ENTITY lol "lol">'
                  + b"".join(b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10
                                                        if i > 1 else b"&lol;" * 10)
                             for i in range(1, 10))
                  + b']><Bundle xmlns="http://hl7.org/fhir"><id value="&lol9;"/></Bundle>')
XXE = (b'<?xml version="1.0"?><!DOCTYPE Claim [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
       b'<Claim xmlns="http://hl7.org/fhir"><id value="&xxe;"/></Claim>')
EXTERNAL_DTD = (b'<?xml version="1.0"?><!DOCTYPE Claim SYSTEM "http://example.com/x.dtd">'
                b'<Claim xmlns="http://hl7.org/fhir"/>')


@pytest.mark.parametrize("raw", [BILLION_LAUGHS, XXE, EXTERNAL_DTD],
                         ids=["billion_laughs", "xxe", "external_dtd"])
def test_unsafe_xml_refused_quickly(raw: bytes) -> None:
    from adapters import detect_format

    assert detect_format(raw) == "fhir"  # recognised, then refused, never expanded
    started = time.perf_counter()
    exc = error(raw)
    assert (exc.code, exc.loc) == ("unsafe_xml", ("/",))
    assert time.perf_counter() - started < 0.5
    assert "passwd" not in json.dumps(exc.to_dict())


def test_xml_detection_does_not_take_other_xml() -> None:
    from adapters import detect_format

    assert not fhir.detect(b"<Claim><status value='active'/></Claim>")
    assert not fhir.detect(b"<Claim xmlns='http://hl7.org/fhir/other'/>")
    assert not fhir.detect(b"<x:Claim xmlns='http://hl7.org/fhir' xmlns:x='urn:x'/>")
    assert fhir.detect(b"\xef\xbb\xbf\n<?xml version='1.0'?>\n<!-- x -->"
                       b"<Invoice xmlns = 'http://hl7.org/fhir'/>")
    police = (ASSETS.parent / "police" / "accident_en.xml").read_bytes()
    assert not fhir.detect(police) and detect_format(police) == "police"


def test_oversized_xml_refused_quickly() -> None:
    raw = b'<Bundle xmlns="http://hl7.org/fhir">' + b" " * (10 * 1024 * 1024) + b"</Bundle>"
    started = time.perf_counter()
    assert error(raw).code == "too_large"
    assert time.perf_counter() - started < 1.0


XML_FUZZ = [asset(n) for n in XML_SAMPLES] + [
    (ASSETS / "public" / n).read_bytes() for n in ("claim-example-oral-contained.xml",
                                                   "diagnosticreport-example-f001-bloodexam.xml",
                                                   "invoice-example.xml",
                                                   "chargeitem-example.xml")]
_XML_VALUES = st.one_of(st.text(max_size=12), st.sampled_from(
    ["Patient/p1", "#plt", "2024-13-01", "1.5", "-0", "1e31", "true", "NaN", " 7 ", "",
     "entered-in-error", "laboratory", "urn:uuid:x", "Observation/f001"]))


@settings(max_examples=FUZZ_EXAMPLES // 2, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_xml_raises_only_adapter_errors(data: st.DataObject) -> None:
    """Well-formed FHIR XML with elements deleted, duplicated (a single element becomes a
    repeated one), emptied, or value attributes changed: each maps or fails located."""
    import xml.etree.ElementTree as ET  # noqa: N817

    root = ET.fromstring(data.draw(st.sampled_from(XML_FUZZ)))
    for _ in range(data.draw(st.integers(1, 5))):
        pairs = [(parent, kid) for parent in root.iter() for kid in parent]
        if not pairs:
            break
        parent, kid = data.draw(st.sampled_from(pairs))
        op = data.draw(st.sampled_from(["delete", "duplicate", "value", "empty", "unwrap"]))
        if op == "delete":
            parent.remove(kid)
        elif op == "duplicate":
            parent.insert(list(parent).index(kid), kid)
        elif op == "value":
            kid.set("value", data.draw(_XML_VALUES))
        elif op == "empty":
            kid.clear()
        else:
            parent.remove(kid)
            parent.extend(list(kid))
    try:
        fhir.adapt(ET.tostring(root, encoding="utf-8"), CTX)
    except AdapterError as exc:
        assert exc.code and len(exc.loc) <= 1
