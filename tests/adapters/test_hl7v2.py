"""HL7 v2 adapter: public sample messages, Chinese-hospital samples, errors, encodings, fuzzing."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import hl7v2
from adapters.pseudonym import pseudonymise
from adapters.registry import AdapterContext, adapters
from gateway.core.errors import AdapterError

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "hl7"
KEY = bytes(range(32))
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
"""Hypothesis examples per fuzz test; raise it (e.g. 5000) for a longer local run."""
CTX = AdapterContext(issuer="0x" + "ab" * 32, file="sample.hl7", pseudonym_key=KEY)


def asset(name: str) -> bytes:
    return (ASSETS / name).read_bytes()


def adapt(raw: bytes) -> list[dict[str, Any]]:
    return [p.to_obj() for p in hl7v2.adapt(raw, CTX)]


def error(raw: bytes) -> AdapterError:
    with pytest.raises(AdapterError) as info:
        hl7v2.adapt(raw, CTX)
    return info.value


def test_registered_and_detected() -> None:
    registry = adapters()
    assert registry["hl7v2"].adapt is hl7v2.adapt
    assert all(hl7v2.detect(p.read_bytes()) for p in ASSETS.glob("*.hl7"))
    assert not hl7v2.detect(b'{"resourceType": "Patient"}')
    assert not hl7v2.detect(b"MSHA|")


def test_public_adt_a01_maps_admission() -> None:
    [packet] = adapt(asset("public_adt_a01_v25.hl7"))
    assert packet["kind"] == "hospital.admission_summary"
    assert packet["issued_at"] == "2006-05-29T14:01:31Z"  # -0500 offset applied
    body = packet["body"]
    assert body["message"]["control_id"] == "01052901"
    assert body["encounter"]["attending_doctor"] == {"id": "12345", "name": "REX MORGAN"}
    assert body["encounter"]["admitted_at"] == "2006-05-29T14:00:00Z"  # offset of MSH-7
    assert body["diagnoses"] == [{"code": "786.50", "text": "CHEST PAIN, UNSPECIFIED",
                                  "system": "I9", "type": "A"}]
    assert packet["source"]["format"] == "hl7v2"
    assert packet["subject"] == pseudonymise("mrn:UAReg", "56782445", key=KEY)


def test_public_oru_r01_maps_lab_report() -> None:
    [packet] = adapt(asset("public_oru_r01_v24.hl7"))
    assert packet["kind"] == "hospital.lab_report"
    [report] = packet["body"]["reports"]
    assert report["test"] == {"code": "1554-5", "text": "GLUCOSE"}
    [obs] = report["observations"]
    assert (obs["value"], obs["units"], obs["reference_range"], obs["abnormal_flags"]) == (
        "182", "mg/dl", "70_105", ["H"])
    # no assigning authority in PID-3: the sending facility names the MRN's namespace
    assert packet["subject"] == pseudonymise("mrn:ELAB-3", "555-44-4444", key=KEY)


def test_no_patient_data_in_packets() -> None:
    for name in ("public_adt_a01_v25.hl7", "public_oru_r01_v24.hl7", "cn_adt_a01_v251.hl7",
                 "cn_dft_p03_v25.hl7", "cn_oru_r01_v251.hl7"):
        text = json.dumps(adapt(asset(name)), ensure_ascii=False)
        for personal in ("KLEINSAMPLE", "EVERYWOMAN", "FERNWOOD", "19620910", "张", "赵",
                         "13800138000", "13900000000", "110105198001010016", "帅府园",
                         "555-44-4444", "56782445", "19800101"):
            assert personal not in text, (name, personal)


def test_cn_discharge_summary() -> None:
    [packet] = adapt(asset("cn_adt_a03_v24.hl7"))
    assert packet["kind"] == "hospital.discharge_summary"
    enc = packet["body"]["encounter"]
    assert enc["admitted_at"] == "2024-02-26T01:15:00Z"
    assert enc["discharged_at"] == "2024-03-05T07:00:00Z"
    assert enc["department"] == {"location": "0302", "facility": "RJH", "service": "GS"}
    assert enc["attending_doctor"] == {"id": "D0421", "name": "陈静"}
    assert [d["type"] for d in packet["body"]["diagnoses"]] == ["A", "F"]
    assert packet["body"]["procedures"][0]["code"] == "51.2300"
    # PID-3 type RI with a valid 18-character ID wins over the passport
    assert packet["subject"] == pseudonymise("cn_resident_id", "310115197506150028", key=KEY)


def test_cn_lab_report_escapes_and_value_types() -> None:
    [packet] = adapt(asset("cn_oru_r01_v251.hl7"))
    first, second = packet["body"]["reports"]
    assert first["observations"][1]["units"] == "10^9/L"  # \S\
    assert first["observations"][2]["value"] == "淡黄色&清亮"  # \T\
    sn, cwe, tx = second["observations"]
    assert sn["value"] == ">11.1" and sn["abnormal_flags"] == ["H", "A"]
    assert cwe["value_coded"] == {"code": "NEG", "text": "阴性", "system": "L"}
    assert tx["value"] == "红细胞\n偶见\n白细胞 5-8/HP"  # .br escape and repetition
    assert first["reported_at"] == "2024-03-11T02:15:00Z"


def test_cn_invoice_totals_are_exact() -> None:
    [packet] = adapt(asset("cn_dft_p03_v25.hl7"))
    body = packet["body"]
    assert packet["kind"] == "hospital.invoice"
    amounts = [i["amount"] for i in body["items"]]
    assert amounts == ["50.00", "16.50", "4800.00", "-100.10", "3000.00"]
    assert body["items"][1]["unit_price"] == "0.55" and body["items"][1]["quantity"] == "30"
    assert body["total"] == "4766.40" and body["paid"] == "3000.00"
    assert body["currency"] == "CNY"
    assert packet["subject"] == pseudonymise("cn_resident_id", "110105198001010016", key=KEY)


def test_same_person_same_pseudonym_across_messages() -> None:
    admission = adapt(asset("cn_adt_a01_v251.hl7"))[0]
    bill = adapt(asset("cn_dft_p03_v25.hl7"))[0]
    assert admission["subject"] == bill["subject"]


@pytest.mark.parametrize(("name", "total"), [("cn_dft_p03_gb18030.hl7", "43.00")])
def test_gb18030_declared_in_msh18(name: str, total: str) -> None:
    [packet] = adapt(asset(name))
    assert packet["body"]["total"] == total
    assert packet["body"]["items"][0]["description"] == "心电图检查"


def test_latin1_declared_in_msh18() -> None:
    [packet] = adapt(asset("eu_adt_a03_latin1.hl7"))
    assert packet["body"]["message"]["sending_facility"] == "Hôpital Européen"
    assert packet["body"]["encounter"]["attending_doctor"]["name"] == "Noël Lefèvre"
    assert packet["subject"] == pseudonymise("passport:FRA", "P99887766", key=KEY)


def test_latin1_bytes_without_declaration_are_located() -> None:
    raw = asset("eu_adt_a03_latin1.hl7").replace(b"|8859/1", b"|")
    exc = error(raw)
    assert exc.code == "bad_encoding" and exc.line == 1 and exc.loc == ("MSH", 18)


def test_custom_separators_and_escapes() -> None:
    [packet] = adapt(asset("custom_separators_a03.hl7"))
    [diag] = packet["body"]["diagnoses"]
    assert diag["text"] == "Acute appendicitis! unspecified"  # $F$ is the field separator
    assert packet["body"]["encounter"]["discharged_at"] == "2024-01-05T11:00:00Z"


def test_bom_and_mllp_framing() -> None:
    [packet] = adapt(asset("bom_mllp_a01.hl7"))
    assert packet["body"]["encounter"]["admitted_at"] == "2024-01-07T09:45:00Z"


@pytest.mark.parametrize("ending", [b"\r", b"\n", b"\r\n"])
def test_segment_endings(ending: bytes) -> None:
    raw = asset("cn_adt_a03_v24.hl7").replace(b"\r\n", b"\r").replace(b"\r", ending)
    assert adapt(raw)[0]["body"]["encounter"]["discharged_at"] == "2024-03-05T07:00:00Z"


@pytest.mark.parametrize("name", ["unsupported_adt_a08.hl7", "unsupported_ack.hl7",
                                  "public_adt_a04_batch.hl7"])
def test_not_claims_evidence(name: str) -> None:
    exc = error(asset(name))
    assert exc.code == "unsupported_message" and exc.loc == ("MSH", 9)
    assert exc.line == (3 if "batch" in name else 1)
    assert exc.file == "sample.hl7"


def test_errors_are_located_without_values() -> None:
    raw = asset("cn_dft_p03_v25.hl7").replace(b"|4800.00&CNY|4800.00&CNY", b"|48O0.00&CNY|")
    exc = error(raw)
    assert (exc.code, exc.loc, exc.line) == ("bad_number", ("FT1", 11, 1, 1), 7)
    assert "48O0" not in str(exc)
    bad_id = asset("cn_adt_a01_v251.hl7").replace(b"110105198001010016", b"110105198001010017")
    exc = error(bad_id)
    assert exc.code == "invalid_resident_id" and exc.loc == ("PID", 3, 1) and exc.line == 3
    assert "11010519800101001" not in json.dumps(exc.to_dict())
    bad_time = asset("cn_adt_a03_v24.hl7").replace(b"20240305150000", b"20241305150000")
    assert error(bad_time).to_dict()["loc"] == ["PV1", 45, 1, 1]


@pytest.mark.parametrize(("raw", "code"), [
    (b"", "empty_input"), (b"   \r\n", "empty_input"), (b"PID|1", "not_hl7"),
    (b"MSH|", "bad_separators"), (b"MSH|^~|A", "bad_separators"),
    (b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1||X^^^H^MR\rpv1|x", "bad_segment"),
    (b"MSH|^~\\&|A|B|C|D|||ADT^A01|1|P|2.5\rPID|1||X^^^H^MR\rPV1|1", "missing_field"),
    (b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|3.0\rPID|1||X", "unsupported_version"),
    (b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5|||||CHN|EBCDIC", "unsupported_charset"),
    (b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5\rPV1|1", "missing_segment"),
    (b"MSH|^~\\&|||C|D|2024||ADT^A01|1|P|2.5\rPID|1||X\rPV1|1", "missing_authority"),
    (b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5\rPID|1||X\\XZZ\\^^^H\rPV1|1", "bad_escape"),
])
def test_error_codes(raw: bytes, code: str) -> None:
    assert error(raw).code == code


def test_oversized_input_refused_quickly() -> None:
    raw = asset("cn_adt_a01_v251.hl7") + b"NTE|1||" + b"x" * (10 * 1024 * 1024) + b"\r"
    started = time.perf_counter()
    assert error(raw).code == "too_large"
    assert time.perf_counter() - started < 1.0


def test_several_patients_in_one_oru_give_several_packets() -> None:
    raw = asset("public_oru_r01_v24.hl7")
    second = raw.split(b"\n", 1)[1].replace(b"555-44-4444", b"555-44-5555")
    packets = adapt(raw + second)
    assert len(packets) == 2 and packets[0]["subject"] != packets[1]["subject"]


SAMPLES = [p.read_bytes() for p in sorted(ASSETS.glob("*.hl7"))
           + sorted((ASSETS / "public").glob("*.hl7"))]
"""Our samples and the public ones (tests/assets/hl7/public) are the fuzzing seeds."""


def _mutate(data: bytes, ops: list[tuple[int, int, bytes]]) -> bytes:
    for kind, pos, chunk in ops:
        pos %= len(data) + 1
        if kind == 0:
            data = data[:pos] + chunk + data[pos:]
        elif kind == 1:
            data = data[:pos] + data[pos + len(chunk) + 1:]
        else:
            data = data[:pos] + chunk + data[pos + len(chunk):]
    return data


_CHUNKS = st.sampled_from([b"|", b"^", b"~", b"\\", b"&", b"\r", b"\n", b"\\X", b"\\Xe4\\",
                           b"MSH|", b"\xff\xfe", b"PID|", b'""', b"+0800", b"\\.sp99\\"])
_OPS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 4000),
                          _CHUNKS | st.binary(min_size=1, max_size=6)), min_size=1, max_size=6)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sample=st.sampled_from(SAMPLES), ops=_OPS)
def test_mutated_messages_raise_only_adapter_errors(sample: bytes, ops: Any) -> None:
    try:
        hl7v2.adapt(_mutate(sample, ops), CTX)
    except AdapterError as exc:
        assert exc.code and isinstance(exc.loc, tuple)


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(lambda t: ("MSH|^~\\&|" + t)
                                                                 .encode()))
def test_random_input_raises_only_adapter_errors(raw: bytes) -> None:
    try:
        hl7v2.adapt(raw, CTX)
    except AdapterError as exc:
        assert exc.code


def test_years_before_1000_keep_four_digits() -> None:
    """A mutated timestamp (found by fuzzing) once made '600-01-01', which no packet accepts."""
    [packet] = adapt(b"MSH|^~\\&|A|B|C|D|06000101||ADT^A01|1|P|2.5\r"
                     b"EVN|A01|060001011200\rPID|1||X1^^^H^MR\rPV1|1|I")
    assert packet["issued_at"] == "0600-01-01T00:00:00Z"  # MSH-7, a date
    assert packet["body"]["encounter"]["admitted_at"] == "0600-01-01T12:00:00Z"
