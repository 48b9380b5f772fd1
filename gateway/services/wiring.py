"""Wiring: the database, the chain, the contracts and the workers, built once from Settings.

Embedded mode (no ``CLAIMX_RPC_URL``) runs an in-process EVM that lives only as long as the
process, so it deploys fresh contracts at start and uses a fresh SQLite file beside them:
a sandbox. With a JSON-RPC node the contracts come from the deployment file written by
``claimx deploy`` and the database persists.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from gateway.chain.client import Chain, Deployment, Registry
from gateway.chain.council import attach_council, dev_council, dev_keys_path, load_dev_keys
from gateway.config import Settings
from gateway.core.errors import ClaimxError
from gateway.core.keys import SigningKey
from gateway.core.receipt import ChainRef
from gateway.core.types import Role, member_id
from gateway.services.anchor import AnchorWorker
from gateway.services.auth import MemberDirectory
from gateway.services.bindings import binding_rejected
from gateway.services.claims import match_new_records, notify_anchored
from gateway.services.ledger import OPERATOR_SLUG, Ledger
from gateway.services.publish import KeyCache, Publisher
from gateway.services.push.worker import PushWorker
from gateway.services.requests import ClockSweep
from gateway.store.db import Database
from gateway.store.log import NodeCache
from gateway.store.vault import Vault

log = logging.getLogger("claimx")


@dataclass
class Services:
    settings: Settings
    db: Database
    chain: Chain
    deployment: Deployment
    publisher: Publisher
    worker: AnchorWorker
    cache: NodeCache
    members: MemberDirectory
    vault: Vault
    ledger: Ledger
    push: PushWorker

    @property
    def chain_ref(self) -> ChainRef:
        d = self.deployment
        return ChainRef(chain_id=d.chain_id, evidence_log=d.log, registry=d.registry)


def build_services(settings: Settings, *, chain: Chain | None = None,
                   deployment: Deployment | None = None, db: Database | None = None) -> Services:
    """Assemble the gateway's parts; the anchor worker is built but not started."""
    if chain is None:
        chain = Chain.connect(settings.rpc_url, settings.anchor_private_key,
                              timeout=settings.chain_timeout_seconds) \
            if settings.rpc_url else Chain.embedded()
    if deployment is None:
        deployment = _deployment(settings, chain)
    _refuse_dev_council(settings, deployment)
    if db is None:
        db = Database(_database_url(settings), master_key=settings.master_key_bytes())
    cache = NodeCache()
    log_client = chain.evidence_log(deployment.log)
    registry = chain.registry(deployment.registry)
    worker = AnchorWorker(db, log_client, settings, sender=deployment.admin, cache=cache,
                          on_anchored=notify_anchored, keys=registry, chain_time=chain.now,
                          on_rejected=binding_rejected)
    keys = KeyCache(registry, settings.key_cache_seconds, chain_time=chain.now,
                    grace=settings.key_grace_seconds)
    vault = Vault(settings.master_key_bytes())
    publisher = Publisher(db, keys, vault, on_urgent=worker.wake.set, on_stored=match_new_records)
    worker.recover()  # refuses a database whose log does not match this chain
    members = MemberDirectory(registry, settings.key_cache_seconds,
                              grace=settings.key_grace_seconds)
    ledger = Ledger(*_operator_key(settings, chain, registry), vault)
    return Services(settings, db, chain, deployment, publisher, worker, cache, members, vault,
                    ledger, PushWorker(db, settings, vault=vault, on_cycle=ClockSweep(db)))


def _operator_key(settings: Settings, chain: Chain, registry: Registry) -> tuple[SigningKey,
                                                                                  bytes]:
    """The exchange operator's signing key for consent and access-log entries.

    With ``CLAIMX_OPERATOR_KEY_FILE`` the key must already be registered (``claimx members
    add-key exchange.operator``); otherwise a fresh key is registered now, which needs the
    consortium admin account (embedded mode, dev nodes).
    """
    operator, account = member_id(OPERATOR_SLUG), chain.default_sender
    if settings.operator_key_file is not None:
        key = SigningKey.load(settings.operator_key_file)
        state = registry.key_status_at(operator, key.key_id, chain.now())
        if not state.valid:
            raise ClaimxError(f"operator key {key.key_id.hex()[:16]}… is {state.status} for "
                              f"{OPERATOR_SLUG} in the registry; register it with `claimx "
                              "members add-key`", code="operator_key_invalid")
        return key, operator
    key = SigningKey.generate()
    try:
        registry.member(operator)
    except ClaimxError:
        # admitted by the council (a development council in these modes); the exchange's own
        # account is its operator and registers its key, with a proof of possession
        registry.admit_member(operator, Role.OPERATOR, "claimx exchange operator", [account])
    registry.register_key(operator, key, sender=account)
    return key, operator


def _refuse_dev_council(settings: Settings, deployment: Deployment) -> None:
    """Production runs only under a real council: development owner keys sit in a file."""
    if settings.environment == "production" and deployment.development_council:
        raise ClaimxError("this deployment's council is a development council (its owner keys "
                          "were written by `claimx deploy`); production needs `claimx deploy "
                          "--council ADDR,... --threshold K`", code="development_council")


def _database_url(settings: Settings) -> str:
    if settings.database_url or settings.rpc_url:
        return settings.resolved_database_url()
    settings.home.mkdir(parents=True, exist_ok=True)
    path = settings.home / "embedded.db"
    for suffix in ("", "-wal", "-shm"):  # the in-process chain is new: so is its database
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path.resolve()}"


def _deployment(settings: Settings, chain: Chain) -> Deployment:
    if not settings.rpc_url:
        deployment, _ = dev_council(chain)  # a 2-of-3 development council, keys in memory
        log.info("embedded chain: deployed registry %s and evidence log %s",
                 deployment.registry, deployment.log)
        return deployment
    path = settings.resolved_deployment_file()
    try:
        deployment = Deployment.from_json(path.read_text())
    except FileNotFoundError as exc:
        raise ClaimxError(f"no deployment file at {path}: run `claimx deploy --rpc-url "
                          f"{settings.rpc_url} --out {path}` first, or set "
                          "CLAIMX_DEPLOYMENT_FILE", code="no_deployment") from exc
    except (ValueError, KeyError, json.JSONDecodeError) as exc:
        raise ClaimxError(f"deployment file {path} is not valid: {exc}",
                          code="bad_deployment") from exc
    if deployment.chain_id != chain.chain_id:
        raise ClaimxError(f"deployment file {path} is for chain {deployment.chain_id}, the node "
                          f"at {settings.rpc_url} is chain {chain.chain_id}",
                          code="wrong_chain")
    keys = dev_keys_path(path)
    if deployment.development_council and keys.exists() and settings.environment != "production":
        attach_council(chain, deployment, load_dev_keys(keys))  # dev members admit through it
    return deployment
