"""CSV itemised bills: encodings, delimiters, preambles, exact decimals, cross-checks."""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapters import csv_bill
from adapters._values import parse_decimal
from adapters.pseudonym import pseudonymise
from adapters.registry import AdapterContext
from gateway.core.errors import AdapterError

from .conftest import ISSUER, assert_no_raw_ids, asset, dumped

HEADER = "身份证号,项目名称,类别,数量,单价,金额,自付,医保支付\n"
PID = "440306199203154569"


def adapt_text(text: str, ctx: AdapterContext, encoding: str = "utf-8") -> dict:
    return csv_bill.adapt(text.encode(encoding), ctx)[0].to_obj()


def error_of(text: str, ctx: AdapterContext) -> AdapterError:
    with pytest.raises(AdapterError) as info:
        csv_bill.adapt(text.encode(), ctx)
    return info.value


def test_bom_export_with_preamble_and_totals(ctx: AdapterContext) -> None:
    raw = asset("csv", "bill_utf8_bom.csv")
    assert raw.startswith(b"\xef\xbb\xbf")
    packet = csv_bill.adapt(raw, ctx)[0].to_obj()
    body = packet["body"]
    assert packet["kind"] == "hospital.invoice"
    assert body["currency"] == "CNY"
    assert len(body["items"]) == 6
    assert body["items"][2] == {
        "description": "胸部CT平扫", "category": "检查费", "quantity": "1", "unit_price": "1280.50",
        "amount": "1280.50", "self_pay": "384.15", "insurer_paid": "896.35"}
    assert body["totals"] == {"amount": "2488.30", "self_pay": "531.71",
                              "insurer_paid": "1956.59"}
    assert body["invoice_number"] == "NO.31000026"
    assert body["admission_date"] == "2026-03-14"
    assert body["discharge_date"] == "2026-03-21"
    # the resident ID wins over the hospital's own record number
    assert packet["subject"] == pseudonymise("cn_resident_id", "310104198001011239")
    text = dumped(packet)
    assert_no_raw_ids(text)
    assert "王某某" not in text


def test_gbk_tab_separated_export(ctx: AdapterContext) -> None:
    raw = asset("csv", "bill_gbk.csv")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    body = csv_bill.adapt(raw, ctx)[0].body
    assert [i["description"] for i in body["items"]] == ["急诊留观床位费", "心电图检查",
                                                          "阿莫西林胶囊"]
    assert body["items"][2]["unit_price"] == "0.45"
    assert body["totals"] == {"amount": "130.80", "self_pay": "22.80", "insurer_paid": "108.00"}


def test_english_semicolon_export_uses_mrn_scoped_to_issuer(ctx: AdapterContext) -> None:
    packet = csv_bill.adapt(asset("csv", "bill_english.csv"), ctx)[0]
    assert packet.subject == pseudonymise(f"mrn:{ISSUER}", "MRN-55012")
    assert packet.body["items"][1]["unit_price"] == "210.00"  # ¥ stripped
    assert packet.body["totals"]["insurer_paid"] == "317.76"
    assert_no_raw_ids(dumped(packet.to_obj()))


def test_wrong_total_is_located(ctx: AdapterContext) -> None:
    with pytest.raises(AdapterError) as info:
        csv_bill.adapt(asset("csv", "bill_wrong_total.csv"), ctx)
    assert info.value.code == "total_mismatch"
    assert info.value.loc == ("row", 5, "金额")
    assert info.value.line == 5


def test_exponent_amount_is_rejected(ctx: AdapterContext) -> None:
    with pytest.raises(AdapterError) as info:
        csv_bill.adapt(asset("csv", "bill_bad_decimal.csv"), ctx)
    assert (info.value.code, info.value.loc, info.value.line) == ("bad_decimal",
                                                                  ("row", 3, "金额"), 3)
    assert "3.7e1" not in str(info.value)


@pytest.mark.parametrize("text,expected", [
    ("1,280.50", Decimal("1280.50")), ("¥12.5", Decimal("12.5")), ("￥3", Decimal(3)),
    ("88.00元", Decimal("88.00")), ("RMB 1,000,000.00", Decimal("1000000.00")),
    ("9" * 15 + ".99", Decimal("9" * 15 + ".99")),
])
def test_money_forms(text: str, expected: Decimal) -> None:
    assert parse_decimal(text, loc=()) == expected


@pytest.mark.parametrize("text", ["1,28.50", "12.345", "NaN", "inf", "1e3", "", "-", "１２.５x",
                                  "9" * 16 + ".00", "99999999999999999999999999999945.00"])
def test_money_rejects(text: str) -> None:
    with pytest.raises(AdapterError) as info:
        parse_decimal(text, loc=("row", 2, "金额"))
    assert info.value.code == "bad_decimal"


@pytest.mark.parametrize("row,code,column", [
    (f"{PID},挂号费,挂号费,2,10.00,25.00,5.00,20.00\n", "amount_mismatch", "金额"),
    (f"{PID},挂号费,挂号费,2,10.00,20.00,5.00,10.00\n", "split_mismatch", "自付"),
    (f"{PID},,挂号费,2,10.00,20.00,5.00,15.00\n", "missing_value", "项目名称"),
    (f"{PID},挂号费,挂号费,2,10.00,,5.00,15.00\n", "missing_value", "金额"),
    ("440306199203154568,挂号费,挂号费,1,10.00,10.00,0,10.00\n", "invalid_resident_id",
     "身份证号"),
])
def test_row_errors_name_row_and_column(ctx: AdapterContext, row: str, code: str,
                                        column: str) -> None:
    error = error_of(HEADER + row, ctx)
    assert (error.code, error.loc, error.line) == (code, ("row", 2, column), 2)
    assert PID not in str(error) and PID not in dumped(error.to_dict())


def test_one_split_column_implies_the_other(ctx: AdapterContext) -> None:
    text = "身份证号,项目名称,金额,个人自付\n" f"{PID},药费,100.00,30.00\n"
    item = adapt_text(text, ctx)["body"]["items"][0]
    assert (item["self_pay"], item["insurer_paid"]) == ("30.00", "70.00")


def test_bill_without_split_has_amount_totals_only(ctx: AdapterContext) -> None:
    body = adapt_text(f"身份证号,项目名称,金额\n{PID},药费,100\n{PID},床位费,50.5\n", ctx)["body"]
    assert body["totals"] == {"amount": "150.50"}
    assert "self_pay" not in body["items"][0]


def test_subtotal_rows_are_skipped_and_gb18030_works(ctx: AdapterContext) -> None:
    text = ("住院号：A1\n项目名称,类别,金额\n药费甲,西药费,10\n药费乙,西药费,5\n"
            "小计,西药费,15\n床位费,床位费,20\n合计,,35\n")
    body = adapt_text(text, ctx, "gb18030")["body"]
    assert [i["description"] for i in body["items"]] == ["药费甲", "药费乙", "床位费"]
    assert body["totals"]["amount"] == "35.00"


def test_two_patients_in_one_bill(ctx: AdapterContext) -> None:
    text = HEADER + f"{PID},挂号费,挂号费,1,10,10,0,10\n310104198001011239,药,西药,1,5,5,5,0\n"
    error = error_of(text, ctx)
    assert (error.code, error.loc) == ("inconsistent_subject", ("row", 3, "身份证号"))


def test_missing_subject_header_and_items(ctx: AdapterContext) -> None:
    assert error_of("项目名称,金额\n药费,10\n", ctx).code == "missing_subject"
    assert error_of("姓名,张三\n年龄,40\n", ctx).code == "missing_header"
    assert error_of(f"身份证号：{PID}\n项目名称,金额\n合计,0\n", ctx).code == "no_items"


def test_item_after_totals_and_foreign_currency(ctx: AdapterContext) -> None:
    after = (HEADER + f"{PID},挂号费,挂号费,1,10,10,0,10\n,合计,,,,10,0,10\n"
             f"{PID},药,西药,1,5,5,5,0\n")
    assert error_of(after, ctx).code == "row_after_totals"
    usd = f"币种：USD\n身份证号：{PID}\n项目名称,金额\n药费,10\n"
    error = error_of(usd, ctx)
    assert (error.code, error.line) == ("unsupported_currency", 1)


def test_undecodable_bytes(ctx: AdapterContext) -> None:
    with pytest.raises(AdapterError) as info:
        csv_bill.adapt(b"\xff\xfe\xff\x80\x80", ctx)
    assert info.value.code == "bad_encoding"


def test_detect() -> None:
    for name in ("bill_utf8_bom.csv", "bill_gbk.csv", "bill_english.csv"):
        assert csv_bill.detect(asset("csv", name))
    assert not csv_bill.detect(asset("police", "accident_zh.json"))
    assert not csv_bill.detect(b"a,b,c\n1,2,3\n")
    assert not csv_bill.detect(b"\xff\xfe\x00")


# Exports from the first cut of this adapter (tests/assets/csv/bill_zh_*.csv, bill_en_bom.tsv)
ZH_ID = "11010519491231002X"


@pytest.mark.parametrize("name", ["bill_zh_utf8.csv", "bill_zh_gbk.csv"])
def test_same_bill_in_utf8_and_gbk(ctx: AdapterContext, name: str) -> None:
    packet = csv_bill.adapt(asset("csv", name), ctx)[0]
    assert packet.body["invoice_number"] == "NO.2026-000123"
    assert packet.body["items"][0] == {"description": "冠脉支架", "category": "材料",
                                       "quantity": "1", "unit_price": "12800.00",
                                       "amount": "12800.00",
                                       "self_pay": "3840.00", "insurer_paid": "8960.00"}
    assert packet.body["totals"] == {"amount": "14000.00", "self_pay": "4200.00",
                                     "insurer_paid": "9800.00"}
    assert packet.subject == pseudonymise("cn_resident_id", ZH_ID)
    assert ZH_ID not in dumped(packet.to_obj())


def test_english_tsv_with_bom(ctx: AdapterContext) -> None:
    packet = csv_bill.adapt(asset("csv", "bill_en_bom.tsv"), ctx)[0]
    assert [i["quantity"] for i in packet.body["items"]] == ["1", "2"]
    assert packet.body["totals"]["amount"] == "521.00"
    assert packet.subject == pseudonymise(f"mrn:{ISSUER}", "A1234567")


def test_preamble_identifier_errors_name_the_key_as_written(ctx: AdapterContext) -> None:
    error = error_of("身份证号：110105194912310021\n项目名称,金额\n药费,10\n", ctx)
    assert (error.code, error.loc, error.line) == ("invalid_resident_id",
                                                   ("row", 1, "身份证号"), 1)
    assert "110105194912310021" not in str(error)


def test_oversized_input_refused(ctx: AdapterContext) -> None:
    with pytest.raises(AdapterError) as info:
        csv_bill.adapt(b"a" * (21 << 20), ctx)
    assert info.value.code == "too_large"


def test_four_place_amounts_are_kept_exact_and_checked_at_that_precision(
        ctx: AdapterContext) -> None:
    body = csv_bill.adapt(asset("csv", "bill_zh_four_places.csv"), ctx)[0].to_obj()["body"]
    first = body["items"][0]
    assert (first["quantity"], first["unit_price"], first["amount"]) == ("0.3333", "2.56",
                                                                         "0.8532")
    assert (first["self_pay"], first["insurer_paid"]) == ("0.256", "0.5972")
    assert body["totals"] == {"amount": "1203.6032", "self_pay": "360.256",
                              "insurer_paid": "843.3472"}


@pytest.mark.parametrize("row,code", [
    ("阿莫西林胶囊,西药费,0.3333,2.5600,0.8534,0.2560,0.5974\n", "amount_mismatch"),
    ("阿莫西林胶囊,西药费,0.3333,2.5600,0.8532,0.2560,0.5974\n", "split_mismatch"),
    ("阿莫西林胶囊,西药费,0.3333,2.5600,0.85321,0.2560,0.59721\n", "bad_decimal"),
])
def test_four_place_rows_are_checked_to_the_last_place(ctx: AdapterContext, row: str,
                                                       code: str) -> None:
    text = f"身份证号：{PID}\n项目名称,类别,数量,单价,金额,自付,医保支付\n{row}"
    assert error_of(text, ctx).code == code


def test_a_totals_row_in_fen_under_four_place_items_is_checked_to_the_fen(
        ctx: AdapterContext) -> None:
    items = (f"身份证号：{PID}\n项目名称,类别,数量,单价,金额\n"
             "阿莫西林胶囊,西药费,0.3333,2.5600,0.8532\n床位费,床位费,1,10.00,10.00\n")
    assert adapt_text(items + "合计,,,,10.85\n", ctx)["body"]["total"] == "10.8532"
    assert error_of(items + "合计,,,,10.87\n", ctx).code == "total_mismatch"


NHSA_HEADER = ("费用明细流水号,医疗目录编码,医药机构目录编码,数量,单价,明细项目费用总额,"
               "全自费金额,超限价金额,先行自付金额,符合政策范围金额\n")


def test_nhsa_2301_fee_details_keep_codes_and_policy_parts(ctx: AdapterContext) -> None:
    """The national medical-insurance fee-detail upload (2301) as a CSV bill: catalogue codes
    stand in for names, six-place unit prices, policy parts kept and summed."""
    body = csv_bill.adapt(asset("csv", "bill_nhsa_2301.csv"), ctx)[0].to_obj()["body"]
    first, _, third = body["items"]
    assert (first["line_id"], first["code"], first["institution_code"]) == (
        "FD202404010001", "XJ01CAA040A001010100446", "YP0001233")
    assert (first["unit_price"], first["pre_self_pay"], first["in_scope"]) == (
        "12.56", "2.51", "22.61")
    assert "description" not in third and third["fully_self_paid"] == "380.00"
    assert body["totals"] == {"amount": "555.12", "fully_self_paid": "380.00",
                              "over_limit": "10.00", "pre_self_pay": "2.51",
                              "in_scope": "162.61"}


@pytest.mark.parametrize("row,code,column", [
    ("FD1,X1,Y1,1.0000,10.000000,10.00,12.00,0.00,0.00,0.00\n", "policy_amount_exceeds",
     "全自费金额"),
    ("FD1,X1,Y1,1.0000,10.0000001,10.00,0.00,0.00,0.00,10.00\n", "bad_decimal", "单价"),
    ("FD1,,Y1,1.0000,10.000000,10.00,0.00,0.00,0.00,10.00\n", "missing_value", "医疗目录编码"),
])
def test_nhsa_2301_rows_are_checked(ctx: AdapterContext, row: str, code: str,
                                    column: str) -> None:
    exc = error_of(f"身份证号：{PID}\n{NHSA_HEADER}{row}", ctx)
    assert (exc.code, exc.loc[2]) == (code, column)


def test_nhsa_2301_totals_row_is_checked_on_the_policy_columns(ctx: AdapterContext) -> None:
    rows = "FD1,X1,Y1,1.0000,10.000000,10.00,0.00,0.00,1.00,9.00\n"
    exc = error_of(f"身份证号：{PID}\n{NHSA_HEADER}{rows}合计,,,,,10.00,0.00,0.00,1.00,8.00\n",
                   ctx)
    assert (exc.code, exc.loc[2]) == ("total_mismatch", "符合政策范围金额")
