"""CSV itemised bills: encodings, exact money, cross-checks, located errors, fuzzing, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from adapters import AdapterContext, adapt_bytes, detect_format
from adapters.csv_bill import adapt
from gateway.cli import app
from gateway.errors import AdapterError
from gateway.types import hex32, member_id

CTX = AdapterContext(issuer=hex32(member_id("hospital.test")), file="bill.csv")
RAW_ID = "11010519491231002X"
ZH = Path(__file__).parents[1] / "assets" / "csv" / "bill_zh_utf8.csv"
GBK = ZH.with_name("bill_zh_gbk.csv")
EN = ZH.with_name("bill_en_bom.tsv")


@pytest.mark.parametrize("path", [ZH, GBK], ids=["utf8", "gbk"])
def test_chinese_export_maps_to_invoice(path: Path) -> None:
    [packet] = adapt(path.read_bytes(), CTX)
    body = packet.body
    assert packet.kind == "hospital.invoice" and body["invoice_number"] == "NO.2026-000123"
    assert body["items"][0] == {"name": "冠脉支架", "category": "材料", "quantity": "1",
                                "unit_price": "12800.00", "amount": "12800.00",
                                "self_pay": "3840.00", "insurer_paid": "8960.00"}
    assert body["totals"] == {"amount": "14000.00", "self_pay": "4200.00",
                              "insurer_paid": "9800.00"}
    assert RAW_ID not in json.dumps(packet.to_obj(), ensure_ascii=False)
    assert packet.source is not None and packet.source.format == "csv_bill"


def test_same_patient_same_pseudonym_across_encodings() -> None:
    assert adapt(ZH.read_bytes(), CTX)[0].subject == adapt(GBK.read_bytes(), CTX)[0].subject


def test_english_tsv_with_bom_and_mrn() -> None:
    assert detect_format(EN.read_bytes()) == "csv_bill"
    [packet] = adapt_bytes(EN.read_bytes(), CTX)
    assert [i["quantity"] for i in packet.body["items"]] == ["1", "2"]
    assert packet.body["totals"]["amount"] == "521.00"


def _bill(rows: str, pre: str = f"身份证号：{RAW_ID}\n") -> bytes:
    return (pre + "项目名称,数量,单价,金额,自付,医保支付\n" + rows).encode()


@pytest.mark.parametrize(
    ("raw", "code", "loc"),
    [
        (_bill("药品,2,10.00,25.00,,\n"), "amount_mismatch", ("row", 3, "amount")),
        (_bill("药品,1,10.00,10.00,5.00,6.00\n"), "split_mismatch", ("row", 3, "self_pay")),
        (_bill("药品,1,10.00,十元,,\n"), "bad_decimal", ("row", 3, "amount")),
        (_bill("药品,1,10.00,10.00,,\n合计,,,99.00,,\n"), "total_mismatch", ("totals", "amount")),
        (_bill("药品,1,10.00,10.00,,\n", pre=""), "missing_identifier", ("preamble",)),
        (_bill("药品,1,10.00,10.00,,\n", pre="身份证号：110105194912310021\n"),
         "invalid_resident_id", ("preamble", "身份证号")),
        (b"name,price\nx,1\n", "missing_header", ()),
        (_bill(""), "no_items", ()),
        (b"\xff\xfe\x00\xd8bad", "bad_encoding", ()),
    ],
)
def test_errors_are_located_and_hold_no_patient_data(raw: bytes, code: str,
                                                     loc: tuple[object, ...]) -> None:
    with pytest.raises(AdapterError) as err:
        adapt(raw, CTX)
    assert err.value.code == code and tuple(err.value.loc) == loc
    assert RAW_ID not in str(err.value) and "110105194912310021" not in str(err.value)


def test_oversized_input_refused_quickly() -> None:
    with pytest.raises(AdapterError) as err:
        adapt(b"a" * (6 << 20), CTX)
    assert err.value.code == "too_large"


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_only_raise_adapter_errors(raw: bytes) -> None:
    try:
        adapt(raw, CTX)
    except AdapterError:
        pass


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_mutated_bills_only_raise_adapter_errors(data: st.DataObject) -> None:
    raw = bytearray(ZH.read_bytes())
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    try:
        adapt(bytes(raw), CTX)
    except AdapterError:
        pass


def test_cli_batch_reports_every_failure_and_keeps_the_good(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(_bill("药品,2,10.00,25.00,,\n"))
    missing = tmp_path / "missing.csv"
    result = CliRunner().invoke(app, ["adapt", str(ZH), str(bad), str(missing), str(EN)])
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert [Path(o["file"]).name for o in out] == [ZH.name, EN.name]
    assert "bad.csv:line 3:row/3/amount: amount_mismatch" in result.stderr
    assert "missing.csv" in result.stderr and "Traceback" not in result.stderr
    assert RAW_ID not in result.stdout + result.stderr


def test_cli_list_names_formats() -> None:
    result = CliRunner().invoke(app, ["adapt", "--list"])
    assert result.exit_code == 0 and "csv_bill" in result.stdout
