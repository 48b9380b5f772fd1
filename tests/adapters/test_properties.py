"""Property tests: random and mutated input reaches every parser; only AdapterError escapes.

Bounded (``max_examples``) so the suite stays quick on two shared cores. OCR is switched off
here: the properties are about parsing, and Tesseract on noise would only cost time.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import _ocr, adapt_bytes, detect_format
from adapters.registry import AdapterContext, adapters
from gateway.core.errors import AdapterError
from gateway.core.packet import Packet

from .conftest import ISSUER, asset

SAMPLES = {
    "csv_bill": [asset("csv", n) for n in ("bill_utf8_bom.csv", "bill_gbk.csv",
                                            "bill_english.csv")],
    "police": [asset("police", n) for n in ("accident_zh.json", "accident_en.xml",
                                             "incident_zh.json", "accident_zh.xml")],
    "death_certificate": [asset("death", n) for n in ("death_zh.json", "death_en.json")],
    "attachment": [asset("attachments", n) for n in ("invoice_text_layer.pdf",
                                                      "discharge_photo.png")],
    "hl7v2": [asset("hl7", "public", n) for n in (
        "cdc_phlip_oru_r01_v251_truncation_char.hl7", "mieweb_dft_p03_v25_no_amounts.hl7",
        "nhapi_oru_r01_v24_molis_8859.hl7", "lfh_adt_a01_v26_doubled_escape.hl7",
        "em_adt_a01_mllp_no_pv1_v251.hl7")],
    "fhir": [asset("fhir", n) for n in ("cn_claim_searchset.xml", "cn_lab_transaction.xml",
                                         "public/invoice-example.xml",
                                         "public/claim-example-oral-contained.xml")],
}
"""FHIR JSON is fuzzed structurally in test_fhir.py; here its XML form gets byte mutations."""
CTX = AdapterContext(issuer=ISSUER)
CSV_ALPHABET = ',;\t\n"合计金额项目名称身份证号1234567890.X¥元 '

LIMITS = settings(max_examples=60, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                         HealthCheck.function_scoped_fixture])


@pytest.fixture(autouse=True)
def no_ocr(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CLAIMX_OCR", "off")
    _ocr.reset_ocr_cache()
    yield
    _ocr.reset_ocr_cache()


def only_adapter_errors(name: str, raw: bytes) -> None:
    try:
        packets = adapters()[name].adapt(raw, CTX)
    except AdapterError as exc:
        assert exc.code and isinstance(exc.loc, tuple)
        return
    assert packets and all(isinstance(p, Packet) for p in packets)


@st.composite
def mutated(draw: st.DrawFn, samples: list[bytes]) -> bytes:
    """A sample with a few byte flips, deletions, insertions, duplications or a truncation."""
    data = bytearray(draw(st.sampled_from(samples)))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "delete", "insert", "dup", "truncate"]))
        if op == "flip":
            data[pos] = draw(st.integers(0, 255))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 16))]
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from(
                [b",", b"\t", b";", b'"', b"\n", b"<", b">", b"{", b"}", b"[", b"]", b":",
                 b"\xef\xbb\xbf", "合计".encode(), "金额".encode(), b"&x;", b"null", b"1e9",
                 b"-1", b"%", b"\x00", b"\xff"]))
        elif op == "dup":
            data[pos:pos] = data[pos:pos + draw(st.integers(1, 64))]
        else:
            del data[pos:]
    return bytes(data)


@pytest.mark.parametrize("name", sorted(SAMPLES))
@LIMITS
@given(data=st.data())
def test_mutated_samples(name: str, data: st.DataObject) -> None:
    only_adapter_errors(name, data.draw(mutated(SAMPLES[name])))


@pytest.mark.parametrize("name", sorted(SAMPLES))
@LIMITS
@given(raw=st.binary(max_size=2048))
def test_random_bytes(name: str, raw: bytes) -> None:
    only_adapter_errors(name, raw)


@settings(max_examples=80, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list(CSV_ALPHABET)), max_size=400))
def test_random_csv_like_text(text: str) -> None:
    only_adapter_errors("csv_bill", text.encode("utf-8"))


@settings(max_examples=80, deadline=None)
@given(doc=st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
        st.sampled_from(["document_type", "parties", "当事人", "责任", "liability",
                         "id_number", "cause_of_death", "a", "icd10", "case_number",
                         "liability_share", "deceased", "place", "facts"]), kids, max_size=6),
    max_leaves=20))
def test_random_json_documents(doc: object) -> None:
    import json

    for document_type in ("accident_determination", "incident_report", "death_certificate"):
        wrapped = {"document_type": document_type, "body": doc}
        if isinstance(doc, dict):
            wrapped = {**doc, "document_type": document_type}
        raw = json.dumps(wrapped, ensure_ascii=False).encode()
        only_adapter_errors("death_certificate" if document_type == "death_certificate"
                            else "police", raw)


@settings(max_examples=60, deadline=None)
@given(raw=st.binary(max_size=512))
def test_auto_detection_never_crashes(raw: bytes) -> None:
    try:
        name = detect_format(raw)
    except AdapterError as exc:
        assert exc.code == "unknown_format"
        return
    assert name in adapters()
    try:
        adapt_bytes(raw, name, CTX)
    except AdapterError:
        pass


@pytest.mark.parametrize(("fmt", "code"), [("police", "bad_json"),
                                           ("death_certificate", "bad_json"),
                                           ("fhir", "bad_number")])
def test_json_exponent_beyond_decimal_range_is_located(fmt: str, code: str) -> None:
    """1e<huge> raised decimal.InvalidOperation inside json.loads (found by fuzzing)."""
    raw = b'{"resourceType": "Claim", "case_number": 79991e9999999999999999999999999999990}'
    with pytest.raises(AdapterError) as info:
        adapt_bytes(raw, fmt, CTX)
    assert (info.value.code, info.value.loc) == (code, ("/",))


@pytest.mark.parametrize("fmt", ["police", "death_certificate", "fhir"])
def test_deep_json_is_refused_before_parsing(fmt: str) -> None:
    """Under the recursion limit web3's dependencies set, json.loads overflowed the C stack
    on this and killed `claimx adapt` (gateway.core.jsondepth)."""
    raw = b'{"resourceType": "Bundle", "entry": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    with pytest.raises(AdapterError) as info:
        adapt_bytes(raw, fmt, CTX)
    assert (info.value.code, info.value.loc) == ("too_deep", ("/",))
