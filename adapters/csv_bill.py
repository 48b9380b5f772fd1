"""Itemised hospital bills as CSV exports (住院费用清单) -> ``hospital.invoice`` packets.

Reads what Chinese hospital information systems export: UTF-8 with or without a BOM or
GBK/GB18030 (RFC 4180 quoting; comma, tab or semicolon delimiters, found by locating the
header row), an optional preamble of ``key: value`` lines, Chinese or English headers, and
an optional totals row (合计/总计/Total). Amounts stay exact decimals; every row is
cross-checked (quantity x unit price = amount, self-pay + insurer-paid = amount) and the
totals row against the items. Errors carry ``loc=("row", N, column)`` and ``line=N``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from adapters import _bill_layout as layout
from adapters._values import (
    check_size,
    clean_text,
    decimal_str,
    parse_date,
    parse_decimal,
    source_ref,
    subject_of,
)
from adapters.pseudonym import pseudonymise
from adapters.registry import Adapter, AdapterContext, register
from gateway.core.errors import AdapterError
from gateway.core.packet import Packet, new_packet

FORMAT = "csv_bill"
TOLERANCE = Decimal("0.01")
"""Rounding slack for row and total cross-checks of amounts written in fen (two places)."""
AMOUNT_PLACES = 4
"""Hospital information systems write some amounts to four places (``0.8532``): kept exact."""
PRICE_PLACES = 6
"""Unit prices: the medical-insurance interfaces carry six places (2301 ``pric`` is 16,6)."""
MAX_ROWS = 100_000

Row = tuple[int, list[str]]


@dataclass
class _Bill:
    """What has been read so far; items are already cross-checked."""

    meta: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    items: list[dict[str, str]] = field(default_factory=list)
    amount: Decimal = Decimal(0)
    self_pay: Decimal = Decimal(0)
    insurer_paid: Decimal = Decimal(0)
    split: bool = False
    policy: dict[str, Decimal] = field(default_factory=dict)


def decode(raw: bytes) -> str:
    """UTF-8 (BOM optional) first, then GB18030, the superset of GBK and GB2312."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise AdapterError("file is neither UTF-8 nor GBK/GB18030 text", code="bad_encoding")


def read_rows(text: str, delimiter: str, limit: int | None = None) -> Iterator[Row]:
    """CSV records with the physical line number where each begins."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    start = 1
    try:
        for count, cells in enumerate(reader):
            if limit is not None and count >= limit:
                return
            yield start, [c.strip() for c in cells]
            start = reader.line_num + 1
    except csv.Error as exc:
        raise AdapterError("malformed CSV record", code="bad_csv", loc=("row", start),
                           line=start) from exc


def _find_layout(text: str) -> tuple[str, layout.Header]:
    best: tuple[str, layout.Header] | None = None
    for delimiter in (",", "\t", ";"):
        try:
            for line, cells in read_rows(text, delimiter, limit=layout.HEADER_SEARCH_ROWS):
                header = layout.header_of(line, cells)
                if header and (best is None or len(header.columns) > len(best[1].columns)):
                    best = (delimiter, header)
                if header:
                    break
        except AdapterError:
            continue
    if best is None:
        raise AdapterError("no header row with an item name and an amount column",
                           code="missing_header", loc=("row", 1), line=1)
    return best


def detect(raw: bytes) -> bool:
    """True for text whose first rows contain a bill header row."""
    if raw[:5] == b"%PDF-" or raw.lstrip()[:1] in (b"{", b"[", b"<"):
        return False
    try:
        text = decode(raw[:65536])
    except AdapterError:
        try:
            text = decode(raw[:65535])  # a multi-byte character cut at the boundary
        except AdapterError:
            return False
    try:
        _find_layout(text)
    except AdapterError:
        return False
    return True


def adapt(raw: bytes, ctx: AdapterContext) -> list[Packet]:
    """Map one bill export to one ``hospital.invoice`` packet."""
    check_size(raw)
    text = decode(raw)
    delimiter, header = _find_layout(text)
    bill = _Bill()
    total_row: Row | None = None
    ids: dict[str, tuple[str, int]] = {}
    for line, cells in read_rows(text, delimiter):
        if line < header.line:
            layout.read_meta(cells, line, bill.meta)
        elif line == header.line or not any(cells):
            continue
        elif total_row is not None:
            if not layout.read_meta(cells, line, bill.meta):
                raise AdapterError("item row after the totals row", code="row_after_totals",
                                   loc=("row", line), line=line)
        elif layout.is_total(cells, header):
            total_row = (line, cells)
        elif not layout.is_subtotal(cells, header):
            if len(bill.items) >= MAX_ROWS:
                raise AdapterError(f"more than {MAX_ROWS} item rows", code="too_many_rows",
                                   loc=("row", line), line=line)
            _collect_ids(cells, line, header, ids, bill.meta)
            _add_item(bill, header, line, cells)
    if not bill.items:
        raise AdapterError("bill has no item rows", code="no_items",
                           loc=("row", header.line), line=header.line)
    if total_row is not None:
        _check_totals(bill, header, *total_row)
    subject = _subject(bill.meta, ids, header, ctx)
    return [new_packet(kind="hospital.invoice", issuer=ctx.issuer, subject=subject,
                       body=_body(bill, header), source=source_ref(FORMAT, raw))]


def _cell(cells: list[str], header: layout.Header, name: str) -> str:
    index = header.columns.get(name)
    return cells[index] if index is not None and index < len(cells) else ""


def _collect_ids(cells: list[str], line: int, header: layout.Header,
                 ids: dict[str, tuple[str, int]], meta: dict[str, tuple[str, int, str]]) -> None:
    """Bill-wide columns repeated on each row; an identifier that changes means two patients."""
    for key in layout.ROW_CONSTANT_FIELDS:
        value = _cell(cells, header, key)
        if not value or key == "patient_name":
            continue
        if key not in ("resident_id", "mrn"):
            meta.setdefault(key, (value, line, header.names[key]))
            continue
        seen = ids.setdefault(key, (value, line))
        if "".join(seen[0].split()).upper() != "".join(value.split()).upper():
            raise AdapterError("identifier differs from earlier rows: one bill, one patient",
                               code="inconsistent_subject",
                               loc=("row", line, header.names[key]), line=line)


def _add_item(bill: _Bill, header: layout.Header, line: int, cells: list[str]) -> None:
    def loc(key: str) -> tuple[str | int, ...]:
        return ("row", line, header.names[key])

    def number(key: str, places: int, negative: bool = True) -> Decimal | None:
        text = _cell(cells, header, key)
        if not text:
            return None
        return parse_decimal(text, loc=loc(key), line=line, what=header.names[key],
                             max_places=places, allow_negative=negative)

    name = clean_text(_cell(cells, header, "name"))
    codes = {k: clean_text(_cell(cells, header, k)) for k in ("code", "institution_code",
                                                             "line_id")}
    if not name and not codes["code"]:
        where = "name" if "name" in header.columns else "code"
        raise AdapterError("item name is empty", code="missing_value", loc=loc(where),
                           line=line)
    amount = number("amount", AMOUNT_PLACES)
    if amount is None:
        raise AdapterError("amount is empty", code="missing_value", loc=loc("amount"),
                           line=line)
    item: dict[str, str] = {"description": name} if name else {}  # as HL7 and FHIR bills
    item |= {k: v for k, v in codes.items() if v}
    category = clean_text(_cell(cells, header, "category"))
    if category:
        item["category"] = category
    quantity = number("quantity", 4) if "quantity" in header.columns else None
    unit_price = (number("unit_price", PRICE_PLACES, False) if "unit_price" in header.columns
                  else None)
    if quantity is not None:
        item["quantity"] = decimal_str(quantity)
    if unit_price is not None:
        item["unit_price"] = decimal_str(unit_price, 2)
    if quantity is not None and unit_price is not None:
        slack = precision(amount)
        if abs(quantity * unit_price - amount) > slack:
            raise AdapterError(f"amount differs from quantity x unit price by more than {slack}",
                               code="amount_mismatch", loc=loc("amount"), line=line)
    item["amount"] = amount_str(amount)
    if header.split:
        self_pay, insurer = _split(bill, header, line, cells, amount, number)
        item["self_pay"], item["insurer_paid"] = amount_str(self_pay), amount_str(insurer)
        bill.self_pay += self_pay
        bill.insurer_paid += insurer
        bill.split = True
    for key in layout.POLICY_FIELDS:
        part = number(key, AMOUNT_PLACES) if key in header.columns else None
        if part is None:
            continue
        if abs(part) > abs(amount) + precision(amount, part):
            raise AdapterError(f"{header.names[key]} exceeds the item's amount",
                               code="policy_amount_exceeds", loc=loc(key), line=line)
        item[key] = amount_str(part)
        bill.policy[key] = bill.policy.get(key, Decimal(0)) + part
    bill.amount += amount
    bill.items.append(item)


def _split(bill: _Bill, header: layout.Header, line: int, cells: list[str], amount: Decimal,
           number: layout.NumberFn) -> tuple[Decimal, Decimal]:
    """Self-pay and insurer parts; one column alone implies the other, both must add up."""
    has_self, has_ins = "self_pay" in header.columns, "insurer_paid" in header.columns
    self_pay = number("self_pay", AMOUNT_PLACES) if has_self else None
    insurer = number("insurer_paid", AMOUNT_PLACES) if has_ins else None
    if has_self and has_ins:
        self_pay, insurer = self_pay or Decimal(0), insurer or Decimal(0)
    elif has_self:
        self_pay = self_pay or Decimal(0)
        insurer = amount - self_pay
    else:
        insurer = insurer or Decimal(0)
        self_pay = amount - insurer
    assert self_pay is not None and insurer is not None
    column = "self_pay" if has_self else "insurer_paid"
    slack = precision(amount, self_pay, insurer)
    if abs(self_pay + insurer - amount) > slack or (amount >= 0 and min(self_pay, insurer) < 0):
        raise AdapterError("self-pay plus insurer-paid differs from the amount",
                           code="split_mismatch", loc=("row", line, header.names[column]),
                           line=line)
    return self_pay, insurer


def precision(*values: Decimal) -> Decimal:
    """Cross-check slack at the precision the source wrote: one unit of the last place of the
    coarsest value compared (0.01 for fen, 0.0001 for four places), never more than a fen."""
    places = [-e for v in values
              if isinstance(e := v.as_tuple().exponent, int) and e < 0] or [0]
    return max(Decimal(1).scaleb(-min(max(min(places), 2), AMOUNT_PLACES)),
               Decimal(1).scaleb(-AMOUNT_PLACES))


def amount_str(value: Decimal) -> str:
    """An amount as written, at least two places: ``12.5`` -> ``12.50``, ``0.8532`` kept."""
    return decimal_str(value, 2)


def _check_totals(bill: _Bill, header: layout.Header, line: int, cells: list[str]) -> None:
    sums = {"amount": bill.amount, "self_pay": bill.self_pay, "insurer_paid": bill.insurer_paid,
            **bill.policy}
    for key, total in sums.items():
        text = _cell(cells, header, key)
        if not text:
            continue
        loc = ("row", line, header.names[key])
        stated = parse_decimal(text, loc=loc, line=line, what=header.names[key],
                               allow_negative=True, max_places=AMOUNT_PLACES)
        if abs(stated - total) > precision(stated):
            raise AdapterError(f"totals row {header.names[key]} differs from the sum of the "
                               "items", code="total_mismatch", loc=loc, line=line)


def _subject(meta: dict[str, tuple[str, int, str]], ids: dict[str, tuple[str, int]],
             header: layout.Header, ctx: AdapterContext) -> str:
    """Resident ID (the consortium-wide pseudonym) before the hospital's own record number."""
    for key in ("resident_id", "mrn"):
        if key in ids:
            value, line = ids[key]
            where: tuple[str | int, ...] = ("row", line, header.names[key])
        elif key in meta:
            value, line, written = meta[key]
            where = ("row", line, written)
        else:
            continue
        if key == "resident_id":
            return subject_of(value, ctx=ctx, loc=where, line=line)
        try:
            return pseudonymise(f"mrn:{ctx.issuer}", value, loc=where, key=ctx.pseudonym_key)
        except AdapterError as exc:
            raise AdapterError(exc.msg, code=exc.code, loc=where, line=line) from exc
    raise AdapterError("no patient identifier: add a 身份证号 or 住院号 column or preamble line",
                       code="missing_subject", loc=("row", header.line), line=header.line)


def _body(bill: _Bill, header: layout.Header) -> dict[str, object]:
    totals = {"amount": amount_str(bill.amount)}
    if bill.split:
        totals["self_pay"] = amount_str(bill.self_pay)
        totals["insurer_paid"] = amount_str(bill.insurer_paid)
    totals |= {k: amount_str(v) for k, v in bill.policy.items()}
    body: dict[str, object] = {"currency": "CNY", "items": bill.items,
                               "total": totals["amount"], "totals": totals}
    currency = bill.meta.get("currency")
    if currency and layout.norm_currency(currency[0]) != "CNY":
        raise AdapterError("only CNY bills are supported", code="unsupported_currency",
                           loc=("row", currency[1], currency[2]), line=currency[1])
    if "invoice_number" in bill.meta:
        body["invoice_number"] = clean_text(bill.meta["invoice_number"][0])
    for key in ("admission_date", "discharge_date"):
        if key in bill.meta:
            value, line, written = bill.meta[key]
            body[key] = parse_date(value, loc=("row", line, written), line=line, what=key)
    return body


register(Adapter(
    name=FORMAT,
    description="itemised hospital bill as CSV (Chinese or English headers; UTF-8/GBK)",
    kinds=("hospital.invoice",),
    adapt=adapt,
    detect=detect,
    extensions=(".csv", ".tsv", ".txt"),
))
