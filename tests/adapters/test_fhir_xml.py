"""FHIR R4 adapter, XML input: JSON twins, element-path errors, unsafe XML, fuzzing."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import fhir
from adapters.registry import adapters
from gateway.core.errors import AdapterError
from tests.adapters.fhir_helpers import (
    ASSETS,
    CTX,
    FUZZ_EXAMPLES,
    RESIDENT,
    adapt,
    asset,
    edit,
    error,
)

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


def xmledit(name: str, path: str, attr: str | None, value: str | None) -> bytes:
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
    exc = error(xmledit("cn_claim_searchset.xml", path, attr, value))
    assert (exc.code, exc.loc) == (code, (where,))
    assert "110105198001010017" not in json.dumps(exc.to_dict())


def test_xml_numbers_are_exact_and_json_strings_still_refused() -> None:
    """XML has no number type, so value="16.50" is a decimal; JSON "16.50" stays bad_type."""
    [packet] = adapt(xmledit("cn_claim_searchset.xml", f"{CLAIM}/f:item[1]/f:net/f:value",
                              "value", "50.000"))
    assert packet["body"]["items"][0]["amount"] == "50.000"
    exc = error(edit("cn_claim_searchset.json", "entry/0/resource/item/0/net/value", "50"))
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
