"""One validated settings object, read from ``CLAIMX_*`` environment variables.

Defaults give the embedded mode: SQLite under ``.claimx/`` and an in-process EVM, nothing
to start by hand. Set ``CLAIMX_DATABASE_URL`` and ``CLAIMX_RPC_URL`` for PostgreSQL and a
JSON-RPC node.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    anchor_interval_seconds: float = Field(5.0, gt=0, description="routine batch interval")
    anchor_batch_max: int = Field(5000, gt=0, description="anchor at once when this many wait")
    urgent_poll_seconds: float = Field(0.25, gt=0, description="green-channel check period")
    lease_seconds: float = Field(15.0, gt=0, description="anchor-worker lease; a dead worker's "
                                 "standby takes over after this long")
    key_cache_seconds: float = Field(10.0, ge=0, description="how long a key's chain status "
                                     "is reused before asking the registry again")
    max_body_bytes: int = Field(8 << 20, gt=0, description="largest accepted request body")
    max_batch: int = Field(5000, gt=0, description="most envelopes in one batch request")

    @model_validator(mode="after")
    def _production_needs_real_parts(self) -> Settings:
        if self.environment == "production" and (not self.database_url or not self.rpc_url):
            raise ValueError("production needs CLAIMX_DATABASE_URL and CLAIMX_RPC_URL; the "
                             "embedded SQLite and in-process EVM are for development only")
        return self

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        self.home.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.home / 'claimx.db').resolve()}"

    def resolved_deployment_file(self) -> Path:
        return self.deployment_file or self.home / "deployment.json"


@lru_cache
def get_settings() -> Settings:
    return Settings()
