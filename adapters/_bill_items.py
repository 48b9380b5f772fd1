"""Bill lines as every itemised-bill format reads them: one field mapping, one set of checks.

The CSV bill (``csv_bill``) and the medical-insurance fee-detail upload in JSON
(``nhsa_2301``) both read a line through a :class:`Line` (the cell or member under a canonical
field name of ``_bill_layout``) and add it with :func:`add_item`, so a line is checked the same
way whatever it came in: amounts exact at up to four places, unit prices at six, quantity x
unit price = amount and self-pay + insurer-paid = amount at the precision the source wrote, and
no policy part (2301's 全自费, 超限价, 先行自付, 符合政策范围金额) above its line's amount.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from adapters import _bill_layout as layout
from adapters._values import Loc, clean_text, decimal_str, parse_decimal
from gateway.core.errors import AdapterError

AMOUNT_PLACES = 4
"""Hospital information systems write some amounts to four places (``0.8532``): kept exact."""
PRICE_PLACES = 6
"""Unit prices: the medical-insurance interfaces carry six places (2301 ``pric`` is 16,6)."""
QUANTITY_PLACES = 4
"""Quantities: 2301 ``cnt`` is 16,4."""


class Line(Protocol):
    """One bill line of a source: its values by canonical field, and where each is."""

    @property
    def line(self) -> int | None:
        """Physical line number (CSV), or None where the source has no lines."""

    def has(self, key: str) -> bool:
        """Whether the source has this field at all (a column, a member)."""

    def text(self, key: str) -> str:
        """The field as text; '' when absent or empty."""

    def loc(self, key: str) -> Loc:
        """The field's location for errors."""

    def name(self, key: str) -> str:
        """The field's name as the source writes it (for messages)."""


@dataclass
class Bill:
    """What has been read so far; items are already cross-checked."""

    meta: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    items: list[dict[str, str]] = field(default_factory=list)
    amount: Decimal = Decimal(0)
    self_pay: Decimal = Decimal(0)
    insurer_paid: Decimal = Decimal(0)
    split: bool = False
    policy: dict[str, Decimal] = field(default_factory=dict)

    def sums(self) -> dict[str, Decimal]:
        """Every summed field, for checking a source's totals."""
        return {"amount": self.amount, "self_pay": self.self_pay,
                "insurer_paid": self.insurer_paid, **self.policy}

    def totals(self) -> dict[str, str]:
        """The computed totals as packets carry them."""
        out = {"amount": amount_str(self.amount)}
        if self.split:
            out["self_pay"] = amount_str(self.self_pay)
            out["insurer_paid"] = amount_str(self.insurer_paid)
        return out | {k: amount_str(v) for k, v in self.policy.items()}


def number(row: Line, key: str, places: int, negative: bool = True) -> Decimal | None:
    text = row.text(key)
    if not text:
        return None
    return parse_decimal(text, loc=row.loc(key), line=row.line, what=row.name(key),
                         max_places=places, allow_negative=negative)


def add_item(bill: Bill, row: Line) -> dict[str, str]:
    """Read, check and add one line; the item dict is returned for format-specific fields."""
    name = clean_text(row.text("name"))
    codes = {k: clean_text(row.text(k)) for k in ("code", "institution_code", "line_id")}
    if not name and not codes["code"]:
        where = "name" if row.has("name") or not row.has("code") else "code"
        raise AdapterError("item name is empty", code="missing_value", loc=row.loc(where),
                           line=row.line)
    amount = number(row, "amount", AMOUNT_PLACES)
    if amount is None:
        raise AdapterError("amount is empty", code="missing_value", loc=row.loc("amount"),
                           line=row.line)
    item: dict[str, str] = {"description": name} if name else {}  # as HL7 and FHIR bills
    item |= {k: v for k, v in codes.items() if v}
    category = clean_text(row.text("category"))
    if category:
        item["category"] = category
    quantity = number(row, "quantity", QUANTITY_PLACES)
    unit_price = number(row, "unit_price", PRICE_PLACES, False)
    if quantity is not None:
        item["quantity"] = decimal_str(quantity)
    if unit_price is not None:
        item["unit_price"] = decimal_str(unit_price, 2)
    if quantity is not None and unit_price is not None:
        slack = precision(amount)
        if abs(quantity * unit_price - amount) > slack:
            raise AdapterError(f"amount differs from quantity x unit price by more than {slack}",
                               code="amount_mismatch", loc=row.loc("amount"), line=row.line)
    item["amount"] = amount_str(amount)
    if row.has("self_pay") or row.has("insurer_paid"):
        self_pay, insurer = _split(row, amount)
        item["self_pay"], item["insurer_paid"] = amount_str(self_pay), amount_str(insurer)
        bill.self_pay += self_pay
        bill.insurer_paid += insurer
        bill.split = True
    for key in layout.POLICY_FIELDS:
        part = number(row, key, AMOUNT_PLACES)
        if part is None:
            continue
        if abs(part) > abs(amount) + precision(amount, part):
            raise AdapterError(f"{row.name(key)} exceeds the item's amount",
                               code="policy_amount_exceeds", loc=row.loc(key), line=row.line)
        item[key] = amount_str(part)
        bill.policy[key] = bill.policy.get(key, Decimal(0)) + part
    bill.amount += amount
    bill.items.append(item)
    return item


def _split(row: Line, amount: Decimal) -> tuple[Decimal, Decimal]:
    """Self-pay and insurer parts; one field alone implies the other, both must add up."""
    has_self, has_ins = row.has("self_pay"), row.has("insurer_paid")
    self_pay = number(row, "self_pay", AMOUNT_PLACES) if has_self else None
    insurer = number(row, "insurer_paid", AMOUNT_PLACES) if has_ins else None
    if has_self and has_ins:
        self_pay, insurer = self_pay or Decimal(0), insurer or Decimal(0)
    elif has_self:
        self_pay = self_pay or Decimal(0)
        insurer = amount - self_pay
    else:
        insurer = insurer or Decimal(0)
        self_pay = amount - insurer
    column = "self_pay" if has_self else "insurer_paid"
    slack = precision(amount, self_pay, insurer)
    if abs(self_pay + insurer - amount) > slack or (amount >= 0 and min(self_pay, insurer) < 0):
        raise AdapterError("self-pay plus insurer-paid differs from the amount",
                           code="split_mismatch", loc=row.loc(column), line=row.line)
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
