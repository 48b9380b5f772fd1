"""Shared fixtures: test assets, real chains (in-process EVM and anvil) and real databases."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from gateway.chain.client import Chain, Deployment
from tests.support import ANVIL, ASSETS, Served, serve_gateway

PG_ADMIN_URL = os.environ.get(
    "CLAIMX_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def asset() -> Callable[[str], Path]:
    """``asset("name.json")`` -> Path of a test asset file."""
    return lambda name: ASSETS / name


@pytest.fixture(scope="session")
def merkle_vectors() -> dict[str, Any]:
    return json.loads((ASSETS / "merkle_vectors.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def anvil_url() -> Iterator[str]:
    """A real anvil node as a separate process on a free port, stopped at session end."""
    if not ANVIL.exists():
        pytest.skip(f"anvil binary missing at {ANVIL}: run `npm ci` (scripts/setup.sh does)")
    from gateway.dev import node

    with node.start(binary=ANVIL, timeout=20) as anvil:
        yield anvil.url


@pytest.fixture(scope="session")
def embedded_chain() -> Chain:
    return Chain.embedded()


@pytest.fixture(scope="session",
                params=["embedded", pytest.param("anvil", marks=pytest.mark.anvil)])
def chain(request: pytest.FixtureRequest) -> Chain:
    """Each chain test runs on the in-process EVM and on anvil."""
    if request.param == "embedded":
        return request.getfixturevalue("embedded_chain")  # type: ignore[no-any-return]
    return Chain.connect(request.getfixturevalue("anvil_url"))


@pytest.fixture
def deployment(chain: Chain) -> Deployment:
    """Fresh contracts for each test."""
    return chain.deploy()


@pytest.fixture(scope="session")
def pg_admin() -> str:
    try:
        with create_engine(PG_ADMIN_URL).connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"PostgreSQL not reachable at {PG_ADMIN_URL} ({exc}); start it with "
                    "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`")
    return PG_ADMIN_URL


@pytest.fixture
def pg_url(pg_admin: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    name = f"claimx_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_admin, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield pg_admin.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param(
    "postgres", marks=[pytest.mark.postgres, pytest.mark.slow])])  # a fresh database each: seconds
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each storage test runs on SQLite and on the running PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'claimx.db'}"
    return request.getfixturevalue("pg_url")  # type: ignore[no-any-return]


@pytest.fixture
def dev_gateway(tmp_path: Path) -> Iterator[Served]:
    """`claimx serve --dev-members` on the embedded default, up and answering, always stopped."""
    with serve_gateway(tmp_path) as served:
        yield served
