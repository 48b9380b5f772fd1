"""RFC 8785 (JSON Canonicalization Scheme) bytes for claim packets, and their SHA-256 digest.

``rfc8785`` is the reference implementation we trust, but it runs at about 8,000 packets/s
in pure Python. For the JSON that claim packets are made of (no floats, integers within
±2**53, ASCII object keys) the stdlib encoder with sorted keys and compact separators
produces byte-identical output at about six times the speed, so we take that path when
the value qualifies and fall back to ``rfc8785`` otherwise. A property test keeps the two
in agreement.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import rfc8785

from gateway.core.errors import InputError
from gateway.core.types import Digest

_MAX_SAFE_INT = 2**53


def canonical_bytes(value: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of a JSON value."""
    if _fast_path_ok(value):
        try:
            return json.dumps(
                value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                allow_nan=False,
            ).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InputError("JSON text contains an unpaired surrogate",
                             code="invalid_unicode") from exc
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError) as exc:
        raise InputError(f"value cannot be canonicalised: {type(exc).__name__}",
                         code="not_canonicalisable") from exc


def digest_of(value: Any) -> Digest:
    """SHA-256 of the canonical bytes of ``value``."""
    return Digest(hashlib.sha256(canonical_bytes(value)).digest())


def _fast_path_ok(value: Any) -> bool:
    """True when the stdlib encoder gives JCS output for ``value`` (see module docstring)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str) or item is None or isinstance(item, bool):
            continue
        if isinstance(item, int):
            if -_MAX_SAFE_INT <= item <= _MAX_SAFE_INT:
                continue
            return False
        if isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str) or not key.isascii():
                    return False
                stack.append(sub)
            continue
        if isinstance(item, list | tuple):
            stack.extend(item)
            continue
        return False  # floats and anything exotic take the reference path
    return True
