"""HL7 v2 adapter on public sample messages it was not written against (tests/assets/hl7/public,
provenance in its README). Every file has its expected outcome here, checked by hand against the
message: the packet kind and a date, code, value or amount, or the error code and location."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adapters import detect_format, hl7v2
from adapters.pseudonym import pseudonymise
from adapters.registry import AdapterContext
from gateway.core.errors import AdapterError

PUBLIC = Path(__file__).resolve().parents[1] / "assets" / "hl7" / "public"
KEY = bytes(range(32))
CTX = AdapterContext(issuer="0x" + "ab" * 32, file="public.hl7", pseudonym_key=KEY)
Check = Callable[[list[dict[str, Any]]], None]


def _obs(packet: dict[str, Any], report: int, index: int) -> dict[str, Any]:
    obs: dict[str, Any] = packet["body"]["reports"][report]["observations"][index]
    return obs


def _rethink_adt(p: list[dict[str, Any]]) -> None:
    enc = p[0]["body"]["encounter"]
    assert enc["admitted_at"] == "2026-03-09T12:00:00Z"  # EVN-2, no PV1-44
    assert enc["department"] == {"location": "ICU"}
    assert p[0]["subject"] == pseudonymise("mrn:MRN", "12345", key=KEY)


def _rethink_oru(p: list[dict[str, Any]]) -> None:
    wbc = _obs(p[0], 0, 0)
    assert (wbc["value"], wbc["units"], wbc["reference_range"], wbc["abnormal_flags"]) == (
        "7.5", "10*3/uL", "4.5-11.0", ["N"])
    assert p[0]["body"]["reports"][0]["observed_at"] == "2026-03-09T10:00:00Z"


def _lfh_adt(p: list[dict[str, Any]]) -> None:
    enc = p[0]["body"]["encounter"]
    assert enc["admitted_at"] == "2014-09-12T22:00:00Z" and enc["visit_number"] == "48390"
    assert p[0]["subject"] == pseudonymise("mrn:A", "PID1234", key=KEY)  # rep 1, type MR


def _aidbox_a03(p: list[dict[str, Any]]) -> None:
    enc = p[0]["body"]["encounter"]
    assert (enc["admitted_at"], enc["discharged_at"]) == ("2026-03-01T09:00:00Z",
                                                          "2026-03-01T10:15:00Z")
    assert p[0]["body"]["message"]["version"] == "2.2"
    assert p[0]["subject"] == pseudonymise("mrn:CERNER", "X999001", key=KEY)  # CX-5 MR


def _aidbox_multi_obr(p: list[dict[str, Any]]) -> None:
    reports = p[0]["body"]["reports"]
    assert [r["test"]["text"] for r in reports] == ["CBC", "BMP"]
    potassium = _obs(p[0], 1, 0)
    assert (potassium["code"]["code"], potassium["value"], potassium["units"]) == (
        "51998", "4.0", "mmol/L")
    assert reports[1]["reported_at"] == "2026-01-07T09:10:00Z"


def _pid2_only(p: list[dict[str, Any]]) -> None:
    assert _obs(p[0], 0, 0)["value"] == "4.2"
    assert p[0]["subject"] == pseudonymise("mrn:HOSPITAL", "PAT-FROM-PID2", key=KEY)


def _sn_nte(p: list[dict[str, Any]]) -> None:
    egfr = _obs(p[0], 0, 0)
    assert (egfr["value"], egfr["reference_range"]) == (">90", ">60.0")
    assert "CKD-EPI" not in json.dumps(p)  # NTE dropped


def _aidbox_dg1(p: list[dict[str, Any]]) -> None:
    body = p[0]["body"]
    assert [(d["code"], d["system"]) for d in body["diagnoses"]] == [("I10", "ICD10"),
                                                                     ("E11.9", "ICD10")]
    # the sender put its admit time in PV1-46 (patient balance), not PV1-44: EVN-2 stands in
    assert body["encounter"]["admitted_at"] == "2023-12-15T14:30:00Z"


def _em_adt(p: list[dict[str, Any]]) -> None:
    enc = p[0]["body"]["encounter"]
    assert enc["admitted_at"] == "2025-01-28T15:23:12Z"
    assert enc["attending_doctor"] == {"id": "DOC123", "name": "Jane Smith"}


def _em_escapes(p: list[dict[str, Any]]) -> None:
    narrative, empty = _obs(p[0], 0, 0), _obs(p[0], 0, 1)
    assert narrative["value"] == "Line one\nLine two with escaped delimiters | ^ &"
    assert "value" not in empty  # HL7 null ""


def _phlip_231(p: list[dict[str, Any]]) -> None:
    assert p[0]["issued_at"] == "2020-03-23T21:17:48Z"  # .875-0600
    assert [r["test"]["code"] for r in p[0]["body"]["reports"]] == ["PLT40", "94309-2",
                                                                    "94306-8"]
    assert _obs(p[0], 0, 0)["value"] == "39"  # SN ^39
    n1 = _obs(p[0], 2, 1)
    assert n1["value_coded"] == {"code": "260373001", "text": "Detected", "system": "SCT"}
    assert _obs(p[0], 1, 0)["value_omitted"].startswith("identifier")  # CX: the patient ID
    assert "LGZKXXR5" not in json.dumps(p)  # the lab reused the patient ID as accession


def _phlip_251(p: list[dict[str, Any]]) -> None:
    sars = _obs(p[0], 1, 0)
    assert (sars["value"], sars["abnormal_flags"], sars["reference_range"]) == (
        "Positive", ["A"], "Negative")
    assert p[0]["body"]["reports"][1]["reported_at"] == "2020-04-02T16:23:00Z"


def _covid_elr(p: list[dict[str, Any]]) -> None:
    observations = p[0]["body"]["reports"][0]["observations"]
    assert len(observations) == 8
    assert observations[7]["value_coded"]["code"] == "260373001"
    assert observations[0]["value"] == "33" and observations[0]["units"] == "a"
    assert p[0]["issued_at"] == "2021-01-28T21:24:13Z"


def _v27_ft(p: list[dict[str, Any]]) -> None:
    assert _obs(p[0], 0, 2)["value"] == "This\nis\nA Test\nMoreText\nSomeMoreText"
    # no authority and no MSH-4: MSH-3 names the namespace
    assert p[0]["subject"] == pseudonymise("mrn:XPress Arrival", "1711114", key=KEY)


def _v24_adt(p: list[dict[str, Any]]) -> None:
    enc = p[0]["body"]["encounter"]
    assert enc["admitted_at"] == "2006-01-06T08:00:00Z" and enc["visit_number"] == "0200001198"
    assert p[0]["subject"] == pseudonymise("mrn:51276", "0216128", key=KEY)


def _molis(p: list[dict[str, Any]]) -> None:
    allergy = _obs(p[0], 0, 0)
    assert allergy["value"].endswith("etwas längeren Textes auf dem Allergiepass")  # 8859
    igm = _obs(p[0], 1, 2)
    assert (igm["value"], igm["abnormal_flags"], igm["status"]) == ("111.3", ["H"], "C")
    assert _obs(p[0], 2, 3)["units"] == "µg/l"


def _mieweb_dft(p: list[dict[str, Any]]) -> None:
    first, second = (x["body"] for x in p)
    assert first["items"] == [{"set_id": "1", "date": "2008-05-28T11:47:00Z",
                               "category": "CG", "code": "73630", "quantity": "1"}]
    assert first["unpriced_items"] == 1 and "total" not in first
    assert second["items"][0]["code"] == "76775"
    assert [d["code"] for d in second["diagnoses"]] == ["440.0", "441.4"]
    assert first["diagnoses"][0]["system"] == "ICD9"


def _machete_dft(p: list[dict[str, Any]]) -> None:
    body = p[0]["body"]
    assert [i["amount"] for i in body["items"]] == ["475.00", "125.00"]
    assert body["total"] == "600.00" and "unpriced_items" not in body
    assert body["items"][0]["date"] == "2021-03-20"
    assert body["diagnoses"][0]["code"] == "R07.9"


def _nist_lead(p: list[dict[str, Any]]) -> None:
    lead = _obs(p[0], 0, 0)
    assert (lead["value"], lead["units"], lead["reference_range"]) == ("25", "ug/dl",
                                                                     "<10 ug/dl")
    report = p[0]["body"]["reports"][0]
    assert report["observed_at"] == "2008-08-15T17:30:00Z" and report["status"] == "C"


def _cerner_lead(p: list[dict[str, Any]]) -> None:
    lead = _obs(p[0], 0, 0)
    assert (lead["value"], lead["reference_range"], lead["abnormal_flags"]) == (
        "50", "^^10.000000", ["H"])
    assert p[0]["subject"] == pseudonymise("mrn:Baseline West MC", "9339683996", key=KEY)


def _athena(p: list[dict[str, Any]]) -> None:
    [report] = p[0]["body"]["reports"]
    assert report["test"]["code"] == "AMY" and report["observations"] == []
    assert p[0]["subject"] == pseudonymise("mrn:NASON", "V001047", key=KEY)


def _no_pv1(field: str, when: str) -> Check:
    """Minimal ADT without PV1: the event is the evidence, its time from EVN (else MSH-7)."""
    def check(p: list[dict[str, Any]]) -> None:
        body = p[0]["body"]
        assert body["encounter"] == {field: when}
        assert body["notes"] == ["no PV1 segment: no visit details; time from EVN or MSH"]
    return check


EVIDENCE: dict[str, tuple[str, int, Check]] = {
    "rethink_adt_a01_v251.hl7": ("hospital.admission_summary", 1, _rethink_adt),
    "rethink_oru_r01_v251.hl7": ("hospital.lab_report", 1, _rethink_oru),
    "lfh_adt_a01_v26_doubled_escape.hl7": ("hospital.admission_summary", 1, _lfh_adt),
    "aidbox_adt_a03_v22.hl7": ("hospital.discharge_summary", 1, _aidbox_a03),
    "aidbox_oru_r01_multi_obr_v251.hl7": ("hospital.lab_report", 1, _aidbox_multi_obr),
    "aidbox_oru_r01_pid2_only_v251.hl7": ("hospital.lab_report", 1, _pid2_only),
    "aidbox_oru_r01_sn_nte_v251.hl7": ("hospital.lab_report", 1, _sn_nte),
    "aidbox_adt_a01_dg1_v251.hl7": ("hospital.admission_summary", 1, _aidbox_dg1),
    "em_adt_a01_v251.hl7": ("hospital.admission_summary", 1, _em_adt),
    "em_oru_r01_escapes_null_v25.hl7": ("hospital.lab_report", 1, _em_escapes),
    "cdc_phlip_oru_r01_v231.hl7": ("hospital.lab_report", 1, _phlip_231),
    "cdc_phlip_oru_r01_v251_truncation_char.hl7": ("hospital.lab_report", 1, _phlip_251),
    "cdc_covid_elr_oru_r01_v251.hl7": ("hospital.lab_report", 1, _covid_elr),
    "nhapi_oru_r01_v27_ft_repetitions.hl7": ("hospital.lab_report", 1, _v27_ft),
    "nhapi_adt_a01_v24_zsegment.hl7": ("hospital.admission_summary", 1, _v24_adt),
    "nhapi_oru_r01_v24_molis_8859.hl7": ("hospital.lab_report", 1, _molis),
    "mieweb_dft_p03_v25_no_amounts.hl7": ("hospital.invoice", 2, _mieweb_dft),
    "machete_dft_p03_v23_amounts.hl7": ("hospital.invoice", 1, _machete_dft),
    "nist_oru_r01_lead_v251.hl7": ("hospital.lab_report", 1, _nist_lead),
    "cerner_oru_r01_lead_v251.hl7": ("hospital.lab_report", 1, _cerner_lead),
    "athena_oru_r01_no_obx_v251.hl7": ("hospital.lab_report", 1, _athena),
    "em_adt_a01_zsegment_no_pv1_v25.hl7": ("hospital.admission_summary", 1,
                                           _no_pv1("admitted_at", "2026-05-14T01:01:00Z")),
    "em_adt_a03_odd_msh_no_pv1_v25.hl7": ("hospital.discharge_summary", 1,
                                          _no_pv1("discharged_at", "2026-05-14T01:06:00Z")),
    "em_adt_a01_escapes_no_pv1_v25.hl7": ("hospital.admission_summary", 1,
                                          _no_pv1("admitted_at", "2025-01-28T12:00:00Z")),
    "em_adt_a01_mllp_no_pv1_v251.hl7": ("hospital.admission_summary", 1,
                                        _no_pv1("admitted_at", "2025-01-28T15:23:12Z")),
}
"""Claims evidence: file -> (packet kind, packet count, hand-checked facts)."""

NOT_EVIDENCE: dict[str, tuple[str, tuple[str | int, ...], int]] = {
    "rethink_orm_o01_v251.hl7": ("unsupported_message", ("MSH", 9), 1),
    "aidbox_vxu_v04_v251.hl7": ("unsupported_message", ("MSH", 9), 1),
    "em_partial_batch.hl7": ("unsupported_message", ("MSH", 9), 2),
    "em_adt_a04_cp1252_v23.hl7": ("unsupported_message", ("MSH", 9), 1),
    "em_adt_a08_v23.hl7": ("unsupported_message", ("MSH", 9), 1),
    "hapi_erp_z99_v231_latin1.hl7": ("unsupported_message", ("MSH", 9), 1),
    "nhapi_oml_o21_blank_lines_v251.hl7": ("unsupported_message", ("MSH", 9), 1),
    "corepoint_siu_s14_v23.hl7": ("unsupported_message", ("MSH", 9), 1),
    "hs_bar_p01_v23.hl7": ("unsupported_message", ("MSH", 9), 1),
    "datica_ack_a01_v23.hl7": ("unsupported_message", ("MSH", 9), 1),
    "cdc_broken_adt_a03_v25.hl7": ("bad_separators", ("MSH", 2), 1),
}
"""Not claims evidence (or not a usable message): file -> (error code, loc, line)."""


def test_every_public_sample_has_an_expected_outcome() -> None:
    files = {p.name for p in PUBLIC.glob("*.hl7")}
    assert files == set(EVIDENCE) | set(NOT_EVIDENCE)
    assert len(files) >= 30
    assert all(detect_format(p.read_bytes()) == "hl7v2" for p in PUBLIC.glob("*.hl7"))


@pytest.mark.parametrize("name", sorted(EVIDENCE))
def test_public_evidence(name: str) -> None:
    kind, count, check = EVIDENCE[name]
    packets = [p.to_obj() for p in hl7v2.adapt((PUBLIC / name).read_bytes(), CTX)]
    assert [p["kind"] for p in packets] == [kind] * count
    check(packets)


@pytest.mark.parametrize("name", sorted(NOT_EVIDENCE))
def test_public_not_evidence(name: str) -> None:
    code, loc, line = NOT_EVIDENCE[name]
    with pytest.raises(AdapterError) as info:
        hl7v2.adapt((PUBLIC / name).read_bytes(), CTX)
    assert (info.value.code, info.value.loc, info.value.line) == (code, loc, line)
    assert info.value.file == "public.hl7"


RAW_IDS = ("LGZKXXR5", "12345", "X999001", "90000001", "PAT-FROM-PID2", "P21-0000105078",
           "PID00002664", "9817566735", "9339683996", "V001047", "1711114", "0216128",
           "8912716038", "10476", "MRN334455", "PID1234", "TEST-0005", "123456")


@pytest.mark.parametrize("name", sorted(EVIDENCE))
def test_no_raw_identifier_in_public_packets(name: str) -> None:
    text = json.dumps([p.to_obj()["body"] for p in
                       hl7v2.adapt((PUBLIC / name).read_bytes(), CTX)], ensure_ascii=False)
    leaked = [i for i in RAW_IDS if f'"{i}"' in text or f"{i}_" in text or f" {i}" in text]
    assert not leaked, leaked
