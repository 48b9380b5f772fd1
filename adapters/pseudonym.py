"""Subject pseudonyms: a keyed HMAC-SHA256 of a normalised identifier.

Raw identifiers (Chinese resident ID numbers, passport numbers, medical record numbers)
enter here and never leave: packets, logs and error messages carry only the pseudonym.
The key is held by the consortium, so the same person gets the same pseudonym at every
hospital and police bureau, and nobody without the key can test a guessed ID number.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re

from gateway.core.errors import AdapterError

DEV_KEY = hashlib.sha256(b"claimx development pseudonym key - not for production").digest()
"""Used when ``CLAIMX_PSEUDONYM_KEY`` is unset; refused in production (:func:`pseudonym_key`)."""

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_CN_ID = re.compile(r"^\d{17}[\dX]$")
_PASSPORT = re.compile(r"^[A-Z0-9]{5,20}$")


def pseudonym_key() -> bytes:
    """The consortium HMAC key: ``CLAIMX_PSEUDONYM_KEY`` (64 hex digits) or the dev key.

    The dev key is public, so anyone could test a guessed ID number against a pseudonym made
    with it: with ``CLAIMX_ENVIRONMENT=production`` it is refused.
    """
    text = os.environ.get("CLAIMX_PSEUDONYM_KEY", "").strip()
    if not text:
        if os.environ.get("CLAIMX_ENVIRONMENT", "").strip().lower() == "production":
            raise AdapterError("CLAIMX_ENVIRONMENT=production needs CLAIMX_PSEUDONYM_KEY (the "
                               "consortium's 64 hex digits); the development key is public",
                               code="dev_pseudonym_key")
        return DEV_KEY
    try:
        key = bytes.fromhex(text)
    except ValueError as exc:
        raise AdapterError("CLAIMX_PSEUDONYM_KEY must be hexadecimal",
                           code="bad_pseudonym_key") from exc
    if len(key) < 32:
        raise AdapterError("CLAIMX_PSEUDONYM_KEY must be at least 32 bytes (64 hex digits)",
                           code="bad_pseudonym_key")
    return key


def cn_resident_id_valid(text: str) -> bool:
    """Check shape and ISO 7064 MOD 11-2 check digit of an 18-character resident ID."""
    value = text.strip().upper()
    if not _CN_ID.match(value):
        return False
    total = sum(int(d) * w for d, w in zip(value[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == value[17]


def pseudonymise(scheme: str, raw: str, *, loc: tuple[str | int, ...] = (),
                 key: bytes | None = None) -> str:
    """Return the hex pseudonym of identifier ``raw`` under ``scheme``.

    Schemes: ``cn_resident_id`` (check digit validated), ``passport:<country>``,
    ``mrn:<assigning authority>``. Errors name the location, never the value.
    """
    normalised = _normalise(scheme, raw, loc)
    mac = hmac.new(key or pseudonym_key(), f"{scheme}:{normalised}".encode(), hashlib.sha256)
    return mac.hexdigest()


def _normalise(scheme: str, raw: str, loc: tuple[str | int, ...]) -> str:
    value = "".join(raw.split()).upper()
    if not value:
        raise AdapterError("subject identifier is empty", code="missing_identifier", loc=loc)
    if scheme == "cn_resident_id":
        if not cn_resident_id_valid(value):
            raise AdapterError("resident ID number has a wrong length, character or check digit",
                               code="invalid_resident_id", loc=loc)
        return value
    if scheme.startswith("passport:"):
        if not _PASSPORT.match(value):
            raise AdapterError("passport number must be 5-20 letters or digits",
                               code="invalid_passport", loc=loc)
        return value
    if scheme.startswith("mrn:") and len(scheme) > 4:
        if len(value) > 64:
            raise AdapterError("medical record number longer than 64 characters",
                               code="invalid_mrn", loc=loc)
        return value
    raise AdapterError(f"unknown identifier scheme {scheme!r}", code="unknown_id_scheme", loc=loc)
