"""One validated settings object, read from ``CLAIMX_*`` environment variables.

Defaults give the embedded mode: SQLite under ``.claimx/`` and an in-process EVM, nothing
to start by hand. Set ``CLAIMX_DATABASE_URL`` and ``CLAIMX_RPC_URL`` for PostgreSQL and a
JSON-RPC node. One object, built by the entry point (CLI, demo, tests) and passed down
explicitly: nothing reads the environment behind the caller's back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLAIMX_", extra="ignore")

    environment: str = Field("development", description="development | production")
    home: Path = Field(Path(".claimx"), description="state folder for the embedded default")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in home")
    rpc_url: str | None = Field(None, description="JSON-RPC node; default in-process EVM")
    deployment_file: Path | None = Field(None, description="contract addresses (claimx deploy)")
    anchor_private_key: str | None = Field(
        None, description="hex key of the anchor operator account on a node without unlocked "
        "accounts (Besu); never logged")
    master_key: str | None = Field(
        None, description="64 hex digits wrapping every record's data key; default: a fixed "
        "development key, refused in production; never logged")
    operator_key_file: Path | None = Field(
        None, description="PEM key of the exchange operator member, signing access-log "
        "entries; embedded mode generates and registers one")
    webhook_backoff_seconds: float = Field(1.0, gt=0, description="first webhook retry delay; "
                                           "doubles each attempt")
    webhook_max_attempts: int = Field(6, gt=0, description="attempts before a delivery is "
                                      "parked (replayable)")
    webhook_timeout_seconds: float = Field(5.0, gt=0, description="per webhook attempt")
    webhook_poll_seconds: float = Field(0.2, gt=0, description="how often new events are "
                                        "fanned out to webhooks")
    webhook_allow_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="comma-separated host names or IP literals that "
        "webhooks may reach over http and at any address (local receivers in development); "
        "every other webhook must be https to a public address")
    share_link_days: int = Field(30, gt=0, le=366, description="default life of a claimant's "
                                 "progress link (POST /v1/claims/{id}/share)")
    green_channel_minutes: int = Field(30, gt=0, description="response clock of urgent "
                                       "evidence requests")
    merge_delay_seconds: int = Field(300, gt=0, description="maximum merge delay an "
                                     "acceptance promise states: a routine record is in an "
                                     "anchored head within this long of its publish")
    urgent_merge_delay_seconds: int = Field(10, gt=0, description="the same for green-"
                                            "channel (urgent) records")
    anchor_interval_seconds: float = Field(5.0, gt=0, description="routine batch interval")
    anchor_batch_max: int = Field(5000, gt=0, description="anchor at once when this many wait")
    urgent_poll_seconds: float = Field(0.25, gt=0, description="green-channel check period")
    lease_seconds: float = Field(15.0, gt=0, description="anchor-worker lease; a dead worker's "
                                 "standby takes over after this long")
    worker_id: str | None = Field(
        None, description="this worker's lease holder id (one per process); default: the id "
        "kept in CLAIMX_HOME/worker.id, so a restarted worker takes its lease back at once")
    confirmations: int = Field(1, ge=1, description="blocks (the anchor's own included) before "
                               "an anchor counts as confirmed and its records as anchored; 1 "
                               "on an instant-final chain (QBFT, anvil), more on a chain that "
                               "can reorganise")
    key_cache_seconds: float = Field(10.0, ge=0, description="how long a key's chain status "
                                     "is reused before asking the registry again")
    key_grace_seconds: float = Field(300.0, ge=0, description="while the chain is down, a "
                                     "member's or key's last registry answer is used for this "
                                     "long (publishes say key_status: stale); then 503")
    chain_timeout_seconds: float = Field(3.0, gt=0, description="per JSON-RPC request, never "
                                         "retried; repeated failures open a circuit breaker")
    max_body_bytes: int = Field(8 << 20, gt=0, description="largest accepted request body")
    http_header_timeout_seconds: float = Field(10.0, gt=0, description="a request's headers "
                                               "must arrive within this, else the connection "
                                               "is closed (slow clients)")
    http_body_timeout_seconds: float = Field(30.0, gt=0, description="longest wait for the "
                                             "next part of a request body (408 past it)")
    http_keep_alive_seconds: float = Field(5.0, gt=0, description="idle keep-alive "
                                           "connections are closed after this")
    http_shutdown_seconds: float = Field(3.0, gt=0, description="on SIGTERM, open "
                                         "connections (SSE streams) get this long to finish "
                                         "before the server closes them and exits")
    http_max_connections: int = Field(1000, gt=0, description="open connections at once; "
                                      "past it requests get 503")
    max_batch: int = Field(5000, gt=0, description="most envelopes in one batch request")
    verify_processes: int | None = Field(
        None, ge=0, description="processes verifying the signatures of large batches "
        "(default: one per CPU core; 0 or 1 verifies on threads in the gateway process)")
    verify_timeout_seconds: float = Field(
        10.0, gt=0, description="a publish call waits this long, once its batch is parsed, "
        "for the verifying processes' answers; past it they are killed (a stopped or wedged "
        "process), the call verifies its batch itself and the next batch gets new processes")

    @field_validator("webhook_allow_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        """``CLAIMX_WEBHOOK_ALLOW_HOSTS=127.0.0.1,localhost`` (a list is taken as it is)."""
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            return [str(h).strip().lower() for h in value if str(h).strip()]
        return value

    @model_validator(mode="after")
    def _production_needs_real_parts(self) -> Settings:
        if self.environment == "production" and (not self.database_url or not self.rpc_url):
            raise ValueError("production needs CLAIMX_DATABASE_URL and CLAIMX_RPC_URL; the "
                             "embedded SQLite and in-process EVM are for development only")
        if self.environment == "production" and not self.master_key:
            raise ValueError("production needs CLAIMX_MASTER_KEY (64 hex digits); the "
                             "development master key is public")
        return self

    def master_key_bytes(self) -> bytes:
        from gateway.store.vault import DEV_MASTER_KEY

        if not self.master_key:
            return DEV_MASTER_KEY
        try:
            return bytes.fromhex(self.master_key)
        except ValueError as exc:
            raise ValueError("CLAIMX_MASTER_KEY must be 64 hex digits") from exc

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        self.home.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.home / 'claimx.db').resolve()}"

    def resolved_deployment_file(self) -> Path:
        return self.deployment_file or self.home / "deployment.json"

