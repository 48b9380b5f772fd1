"""Field values shared by the adapters: exact money, dates and times, subjects, source refs.

Money is ``decimal.Decimal`` end to end and leaves as a string (``"1280.50"``) so packets
canonicalise identically everywhere (RFC 8785 has no exact decimals). Times follow RFC 3339;
a local time without an offset is China Standard Time (+08:00), which is what Chinese
hospital and police systems write.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

from adapters.pseudonym import pseudonymise
from adapters.registry import AdapterContext
from gateway.core.errors import AdapterError
from gateway.core.packet import SourceRef

Loc = tuple[str | int, ...]

CST = timezone(timedelta(hours=8), "CST")
"""China Standard Time, assumed for local times written without an offset."""

MAX_INPUT_BYTES = 20 * 1024 * 1024
"""Largest structured export an adapter accepts; attachments have their own limit."""

_MONEY = re.compile(r"^[+-]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$")
_CURRENCY_MARKS = ("人民币", "RMB", "CNY", "元", "¥", "￥")
_CN_DATETIME = re.compile(
    r"^(\d{4})年(\d{1,2})月(\d{1,2})日\s*(?:(\d{1,2})[时:：](?:(\d{1,2})分?)?(?:(\d{1,2})秒?)?)?$")
_SPACE = re.compile(r"\s+")


def check_size(raw: bytes, limit: int = MAX_INPUT_BYTES) -> None:
    """Refuse inputs past ``limit`` before any parser sees them."""
    if len(raw) > limit:
        raise AdapterError(f"input is {len(raw)} bytes, more than the {limit}-byte limit",
                           code="too_large")


def source_ref(fmt: str, raw: bytes) -> SourceRef:
    """The packet's pointer back to the exact raw export it came from."""
    return SourceRef(format=fmt, sha256=hashlib.sha256(raw).hexdigest())


def norm_key(text: str) -> str:
    """Header/element name as compared: NFKC, case-folded, no spaces, ``-``/`` `` -> ``_``."""
    folded = unicodedata.normalize("NFKC", text).strip().casefold()
    folded = re.sub(r"[\s\-]+", "_", folded)
    # "医保 支付" and "医保_支付" are the same header; CJK needs no word separators.
    return re.sub(r"(?<=[^\x00-\x7f])_|_(?=[^\x00-\x7f])", "", folded)


def clean_text(text: str) -> str:
    """NFKC-normalised text with runs of whitespace collapsed (full-width spaces too)."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def exact_decimal(text: str) -> Decimal:
    """A JSON number as an exact Decimal (``parse_float`` for ``json.loads``). An exponent
    beyond Decimal's range (``1e9999999999999999999``) is a ValueError, which the JSON loaders
    turn into a located error, rather than a decimal.InvalidOperation that nothing expects."""
    try:
        return Decimal(text)
    except ArithmeticError as exc:
        raise ValueError("number out of range") from exc


MAX_INTEGER_DIGITS = 15
"""Amounts and quantities up to 999 trillion: beyond any bill, and far inside the 28 digits
decimal arithmetic keeps exactly (a 30-digit amount once broke quantize)."""


def parse_decimal(text: str, *, loc: Loc, line: int | None = None, what: str = "amount",
                  max_places: int = 2, allow_negative: bool = False) -> Decimal:
    """Parse an exact decimal: ``1,280.50``, ``¥1280.5``, ``1280.50元``; never a float.

    Exponents, NaN, infinities and misplaced thousands separators are errors, as are more
    than ``max_places`` decimal places (a bill has fen, not fractions of fen).
    """
    value = unicodedata.normalize("NFKC", text).strip()
    for mark in _CURRENCY_MARKS:
        value = value.replace(unicodedata.normalize("NFKC", mark), "")
    value = value.strip()
    if not _MONEY.match(value):
        raise AdapterError(f"{what} is not a plain decimal number", code="bad_decimal",
                           loc=loc, line=line)
    try:
        number = Decimal(value.replace(",", ""))
    except InvalidOperation as exc:  # pragma: no cover - the regex already excludes these
        raise AdapterError(f"{what} is not a decimal number", code="bad_decimal",
                           loc=loc, line=line) from exc
    if number.adjusted() >= MAX_INTEGER_DIGITS:  # also keeps sums inside Decimal's precision
        raise AdapterError(f"{what} has more than {MAX_INTEGER_DIGITS} integer digits",
                           code="bad_decimal", loc=loc, line=line)
    if number < 0 and not allow_negative:
        raise AdapterError(f"{what} is negative", code="negative_amount", loc=loc, line=line)
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > max_places:
        raise AdapterError(f"{what} has more than {max_places} decimal places",
                           code="bad_decimal", loc=loc, line=line)
    return number


def money_str(value: Decimal) -> str:
    """Two-place string form of an amount: ``Decimal("1280.5")`` -> ``"1280.50"``."""
    return str(value.quantize(Decimal("0.01")))


def decimal_str(value: Decimal, min_places: int = 0) -> str:
    """Plain string of a decimal, trailing zeros dropped down to ``min_places`` places.

    ``Decimal("28.0000")`` -> ``"28.00"`` (with 2), ``Decimal("0.0350")`` -> ``"0.035"``.
    """
    exponent = value.normalize().as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return f"{value:.{max(min_places, places)}f}"


def parse_date(text: str, *, loc: Loc, line: int | None = None, what: str = "date") -> str:
    """A calendar date as ``YYYY-MM-DD`` from ISO, ``2026/03/14`` or ``2026年3月14日``."""
    value = clean_text(text)
    match = _CN_DATETIME.match(value)
    try:
        if match:
            return date(int(match[1]), int(match[2]), int(match[3])).isoformat()
        value = value.replace("/", "-").replace(".", "-")
        return date.fromisoformat(value[:10] if len(value) > 10 else value).isoformat()
    except ValueError as exc:
        raise AdapterError(f"{what} is not a valid date", code="bad_date",
                           loc=loc, line=line) from exc


def parse_datetime(text: str, *, loc: Loc, line: int | None = None,
                   what: str = "time") -> str:
    """An RFC 3339 timestamp with offset; local times are taken as China Standard Time.

    A bare date stays a date (``YYYY-MM-DD``): inventing a midnight would be false precision.
    """
    value = clean_text(text)
    match = _CN_DATETIME.match(value)
    try:
        if match:
            if match[4] is None:
                return date(int(match[1]), int(match[2]), int(match[3])).isoformat()
            moment = datetime(int(match[1]), int(match[2]), int(match[3]), int(match[4]),
                              int(match[5] or 0), int(match[6] or 0))
        else:
            value = value.replace("/", "-")
            if len(value) == 10:
                return date.fromisoformat(value).isoformat()
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise AdapterError(f"{what} is not a valid date and time", code="bad_datetime",
                           loc=loc, line=line) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=CST)
    return moment.isoformat(timespec="seconds")


ID_SCHEMES: dict[str, str] = {
    "resident_id": "cn_resident_id", "cn_resident_id": "cn_resident_id",
    "身份证": "cn_resident_id", "居民身份证": "cn_resident_id",
}
"""Identifier-type names accepted in exports, mapped to adapters.pseudonym schemes."""


def subject_of(id_number: str, *, ctx: AdapterContext, loc: Loc, line: int | None = None,
               id_type: str | None = None, country: str | None = None) -> str:
    """Pseudonymise a person's identifier; the raw value goes no further than this call.

    Without an explicit type an 18-character number is a resident ID; ``passport`` needs
    the issuing country (ISO 3166 alpha-3 or alpha-2).
    """
    kind = norm_key(id_type) if id_type else "resident_id"
    if kind in ("passport", "护照"):
        if not country or not re.fullmatch(r"[A-Za-z]{2,3}", country.strip()):
            raise AdapterError("passport identifiers need the issuing country code",
                               code="missing_country", loc=loc, line=line)
        scheme = f"passport:{country.strip().upper()}"
    elif kind in ID_SCHEMES:
        scheme = ID_SCHEMES[kind]
    else:
        raise AdapterError("identifier type must be resident_id or passport",
                           code="unknown_id_type", loc=loc, line=line)
    try:
        return pseudonymise(scheme, id_number, loc=loc, key=ctx.pseudonym_key)
    except AdapterError as exc:
        raise AdapterError(exc.msg, code=exc.code, loc=loc, line=line) from exc
