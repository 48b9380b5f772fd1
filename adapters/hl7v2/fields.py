"""HL7 v2 data types the clinical adapters read: TS/DTM, CE/CWE, XCN, CX, MO/CP and NM.

Each reader takes a located :class:`Segment` position and returns plain packet values, raising
:class:`AdapterError` with the segment, field, repetition and component (never the value).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from adapters._clinical import compact, parse_decimal, person_name, utc_text
from adapters.hl7v2.parse import Segment
from adapters.pseudonym import cn_resident_id_valid

_TS = re.compile(r"^(\d{4})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})"
                 r"(?:\.(\d{1,4}))?)?)?)?)?)?([+-]\d{4})?$")
_RESIDENT_TYPES = frozenset({"NNCHN", "CHNRI"})
"""Identifier types (HL7 table 0203 and Chinese profiles) naming a resident ID card number."""
_COUNTRY = re.compile(r"^[A-Z]{2,3}$")
_RESIDENT_HINTS = ("身份证", "居民身份", "2.16.156.10011.1.3", "RESIDENT", "IDCARD", "ID CARD")


@dataclass(frozen=True)
class Stamp:
    """An HL7 timestamp with the precision it was sent with."""

    moment: datetime
    digits: int
    """How many of YYYYMMDDHHMMSS were given: 4, 6, 8, 10, 12 or 14."""

    def text(self) -> str:
        """Date-only values stay dates; anything with a time becomes RFC 3339 UTC."""
        if self.digits <= 4:
            return f"{self.moment.year:04d}"
        if self.digits <= 6:
            return f"{self.moment.year:04d}-{self.moment.month:02d}"
        if self.digits <= 8:
            return self.moment.date().isoformat()
        return utc_text(self.moment)


def parse_ts(text: str, default_tz: timezone = UTC) -> Stamp | None:
    """HL7 TS/DTM ``YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]``; None if malformed.

    A value without an offset takes ``default_tz`` (the offset of MSH-7, else UTC).
    """
    found = _TS.match(text.strip())
    if found is None:
        return None
    year, month, day, hour, minute, second, frac, offset = found.groups()
    tz = default_tz
    if offset:
        hours, minutes = int(offset[1:3]), int(offset[3:5])
        if hours > 14 or minutes > 59:
            return None
        sign = -1 if offset[0] == "-" else 1
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        moment = datetime(int(year), int(month or 1), int(day or 1), int(hour or 0),
                          int(minute or 0), int(second or 0),
                          int((frac or "0").ljust(6, "0")), tzinfo=tz)
    except ValueError:
        return None
    digits = 4 + sum(2 for part in (month, day, hour, minute, second) if part)
    return Stamp(moment=moment, digits=digits)


def stamp(seg: Segment, field: int, tz: timezone, *, rep: int = 1) -> Stamp | None:
    """The timestamp at FIELD (first component of TS/DR, first subcomponent of v2.5 DR's TS)."""
    text = seg.text(field, rep, 1, 1)
    if not text:
        return None
    value = parse_ts(text, tz)
    if value is None:
        raise seg.error("timestamp is not HL7 YYYYMMDD[HHMM[SS]][+/-ZZZZ]", "bad_timestamp",
                        field, rep, 1)
    return value


def time_text(seg: Segment, field: int, tz: timezone) -> str | None:
    value = stamp(seg, field, tz)
    return value.text() if value else None


def coded(seg: Segment, field: int, rep: int = 1, first: int = 1) -> dict[str, str] | None:
    """CE/CWE/CNE ``code^text^system^alt code^alt text^alt system`` -> code, text, system."""
    code, text, system = (seg.text(field, rep, first + i) for i in range(3))
    if not code and not text:
        code, text, system = (seg.text(field, rep, first + 3 + i) for i in range(3))
    return compact({"code": code, "text": text, "system": system}) or None


def doctor(seg: Segment, field: int) -> dict[str, str] | None:
    """XCN: staff ID and name of the first repetition (staff data, kept on purpose)."""
    staff_id = seg.text(field, 1, 1)
    name = person_name(seg.text(field, 1, 2, 1), seg.text(field, 1, 3))
    return compact({"id": staff_id, "name": name}) or None


def decimal_at(seg: Segment, field: int, rep: int = 1, comp: int = 1,
               sub: int = 1) -> Decimal | None:
    """An NM or MO quantity; a non-number raises ``bad_number`` at that component."""
    text = seg.text(field, rep, comp, sub)
    if not text:
        return None
    value = parse_decimal(text)
    if value is None:
        raise seg.error("value is not a plain decimal number", "bad_number", field, rep, comp)
    return value


def subject(pid: Segment, msh: Segment) -> tuple[str, str, tuple[str | int, ...]]:
    """Choose the subject identifier from PID: resident ID, else passport, else MRN.

    Returns (pseudonym scheme, raw value, location); the value goes only to the HMAC.
    """
    candidates = [(f, r) for f in (3, 2, 4) for r in range(1, pid.repetitions(f) + 1)
                  if pid.text(f, r, 1)]
    resident = _pick(candidates, lambda f, r: _is_resident(pid, f, r))
    if resident is not None:
        return ("cn_resident_id", pid.text(*resident, 1), pid.where(*resident))
    ssn = pid.text(19)
    if ssn and cn_resident_id_valid(ssn):  # some Chinese interfaces carry the ID card here
        return ("cn_resident_id", ssn, pid.where(19))
    passport = _pick(candidates, lambda f, r: pid.text(f, r, 5).upper() == "PPN")
    if passport is not None:
        country = next((c.upper() for c in (pid.text(*passport, 9, 1), pid.text(*passport, 4, 1))
                        if _COUNTRY.match(c.upper())), "UNK")
        return (f"passport:{country}", pid.text(*passport, 1), pid.where(*passport))
    mrn = _pick(candidates, lambda f, r: pid.text(f, r, 5).upper() == "MR")
    mrn = mrn or (candidates[0] if candidates else None)
    if mrn is None:
        raise pid.error("PID-3 carries no patient identifier", "missing_identifier", 3)
    authority = (pid.text(*mrn, 4, 1) or pid.text(*mrn, 4, 2) or pid.text(*mrn, 6, 1)
                 or msh.text(4, 1, 1) or msh.text(4, 1, 2) or msh.text(3, 1, 1))
    if not authority:
        raise pid.error("medical record number has no assigning authority and MSH-4 is empty",
                        "missing_authority", mrn[0], mrn[1], 4)
    return (f"mrn:{authority}", pid.text(*mrn, 1), pid.where(*mrn))


def _pick(candidates: list[tuple[int, int]], test: Any) -> tuple[int, int] | None:
    return next((c for c in candidates if test(*c)), None)


def _is_resident(pid: Segment, field: int, rep: int) -> bool:
    kind = pid.text(field, rep, 5).upper()
    authority = " ".join(pid.text(field, rep, 4, s) for s in (1, 2)).upper()
    if kind in _RESIDENT_TYPES or any(h.upper() in authority for h in _RESIDENT_HINTS):
        return True
    value = pid.text(field, rep, 1)
    # "RI" officially means resource identifier; accept it only for a valid 18-character ID.
    return len(value) == 18 and cn_resident_id_valid(value)


def message_tz(msh: Segment) -> timezone:
    """The offset MSH-7 was sent with: HL7 reads offset-less times in the sender's zone."""
    value = parse_ts(msh.text(7, 1, 1))
    if value is None or value.moment.tzinfo is None:
        return UTC
    offset = value.moment.utcoffset()
    return timezone(offset) if offset is not None else UTC
