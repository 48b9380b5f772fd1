"""Shared pieces of the clinical adapters (HL7 v2, FHIR R4): limits, decimals, UTC times, packets.

Both formats describe the same evidence, so both build the same packet bodies (documented in
docs/adapters/hl7v2.md and fhir.md); the helpers here keep amounts exact (``decimal.Decimal``,
written as plain strings, never floats) and times in the RFC 3339 UTC form packets use.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from adapters.pseudonym import pseudonymise
from adapters.registry import AdapterContext
from gateway.core.errors import AdapterError
from gateway.core.packet import Packet, SourceRef, new_packet

MAX_INPUT_BYTES = 8 * 1024 * 1024
"""Largest export accepted; a bigger one is refused before any parsing (code ``too_large``)."""

_DECIMAL = re.compile(r"^[+-]?(\d{1,24}(\.\d{0,12})?|\.\d{1,12})$")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def check_size(raw: bytes, file: str | None) -> None:
    """Refuse oversized input in O(1), before decoding or parsing it."""
    if len(raw) > MAX_INPUT_BYTES:
        raise AdapterError(f"input is larger than {MAX_INPUT_BYTES} bytes", code="too_large",
                           file=file)
    if not raw.strip():
        raise AdapterError("input is empty", code="empty_input", file=file)


def locate(exc: AdapterError, *, line: int | None = None, file: str | None = None) -> AdapterError:
    """Fill in the line and file of an error raised below the adapter, keeping its own if set."""
    if exc.line is None and line is not None:
        exc.line = exc.detail["line"] = line
    if exc.file is None and file is not None:
        exc.file = exc.detail["file"] = file
    return exc


def parse_decimal(text: str) -> Decimal | None:
    """A plain decimal number (no exponent, no thousands separators), or None if it is not one."""
    text = text.strip()
    if not _DECIMAL.match(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid literals
        return None


def dec_str(value: Decimal) -> str:
    """Write a decimal as packets carry it: fixed-point text such as ``"1280.50"``."""
    text = format(value, "f")
    return "0" if text in ("-0", "+0") else text


def utc_text(moment: datetime) -> str:
    """RFC 3339 UTC with seconds, the ``issued_at`` form."""
    # isoformat, not strftime: %Y does not pad years before 1000 on every platform
    return moment.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def person_name(family: str, given: str) -> str:
    """A staff member's display name: Chinese names family-first without a space."""
    if _CJK.search(family + given):
        return family + given
    return " ".join(p for p in (given, family) if p)


def compact(obj: dict[str, Any]) -> dict[str, Any]:
    """Drop empty values so packets hold only what the source said."""
    return {k: v for k, v in obj.items() if v not in (None, "", [], {})}


def make_packet(*, kind: str, ctx: AdapterContext, subject: tuple[str, str, tuple[str | int, ...]],
                body: dict[str, Any], issued_at: str | None, raw: bytes, fmt: str,
                line: int | None = None) -> Packet:
    """Pseudonymise the subject and build the validated, unsigned packet."""
    scheme, value, loc = subject
    try:
        pseudonym = pseudonymise(scheme, value, loc=loc, key=ctx.pseudonym_key)
    except AdapterError as exc:
        locate(exc, line=line, file=ctx.file)
        raise
    source = SourceRef(format=fmt, sha256=hashlib.sha256(raw).hexdigest())
    return new_packet(kind=kind, issuer=ctx.issuer, subject=pseudonym, body=body,
                      issued_at=issued_at, source=source)


def sum_amounts(items: list[dict[str, Any]], *, skip: frozenset[str] = frozenset()) -> str:
    """Exact total of the items' ``amount`` strings, leaving out categories in ``skip``."""
    total = sum((Decimal(i["amount"]) for i in items
                 if "amount" in i and i.get("category") not in skip), Decimal(0))
    return dec_str(total)
