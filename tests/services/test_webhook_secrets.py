"""Webhook secrets are sealed at rest: no plaintext in the column, a wrong vault key reads
nothing, and migration 0006 seals existing secrets and downgrades."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from gateway.core.errors import ClaimxError
from gateway.services.push import endpoints
from gateway.services.push.destinations import (
    Destinations,
)
from gateway.store.db import Database, downgrade, upgrade
from gateway.store.tables import utcnow
from gateway.store.vault import DEV_MASTER_KEY, Vault
from tests.services.push_support import (
    INSURER,
    VAULT,
    Receiver,
    deliver_one,
    event,
    push_worker,
)


def test_secret_column_holds_no_plaintext(db: Database, receiver: Receiver) -> None:
    with db.session() as s:
        ep, secret = endpoints.register_endpoint(s, INSURER, receiver.url,
                                                 destinations=Destinations(["127.0.0.1"]),
                                                 vault=VAULT)
        endpoint_id = ep.id
    with db.engine.connect() as conn:
        [row] = conn.execute(text("SELECT * FROM webhook_endpoints")).mappings().all()
    raw = b"".join(v if isinstance(v, bytes) else str(v).encode() for v in row.values())
    assert secret.encode() not in raw and secret[len("whsec_"):].encode() not in raw
    assert VAULT.open_secret(row["secret_ct"], endpoint_id) == secret
    with pytest.raises(ClaimxError):
        VAULT.open_secret(row["secret_ct"], "another-endpoint")  # bound to its row

    receiver.secret = secret
    event(db, INSURER)
    other_key = Vault(bytes(32))  # a gateway started with another master key
    w = push_worker(db, Destinations(["127.0.0.1"]), vault=other_key)
    assert deliver_one(w).last_error == "secret_unreadable" and receiver.got == []


def test_migration_0006_seals_existing_secrets_and_downgrades(database_url: str) -> None:
    database = Database(database_url, migrate=False)
    try:
        upgrade(database.engine, "0005")
        with database.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO webhook_endpoints (id, member_id, url, secret, active, created_at) "
                "VALUES ('ep-old', :m, 'https://hooks.example.com/', 'whsec_plain', :t, :n)"),
                {"m": INSURER, "t": True, "n": utcnow()})
        with pytest.raises(RuntimeError, match="master key"):
            upgrade(database.engine)  # rows to seal and no key: refused, nothing changed
        upgrade(database.engine, master_key=DEV_MASTER_KEY)
        with database.engine.connect() as conn:
            [row] = conn.execute(text("SELECT * FROM webhook_endpoints")).mappings().all()
        assert "secret" not in row and b"whsec_plain" not in row["secret_ct"]
        assert Vault(DEV_MASTER_KEY).open_secret(row["secret_ct"], "ep-old") == "whsec_plain"
        downgrade(database.engine, "0005", master_key=DEV_MASTER_KEY)
        with database.engine.connect() as conn:
            [row] = conn.execute(text("SELECT * FROM webhook_endpoints")).mappings().all()
        assert row["secret"] == "whsec_plain" and "secret_ct" not in row
    finally:
        database.engine.dispose()
