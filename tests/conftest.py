"""Shared pytest fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ASSETS = Path(__file__).parent / "assets"


@pytest.fixture(scope="session")
def asset() -> Any:
    """``asset("name.json")`` -> Path of a test asset file."""
    return lambda name: ASSETS / name


@pytest.fixture(scope="session")
def merkle_vectors() -> dict[str, Any]:
    return json.loads((ASSETS / "merkle_vectors.json").read_text())  # type: ignore[no-any-return]
