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

from gateway.anchor import AnchorWorker
from gateway.auth import MemberDirectory
from gateway.chain import Chain, Deployment
from gateway.config import Settings
from gateway.db import Database
from gateway.errors import ClaimxError
from gateway.log import NodeCache
from gateway.publish import KeyCache, Publisher
from gateway.receipt import ChainRef

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

    @property
    def chain_ref(self) -> ChainRef:
        d = self.deployment
        return ChainRef(chain_id=d.chain_id, evidence_log=d.log, registry=d.registry)


def build_services(settings: Settings, *, chain: Chain | None = None,
                   deployment: Deployment | None = None, db: Database | None = None) -> Services:
    """Assemble the gateway's parts; the anchor worker is built but not started."""
    if chain is None:
        chain = Chain.connect(settings.rpc_url, settings.anchor_private_key) \
            if settings.rpc_url else Chain.embedded()
    if deployment is None:
        deployment = _deployment(settings, chain)
    if db is None:
        db = Database(_database_url(settings))
    cache = NodeCache()
    log_client = chain.evidence_log(deployment.log)
    worker = AnchorWorker(db, log_client, settings, sender=deployment.admin, cache=cache)
    keys = KeyCache(chain.registry(deployment.registry), settings.key_cache_seconds,
                    chain_time=chain.now)
    publisher = Publisher(db, keys, on_urgent=worker.wake.set)
    worker.recover()  # refuses a database whose log does not match this chain
    members = MemberDirectory(chain.registry(deployment.registry), settings.key_cache_seconds)
    return Services(settings, db, chain, deployment, publisher, worker, cache, members)


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
        deployment = chain.deploy()
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
    return deployment
