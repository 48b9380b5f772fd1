"""Shared fixtures for the adapter tests: asset paths and a development context."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.registry import AdapterContext
from gateway.core.types import hex32, member_id

ASSETS = Path(__file__).resolve().parent.parent / "assets"
ISSUER = hex32(member_id("demo.hospital"))
RAW_IDS = ("110101198507073211", "310104198001011239", "440306199203154569",
           "11010519491231002X", "320502197602281353", "E12345678", "ZY2026031400123",
           "BA-778812", "MRN-55012", "H3205020001234")
"""Every identity or record number in the assets: none may appear in any output."""


def asset(*parts: str) -> bytes:
    return ASSETS.joinpath(*parts).read_bytes()


@pytest.fixture()
def ctx() -> AdapterContext:
    return AdapterContext(issuer=ISSUER)


def dumped(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def assert_no_raw_ids(text: str) -> None:
    for raw in RAW_IDS:
        assert raw not in text, "a raw identifier leaked"
