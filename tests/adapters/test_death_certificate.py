"""Death certificates: cause-of-death chain, ICD-10 codes, manner, dropped personal data."""

from __future__ import annotations

import json

import pytest

from adapters import death_certificate
from adapters.pseudonym import pseudonymise
from adapters.registry import AdapterContext
from gateway.core.errors import AdapterError

from .conftest import assert_no_raw_ids, asset, dumped


def with_changes(name: str, **changes: object) -> bytes:
    doc = json.loads(asset("death", name))
    doc.update(changes)
    return json.dumps(doc).encode()


def error_of(raw: bytes, ctx: AdapterContext) -> AdapterError:
    with pytest.raises(AdapterError) as info:
        death_certificate.adapt(raw, ctx)
    return info.value


def test_chinese_certificate(ctx: AdapterContext) -> None:
    packet = death_certificate.adapt(asset("death", "death_zh.json"), ctx)[0].to_obj()
    body = packet["body"]
    assert packet["kind"] == "civil.death_certificate"
    assert packet["subject"] == pseudonymise("cn_resident_id", "320502197602281353")
    assert body["date_of_death"] == "2026-05-03T14:30:00+08:00"
    assert body["place_of_death"] == "hospital"
    assert body["manner"] == "natural"
    cause = body["cause_of_death"]
    assert [cause[k]["icd10"] for k in "abc"] == ["R57.0", "I21.0", "I25.1"]  # I251 normalised
    assert cause["underlying_icd10"] == "I25.1"
    assert cause["a"]["interval"] == "2小时"
    assert [c["icd10"] for c in cause["other_conditions"]] == ["E11.9", "I10"]
    text = dumped(packet)
    assert_no_raw_ids(text)
    assert "钱某某" not in text and "某路100弄" not in text and "男" not in text


def test_english_certificate_with_list_chain(ctx: AdapterContext) -> None:
    body = death_certificate.adapt(asset("death", "death_en.json"), ctx)[0].body
    assert body["manner"] == "accident"
    assert body["place_of_death"] == "en_route"
    assert body["cause_of_death"]["underlying_icd10"] == "V44.5"
    assert "Chen Jing" not in dumped(body)


def test_bad_icd10_is_located(ctx: AdapterContext) -> None:
    error = error_of(asset("death", "death_bad_icd.json"), ctx)
    assert (error.code, error.loc) == ("bad_icd10", ("/cause_of_death/a/icd10",))


@pytest.mark.parametrize("changes,code,where", [
    ({"cause_of_death": {"a": "Sepsis", "c": "Pneumonia"}}, "cause_chain_gap",
     "/cause_of_death"),
    ({"cause_of_death": {"b": "Sepsis"}}, "missing_field", "/cause_of_death/a"),
    ({"cause_of_death": ["a", "b", "c", "d", "e"]}, "too_many_causes", "/cause_of_death"),
    ({"manner": "mysterious"}, "bad_manner", "/manner"),
    ({"place_of_death": "on the moon"}, "bad_place", "/place_of_death"),
    ({"date_of_death": "2026-02-30"}, "bad_datetime", "/date_of_death"),
    ({"deceased": {"name": "X"}}, "missing_field", "/deceased/id_number"),
])
def test_located_errors(ctx: AdapterContext, changes: dict, code: str, where: str) -> None:
    error = error_of(with_changes("death_en.json", **changes), ctx)
    assert (error.code, error.loc) == (code, (where,))


def test_plain_text_causes_and_date_only(ctx: AdapterContext) -> None:
    raw = with_changes("death_en.json", cause_of_death={"a": "Sepsis", "b": "Pneumonia"},
                       date_of_death="2026-08-19", manner=None)
    body = death_certificate.adapt(raw, ctx)[0].body
    assert body["cause_of_death"] == {"a": {"text": "Sepsis"}, "b": {"text": "Pneumonia"}}
    assert body["date_of_death"] == "2026-08-19"
    assert "manner" not in body


def test_xml_form_is_accepted(ctx: AdapterContext) -> None:
    raw = ("<death_certificate><certificate_number>D-9</certificate_number>"
           "<deceased><id_number>110101198507073211</id_number></deceased>"
           "<date_of_death>2026-01-02</date_of_death><place_of_death>家中</place_of_death>"
           "<cause_of_death><a><text>肺炎</text><icd10>j18.9</icd10></a></cause_of_death>"
           "</death_certificate>").encode()
    assert death_certificate.detect(raw)
    body = death_certificate.adapt(raw, ctx)[0].body
    assert body["cause_of_death"]["a"] == {"text": "肺炎", "icd10": "J18.9"}
    assert body["place_of_death"] == "home"


def test_detect() -> None:
    assert death_certificate.detect(asset("death", "death_zh.json"))
    assert death_certificate.detect(asset("death", "death_en.json"))
    assert not death_certificate.detect(asset("police", "accident_zh.json"))
    assert not death_certificate.detect(b"[1, 2]")
