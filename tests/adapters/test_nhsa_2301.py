"""The 2301 fee-detail upload as JSON (issue 13, item 7): the request body, a plain list, the
CSV form's checks with JSON locations (``input.feedetail[1].pric``), and auto-detection."""

from __future__ import annotations

import json
from typing import Any

import pytest

from adapters import adapt_bytes, csv_bill, detect_format, nhsa_2301
from adapters.pseudonym import pseudonymise
from adapters.registry import AdapterContext
from gateway.core.errors import AdapterError
from tests.adapters.conftest import asset

KEY = bytes(range(32))
CTX = AdapterContext(issuer="0x" + "ab" * 32, pseudonym_key=KEY)
PSN = "42000000000000000000123456"


def request() -> dict[str, Any]:
    return json.loads(asset("nhsa", "fee_detail_2301_request.json"))  # type: ignore[no-any-return]


def adapt(obj: Any, ctx: AdapterContext = CTX) -> dict[str, Any]:
    [packet] = nhsa_2301.adapt(json.dumps(obj, ensure_ascii=False).encode(), ctx)
    return packet.to_obj()


def error(obj: Any) -> AdapterError:
    with pytest.raises(AdapterError) as info:
        nhsa_2301.adapt(json.dumps(obj, ensure_ascii=False).encode(), CTX)
    return info.value


def test_request_body_is_one_bill_with_the_csv_forms_items() -> None:
    """The same three details as tests/assets/csv/bill_nhsa_2301.csv give the same items (plus
    each detail's time); totals by hand: 25.12 + 150.00 + 380.00 = 555.12, policy parts
    380.00 / 10.00 / 2.51 / 162.61 (22.61 + 140.00 + 0.00)."""
    raw = asset("nhsa", "fee_detail_2301_request.json")
    assert detect_format(raw) == "nhsa_2301"
    [packet] = adapt_bytes(raw, "auto", CTX)
    body = packet.to_obj()["body"]
    assert packet.kind == "hospital.invoice"
    assert packet.subject == pseudonymise("mrn:nhsa-psn_no", PSN, key=KEY)
    assert body["totals"] == {"amount": "555.12", "fully_self_paid": "380.00",
                              "over_limit": "10.00", "pre_self_pay": "2.51",
                              "in_scope": "162.61"}
    assert (body["interface"], body["visit_id"], body["med_type"], body["subject_from"]) == (
        "2301", "420000202403310000123", "21", "insured_person")
    assert [i.pop("date") for i in body["items"]] == [
        "2024-04-01T08:15:00+08:00", "2024-04-01T00:00:00+08:00", "2024-04-01T14:02:31+08:00"]
    csv_body = csv_bill.adapt(asset("csv", "bill_nhsa_2301.csv"), CTX)[0].to_obj()["body"]
    assert body["items"] == csv_body["items"]
    text = json.dumps(packet.to_obj(), ensure_ascii=False)
    for dropped in (PSN, "医生甲", "YZ0001", "收费员甲"):
        assert dropped not in text


def test_plain_list_with_four_places_and_a_refund() -> None:
    """0.3333 x 7.68 = 2.559744, 2.56 at the fen; 12.8532 kept to four places; the refund line
    (negative cnt and amount) names the line it refunds; total 2.56 + 12.8532 - 2.56."""
    raw = asset("nhsa", "fee_detail_list.json")
    assert detect_format(raw) == "nhsa_2301"
    body = nhsa_2301.adapt(raw, CTX)[0].to_obj()["body"]
    assert [i["amount"] for i in body["items"]] == ["2.56", "12.8532", "-2.56"]
    assert body["items"][0]["quantity"] == "0.3333" and body["items"][1]["unit_price"] == \
        "12.8532"
    assert body["items"][2]["refund_of"] == "30001" and body["total"] == "12.8532"


def test_feedetail_object_alone_and_chinese_names() -> None:
    details = request()["input"]["feedetail"]
    assert adapt({"feedetail": details})["body"]["totals"]["amount"] == "555.12"
    chinese = [{"费用明细流水号": "1", "医疗目录编码": "X1", "明细项目费用总额": "10.00",
                "数量": "2", "单价": "5.00", "人员编号": PSN}]
    assert adapt(chinese)["body"]["items"][0] == {"code": "X1", "line_id": "1", "quantity": "2",
                                                  "unit_price": "5.00", "amount": "10.00"}


def _broken(index: int, **fields: Any) -> dict[str, Any]:
    body = request()
    body["input"]["feedetail"][index].update(fields)
    return body


@pytest.mark.parametrize(("obj", "code", "loc"), [
    (_broken(1, pric=51), "amount_mismatch", "input.feedetail[1].det_item_fee_sumamt"),
    (_broken(1, pric="5O.00"), "bad_decimal", "input.feedetail[1].pric"),
    (_broken(0, pric=12.5600001), "bad_decimal", "input.feedetail[0].pric"),
    (_broken(0, det_item_fee_sumamt="2.512E+1"), "bad_decimal",
     "input.feedetail[0].det_item_fee_sumamt"),
    (_broken(2, cnt=True), "wrong_type", "input.feedetail[2].cnt"),
    (_broken(0, pric=-12.56), "negative_amount", "input.feedetail[0].pric"),
    (_broken(1, overlmt_amt=151), "policy_amount_exceeds", "input.feedetail[1].overlmt_amt"),
    (_broken(2, det_item_fee_sumamt=None), "missing_value",
     "input.feedetail[2].det_item_fee_sumamt"),
    (_broken(2, psn_no="42000000000000000000999999"), "inconsistent_subject",
     "input.feedetail[2].psn_no"),
    (_broken(1, mdtrt_id="420000202403310000999"), "inconsistent_visit",
     "input.feedetail[1].mdtrt_id"),
    (_broken(2, feedetl_sn="FD202404010001"), "duplicate_line_id",
     "input.feedetail[2].feedetl_sn"),
    (_broken(0, fee_ocur_time="2024-13-01 08:00:00"), "bad_datetime",
     "input.feedetail[0].fee_ocur_time"),
    ({**request(), "infno": "2401"}, "unsupported_infno", "infno"),
    ({"infno": "2301"}, "missing_field", "input"),
    ({"input": {"feedetail": []}}, "no_items", "input.feedetail"),
    ({"input": {"feedetail": [1]}}, "wrong_type", "input.feedetail[0]"),
])
def test_bad_details_are_located(obj: dict[str, Any], code: str, loc: str) -> None:
    failure = error(obj)
    assert (failure.code, failure.loc) == (code, (loc,))
    assert PSN not in str(failure) and "5O.00" not in str(failure)


def test_a_json_number_with_an_exponent_is_read_exactly() -> None:
    """A JSON number is exact whatever its form (2.56e0 is 2.56); a string must be plain."""
    raw = asset("nhsa", "fee_detail_list.json").replace(b'"2.56"', b"2.56e0", 1)
    assert nhsa_2301.adapt(raw, CTX)[0].body["items"][0]["amount"] == "2.56"


def test_subject_order_resident_id_then_psn_no_then_publisher() -> None:
    body = request()
    for detail in body["input"]["feedetail"]:
        detail["certno"] = "11010519491231002X"
    assert adapt(body)["subject"] == pseudonymise("cn_resident_id", "11010519491231002X",
                                                  key=KEY)
    for detail in body["input"]["feedetail"]:
        del detail["certno"], detail["psn_no"]
    assert error(body).code == "missing_subject"
    given = AdapterContext(issuer=CTX.issuer, pseudonym_key=KEY, subject="7c" * 32)
    packet = adapt(body, given)
    assert (packet["subject"], packet["body"]["subject_from"]) == ("7c" * 32, "publisher")


def test_detection_leaves_other_json_alone() -> None:
    assert not nhsa_2301.detect(b'{"resourceType": "Claim", "feedetail": []}')
    assert not nhsa_2301.detect(b'{"infno": "2401", "input": {"mdtrtinfo": {}}}')
    assert not nhsa_2301.detect(b"feedetl_sn,med_list_codg\n")
    assert detect_format(asset("csv", "bill_nhsa_2301.csv")) == "csv_bill"
