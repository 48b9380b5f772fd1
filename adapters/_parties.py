"""People in police records: roles, pseudonymous subjects, vehicles and liability.

Names are read only to be redacted from free text and then dropped; identity numbers
become pseudonyms (adapters.pseudonym). Liability follows the five grades of the Road
Traffic Safety Law implementing regulations, art. 91 and the Ministry of Public Security's
accident-handling provisions: 全部/主要/同等/次要/无责任.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from adapters._tree import Node
from adapters._values import norm_key, subject_of
from adapters.registry import AdapterContext

LIABILITY: dict[str, str] = {
    "全部责任": "full", "全责": "full", "full": "full",
    "主要责任": "main", "主责": "main", "main": "main", "major": "main",
    "同等责任": "equal", "同责": "equal", "equal": "equal",
    "次要责任": "secondary", "次责": "secondary", "secondary": "secondary", "minor": "secondary",
    "无责任": "none", "无责": "none", "不负责任": "none", "none": "none",
}
IMPLIED_SHARE = {"full": 100, "none": 0}

ROLES: dict[str, str] = {
    "驾驶人": "driver", "驾驶员": "driver", "机动车驾驶人": "driver", "driver": "driver",
    "乘车人": "passenger", "乘客": "passenger", "passenger": "passenger",
    "行人": "pedestrian", "pedestrian": "pedestrian",
    "非机动车驾驶人": "cyclist", "骑车人": "cyclist", "cyclist": "cyclist",
    "车辆所有人": "owner", "owner": "owner",
    "报警人": "reporter", "报案人": "reporter", "reporter": "reporter",
    "受害人": "victim", "被害人": "victim", "victim": "victim",
    "嫌疑人": "suspect", "违法嫌疑人": "suspect", "suspect": "suspect",
    "证人": "witness", "witness": "witness",
}

F: dict[str, tuple[str, ...]] = {
    "role": ("role", "角色", "当事人类型", "身份"),
    "name": ("name", "姓名"),
    "id_type": ("id_type", "证件类型", "证件种类"),
    "id_number": ("id_number", "身份证号", "身份证号码", "公民身份号码", "证件号码",
                  "resident_id", "passport_number"),
    "country": ("country", "nationality", "国籍"),
    "claimant": ("claimant", "申请人", "索赔人", "理赔申请人"),
    "injured": ("injured", "injury", "受伤", "伤情", "伤亡情况"),
    "vehicle": ("vehicle", "车辆", "车辆信息"),
    "plate": ("plate", "plate_number", "号牌号码", "车牌号", "车牌号码", "号牌"),
    "vehicle_type": ("vehicle_type", "车辆类型", "车型", "type"),
    "liability": ("liability", "责任", "事故责任", "责任认定"),
    "share": ("liability_share", "share", "责任比例", "比例", "责任比例(%)"),
}
_NOT_INJURED = {"无", "否", "未受伤", "没有", "无伤", "no", "none", "false", "0"}
_ID_LIKE = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])|(?<!\d)\d{15}(?!\d)")
_PHONE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
_PASSPORT_LIKE = re.compile(r"(?<![0-9A-Za-z])[A-Za-z]{1,2}\d{7,9}(?![0-9A-Za-z])")
"""Passport and travel-permit numbers as written in free text (E12345678, G1234567, HA1234567);
plates (沪A·D12345) and case numbers (digits only) do not match."""


@dataclass
class Party:
    """A party as it goes into the packet, plus what is needed to redact and choose."""

    out: dict[str, Any]
    node: Node
    name: str | None = None
    raw_id: str | None = None
    """The identity number as written, kept only to redact it from free text."""
    claimant: bool = False
    injured: bool = False
    share_given: bool = False


def _flag(node: Node, key: str) -> bool:
    child = node.get(F[key])
    if child is None:
        return False
    if isinstance(child.value, bool):
        return child.value
    text = child.text(key)
    return bool(text) and norm_key(text) not in _NOT_INJURED


def read_party(node: Node, index: int, ctx: AdapterContext) -> Party:
    """One party: role, pseudonym, vehicle, liability; the name is kept only for redaction."""
    if not node.is_object():
        raise node.error("party must be an object", "wrong_type")
    role_text = node.opt_text("role", F["role"])
    role = ROLES.get(norm_key(role_text), "other") if role_text else "other"
    out: dict[str, Any] = {"index": index + 1, "role": role}
    id_node = node.get(F["id_number"])
    if id_node is not None and id_node.text("id_number"):
        out["subject"] = subject_of(
            id_node.text("id_number"), ctx=ctx, loc=(id_node.where,),
            id_type=node.opt_text("id_type", F["id_type"]),
            country=node.opt_text("country", F["country"]))
    vehicle = node.get(F["vehicle"])
    holder = vehicle if vehicle is not None and vehicle.is_object() else node
    plate = holder.opt_text("plate", F["plate"])
    vehicle_type = holder.opt_text("vehicle_type", F["vehicle_type"] if holder is not node
                                   else F["vehicle_type"][:-1])
    if plate or vehicle_type:
        out["vehicle"] = {k: v for k, v in (("plate", plate), ("type", vehicle_type)) if v}
    party = Party(out=out, node=node, name=node.opt_text("name", F["name"]),
                  raw_id=id_node.text("id_number").strip() if id_node is not None else None,
                  claimant=_flag(node, "claimant"), injured=_flag(node, "injured"))
    if "injured" in _present(node):
        out["injured"] = party.injured
    _read_liability(party)
    return party


def _present(node: Node) -> set[str]:
    return {key for key, aliases in F.items() if node.get(aliases) is not None}


def _read_liability(party: Party) -> None:
    node = party.node
    text = node.opt_text("liability", F["liability"])
    share_node = node.get(F["share"])
    if text is None:
        if share_node is not None:
            raise node.error("liability share given without a liability grade",
                             "missing_field", "liability")
        return
    grade = LIABILITY.get(norm_key(text))
    if grade is None:
        raise node.get(F["liability"]).error(  # type: ignore[union-attr]
            "liability must be full, main, equal, secondary or none (全部/主要/同等/次要/无责任)",
            "bad_liability")
    party.out["liability"] = grade
    if share_node is not None:
        party.out["share"] = _share(share_node)
        party.share_given = True
    elif grade in IMPLIED_SHARE:
        party.out["share"] = IMPLIED_SHARE[grade]
    share = party.out.get("share")
    if share is not None and grade in IMPLIED_SHARE and share != IMPLIED_SHARE[grade]:
        raise share_node.error(  # type: ignore[union-attr]
            f"{grade} liability must carry a {IMPLIED_SHARE[grade]}% share", "bad_share")


def _share(node: Node) -> int:
    value = node.value
    text = str(value).strip().rstrip("%％").strip() if not isinstance(value, bool) else ""
    try:
        number = Decimal(text)
    except ArithmeticError:
        number = Decimal(-1)
    if not text or number != number.to_integral_value() or not 0 <= number <= 100:
        raise node.error("liability share must be a whole percent from 0 to 100", "bad_share")
    return int(number)


def check_split(parties: list[Party], where: Node) -> None:
    """Shares of the parties that carry a liability grade must sum to 100 when all are known.

    A share written in the source on any party makes the check mandatory: then every graded
    party needs one (given, or implied by full/none).
    """
    graded = [p for p in parties if "liability" in p.out]
    if not graded:
        return
    if any(p.share_given for p in graded) or all("share" in p.out for p in graded):
        missing = [p for p in graded if "share" not in p.out]
        if missing:
            raise missing[0].node.error("liability share is missing while others are given",
                                        "missing_field", "liability_share")
        if sum(p.out["share"] for p in graded) != 100:
            raise where.error("liability shares do not sum to 100", "liability_split",
                              "parties")


def choose_subject(parties: list[Party], where: Node) -> str:
    """The packet subject: the claimant, else the first injured party, else the first with an ID.

    Parties are taken in document order; the rule is documented in docs/adapters/police.md.
    """
    with_id = [p for p in parties if "subject" in p.out]
    for pick in ([p for p in with_id if p.claimant], [p for p in with_id if p.injured], with_id):
        if pick:
            return str(pick[0].out["subject"])
    raise where.error("no party carries an identity number to derive the subject from",
                      "missing_subject", "parties")


def redact(text: str, parties: list[Party]) -> str:
    """Replace party names, ID-like numbers and mobile numbers in free text with markers."""
    for party in parties:  # any identity number of a party, whatever its format
        if party.raw_id and len(party.raw_id) >= 5:
            text = text.replace(party.raw_id, "[id]")
    for party in sorted(parties, key=lambda p: -len(p.name or "")):
        if party.name and len(party.name) >= 2:
            cjk = any(ord(c) > 0x2E80 for c in party.name)
            marker = f"[当事人{party.out['index']}]" if cjk else f"[party {party.out['index']}]"
            text = text.replace(party.name, marker)
    text = _PASSPORT_LIKE.sub("[id]", _ID_LIKE.sub("[id]", text))
    return _PHONE.sub("[phone]", text)
