"""Development members for a local gateway: ``claimx serve --dev-members DIR``.

Admits a hospital, a police bureau, an insurer and an auditor on the gateway's chain,
writes each signing key (PEM) and API token into DIR/members.json, so the API can be tried
at once (scripts/api_flow.py drives it). On a restart the members, keys and tokens already
in DIR are reused: whatever the chain or the database lacks (a fresh database, blocks lost
to a ``kill -9``) is registered or issued again, and nothing else changes. Refused in
production: real members are admitted with ``claimx members`` and credentials issued with
``claimx credentials``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway.chain.client import Registry
from gateway.core.errors import ClaimxError
from gateway.core.keys import SigningKey
from gateway.core.types import KeyAlgorithm, MemberId, Role, hex32, member_id
from gateway.services.auth import credential_is_live, issue_credential
from gateway.services.wiring import Services

DEV_MEMBERS = [
    ("hospital.dev", Role.HOSPITAL, "Dev Hospital", KeyAlgorithm.ED25519),
    ("police.dev", Role.POLICE, "Dev Traffic Police", KeyAlgorithm.ECDSA_P256),
    ("insurer.dev", Role.INSURER, "Dev Insurer", None),
    ("auditor.dev", Role.AUDITOR, "Dev Auditor", None),
]


def seed_dev_members(sv: Services, folder: Path) -> dict[str, Any]:
    """Admit the dev members (keys and tokens into ``folder``), reusing what ``folder``
    already holds; returns what was written."""
    if sv.settings.environment == "production":
        raise ClaimxError("--dev-members is for development only", code="not_in_production")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "members.json"
    before = _read(path)
    registry = sv.chain.registry(sv.deployment.registry)
    now = sv.chain.now()
    out: dict[str, Any] = {}
    for slug, role, name, alg in DEV_MEMBERS:
        mid = member_id(slug)
        old = before.get(slug, {})
        try:
            registry.member(mid)
        except ClaimxError:
            registry.admit_member(mid, role, name, [])
        entry: dict[str, Any] = {"member_id": hex32(mid), "role": role.name.lower()}
        if alg is not None:
            key_file = folder / f"{slug}.key"
            entry["key_file"] = str(_ensure_key(registry, mid, key_file, alg, now).resolve())
        token = old.get("token")
        with sv.db.session() as s:
            if not (isinstance(token, str) and credential_is_live(s, mid, token)):
                token = issue_credential(s, mid, "dev-members")
        entry["token"] = token
        out[slug] = entry
    path.write_text(json.dumps(out, indent=2) + "\n")
    path.chmod(0o600)
    return out


def _read(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def _ensure_key(registry: Registry, mid: MemberId, key_file: Path, alg: KeyAlgorithm,
                now: int) -> Path:
    """Reuse the key in ``key_file`` (registering it if the chain lacks it), else make one."""
    key = SigningKey.load(key_file) if key_file.exists() else None
    if key is None:
        key = SigningKey.generate(alg)
        key_file.write_bytes(key.to_pem())
        key_file.chmod(0o600)
    if not registry.key_status_at(mid, key.key_id, now).valid:
        registry.add_key(mid, key.key_id, key.algorithm, key.public.raw)
    return key_file
