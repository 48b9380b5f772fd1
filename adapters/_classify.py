"""Claim material types from document text: weighted Chinese and English keywords.

A transparent scorer rather than a model: every decision can be explained by the keywords
it matched, runs in microseconds and needs no weights from anywhere. Text is compared
with all whitespace removed and case folded, because OCR of Chinese scatters spaces
between characters. Words in the first lines (where a document's title is) count double.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

DOC_TYPES = ("invoice", "discharge_summary", "diagnosis_certificate", "lab_report",
             "accident_determination", "id_card", "bank_card", "death_certificate", "other")

TITLE_CHARS = 120
"""How much of the start of the text counts as the title zone."""

# (keyword, weight): 3 = a title phrase only this document has; 1 = a supporting word.
KEYWORDS: dict[str, tuple[tuple[str, int], ...]] = {
    "invoice": (("医疗收费票据", 3), ("医疗门诊收费票据", 3), ("住院收费票据", 3),
                ("门诊收费票据", 3), ("电子票据", 2), ("发票", 2), ("费用清单", 3),
                ("票据号码", 2), ("收费项目", 1), ("医保统筹支付", 2), ("统筹支付", 1),
                ("个人自付", 1), ("个人自费", 1), ("合计", 1), ("金额", 1), ("invoice", 3),
                ("receipt", 2), ("amountdue", 1), ("itemisedbill", 3), ("itemizedbill", 3)),
    "discharge_summary": (("出院小结", 3), ("出院记录", 3), ("出院诊断", 2), ("入院诊断", 1),
                          ("入院日期", 1), ("出院日期", 1), ("住院天数", 1), ("诊疗经过", 2),
                          ("出院医嘱", 2), ("入院情况", 1), ("dischargesummary", 3),
                          ("hospitalcourse", 2), ("dischargediagnosis", 2)),
    "diagnosis_certificate": (("诊断证明书", 3), ("诊断证明", 3), ("疾病证明书", 3),
                              ("建议休息", 2), ("建议全休", 2), ("特此证明", 1),
                              ("医师签名", 1), ("medicalcertificate", 3),
                              ("diagnosiscertificate", 3), ("sickleave", 2)),
    "lab_report": (("检验报告单", 3), ("检验报告", 3), ("检验科", 2), ("参考区间", 2),
                   ("参考范围", 2), ("检验项目", 2), ("标本", 1), ("血常规", 2), ("尿常规", 2),
                   ("生化", 1), ("送检", 1), ("laboratoryreport", 3), ("labreport", 3),
                   ("referencerange", 2), ("specimen", 1)),
    "accident_determination": (("道路交通事故认定书", 3), ("交通事故认定书", 3),
                               ("事故认定书", 3), ("交通警察", 1), ("交通管理", 1),
                               ("当事人", 1), ("主要责任", 2), ("次要责任", 2),
                               ("同等责任", 2), ("全部责任", 2), ("号牌号码", 2),
                               ("accidentdetermination", 3), ("trafficaccident", 2),
                               ("liability", 1)),
    "id_card": (("居民身份证", 3), ("公民身份号码", 3), ("签发机关", 2), ("有效期限", 1),
                ("民族", 1), ("住址", 1), ("出生", 1), ("residentidentitycard", 3),
                ("identitycard", 2)),
    "bank_card": (("银联", 2), ("unionpay", 2), ("借记卡", 3), ("信用卡", 3), ("储蓄卡", 3),
                  ("银行卡", 3), ("银行", 1), ("debit", 2), ("credit", 1), ("validthru", 2),
                  ("cardnumber", 1)),
    "death_certificate": (("死亡医学证明", 3), ("死亡证明", 3), ("直接死因", 2),
                          ("根本死因", 2), ("死亡原因", 2), ("死亡日期", 2),
                          ("deathcertificate", 3), ("causeofdeath", 2),
                          ("dateofdeath", 2)),
}
_NORMALISED = {kind: tuple((k.casefold(), w) for k, w in words)
               for kind, words in KEYWORDS.items()}
_CARD_NUMBER = re.compile(r"(?<!\d)\d{16,19}(?!\d)")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Classification:
    doc_type: str
    confidence: float
    """0..1; rounded to two places (no floats reach packets: see :func:`confidence_str`)."""
    matched: tuple[str, ...]


def normalise(text: str) -> str:
    """NFKC, case-folded, with every whitespace character removed."""
    return _SPACE.sub("", unicodedata.normalize("NFKC", text)).casefold()


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def scores(text: str) -> dict[str, tuple[int, tuple[str, ...]]]:
    """Score of each type with the keywords that produced it."""
    flat = normalise(text)
    title = flat[:TITLE_CHARS]
    result: dict[str, tuple[int, tuple[str, ...]]] = {}
    for kind, words in _NORMALISED.items():
        score, hits = 0, []
        for word, weight in words:
            if word in flat:
                score += weight * (2 if word in title else 1)
                hits.append(word)
        if kind == "bank_card" and any(_luhn_ok(m) for m in _CARD_NUMBER.findall(flat)):
            score += 2
            hits.append("<luhn-valid card number>")
        result[kind] = (score, tuple(hits))
    return result


def classify(text: str) -> Classification:
    """Best type and a confidence from the margin over the runner-up.

    ``confidence = best / (best + runner_up + 2)``: one strong title phrase alone gives
    about 0.75, a tie gives under 0.5. No text at all is ``other`` with confidence 0; text
    with no keyword is ``other`` with 0.5 (it is likely, not certain, not claim material).
    """
    if not text.strip():
        return Classification("other", 0.0, ())
    ranked = sorted(scores(text).items(), key=lambda kv: kv[1][0], reverse=True)
    (best, (top, hits)), (_, (second, _)) = ranked[0], ranked[1]
    if top < 2:
        return Classification("other", 0.5, ())
    return Classification(best, round(top / (top + second + 2), 2), hits)


def confidence_str(value: float) -> str:
    """Packet bodies hold no floats: the confidence travels as a decimal string."""
    return f"{value:.2f}"
