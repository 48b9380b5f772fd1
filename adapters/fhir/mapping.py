"""FHIR R4 resources -> packet bodies (the same body shapes the HL7 v2 adapter builds).

Encounter (+ Condition, Procedure) -> admission or discharge summary; DiagnosticReport
(+ Observation) -> lab report; Claim, Invoice (+ ChargeItem) and ChargeItem -> itemised bill.
Patient demographics never reach a body: only the identifier leaves, as a pseudonym.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from adapters._clinical import compact, dec_str, sum_amounts
from adapters.fhir.tree import Index, Node
from adapters.fhir.values import amount, concept, concept_label, period_or_time, staff, when
from gateway.core.errors import AdapterError

_MAX_MEMBER_DEPTH = 3
_ADDED = frozenset({"base", "surcharge", "tax"})
_SUBTRACTED = frozenset({"discount", "deduction"})


class Used:
    """Resources already folded into a packet, so they are not mapped twice."""

    def __init__(self) -> None:
        self._ids: set[int] = set()

    def add(self, node: Node | None) -> None:
        if node is not None:
            self._ids.add(id(node.value))

    def __contains__(self, node: Node) -> bool:
        return id(node.value) in self._ids


def points_to(index: Index, ref: Node, container: Node, target: Node) -> bool:
    found = index.resolve_soft(ref, container)
    return found is not None and found.value is target.value


def encounter_body(enc: Node, index: Index, used: Used) -> dict[str, Any]:
    """Encounter facts, with the Conditions and Procedures that belong to it."""
    attending = next((p for p in enc["participant"].items()
                      if any(c["code"].string() in ("ATND", "PPRF") for t in p["type"].items()
                             for c in t["coding"].items())), None)
    attending = attending or next(iter(enc["participant"].items()), None)
    location = next(iter(enc["location"].items()), None)
    place = location["location"] if location else enc["location"]
    found_place = index.resolve_soft(place, enc) if location else None
    provider = index.resolve_soft(enc["serviceProvider"], enc)
    hosp = enc["hospitalization"]
    department = compact({
        "service": concept_label(enc["serviceType"]),
        "location": (found_place["name"].string() if found_place else "")
        or place["display"].string(),
        "facility": (provider["name"].string() if provider else "")
        or enc["serviceProvider"]["display"].string(),
    })
    encounter = compact({
        "visit_number": next((i["value"].string() for i in enc["identifier"].items()), ""),
        "status": enc["status"].string(), "patient_class": enc["class"]["code"].string(),
        "encounter_type": concept_label(next(iter(enc["type"].items()), Node(None, ""))),
        "department": department,
        "attending_doctor": staff(attending["individual"], index, enc) if attending else None,
        "admitted_at": when(enc["period"]["start"]), "discharged_at": when(enc["period"]["end"]),
        "admit_source": concept_label(hosp["admitSource"]),
        "discharge_disposition": concept_label(hosp["dischargeDisposition"]),
    })
    diagnoses, procedures = [], []
    for diag in enc["diagnosis"].items():
        found = index.find(diag["condition"], enc, "Condition", "Procedure")
        if found is None:
            continue
        used.add(found)
        role = concept_label(diag["use"])
        if found["resourceType"].string() == "Procedure":
            procedures.append(procedure(found))
        else:
            diagnoses.append(condition(found, role, diag["rank"].text()))
    for cond in index.of_type("Condition"):
        if cond not in used and points_to(index, cond["encounter"], cond, enc):
            used.add(cond)
            diagnoses.append(condition(cond, "", ""))
    for proc in index.of_type("Procedure"):
        if proc not in used and points_to(index, proc["encounter"], proc, enc):
            used.add(proc)
            procedures.append(procedure(proc))
    return compact({"encounter": encounter, "diagnoses": diagnoses, "procedures": procedures})


def condition(cond: Node, role: str, rank: str) -> dict[str, Any]:
    code = concept(cond["code"])
    if code is None:
        raise cond["code"].error("Condition.code is required for a diagnosis", "missing_field")
    return compact({**code, "type": role or concept_label(next(iter(cond["category"].items()),
                                                                Node(None, ""))),
                    "rank": rank, "clinical_status": concept_label(cond["clinicalStatus"]),
                    "time": period_or_time(cond, "onset") or when(cond["recordedDate"])})


def procedure(proc: Node) -> dict[str, Any]:
    code = concept(proc["code"]) or {}
    return compact({**code, "status": proc["status"].string(),
                    "time": period_or_time(proc, "performed")})


def lab_report(report: Node, index: Index, used: Used) -> dict[str, Any]:
    """One DiagnosticReport with its result Observations (resolved, nested members included)."""
    observations = []
    for ref in report["result"].items():
        found = index.find(ref, report, "Observation")
        if found is not None:
            used.add(found)
            observations.append(observation(found, index, used, report, 0))
    return compact({
        "test": concept(report["code"]),
        "category": concept_label(next(iter(report["category"].items()), Node(None, ""))),
        "status": report["status"].string(), "observed_at": period_or_time(report, "effective"),
        "reported_at": when(report["issued"]), "conclusion": report["conclusion"].string(),
        "conclusion_codes": [c for c in map(concept, report["conclusionCode"].items()) if c],
    }) | {"observations": observations}


def observation(obs: Node, index: Index, used: Used, container: Node,
                depth: int) -> dict[str, Any]:
    value, coded, units = _value(obs)
    members = []
    if depth < _MAX_MEMBER_DEPTH:
        for ref in obs["hasMember"].items():
            found = index.find(ref, container, "Observation")
            if found is not None and found.value is not obs.value:
                used.add(found)
                members.append(observation(found, index, used, container, depth + 1))
    components = []
    for comp in obs["component"].items():
        c_value, c_coded, c_units = _value(comp)
        components.append(compact({"code": concept(comp["code"]), "value": c_value,
                                   "value_coded": c_coded, "units": c_units,
                                   "reference_range": _range(comp),
                                   "abnormal_flags": _flags(comp)}))
    return compact({
        "code": concept(obs["code"]), "value": value, "value_coded": coded, "units": units,
        "value_absent": concept_label(obs["dataAbsentReason"]),
        "reference_range": _range(obs), "abnormal_flags": _flags(obs),
        "status": obs["status"].string(), "observed_at": period_or_time(obs, "effective"),
        "components": components, "members": members,
    })


def _value(obs: Node) -> tuple[str | None, dict[str, str] | None, str | None]:
    """Observation.value[x] as text (+ coded value, units); binary kinds are left out."""
    if obs["valueQuantity"].present:
        qty = obs["valueQuantity"]
        number = qty["value"].dec()
        text = None if number is None else qty["comparator"].string() + dec_str(number)
        return text, None, qty["unit"].string() or qty["code"].string() or None
    if obs["valueCodeableConcept"].present:
        code = concept(obs["valueCodeableConcept"])
        return (code or {}).get("text") or (code or {}).get("code"), code, None
    for key in ("valueString", "valueTime", "valueInteger"):
        if obs[key].present:
            return obs[key].text(), None, None
    flag = obs["valueBoolean"].boolean()
    if flag is not None:
        return str(flag).lower(), None, None
    if obs["valueDateTime"].present:
        return when(obs["valueDateTime"]), None, None
    if obs["valueRange"].present:
        return _bounds(obs["valueRange"]), None, obs["valueRange"]["low"]["unit"].string() or None
    if obs["valueRatio"].present:
        num, den = obs["valueRatio"]["numerator"], obs["valueRatio"]["denominator"]
        return f"{_num(num)}:{_num(den)}", None, None
    return None, None, None


def _num(qty: Node) -> str:
    value = qty["value"].dec()
    return "" if value is None else dec_str(value)


def _bounds(node: Node) -> str | None:
    low, high = _num(node["low"]), _num(node["high"])
    if low and high:
        return f"{low}-{high}"
    return f">={low}" if low else (f"<={high}" if high else None)


def _range(obs: Node) -> str | None:
    first = next(iter(obs["referenceRange"].items()), None)
    if first is None:
        return None
    return first["text"].string() or _bounds(first)


_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


def _flags(obs: Node) -> list[str]:
    """Interpretation flags: the HL7 ObservationInterpretation code (``H``, ``N``, ``R``) when a
    coding has it, even after a SNOMED CT one (the spec's bicarbonate f203), else the concept."""
    flags = []
    for interp in obs["interpretation"].items():
        hl7 = next((c["code"].string() for c in interp["coding"].items()
                    if c["system"].string() == _INTERPRETATION and c["code"].string()), "")
        found = concept(interp) or {}
        flag = hl7 or found.get("code") or found.get("text", "")
        if flag:
            flags.append(flag)
    return flags


UNPRICED = "the source gives neither net nor unitPrice"
"""Note on a Claim item kept without an amount (Synthea's encounter lines): not summed."""


def claim_items(claim: Node) -> list[dict[str, Any]]:
    """Claim.item -> bill lines; net = unitPrice x quantity x factor when net is absent, and
    an item with neither is kept without an amount, noted (generated data such as Synthea
    writes the encounter line so, with the money in Claim.total)."""
    items = []
    for item in claim["item"].items():
        qty, unit, factor = (item["quantity"]["value"].dec(), item["unitPrice"]["value"].dec(),
                             item["factor"].dec())
        net = item["net"]["value"].dec()
        if net is None and unit is not None:
            net = unit * (qty if qty is not None else 1) * (factor if factor is not None else 1)
        code = concept(item["productOrService"]) or {}
        currency = item["net"]["currency"].string() or item["unitPrice"]["currency"].string()
        line = _line(item["sequence"].text(), code, qty, unit, net,
                     period_or_time(item, "serviced"), concept_label(item["category"]), currency)
        if net is None:
            line["note"] = UNPRICED
        items.append(line)
    return items


def invoice_items(invoice: Node, index: Index, used: Used) -> list[dict[str, Any]]:
    """Invoice.lineItem: price components summed exactly, ChargeItems resolved for code/date."""
    items = []
    for line in invoice["lineItem"].items():
        charge = None
        if line["chargeItemReference"].present:
            charge = index.find(line["chargeItemReference"], invoice, "ChargeItem")
            used.add(charge)
        source = charge["code"] if charge else line["chargeItemCodeableConcept"]
        total, currency = Decimal(0), ""
        components = line["priceComponent"].items()
        for comp in components:
            value, cur = amount(comp["amount"])
            kind = comp["type"].string()
            if value is None or kind not in _ADDED | _SUBTRACTED:
                continue
            total += -abs(value) if kind in _SUBTRACTED else value
            currency = currency or cur
        if not components:
            if charge is None or charge["priceOverride"]["value"].dec() is None:
                raise line["priceComponent"].error("Invoice line needs priceComponent amounts",
                                                   "missing_field")
            total, currency = amount(charge["priceOverride"])  # type: ignore[assignment]
        qty = charge["quantity"]["value"].dec() if charge else None
        date = period_or_time(charge, "occurrence") if charge else None
        items.append(_line(line["sequence"].text(), concept(source) or {}, qty, None, total,
                           date, "", currency))
    return items


def charge_item(charge: Node) -> dict[str, Any]:
    price, currency = amount(charge["priceOverride"])
    if price is None:
        raise charge["priceOverride"].error("ChargeItem needs priceOverride to be billed",
                                            "missing_field")
    return _line("", concept(charge["code"]) or {}, charge["quantity"]["value"].dec(), None,
                 price, period_or_time(charge, "occurrence"), "", currency)


def _line(seq: str, code: dict[str, str], qty: Decimal | None, unit: Decimal | None,
          net: Decimal | None, date: str | None, category: str, currency: str,
          ) -> dict[str, Any]:
    return compact({
        "set_id": seq, "date": date, "category": category, "code": code.get("code"),
        "description": code.get("text"), "code_system": code.get("system"),
        "quantity": dec_str(qty) if qty is not None else None,
        "unit_price": dec_str(unit) if unit is not None else None,
        "amount": dec_str(net) if net is not None else None,
    }) | {"_currency": currency.upper()}


def bill(items: list[dict[str, Any]], declared: Node, where: Node) -> dict[str, Any]:
    """Items, their exact total, the total the document declares, and the one currency."""
    currencies = {item.pop("_currency") for item in items} - {""}
    value, cur = amount(declared)
    if cur:
        currencies.add(cur.upper())
    if len(currencies) > 1:
        raise where.error("amounts are in more than one currency", "mixed_currency")
    priced = [item for item in items if "amount" in item]
    if not priced and value is None:
        raise where.error("the bill has no priced line items and no total", "missing_field")
    return compact({"items": items, "total": sum_amounts(priced) if priced else None,
                    "unpriced_items": len(items) - len(priced) or None,
                    "declared_total": dec_str(value) if value is not None else None,
                    "currency": currencies.pop() if currencies else None})


_REQUESTS = frozenset({"preauthorization", "predetermination"})


def not_evidence(res: Node) -> AdapterError | None:
    if res["status"].string() == "entered-in-error":
        return res["status"].error("resource was entered in error", "entered_in_error")
    if res["resourceType"].string() in ("Claim", "ExplanationOfBenefit") \
            and res["use"].string() in _REQUESTS:
        return res["use"].error("a preauthorization or predetermination asks the insurer about "
                                "care not yet given; it is not a bill", "unsupported_resource")
    return None
