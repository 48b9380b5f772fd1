"""Helpers shared by the FHIR adapter tests (JSON and XML)."""

from __future__ import annotations

import decimal
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from adapters import fhir
from adapters.pseudonym import pseudonymise
from adapters.registry import AdapterContext
from gateway.core.errors import AdapterError

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "fhir"
KEY = bytes(range(32))
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
"""Hypothesis examples per fuzz test; raise it (e.g. 5000) for a longer local run."""
CTX = AdapterContext(issuer="0x" + "cd" * 32, file="bundle.json", pseudonym_key=KEY)
RESIDENT = pseudonymise("cn_resident_id", "110105198001010016", key=KEY)


def asset(name: str) -> bytes:
    return (ASSETS / name).read_bytes()


def load(name: str) -> dict[str, Any]:
    return json.loads(asset(name), parse_float=decimal.Decimal)  # type: ignore[no-any-return]


def dumps(obj: Any) -> bytes:
    """JSON with Decimals written as exact JSON numbers (json.dumps cannot)."""
    def mark(value: Any) -> Any:
        if isinstance(value, decimal.Decimal):
            return f"\u0000{value}\u0000"
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value
    text = json.dumps(mark(obj), ensure_ascii=False)
    return re.sub(r'"\\u0000([^"\\]*)\\u0000"', r"\1", text).encode()


def adapt(raw: bytes) -> list[dict[str, Any]]:
    return [p.to_obj() for p in fhir.adapt(raw, CTX)]


def error(raw: bytes) -> AdapterError:
    with pytest.raises(AdapterError) as info:
        fhir.adapt(raw, CTX)
    return info.value


DELETE = object()


def edit(name: str, path: str, value: Any) -> bytes:
    """The JSON sample ``name`` with the value at ``path`` (slash-separated) replaced, or
    deleted when ``value`` is DELETE."""
    obj = load(name)
    node = obj
    parts = path.split("/")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    if value is DELETE:
        del node[int(last) if isinstance(node, list) else last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return dumps(obj)

