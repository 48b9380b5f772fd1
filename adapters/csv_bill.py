"""Itemised hospital bills exported as CSV (Chinese hospital exports and English headers).

Python's ``csv`` module does the parsing (quotes, embedded delimiters); what is
ours is the mapping of header synonyms, exact decimal money (``decimal.Decimal``, written
as strings) and the arithmetic checks a claims engine relies on: quantity x unit price =
amount, self-pay + insurer-paid = amount, and the totals row against the items.
Encodings: UTF-8 with or without BOM, else GB18030 (a superset of GBK).
"""

from __future__ import annotations

import csv
import hashlib
import io
from decimal import Decimal, InvalidOperation
from typing import Any

from adapters.pseudonym import pseudonymise
from adapters.registry import Adapter, AdapterContext, register
from gateway.errors import AdapterError
from gateway.packet import Packet, SourceRef, new_packet

MAX_BYTES = 5 << 20
CENT = Decimal("0.01")
TOLERANCE = Decimal("0.01")
COLUMNS: dict[str, tuple[str, ...]] = {
    "name": ("项目名称", "名称", "收费项目", "item", "item_name", "description"),
    "category": ("类别", "项目类别", "费用类别", "category"),
    "quantity": ("数量", "quantity", "qty"),
    "unit_price": ("单价", "unit_price", "price"),
    "amount": ("金额", "总金额", "amount", "total"),
    "self_pay": ("自付", "自付金额", "个人自付", "self_pay"),
    "insurer_paid": ("医保支付", "医保 支付", "统筹支付", "医保", "insurer_paid", "covered"),
}
TOTAL_LABELS = ("合计", "总计", "total", "grand total")
META: dict[str, tuple[str, ...]] = {
    "cn_resident_id": ("身份证号", "身份证", "id number", "resident id"),
    "mrn": ("住院号", "病历号", "mrn", "medical record number"),
    "invoice_number": ("发票号", "票据号", "invoice number", "invoice_no"),
    "hospital": ("医院", "hospital"),
}
_MONEY = ("unit_price", "amount", "self_pay", "insurer_paid")


def _norm(text: str) -> str:
    return "".join(text.split()).lower().replace("_", "")


_HEADER = {_norm(s): col for col, syns in COLUMNS.items() for s in syns}
_META = {_norm(s): key for key, syns in META.items() for s in syns}


def detect(raw: bytes) -> bool:
    """A CSV whose text names an item column and an amount column."""
    try:
        head = _decode(raw[:4096], strict=False)
    except AdapterError:
        return False
    cells = {_norm(c) for line in head.splitlines()[:15] for c in line.replace("\t", ",")
             .replace(";", ",").split(",")}
    cols = {_HEADER[c] for c in cells if c in _HEADER}
    return "name" in cols and "amount" in cols


def adapt(raw: bytes, ctx: AdapterContext) -> list[Packet]:
    """Map one bill export to one ``hospital.invoice`` packet."""
    if len(raw) > MAX_BYTES:
        raise AdapterError(f"CSV larger than {MAX_BYTES} bytes", code="too_large", file=ctx.file)
    text = _decode(raw)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), _dialect(text)))
    except csv.Error as exc:
        raise AdapterError(f"not parseable as CSV: {exc}", code="malformed_csv",
                           file=ctx.file) from exc
    meta, header_at = _preamble(rows, ctx)
    columns = _columns(rows[header_at], header_at + 1, ctx)
    items, totals_row = _items(rows[header_at + 1:], columns, header_at + 2, ctx)
    totals = _totals(items)
    if totals_row is not None:
        _check_totals(totals, totals_row, ctx)
    subject = _subject(meta, ctx)
    body: dict[str, Any] = {"currency": "CNY", "items": items, "totals": totals}
    if "invoice_number" in meta:
        body["invoice_number"] = meta["invoice_number"][0]
    return [new_packet(kind="hospital.invoice", issuer=ctx.issuer, subject=subject, body=body,
                       source=SourceRef(format="csv_bill",
                                        sha256=hashlib.sha256(raw).hexdigest()))]


def _decode(raw: bytes, strict: bool = True) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    if not strict:
        return raw.decode("utf-8", "replace")
    raise AdapterError("file is neither UTF-8 nor GB18030/GBK text", code="bad_encoding")


def _dialect(text: str) -> type[csv.Dialect]:
    """The delimiter that occurs most in the first lines.

    ``csv.Sniffer`` is misled by the ``key: value`` preamble lines hospital exports carry,
    so only the delimiter is chosen here; quoting stays the csv module's.
    """
    head = "\n".join(text.splitlines()[:20])
    delimiter = max(",\t;", key=head.count)

    class Export(csv.excel):
        pass

    Export.delimiter = delimiter
    return Export


def _preamble(rows: list[list[str]], ctx: AdapterContext) -> tuple[dict[str, tuple[str, int]],
                                                                    int]:
    """``key: value`` lines before the header row, and the header row's index."""
    meta: dict[str, tuple[str, int]] = {}
    for i, row in enumerate(rows[:50]):
        cells = [c.strip() for c in row if c.strip()]
        if any(_HEADER.get(_norm(c)) == "name" for c in cells):
            return meta, i
        for cell in cells if len(cells) != 2 else [f"{cells[0]}:{cells[1]}"]:
            key, sep, value = cell.replace("：", ":").partition(":")
            if sep and _norm(key) in _META:
                meta[_META[_norm(key)]] = (value.strip(), i + 1)
    raise AdapterError("no header row naming the item column (项目名称 / item) in the first "
                       "50 rows", code="missing_header", file=ctx.file)


def _columns(header: list[str], line: int, ctx: AdapterContext) -> dict[str, int]:
    columns: dict[str, int] = {}
    for i, cell in enumerate(header):
        col = _HEADER.get(_norm(cell))
        if col and col not in columns:
            columns[col] = i
    for needed in ("name", "amount"):
        if needed not in columns:
            raise AdapterError(f"header has no {needed} column (one of: "
                               f"{', '.join(COLUMNS[needed])})", code="missing_column",
                               loc=("header", needed), line=line, file=ctx.file)
    return columns


def _items(rows: list[list[str]], columns: dict[str, int], first_line: int,
           ctx: AdapterContext) -> tuple[list[dict[str, str]], dict[str, str] | None]:
    items: list[dict[str, str]] = []
    totals_row = None
    for offset, row in enumerate(rows):
        line = first_line + offset
        if not any(c.strip() for c in row):
            continue
        cell = {col: (row[i].strip() if i < len(row) else "") for col, i in columns.items()}
        if _norm(cell["name"]) in {_norm(t) for t in TOTAL_LABELS}:
            totals_row = {k: _money(v, line, k, ctx) for k, v in cell.items()
                          if k in _MONEY and k != "unit_price" and v}
            continue
        if not cell["name"]:
            raise AdapterError("item name is empty", code="missing_field",
                               loc=("row", line, "name"), line=line, file=ctx.file)
        items.append(_item(cell, line, ctx))
    if not items:
        raise AdapterError("bill has no items", code="no_items", file=ctx.file)
    return items, totals_row


def _item(cell: dict[str, str], line: int, ctx: AdapterContext) -> dict[str, str]:
    item = {"name": cell["name"]}
    if cell.get("category"):
        item["category"] = cell["category"]
    for col in ("quantity", *_MONEY):
        if cell.get(col):
            item[col] = _money(cell[col], line, col, ctx, places=col != "quantity")
    amount = Decimal(item["amount"])
    if "quantity" in item and "unit_price" in item:
        expected = Decimal(item["quantity"]) * Decimal(item["unit_price"])
        if abs(expected - amount) > TOLERANCE:
            raise AdapterError("quantity x unit price does not equal the amount",
                               code="amount_mismatch", loc=("row", line, "amount"), line=line,
                               file=ctx.file)
    if "self_pay" in item and "insurer_paid" in item:
        if abs(Decimal(item["self_pay"]) + Decimal(item["insurer_paid"]) - amount) > TOLERANCE:
            raise AdapterError("self-pay plus insurer-paid does not equal the amount",
                               code="split_mismatch", loc=("row", line, "self_pay"), line=line,
                               file=ctx.file)
    return item


def _money(text: str, line: int, col: str, ctx: AdapterContext, places: bool = True) -> str:
    cleaned = text.replace("¥", "").replace("￥", "").replace("元", "").replace(",", "").strip()
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise AdapterError(f"{col} is not a decimal number", code="bad_decimal",
                           loc=("row", line, col), line=line, file=ctx.file)
    return str(value.quantize(CENT)) if places else format(value.normalize(), "f")


def _totals(items: list[dict[str, str]]) -> dict[str, str]:
    totals: dict[str, str] = {}
    for col in ("amount", "self_pay", "insurer_paid"):
        if all(col in item for item in items):
            totals[col] = str(sum((Decimal(i[col]) for i in items), Decimal(0)).quantize(CENT))
    return totals


def _check_totals(totals: dict[str, str], stated: dict[str, str], ctx: AdapterContext) -> None:
    for col, value in stated.items():
        if col in totals and abs(Decimal(totals[col]) - Decimal(value)) > TOLERANCE:
            raise AdapterError(f"totals row {col} does not equal the sum of the items",
                               code="total_mismatch", loc=("totals", col), file=ctx.file)


def _subject(meta: dict[str, tuple[str, int]], ctx: AdapterContext) -> str:
    if "cn_resident_id" in meta:
        value, line = meta["cn_resident_id"]
        return pseudonymise("cn_resident_id", value, loc=("preamble", "身份证号"),
                            key=ctx.pseudonym_key)
    if "mrn" in meta:
        value, line = meta["mrn"]
        authority = meta.get("hospital", (ctx.issuer, 0))[0]
        return pseudonymise(f"mrn:{authority}", value, loc=("preamble", "住院号"),
                            key=ctx.pseudonym_key)
    raise AdapterError("no patient identifier: add a 身份证号 (resident ID) or 住院号 (MRN) line "
                       "above the header", code="missing_identifier", loc=("preamble",),
                       file=ctx.file)


register(Adapter(name="csv_bill", description="itemised hospital bill as CSV (中文 or English "
                 "headers; UTF-8, BOM or GBK)", kinds=("hospital.invoice",), adapt=adapt,
                 detect=detect, extensions=(".csv", ".tsv")))
