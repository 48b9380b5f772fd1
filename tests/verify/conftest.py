"""Fixtures of the verify tests: a hospital, its council-governed registry and its gateway."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.chain.client import Chain, Deployment
from gateway.chain.council import CouncilSigner, dev_council
from gateway.config import Settings
from gateway.core.keys import SigningKey
from gateway.services.wiring import Services, build_services
from gateway.store.db import Database
from gateway.verify.audit import http_fetch
from gateway.verify.monitor import Monitor
from gateway.verify.profile import Profile
from tests.api.test_gateway import bearer, envelope
from tests.support import Institution, admit

MERGE_DELAY = 60
"""The gateway's merge delay in these tests (seconds of chain time)."""


@dataclass
class World:
    chain: Chain
    deployment: Deployment
    council: CouncilSigner
    hospital: Institution
    services: Services
    client: TestClient

    def profile(self) -> Profile:
        """What the hospital itself registered: its key and its operator account."""
        p = Profile.for_member(self.hospital.slug)
        p.add_keys(["0x" + self.hospital.key.key_id.hex()])
        p.add_operators([self.hospital.operator])
        return p

    def monitor(self, profile: Profile | None = None, fetch: Any = None) -> Monitor:
        return Monitor(profile or self.profile(), self.chain, self.deployment.registry,
                       self.deployment.log, fetch=fetch or http_fetch(self.client))

    def publish(self, key: SigningKey | None = None, n: int = 0) -> str:
        return str(self.publish_answer(key, n)["digest"])

    def publish_answer(self, key: SigningKey | None = None, n: int = 0) -> dict[str, Any]:
        r = self.client.post("/v1/records", json=envelope(self.hospital, key, n=n))
        assert r.status_code == 201, r.text
        return dict(r.json())


@pytest.fixture(params=["embedded", pytest.param("anvil", marks=pytest.mark.anvil)])
def chain(request: pytest.FixtureRequest) -> Chain:
    """A fresh in-process EVM per test (the monitor reads the registry's events from block 0,
    which on the session's shared EVM, thousands of blocks into a suite, took minutes), or the
    session's anvil (whose log queries are indexed)."""
    if request.param == "embedded":
        return Chain.embedded()
    return Chain.connect(request.getfixturevalue("anvil_url"))


@pytest.fixture
def world(chain: Chain, tmp_path: Path) -> Iterator[World]:
    d, council = dev_council(chain)
    hospital = admit(chain, d, "hospital.watch")
    sv = build_services(Settings(home=tmp_path, anchor_interval_seconds=3600,
                                 merge_delay_seconds=MERGE_DELAY), chain=chain,
                        deployment=d, db=Database(f"sqlite:///{tmp_path / 'claimx.db'}"))
    with TestClient(create_app(sv, run_worker=False), headers=bearer(sv, hospital.id)) as c:
        yield World(chain, d, council, hospital, sv, c)


