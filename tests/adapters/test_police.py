"""Police accident determinations and incident reports, JSON and XML, and XML safety."""

from __future__ import annotations

import json

import pytest

from adapters import police
from adapters.pseudonym import pseudonymise
from adapters.registry import AdapterContext
from gateway.core.errors import AdapterError

from .conftest import assert_no_raw_ids, asset, dumped

ACCIDENT_JSON = b"""{"document_type": "accident_determination", "case_number": "C-1",
 "occurred_at": "2026-04-01 10:00", "place": "Nanjing Road",
 "parties": [%s], "facts": "Two cars collided.", "determination_date": "2026-04-05"}"""
P1 = b'{"role": "driver", "id_number": "110101198507073211", "liability": "main"}'
P2 = b'{"role": "driver", "id_number": "310104198001011239", "liability": "secondary"}'


def run(raw: bytes, ctx: AdapterContext) -> dict:
    return police.adapt(raw, ctx)[0].to_obj()


def error_of(raw: bytes, ctx: AdapterContext) -> AdapterError:
    with pytest.raises(AdapterError) as info:
        police.adapt(raw, ctx)
    return info.value


def test_chinese_json_determination(ctx: AdapterContext) -> None:
    packet = run(asset("police", "accident_zh.json"), ctx)
    body = packet["body"]
    assert packet["kind"] == "police.accident_determination"
    assert packet["urgent"] is False  # the green channel is decided by kind, in gateway.core.packet
    assert body["case_number"] == "沪公交认字[2026]第310104202603140017号"
    assert body["occurred_at"] == "2026-03-14T08:25:00+08:00"
    assert body["determination_date"] == "2026-03-20"
    assert body["bureau"] == "上海市公安局徐汇分局交通警察支队"
    first, second = body["parties"]
    assert (first["role"], first["liability"], first["share"]) == ("driver", "main", 70)
    assert (second["role"], second["liability"], second["share"]) == ("cyclist", "secondary", 30)
    assert first["vehicle"] == {"plate": "沪A·D12345", "type": "小型轿车"}
    # the injured cyclist is the subject (no claimant flagged)
    assert packet["subject"] == pseudonymise("cn_resident_id", "310104198001011239")
    assert second["subject"] == packet["subject"]
    text = dumped(packet)
    assert_no_raw_ids(text)
    for name in ("李某强", "王某某", "13912345678"):
        assert name not in text
    assert "[当事人1]驾驶" in body["facts"] and "[phone]" in body["facts"]


def test_identity_numbers_of_any_format_are_redacted_from_free_text(
        ctx: AdapterContext) -> None:
    """A passport, or a party's ID in an unusual format, written into the facts."""
    doc = json.loads(asset("police", "accident_zh.json"))
    doc["当事人"][0]["证件号码"] = doc["当事人"][0].pop("身份证号")
    doc["当事人"][0].update({"证件类型": "护照", "国籍": "GB", "证件号码": "X1234567A"})
    doc["事故事实"] += "经查，当事人护照号X1234567A，另持往来港澳通行证C12345678。"
    packet = run(json.dumps(doc, ensure_ascii=False).encode(), ctx)
    facts = packet["body"]["facts"]
    assert "X1234567A" not in dumped(packet) and "C12345678" not in facts
    assert facts.count("[id]") == 2 and "沪A·D12345" in facts  # the plate stays


def test_english_xml_with_namespace_attributes_and_claimant(ctx: AdapterContext) -> None:
    packet = run(asset("police", "accident_en.xml"), ctx)
    first, second = packet["body"]["parties"]
    assert (first["liability"], first["share"]) == ("full", 100)
    assert (second["liability"], second["share"]) == ("none", 0)
    assert second["injured"] is True
    assert packet["subject"] == pseudonymise("cn_resident_id", "440306199203154569")
    assert "Zhang Wei" not in dumped(packet) and "[party 1]" in packet["body"]["facts"]


def test_chinese_xml_repeated_parties(ctx: AdapterContext) -> None:
    packet = run(asset("police", "accident_zh.xml"), ctx)
    body = packet["body"]
    assert [p["liability"] for p in body["parties"]] == ["equal", "equal"]
    assert body["parties"][1]["vehicle"] == {"plate": "京Q·3L8B6", "type": "小型普通客车"}
    assert body["determination_date"] == "2026-06-18"
    assert packet["subject"] == pseudonymise("cn_resident_id", "11010519491231002X")


def test_incident_reports(ctx: AdapterContext) -> None:
    zh = run(asset("police", "incident_zh.json"), ctx)
    assert zh["kind"] == "police.incident_report"
    assert zh["body"]["reported_at"] == "2026-07-09T23:12:40+08:00"
    assert [p["role"] for p in zh["body"]["parties"]] == ["victim", "reporter"]
    assert zh["body"]["parties"][1]["subject"] == pseudonymise("passport:CHN", "E12345678")
    assert "周某某" not in dumped(zh) and "13800138000" not in dumped(zh)
    en = run(asset("police", "incident_en.xml"), ctx)
    assert en["body"]["occurred_at"] == "2026-11-02"
    assert en["subject"] == pseudonymise("cn_resident_id", "440306199203154569")
    assert_no_raw_ids(dumped(zh) + dumped(en))


def test_liability_split_must_sum_to_100(ctx: AdapterContext) -> None:
    error = error_of(asset("police", "bad_split.json"), ctx)
    assert (error.code, error.loc) == ("liability_split", ("/parties",))


def test_shares_absent_means_no_split_check(ctx: AdapterContext) -> None:
    body = run(ACCIDENT_JSON % (P1 + b"," + P2), ctx)["body"]
    assert all("share" not in p for p in body["parties"])


@pytest.mark.parametrize("party,code,where", [
    (b'{"role": "driver", "id_number": "110101198507073211", "liability": "most"}',
     "bad_liability", "/parties/0/liability"),
    (b'{"role": "driver", "id_number": "110101198507073211", "liability": "main", '
     b'"liability_share": 70.5}', "bad_share", "/parties/0/liability_share"),
    (b'{"role": "driver", "id_number": "110101198507073212"}', "invalid_resident_id",
     "/parties/0/id_number"),
    (b'{"role": "driver", "id_number": "E1234567", "id_type": "passport"}', "missing_country",
     "/parties/0/id_number"),
    (b'{"role": "driver", "id_number": "110101198507073211", "liability": "full", '
     b'"share": 90}', "bad_share", "/parties/0/share"),
])
def test_party_errors_carry_json_pointers(ctx: AdapterContext, party: bytes, code: str,
                                          where: str) -> None:
    error = error_of(ACCIDENT_JSON % party, ctx)
    assert (error.code, error.loc) == (code, (where,))
    assert_no_raw_ids(str(error))


def test_missing_and_malformed_fields(ctx: AdapterContext) -> None:
    no_case = ACCIDENT_JSON.replace(b'"case_number": "C-1",', b"") % P1
    assert error_of(no_case, ctx).loc == ("/case_number",)
    bad_time = ACCIDENT_JSON.replace(b"2026-04-01 10:00", b"2026-13-01 10:00") % P1
    assert (error_of(bad_time, ctx).code, error_of(bad_time, ctx).loc) == ("bad_datetime",
                                                                            ("/occurred_at",))
    no_ids = ACCIDENT_JSON % b'{"role": "pedestrian"}'
    assert error_of(no_ids, ctx).code == "missing_subject"


def test_xml_errors_carry_element_paths(ctx: AdapterContext) -> None:
    raw = asset("police", "accident_zh.xml").replace(
        "<责任>同等责任</责任>\n    <责任比例>50</责任比例>\n  </当事人>\n  <事故事实>".encode(),
        "<责任>半责</责任>\n    <责任比例>50</责任比例>\n  </当事人>\n  <事故事实>".encode())
    error = error_of(raw, ctx)
    assert (error.code, error.loc) == ("bad_liability", ("/道路交通事故认定书/当事人[2]/责任",))


def test_syntax_errors_carry_lines(ctx: AdapterContext) -> None:
    xml_error = error_of(b"<incident_report>\n<case_number>1</case_number>\n<oops>\n", ctx)
    assert xml_error.code == "bad_xml" and xml_error.line == 4
    json_error = error_of(b'{"document_type": "incident_report",\n "x": }', ctx)
    assert json_error.code == "bad_json" and json_error.line == 2
    assert error_of(b'{"document_type": "memo"}', ctx).code == "unknown_document"
    # found by the property tests: an unknown declared encoding is a LookupError in expat
    declared = error_of(b'<?xml version="1.0" encoding="ATF-8"?><incident_report/>', ctx)
    assert declared.code == "bad_xml"


@pytest.mark.timeout(5)
@pytest.mark.parametrize("name", ["bomb.xml", "xxe.xml"])
def test_xml_bomb_and_external_entity_are_refused_fast(ctx: AdapterContext, name: str) -> None:
    error = error_of(asset("police", name), ctx)
    assert error.code == "unsafe_xml"
    assert "root:" not in str(error)  # nothing from /etc/passwd


@pytest.mark.timeout(5)
def test_quadratic_blowup_and_parameter_entities_are_refused(ctx: AdapterContext) -> None:
    big = b"A" * 100_000
    quadratic = (b'<?xml version="1.0"?><!DOCTYPE incident_report [<!ENTITY a "' + big +
                 b'">]><incident_report><summary>' + b"&a;" * 10_000 +
                 b"</summary></incident_report>")
    assert error_of(quadratic, ctx).code == "unsafe_xml"
    param = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x">'
             b"%p;]><incident_report/>")
    assert error_of(param, ctx).code == "unsafe_xml"


def test_detect() -> None:
    for name in ("accident_zh.json", "accident_en.xml", "accident_zh.xml", "incident_zh.json",
                 "incident_en.xml", "xxe.xml"):
        assert police.detect(asset("police", name)), name
    assert not police.detect(asset("death", "death_en.json"))
    assert not police.detect(b'{"resourceType": "Bundle", "type": "incident_report"}')
    assert not police.detect(b"<lolz/>")
