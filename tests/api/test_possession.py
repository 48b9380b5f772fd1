"""Proofs of possession, checked off chain: forged registrations are refused by the gateway
and caught by ``verify_receipt``.

The registry stores a registration's proof but cannot check it (no Ed25519 on the EVM), so
there is no on-chain check to bypass: the hospital's own (here compromised) operator account
registers a key with a forged proof through the ordinary ``addKey``, and the chain accepts it.
Everything that reads keys from the chain must therefore check the proof itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.chain.client import Chain, Deployment
from gateway.chain.directory import ProvenKeys
from gateway.config import Settings
from gateway.core.errors import ForbiddenError
from gateway.core.keys import SigningKey
from gateway.core.possession import prove_possession
from gateway.core.receipt import Receipt
from gateway.core.types import KeyAlgorithm, member_id
from gateway.services.publish import KeyCache
from gateway.services.wiring import Services, build_services
from gateway.store.db import Database
from gateway.verify.receipt import verify_receipt
from tests.api.test_gateway import bearer, envelope, record_count
from tests.support import Institution, admit

pytestmark = pytest.mark.slow

Forge = Callable[[SigningKey, bytes, Chain, Deployment], bytes]
FORGERIES: dict[str, Forge] = {
    "made by another key": lambda k, m, c, d: prove_possession(SigningKey.generate(), m,
                                                               c.chain_id, d.registry),
    "for another member": lambda k, m, c, d: prove_possession(k, member_id("hospital.other"),
                                                              c.chain_id, d.registry),
    "for another chain": lambda k, m, c, d: prove_possession(k, m, c.chain_id + 1, d.registry),
    "for another registry": lambda k, m, c, d: prove_possession(k, m, c.chain_id, d.log),
    "not a signature": lambda k, m, c, d: b"\x01" * 64,
}


def forge_key(chain: Chain, d: Deployment, inst: Institution, how: str,
              alg: KeyAlgorithm = KeyAlgorithm.ED25519) -> SigningKey:
    """A key registered for ``inst`` by its own operator account with a forged proof; the
    registry takes it (and says the key is valid)."""
    key = SigningKey.generate(alg)
    reg = chain.registry(d.registry)
    reg.add_key(inst.id, key.key_id, key.algorithm, key.public.raw,
                proof=FORGERIES[how](key, inst.id, chain, d), sender=inst.operator)
    assert reg.key_status_at(inst.id, key.key_id, chain.now() + 1).valid
    return key


@pytest.fixture
def services(chain: Chain, deployment: Deployment, tmp_path: Path) -> Services:
    return build_services(Settings(home=tmp_path, anchor_interval_seconds=3600), chain=chain,
                          deployment=deployment,
                          db=Database(f"sqlite:///{tmp_path / 'claimx.db'}"))


@pytest.fixture
def hospital(chain: Chain, deployment: Deployment) -> Institution:
    return admit(chain, deployment, "hospital.pop")


@pytest.fixture
def client(services: Services, hospital: Institution) -> Iterator[TestClient]:
    with TestClient(create_app(services, run_worker=False),
                    headers=bearer(services, hospital.id)) as c:
        yield c


@pytest.mark.parametrize("how", list(FORGERIES))
def test_gateway_refuses_a_key_whose_proof_does_not_verify(
        chain: Chain, deployment: Deployment, hospital: Institution, client: TestClient,
        services: Services, how: str) -> None:
    forged = forge_key(chain, deployment, hospital, how)
    r = client.post("/v1/records", json=envelope(hospital, forged))
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert error["code"] == "bad_possession_proof"
    assert error["key_id"] == "0x" + forged.key_id.hex()
    assert record_count(services) == 0
    # in a batch it is named by index, and nothing of the batch is stored
    r = client.post("/v1/records/batch", json={"envelopes": [
        envelope(hospital), envelope(hospital, forged, n=2)]})
    assert r.status_code == 422
    assert [(e["index"], e["code"]) for e in r.json()["error"]["errors"]] == [
        (1, "bad_possession_proof")]
    assert client.post("/v1/records", json=envelope(hospital)).status_code == 201  # genuine


def test_p256_forgery_refused_and_the_outcome_is_kept(chain: Chain, deployment: Deployment,
                                                       hospital: Institution) -> None:
    forged = forge_key(chain, deployment, hospital, "made by another key",
                       KeyAlgorithm.ECDSA_P256)
    proven = ProvenKeys(chain.registry(deployment.registry))
    for _ in range(2):  # the second answer comes from the kept outcome: same refusal
        with pytest.raises(ForbiddenError) as err:
            proven.key_status_at(hospital.id, forged.key_id, chain.now())
        assert err.value.code == "bad_possession_proof" and err.value.http_status == 403
    assert proven.key_status_at(hospital.id, hospital.key.key_id, chain.now()).valid
    # unknown keys are not refused here: the registry's own answer says why
    assert proven.key_status_at(hospital.id, b"\x07" * 32, chain.now()).status == "unknown_key"


def test_verify_catches_a_record_a_misbehaving_gateway_accepted(
        chain: Chain, deployment: Deployment, hospital: Institution, services: Services,
        client: TestClient) -> None:
    forged = forge_key(chain, deployment, hospital, "for another member")
    # the operator's gateway skips the proof check (an old or dishonest build)
    services.publisher.keys = KeyCache(chain.registry(deployment.registry), 0,
                                       chain_time=chain.now)
    digest = client.post("/v1/records", json=envelope(hospital, forged)).json()["digest"]
    services.worker.cycle()
    receipt = Receipt.model_validate(client.get(f"/v1/records/{digest}/receipt").json())
    report = verify_receipt(receipt, chain, deployment.log)
    assert not report.valid
    failed = report.checks[-1]
    assert failed.name == "key proof of possession"
    assert "bad_possession_proof" in failed.detail
    assert [c.name for c in report.checks if c.ok][-1] == "issuer signature"  # all else held
