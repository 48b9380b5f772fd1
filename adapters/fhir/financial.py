"""FHIR R4 ExplanationOfBenefit and Coverage -> ``payer.adjudication`` and ``payer.coverage``.

An ExplanationOfBenefit is a payer's decision on a claim: the billed items with, for each, what
was submitted, what the policy found eligible, what it paid (benefit) and what the patient owes
(copay, deductible, coinsurance), and totals and the payment. For a second insurer (China's
commercial supplementary cover after the basic medical insurance, coordination of benefits
anywhere) that decision is evidence in its own right. A Coverage is the policy the claim is made
under. Adjudication categories are named by the HL7 ``adjudication`` code system; the CMS Blue
Button codes that Synthea and Medicare's BB2 API write are mapped onto the same names
(docs/adapters/fhir.md, "ExplanationOfBenefit"). Amounts stay exact decimals; categories are
kept as the payer stated them, and no identity among them is asserted (rules vary by plan).

Personal data: the subscriber, the member number (``identifier``, ``subscriberId``) and a
pharmacy member id (class ``rxid``) leave only as keyed-HMAC pseudonyms; the adapter fills them
in from ``PSEUDONYMISE`` with the context's key. A person as policy holder or payor is named
only by kind.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from adapters._clinical import compact, dec_str
from adapters.fhir import mapping as m
from adapters.fhir.subject import Subject, subject_of
from adapters.fhir.tree import Index, Node
from adapters.fhir.values import amount, concept, when
from gateway.core.errors import AdapterError

PSEUDONYMISE = "_pseudonymise"
"""Body key holding ``{field: Subject}``: identifiers the adapter replaces by pseudonyms."""

_BB = "https://bluebutton.cms.gov/resources/variables/"
CATEGORIES = {
    "submitted": "submitted", "copay": "copay", "eligible": "eligible",
    "deductible": "deductible", "unallocdeduct": "unallocated_deductible",
    "eligpercent": "eligible_percent", "tax": "tax", "benefit": "benefit",
    _BB + "line_sbmtd_chrg_amt": "submitted", _BB + "line_alowd_chrg_amt": "eligible",
    _BB + "line_prvdr_pmt_amt": "benefit", _BB + "line_coinsrnc_amt": "coinsurance",
    _BB + "line_bene_ptb_ddctbl_amt": "deductible",
    _BB + "line_bene_prmry_pyr_pd_amt": "other_payer_paid",
}
"""Adjudication category code -> the name in packets (HL7 codes; CMS Blue Button as Synthea
writes them). Other codes keep their own code (its last path segment)."""
_PERSONS = frozenset({"Patient", "RelatedPerson", "Person"})


def eob_body(eob: Node, index: Index, used: m.Used) -> dict[str, Any]:
    """Items with their adjudications, totals by category, the payment and the coverage."""
    currencies: set[str] = set()
    items = m.claim_items(eob)
    adjudicated: dict[str, Decimal] = {}
    for line, item in zip(items, eob["item"].items(), strict=True):
        currencies.add(line.pop("_currency"))
        found = _categorised(item["adjudication"], currencies, amounts_only=False)
        if found:
            line["adjudication"] = {k: dec_str(v) for k, v in found.items()}
            for key, value in found.items():
                if key != "eligible_percent":
                    adjudicated[key] = adjudicated.get(key, Decimal(0)) + value
    totals = _categorised(eob["total"], currencies, amounts_only=True)
    payment = _payment(eob["payment"], currencies)
    currencies -= {""}
    if len(currencies) > 1:
        raise eob["item"].error("amounts are in more than one currency", "mixed_currency")
    priced = [Decimal(i["amount"]) for i in items if "amount" in i]
    if not priced and not totals and not payment:
        raise eob["total"].error("an ExplanationOfBenefit needs priced items, totals or a "
                                 "payment", "missing_field")
    return compact({
        "use": eob["use"].string(), "outcome": eob["outcome"].string(),
        "claim_type": _code(eob["type"]), "claim": eob["claim"]["reference"].string(),
        "billable_period": _period(eob["billablePeriod"]),
        "insurer": _party(eob["insurer"], index, eob),
        "items": items, "total": dec_str(sum(priced, Decimal(0))) if priced else None,
        "unpriced_items": len(items) - len(priced) or None,
        "adjudicated": {k: dec_str(v) for k, v in adjudicated.items()},
        "totals": {k: dec_str(v) for k, v in totals.items()}, "payment": payment,
        "currency": currencies.pop() if currencies else None,
        "coverage": [_insurance(ins, index, eob) for ins in eob["insurance"].items()],
    })


def _categorised(entries: Node, currencies: set[str], *, amounts_only: bool,
                 ) -> dict[str, Decimal]:
    """Adjudication or total entries by category name; a category twice is an error."""
    out: dict[str, Decimal] = {}
    for entry in entries.items():
        name = category_name(entry["category"])
        value, cur = amount(entry["amount"])
        if value is None and not amounts_only:
            value = entry["value"].dec()  # eligpercent: a ratio, not money
        if value is None or not name:
            continue  # a processing indicator, or a reason without an amount
        if name in out:
            raise entry["category"].error(f"adjudication category {name} given twice",
                                          "duplicate_category")
        out[name] = value
        currencies.add(cur.upper())
    return out


def category_name(node: Node) -> str:
    """The packet name of an adjudication category: HL7 code, Blue Button code, or own code."""
    for coding in node["coding"].items():
        code = coding["code"].string()
        if code:
            return CATEGORIES.get(code, code.rstrip("/").rsplit("/", 1)[-1])
    return node["text"].string().strip().lower().replace(" ", "_")


def _payment(pay: Node, currencies: set[str]) -> dict[str, str]:
    value, cur = amount(pay["amount"])
    adjustment, adj_cur = amount(pay["adjustment"])
    currencies.update({cur.upper(), adj_cur.upper()})
    return compact({"amount": dec_str(value) if value is not None else None,
                    "adjustment": dec_str(adjustment) if adjustment is not None else None,
                    "date": when(pay["date"]), "type": _code(pay["type"])})


def _insurance(ins: Node, index: Index, eob: Node) -> dict[str, Any]:
    """One ``insurance`` entry: focal flag and the Coverage's facts when it is in the input."""
    ref = ins["coverage"]
    found = index.lookup(ref, eob)
    facts = coverage_facts(found, index, eob) if found is not None and \
        found["resourceType"].string() == "Coverage" else {}
    return compact({"focal": ins["focal"].boolean(), **facts,
                    "name": ref["display"].string() if not facts else None,
                    "reference": ref["reference"].string() if found is None else None})


def coverage_facts(cov: Node, index: Index, container: Node) -> dict[str, Any]:
    """What a claims engine needs of a policy; nothing that names the person."""
    classes = []
    for cls in cov["class"].items():
        kind = _code(cls["type"])
        classes.append(compact({"type": kind, "name": cls["name"].string(),
                                "value": None if kind == "rxid" else cls["value"].string()}))
    costs = []
    for cost in cov["costToBeneficiary"].items():
        money, cur = amount(cost["valueMoney"])
        qty = cost["valueQuantity"]["value"].dec()
        costs.append(compact({
            "type": _code(cost["type"]), "currency": cur or None,
            "amount": dec_str(money) if money is not None else None,
            "value": dec_str(qty) if qty is not None else None,
            "units": cost["valueQuantity"]["unit"].string()}))
    return compact({
        "status": cov["status"].string(), "type": concept(cov["type"]),
        "payor": [p for p in (_party(r, index, container) for r in cov["payor"].items()) if p],
        "period": _period(cov["period"]), "relationship": _code(cov["relationship"]),
        "dependent": cov["dependent"].string(), "order": cov["order"].text(),
        "network": cov["network"].string(), "class": classes, "cost_to_beneficiary": costs,
    })


def coverage_body(cov: Node, index: Index, used: m.Used) -> dict[str, Any]:
    """A standalone Coverage: its facts, the policy holder's kind, and the subscriber and
    member numbers as identifiers for the adapter to pseudonymise."""
    body = coverage_facts(cov, index, cov)
    del body["status"]  # in body.resource
    holder = cov["policyHolder"]
    if holder.present:
        body["policy_holder"] = compact({"kind": _ref_type(holder, index, cov) or "unknown",
                                         "name": _party(holder, index, cov)})
    pseudo: dict[str, Subject] = {}
    for ident in cov["identifier"].items():
        if ident["value"].string():
            pseudo["member_id"] = (f"mrn:{ident['system'].string() or 'coverage'}",
                                   ident["value"].string(), (ident["value"].ptr,))
            break
    if cov["subscriberId"].string():
        pseudo["subscriber_id"] = ("mrn:coverage-subscriber", cov["subscriberId"].string(),
                                   (cov["subscriberId"].ptr,))
    body.update(_subscriber(cov, index, pseudo))
    if pseudo:
        body[PSEUDONYMISE] = pseudo
    return body


def _subscriber(cov: Node, index: Index, pseudo: dict[str, Subject]) -> dict[str, str]:
    """``subscriber``: ``beneficiary`` when the same person, else a pseudonym to fill in."""
    sub, ben = cov["subscriber"], cov["beneficiary"]
    if not sub.present:
        return {}
    same = sub["reference"].string() and sub["reference"].string() == ben["reference"].string()
    found, target = index.lookup(sub, cov), index.lookup(ben, cov)
    if same or (found is not None and target is not None and found.value is target.value):
        return {"subscriber": "beneficiary"}
    try:
        who, how = subject_of(cov, "subscriber", index, "")
    except AdapterError as exc:  # the subscriber is context: its absence does not sink the policy
        return {"subscriber_from": exc.code}
    if how == "literal_reference":
        return {"subscriber_from": "unresolved_reference"}  # no server scope to pseudonymise by
    pseudo["subscriber"] = who
    return {"subscriber_from": how}


def _party(ref: Node, index: Index, container: Node) -> str | None:
    """An organisation's name (resolved, else the display); a person is never named."""
    if not ref.present:
        return None
    if _ref_type(ref, index, container) in _PERSONS:
        return None
    found = index.resolve_soft(ref, container)
    name = found["name"].string() if found is not None else ""
    return name or ref["display"].string() or None


def _ref_type(ref: Node, index: Index, container: Node) -> str:
    found = index.resolve_soft(ref, container)
    if found is not None:
        return found["resourceType"].string()
    parts = ref["reference"].string().split("/_history/", 1)[0].rstrip("/").split("/")
    return ref["type"].string() or (parts[-2] if len(parts) >= 2 else "")


def _code(node: Node) -> str:
    found = concept(node) or {}
    return found.get("code") or found.get("text", "")


def _period(node: Node) -> dict[str, str]:
    return compact({"start": when(node["start"]), "end": when(node["end"])})


__all__ = ["CATEGORIES", "PSEUDONYMISE", "category_name", "coverage_body", "coverage_facts",
           "eob_body"]
