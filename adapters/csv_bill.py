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
from dataclasses import dataclass

from adapters import _bill_layout as layout
from adapters._bill_items import AMOUNT_PLACES, PRICE_PLACES, Bill, add_item, amount_str, precision
from adapters._values import (
    Loc,
    check_size,
    clean_text,
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
MAX_ROWS = 100_000
__all__ = ["AMOUNT_PLACES", "PRICE_PLACES", "adapt", "amount_str", "decode", "detect",
           "precision", "read_rows"]

Row = tuple[int, list[str]]


@dataclass(frozen=True)
class _CsvLine:
    """One item row seen through its header (adapters._bill_items.Line)."""

    header: layout.Header
    cells: list[str]
    line: int

    def has(self, key: str) -> bool:
        return key in self.header.columns

    def text(self, key: str) -> str:
        return _cell(self.cells, self.header, key)

    def loc(self, key: str) -> Loc:
        return ("row", self.line, self.header.names.get(key, key))

    def name(self, key: str) -> str:
        return self.header.names.get(key, key)


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
    bill = Bill()
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
            add_item(bill, _CsvLine(header, cells, line))
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


def _check_totals(bill: Bill, header: layout.Header, line: int, cells: list[str]) -> None:
    for key, total in bill.sums().items():
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


def _body(bill: Bill, header: layout.Header) -> dict[str, object]:
    totals = bill.totals()
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
