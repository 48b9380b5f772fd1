"""Fixtures of the CLI tests: a real receipt on anvil, nodes that do not answer."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.chain.client import Chain
from gateway.config import Settings
from gateway.core.envelope import sign_packet
from gateway.core.packet import new_packet
from gateway.services.auth import issue_credential
from gateway.services.wiring import build_services
from gateway.store.db import Database
from tests.cli.cli_support import Published
from tests.support import admit


@pytest.fixture(scope="module")
def published(anvil_url: str, tmp_path_factory: pytest.TempPathFactory) -> Published:
    """One record published, anchored on anvil and its receipt fetched, as a hospital would."""
    home = tmp_path_factory.mktemp("verify")
    chain = Chain.connect(anvil_url)
    dep = chain.deploy()
    (home / "deployment.json").write_text(dep.to_json())
    hospital = admit(chain, dep, "hospital.verify")
    services = build_services(Settings(home=home, anchor_interval_seconds=3600), chain=chain,
                              deployment=dep, db=Database(f"sqlite:///{home / 'claimx.db'}"))
    with services.db.session() as s:
        token = issue_credential(s, hospital.id, "test")
    packet = new_packet(kind="hospital.invoice", issuer=hospital.issuer, subject="cd" * 32,
                        body={"total": "88.00"})
    with TestClient(create_app(services, run_worker=False),
                    headers={"Authorization": f"Bearer {token}"}) as client:
        digest = client.post("/v1/records", json=sign_packet(packet, hospital.key).to_json()
                             ).json()["digest"]
        services.worker.cycle()
        receipt = client.get(f"/v1/records/{digest}/receipt").json()
    return Published(receipt, dep, home / "deployment.json", anvil_url)


@pytest.fixture
def silent_node() -> Iterator[str]:
    """A port that accepts connections and never answers (a hung node)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"
