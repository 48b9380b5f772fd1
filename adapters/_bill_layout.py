"""The vocabulary of bill exports: header names, preamble keys, totals markers.

Kept apart from the CSV reader so that each new hospital's dialect is one alias line here.
Names are compared after :func:`adapters._values.norm_key` (NFKC, case-folded, spaces and
hyphens as ``_``, none between CJK characters), so ``医保 支付`` equals ``医保支付`` and
``Unit Price`` equals ``unit_price``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from adapters._values import norm_key

HEADER_SEARCH_ROWS = 40
"""The header row must be among the first rows; the rest before it is preamble."""

NumberFn = Callable[..., Decimal | None]
POLICY_FIELDS = ("fully_self_paid", "over_limit", "pre_self_pay", "in_scope")
"""Medical-insurance policy parts of an item's amount (2301's 全自费, 超限价, 先行自付 and
符合政策范围金额), kept as the source states them."""

_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("项目名称", "收费项目", "项目", "名称", "药品/项目名称", "费用名称", "item",
             "item_name", "description", "service", "医疗目录名称", "医药机构目录名称",
             "医保目录名称", "med_list_name", "medins_list_name", "hilist_name"),
    "category": ("类别", "费用类别", "项目类别", "收费类别", "分类", "category", "type"),
    "quantity": ("数量", "quantity", "qty", "count", "cnt"),
    "unit_price": ("单价", "单价(元)", "unit_price", "price", "unit_cost", "pric"),
    "amount": ("金额", "金额(元)", "总金额", "费用", "amount", "total_amount", "line_total",
               "明细项目费用总额", "det_item_fee_sumamt"),
    # the national medical-insurance fee-detail upload (interface 2301) and its answer
    "line_id": ("费用明细流水号", "feedetl_sn"),
    "code": ("医疗目录编码", "med_list_codg"),
    "institution_code": ("医药机构目录编码", "medins_list_codg"),
    "fully_self_paid": ("全自费金额", "fulamt_ownpay_amt"),
    "over_limit": ("超限价金额", "overlmt_amt"),
    "pre_self_pay": ("先行自付金额", "preselfpay_amt"),
    "in_scope": ("符合政策范围金额", "inscp_scp_amt"),
    "self_pay": ("自付", "自付金额", "个人自付", "个人支付", "自付(元)", "self_pay",
                 "patient_pay", "patient_paid", "out_of_pocket"),
    "insurer_paid": ("医保支付", "统筹支付", "医保统筹支付", "基金支付", "医保(元)",
                     "医保统筹", "insurer_paid", "covered", "insurance_paid", "insurer"),
    "resident_id": ("身份证号", "身份证号码", "公民身份号码", "证件号码", "resident_id",
                    "id_number", "national_id", "certno"),
    # the rest of a 2301 fee-detail line that a bill keeps (docs/adapters/csv_bill.md, JSON)
    "insured_person": ("人员编号", "psn_no"),
    "visit_id": ("就诊id", "mdtrt_id"),
    "time": ("费用发生时间", "fee_ocur_time"),
    "original_line_id": ("原费用流水号", "init_feedetl_sn"),
    "med_type": ("医疗类别", "med_type"),
    "mrn": ("住院号", "病案号", "患者id", "病人id", "门诊号", "patient_id", "mrn",
            "medical_record_number", "inpatient_number"),
    "patient_name": ("姓名", "患者姓名", "病人姓名", "patient_name", "patient"),
    "invoice_number": ("发票号", "发票号码", "票据号", "票据号码", "invoice_number",
                       "invoice_no", "invoice"),
    "admission_date": ("入院日期", "入院时间", "admission_date", "admitted"),
    "discharge_date": ("出院日期", "出院时间", "discharge_date", "discharged"),
    "currency": ("币种", "currency"),
}
ALIASES: dict[str, str] = {norm_key(a): key for key, names in _ALIASES.items() for a in names}
"""Normalised header or preamble key -> canonical field name."""

ITEM_FIELDS = ("name", "category", "quantity", "unit_price", "amount", "self_pay",
               "insurer_paid", "line_id", "code", "institution_code", *POLICY_FIELDS)
ROW_CONSTANT_FIELDS = ("resident_id", "mrn", "patient_name", "invoice_number",
                       "admission_date", "discharge_date", "currency")
"""Columns that describe the whole bill; repeated on each row by some exports."""

TOTAL_MARKERS = ("合计", "总计", "总金额", "费用合计", "合计金额", "total", "totals",
                 "grand_total", "sum")
SUBTOTAL_MARKERS = ("小计", "subtotal", "sub_total")
_KEY_VALUE = re.compile(r"^\s*([^:：]{1,40}?)\s*[:：]\s*(.*?)\s*$")
_CURRENCIES = {"cny": "CNY", "rmb": "CNY", "人民币": "CNY", "元": "CNY"}


@dataclass(frozen=True)
class Header:
    """The header row: where it is and which column holds which canonical field."""

    line: int
    columns: dict[str, int]
    names: dict[str, str]
    """Canonical field -> the header text as written (for error locations)."""

    @property
    def split(self) -> bool:
        return "self_pay" in self.columns or "insurer_paid" in self.columns


def header_of(line: int, cells: list[str]) -> Header | None:
    """A :class:`Header` if ``cells`` name an amount column and an item name or catalogue code
    (2301 fee details carry codes, not names)."""
    columns: dict[str, int] = {}
    names: dict[str, str] = {}
    for index, cell in enumerate(cells):
        key = ALIASES.get(norm_key(cell)) if cell else None
        if key is None or key in columns:
            continue
        columns[key] = index
        names[key] = cell
    if not ("name" in columns or "code" in columns) or "amount" not in columns:
        return None
    return Header(line=line, columns=columns, names=names)


def read_meta(cells: list[str], line: int, meta: dict[str, tuple[str, int, str]]) -> bool:
    """Collect ``key: value`` cells (or a ``key, value`` row) of known keys into ``meta``.

    ``meta`` maps a canonical key to (value, line, key as written), for error locations.

    Returns whether the row was blank or metadata, so that footers can be told from items.
    Unknown keys (titles, printing dates, names) are ignored: they never reach a packet.
    """
    filled = [c for c in cells if c]
    if not filled:
        return True
    pairs: list[tuple[str, str]] = []
    for cell in filled:
        match = _KEY_VALUE.match(cell)
        if match:
            pairs.append((match[1], match[2]))
    if not pairs and len(filled) == 2:
        pairs.append((filled[0].rstrip(":："), filled[1]))
    if not pairs:
        return len(filled) == 1  # a title line
    for raw_key, value in pairs:
        key = ALIASES.get(norm_key(raw_key))
        if key in ROW_CONSTANT_FIELDS and value:
            meta.setdefault(key, (value, line, raw_key.strip()))
    return True


def _marker(cells: list[str], header: Header, markers: tuple[str, ...]) -> bool:
    name_index = header.columns.get("name", header.columns.get("code", 0))
    candidates = [c for c in cells[: name_index + 1] if c][:2]
    for cell in candidates:
        key = norm_key(re.sub(r"[(（].*?[)）]|[:：]", "", cell))
        if key in markers:
            return True
    return False


def is_total(cells: list[str], header: Header) -> bool:
    """A totals row: 合计/总计/Total in the item name column or a cell before it."""
    return _marker(cells, header, TOTAL_MARKERS)


def is_subtotal(cells: list[str], header: Header) -> bool:
    """Subtotal rows (小计) repeat item sums per category and are skipped."""
    return _marker(cells, header, SUBTOTAL_MARKERS)


def norm_currency(text: str) -> str:
    """``人民币``/``RMB``/``CNY`` -> ``CNY``; anything else upper-cased as written."""
    key = norm_key(text)
    return _CURRENCIES.get(key, text.strip().upper())
