"""Wiring: the database, the chain, the contracts and the workers, built once from Settings.

Without ``CLAIMX_RPC_URL`` the library default is an in-process EVM that lives only as long
as the process, so it deploys fresh contracts at start and uses a fresh SQLite file beside
them: a sandbox (the demo, tests). With a JSON-RPC node the contracts come from the
deployment file (written by ``claimx deploy``, or by the first start with ``deploy_missing``)
and the database persists; ``claimx serve`` with no URLs runs such a node itself (anvil,
gateway/dev/node.py) and passes ``local_node`` so blocks lost to a ``kill -9`` are repaired.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from sqlalchemy import func, make_url, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from gateway.chain.client import Chain, Deployment, Registry
from gateway.chain.council import (
    attach_council,
    dev_council,
    dev_keys_path,
    load_dev_keys,
    write_dev_keys,
)
from gateway.chain.directory import ProvenKeys
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
from gateway.services.promises import ChainClock, PromiseDesk, Terms
from gateway.services.publish import KeyCache, Publisher
from gateway.services.push.worker import PushWorker
from gateway.services.requests import ClockSweep
from gateway.store import checkpoint, wakeup
from gateway.store.db import Database
from gateway.store.log import NodeCache
from gateway.store.tables import Anchor, Record
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
    promises: PromiseDesk

    @property
    def chain_ref(self) -> ChainRef:
        return _chain_ref(self.deployment)


def build_services(settings: Settings, *, chain: Chain | None = None,
                   deployment: Deployment | None = None, db: Database | None = None,
                   deploy_missing: bool = False, local_node: bool = False) -> Services:
    """Assemble the gateway's parts; the anchor worker is built but not started.

    ``deploy_missing`` deploys the contracts when the deployment file does not exist yet;
    ``local_node`` says the chain is our own anvil. Any node, ours or not, may lose blocks
    (a kill -9, a restore from an older state): the worker anchors the lost heads again
    under its lease (gateway.services.reconcile); here the database is only checked to
    belong to the chain.
    """
    if chain is None:
        chain = Chain.connect(settings.rpc_url, settings.anchor_private_key,
                              timeout=settings.chain_timeout_seconds) \
            if settings.rpc_url else Chain.embedded()
    if db is None:
        db = _open_database(_database_url(settings), settings.master_key_bytes())
    if deployment is None:
        deployment = _deployment(settings, chain, db, deploy_missing)
    _refuse_dev_council(settings, deployment)
    cache = NodeCache()
    log_client = chain.evidence_log(deployment.log)
    registry = chain.registry(deployment.registry)
    operator_key, operator = _operator_key(settings, chain, registry)
    chain_time = ChainClock(chain.now)
    chain_time()  # the first reading: promises are dated in chain time from the start
    promises = PromiseDesk(operator_key, operator, _chain_ref(deployment),
                           Terms(settings.merge_delay_seconds,
                                 settings.urgent_merge_delay_seconds),
                           clock=chain_time.now, chain_time=chain_time)
    worker = AnchorWorker(db, log_client, settings, sender=deployment.admin, cache=cache,
                          on_anchored=notify_anchored, keys=registry, chain_time=chain_time,
                          on_rejected=_rejected(promises),
                          on_failure=partial(promises.on_cycle_failed, db,
                                             margin=_extension_margin(settings)),
                          block_number=chain.block_number)
    on_urgent = worker.wake.set
    if checkpoint.supported(db):  # checkpoints off the commits' path (urgent records)
        worker.checkpointer = checkpoint.Checkpointer(db)
    if wakeup.supported(db):  # other processes' urgent records wake this one's worker
        worker.listener = wakeup.Listener(db, worker.wake.set)
        on_urgent = partial(_wake_all, worker, db)
    # envelopes are accepted only under keys whose stored proof of possession verifies here
    keys = KeyCache(ProvenKeys(registry), settings.key_cache_seconds, chain_time=chain_time,
                    grace=settings.key_grace_seconds)
    vault = Vault(settings.master_key_bytes())
    publisher = Publisher(db, keys, vault, on_urgent=on_urgent, on_stored=match_new_records,
                          promises=promises, processes=settings.verify_processes,
                          verify_timeout=settings.verify_timeout_seconds)
    # refuses a database whose log is not this chain's; heads the chain lost are anchored
    # again before serving when this process can take the lease (else its holder does)
    if worker.check_chain() and worker.hold_lease():
        worker.sync()
    members = MemberDirectory(registry, settings.key_cache_seconds,
                              grace=settings.key_grace_seconds)
    ledger = Ledger(operator_key, operator, vault)
    return Services(settings, db, chain, deployment, publisher, worker, cache, members, vault,
                    ledger, PushWorker(db, settings, vault=vault, on_cycle=ClockSweep(db)),
                    promises)


def _chain_ref(d: Deployment) -> ChainRef:
    return ChainRef(chain_id=d.chain_id, evidence_log=d.log, registry=d.registry)


def _rejected(promises: PromiseDesk) -> Callable[[Session, Record], None]:
    """A record rejected at logging: its claimant-key binding (if any) and its promise end."""
    def on_rejected(s: Session, rec: Record) -> None:
        binding_rejected(s, rec)
        promises.reject(s, rec)
    return on_rejected


def _extension_margin(settings: Settings) -> float:
    """How far ahead a failing anchor cycle extends promises: more than the worker's retry
    period (it waits the anchor interval after a failure, and a chain call may take the
    whole chain timeout), so each promise is extended before its deadline passes."""
    return 2 * (settings.anchor_interval_seconds + settings.urgent_poll_seconds
                + settings.chain_timeout_seconds) + 1


def _operator_key(settings: Settings, chain: Chain, registry: Registry) -> tuple[SigningKey,
                                                                                  bytes]:
    """The exchange operator's signing key for consent and access-log entries.

    With ``CLAIMX_OPERATOR_KEY_FILE`` the key must already be registered (``claimx members
    add-key exchange.operator``); otherwise the key in CLAIMX_HOME/operator.key (created on
    first start) is registered if the chain does not hold it yet, which needs the consortium
    admin account (embedded mode, dev nodes). One key, not one more per start.
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
    key = _home_operator_key(settings.home / "operator.key")
    try:
        registry.member(operator)
    except ClaimxError:
        # admitted by the council (a development council in these modes); the exchange's own
        # account is its operator and registers its key, with a proof of possession
        registry.admit_member(operator, Role.OPERATOR, "claimx exchange operator", [account])
    if not registry.key_status_at(operator, key.key_id, chain.now()).valid:
        registry.register_key(operator, key, sender=account)
        log.info("registered operator key %s… from %s", key.key_id.hex()[:16],
                 settings.home / "operator.key")
    return key, operator


def _refuse_dev_council(settings: Settings, deployment: Deployment) -> None:
    """Production runs only under a real council: development owner keys sit in a file."""
    if settings.environment == "production" and deployment.development_council:
        raise ClaimxError("this deployment's council is a development council (its owner keys "
                          "were written by `claimx deploy`); production needs `claimx deploy "
                          "--council ADDR,... --threshold K`", code="development_council")


def _home_operator_key(path: Path) -> SigningKey:
    """The development operator key: made once (mode 0600, linked into place so two
    starts at once agree on one key), then reused."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_bytes(SigningKey.generate().to_pem())
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return SigningKey.load(path)


def _open_database(url: str, master_key: bytes) -> Database:
    """The database, migrated; one line (password hidden) when it cannot be opened."""
    try:
        return Database(url, master_key=master_key)
    except SQLAlchemyError as exc:
        shown = make_url(url).render_as_string(hide_password=True)
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ClaimxError(f"cannot open the database {shown}: {reason}; create it (e.g. "
                          "`createdb NAME`) or fix --database-url / CLAIMX_DATABASE_URL",
                          code="database_unreachable") from exc


def _wake_all(worker: AnchorWorker, db: Database) -> None:
    """Wake this process's anchor worker and, through the database, the other processes'
    (the lease holder may be one of them)."""
    worker.wake.set()
    wakeup.notify(db)


def _database_url(settings: Settings) -> str:
    if settings.database_url or settings.rpc_url:
        return settings.resolved_database_url()
    settings.home.mkdir(parents=True, exist_ok=True)
    path = settings.home / "embedded.db"
    for suffix in ("", "-wal", "-shm"):  # the in-process chain is new: so is its database
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path.resolve()}"


def _deployment(settings: Settings, chain: Chain, db: Database,
                deploy_missing: bool) -> Deployment:
    if not settings.rpc_url:
        deployment, _ = dev_council(chain)  # a 2-of-3 development council, keys in memory
        log.info("embedded chain: deployed registry %s and evidence log %s",
                 deployment.registry, deployment.log)
        return deployment
    path = settings.resolved_deployment_file()
    if deploy_missing and not path.exists():
        return _first_deployment(settings, chain, db, path)
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
    for name, address in (("registry", deployment.registry), ("evidence log", deployment.log)):
        if not chain.has_code(address):
            raise ClaimxError(f"no {name} contract at {address} on {chain.description}: "
                              f"{path} was written for another chain (its state lost?); point "
                              "--deployment at this chain's file, or remove the state folder "
                              "to start afresh", code="contracts_missing")
    keys = dev_keys_path(path)
    if deployment.development_council and keys.exists() and settings.environment != "production":
        attach_council(chain, deployment, load_dev_keys(keys))  # dev members admit through it
    return deployment


def _first_deployment(settings: Settings, chain: Chain, db: Database, path: Path) -> Deployment:
    """Deploy and write the file; refused when the database already anchored elsewhere."""
    with db.session() as s:
        anchored = s.scalar(select(func.count()).select_from(Anchor)) or 0
    if anchored:
        raise ClaimxError(f"no deployment file at {path}, but the database already holds "
                          f"{anchored} anchors of another deployment: restore that file (or "
                          "use a fresh database)", code="no_deployment")
    deployment, signer = dev_council(chain)  # development only: a 2-of-3 council on file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(deployment.to_json())
    write_dev_keys(dev_keys_path(path), signer.council.address, 2, signer.keys)
    log.info("deployed registry %s and evidence log %s on chain %d; wrote %s",
             deployment.registry, deployment.log, deployment.chain_id, path)
    return deployment
