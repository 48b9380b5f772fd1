"""The front page's cost section (住院费用, WS/T 500.32 §费用章节) -> ``hospital.invoice``.

The national front page (卫医政发〔2011〕84号, revised 2016) lists the stay's charges in ten
classes of 24 categories that add up to 住院总费用 (HDSD00.11.142), with 自付金额
(HDSD00.11.143) beside it and four "of which" lines (临床物理治疗费 within 非手术治疗项目费,
麻醉费 and 手术费 within 手术治疗费, 抗菌药物费用 within 西药费) that are parts of their
category, not additions to it. Observations are recognised by their code in the 住院病案首页基本
数据集 (code system 2.16.156.10011.2.2.4), else by their display name; amounts are MO values,
exact decimals, at most four places.

Checks at the precision the source wrote (one unit of the coarser last place, never more than
a fen): the categories add up to the total (``total_mismatch``), no part exceeds its category
(``part_exceeds_category``), self-pay does not exceed the total (``self_pay_exceeds_total``).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from adapters._clinical import compact
from adapters._values import parse_decimal
from adapters.cda.body import DE_SYSTEM, amount_text, sections
from adapters.cda.tree import El

COST_SYSTEM = "2.16.156.10011.2.2.4"
COST_SECTION = "48768-6"
TOTAL, SELF_PAY, PAYMENT = "HDSD00.11.142", "HDSD00.11.143", "DE07.00.007.00"
MAX_PLACES = 4
_CURRENCIES = frozenset({"", "元", "CNY", "RMB", "人民币"})


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    group: str
    parent: str | None = None
    """Code of the category this line is a part of ("其中"), for the four sub-lines."""


CATEGORIES = tuple(Category(*row) for row in (
    ("HDSD00.11.147", "一般医疗服务费", "综合医疗服务类"),
    ("HDSD00.11.148", "一般治疗操作费", "综合医疗服务类"),
    ("HDSD00.11.145", "护理费", "综合医疗服务类"),
    ("HDSD00.11.146", "其他费用", "综合医疗服务类"),
    ("HDSD00.11.121", "病理诊断费", "诊断类"),
    ("HDSD00.11.123", "实验室诊断费", "诊断类"),
    ("HDSD00.11.124", "影像学诊断费", "诊断类"),
    ("HDSD00.11.122", "临床诊断项目费", "诊断类"),
    ("HDSD00.11.129", "非手术治疗项目费", "治疗类"),
    ("HDSD00.11.130", "临床物理治疗费", "治疗类", "HDSD00.11.129"),
    ("HDSD00.11.131", "手术治疗费", "治疗类"),
    ("HDSD00.11.132", "麻醉费", "治疗类", "HDSD00.11.131"),
    ("HDSD00.11.133", "手术费", "治疗类", "HDSD00.11.131"),
    ("HDSD00.11.055", "康复费", "康复类"),
    ("HDSD00.11.136", "中医治疗费", "中医类"),
    ("HDSD00.11.098", "西药费", "西药类"),
    ("HDSD00.11.099", "抗菌药物费用", "西药类", "HDSD00.11.098"),
    ("HDSD00.11.135", "中成药费", "中药类"),
    ("HDSD00.11.134", "中草药费", "中药类"),
    ("HDSD00.11.115", "血费", "血液和血液制品类"),
    ("HDSD00.11.111", "白蛋白类制品费", "血液和血液制品类"),
    ("HDSD00.11.113", "球蛋白类制品费", "血液和血液制品类"),
    ("HDSD00.11.112", "凝血因子类制品费", "血液和血液制品类"),
    ("HDSD00.11.114", "细胞因子类制品费", "血液和血液制品类"),
    ("HDSD00.11.038", "检查用一次性医用材料费", "耗材类"),
    ("HDSD00.11.040", "治疗用一次性医用材料费", "耗材类"),
    ("HDSD00.11.039", "手术用一次性医用材料费", "耗材类"),
    ("", "其他费", "其他类"),
))
"""Codes as public WS/T 500.32 implementations write them; 其他费 is recognised by name."""
_BY_CODE = {c.code: c for c in CATEGORIES if c.code}
_NAME_ALIASES = {"细胞白类制品费": "细胞因子类制品费", "检查费用": "检查用一次性医用材料费",
                 "治疗用": "治疗用一次性医用材料费", "手术用": "手术用一次性医用材料费",
                 "手术治疗项目费": "手术治疗费", "其他类-其他费": "其他费"}
_BY_NAME = {c.name: c for c in CATEGORIES}


def _category(obs: El) -> Category | None:
    """The category by its dataset code, else (an MO value) by its display name, whose last
    ``-`` part is the category (``诊断类-病理诊断费``)."""
    code, value = obs.child("code"), obs.child("value")
    if code is None:
        return None
    found = _BY_CODE.get(code.attr("code").upper())
    if found is not None:
        return found
    if value is None or value.value_type() != "MO":
        return None
    name = unicodedata.normalize("NFKC", code.attr("displayName")).replace(" ", "")
    for candidate in (name, name.rsplit("-", 1)[-1]):
        candidate = _NAME_ALIASES.get(candidate, candidate)
        if candidate in _BY_NAME:
            return _BY_NAME[candidate]
    return None


def _amount(obs: El) -> tuple[Decimal, El] | None:
    value = obs.child("value")
    if value is None or not value.attr("value") or value.e.get("nullFlavor"):
        return None  # templates leave categories without charges empty
    if value.attr("currency") not in _CURRENCIES:
        raise value.error("only amounts in yuan (元, CNY) are supported", "unsupported_currency",
                          "currency")
    number = parse_decimal(value.attr("value"), loc=(value.where("value"),), what="amount",
                           max_places=MAX_PLACES)
    return number, value


def precision(*values: Decimal) -> Decimal:
    """One unit of the coarsest last place among ``values``: 0.01 in fen, 0.0001 at four
    places; never more than a fen (a source in whole yuan is still checked to the fen)."""
    places = [-e for v in values if isinstance(e := v.as_tuple().exponent, int) and e < 0]
    coarsest = min(max(min(places, default=2), 2), MAX_PLACES)
    return Decimal(1).scaleb(-coarsest)


def invoice(root: El) -> dict[str, Any] | None:
    """The invoice body of the cost section, or None when the document states no costs."""
    lines: dict[str, tuple[Category, Decimal, El]] = {}
    total = self_pay = None
    payment: dict[str, str] = {}
    for section in sections(root):
        for obs in section.descendants("observation"):
            code = obs.child("code")
            key = code.attr("code").upper() if code is not None else ""
            if key == PAYMENT and code is not None and code.attr("codeSystem") == DE_SYSTEM:
                value = obs.child("value")
                payment = compact({"code": value.attr("code"), "text": value.attr(
                    "displayName")}) if value is not None else {}
                continue
            if key in (TOTAL, SELF_PAY):
                found = _amount(obs)
                if key == TOTAL:
                    total = found
                else:
                    self_pay = found
                continue
            category = _category(obs)
            amount = _amount(obs) if category is not None else None
            if category is None or amount is None:
                continue
            if category.name in lines:
                raise obs.error("cost category given twice", "duplicate_category")
            lines[category.name] = (category, *amount)
    if total is None and not lines:
        return None
    return _body(lines, total, self_pay, payment)


def _body(lines: dict[str, tuple[Category, Decimal, El]], total: tuple[Decimal, El] | None,
          self_pay: tuple[Decimal, El] | None, payment: dict[str, str]) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    by_code: dict[str, dict[str, Any]] = {}
    for category, amount, _ in (v for v in lines.values() if v[0].parent is None):
        item = {"description": category.name, "category": category.group,
                "code": category.code or None, "code_system": COST_SYSTEM if category.code
                else None, "amount": amount_text(amount)}
        items.append(compact(item))
        by_code[category.code] = items[-1]
    for category, amount, value in (v for v in lines.values() if v[0].parent is not None):
        parent = lines.get(_BY_CODE[category.parent].name) if category.parent else None
        if parent is None or amount > parent[1] + precision(amount, parent[1]):
            raise value.error(f"{category.name} is a part of {_BY_CODE[category.parent].name}"  # type: ignore[index]
                              " and may not exceed it", "part_exceeds_category", "value")
        by_code[category.parent].setdefault("of_which", []).append(  # type: ignore[index]
            {"description": category.name, "code": category.code,
             "amount": amount_text(amount)})
    body: dict[str, Any] = {"currency": "CNY", "items": items}
    if items:
        summed = sum((v[1] for v in lines.values() if v[0].parent is None), Decimal(0))
        body["total"] = amount_text(summed)
        if total is not None and abs(total[0] - summed) > precision(total[0], summed):
            raise total[1].error("住院总费用 differs from the sum of the cost categories",
                                 "total_mismatch", "value")
    if total is not None:
        body["declared_total"] = amount_text(total[0])
    if self_pay is not None:
        ceiling = total[0] if total is not None else Decimal(body.get("total", "0"))
        if self_pay[0] > ceiling + precision(self_pay[0], ceiling):
            raise self_pay[1].error("自付金额 exceeds the total", "self_pay_exceeds_total",
                                    "value")
        body["self_pay"] = amount_text(self_pay[0])
    if payment:
        body["payment_method"] = payment
    return body
