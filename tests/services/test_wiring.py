"""Wiring refuses what it cannot use in one line, and the development operator key is made
once: restarts reuse it instead of registering one more key on chain each time."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.chain.client import Chain
from gateway.config import Settings
from gateway.core.errors import ClaimxError
from gateway.core.types import member_id
from gateway.services.ledger import OPERATOR_SLUG
from gateway.services.wiring import build_services
from gateway.store.db import Database


def test_restarts_reuse_the_operator_key(embedded_chain: Chain, tmp_path: Path) -> None:
    deployment = embedded_chain.deploy()
    settings = Settings(home=tmp_path)
    db_url = f"sqlite:///{tmp_path / 'w.db'}"
    for _ in range(3):
        build_services(settings, chain=embedded_chain, deployment=deployment,
                       db=Database(db_url))
    keys = embedded_chain.registry(deployment.registry).keys_of(member_id(OPERATOR_SLUG))
    assert len(keys) == 1
    assert (tmp_path / "operator.key").stat().st_mode & 0o077 == 0


@pytest.mark.postgres
def test_a_missing_database_is_one_line_with_the_fix(embedded_chain: Chain, pg_url: str,
                                                     tmp_path: Path) -> None:
    missing = pg_url.rsplit("/", 1)[0] + "/claimx_no_such_database"
    with pytest.raises(ClaimxError) as refused:
        build_services(Settings(home=tmp_path, database_url=missing), chain=embedded_chain,
                       deployment=embedded_chain.deploy())
    assert refused.value.code == "database_unreachable"
    assert "\n" not in refused.value.msg and "createdb" in refused.value.msg
