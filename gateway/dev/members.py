"""Development members for a local gateway: ``claimx serve --dev-members DIR``.

Admits a hospital, a police bureau, an insurer, an auditor and an operator on the
gateway's chain (through the development council), gives each its own operator account,
which registers the member's signing key with a proof of possession, and writes keys and
API tokens into DIR/members.json, so the API can be tried at once (scripts/api_flow.py
drives it). On a restart the members, operator accounts, keys and tokens already in DIR are
reused: whatever the chain or the database lacks (a fresh database, blocks lost to a
``kill -9``) is registered or issued again, and nothing else changes. Refused in
production: real members are admitted with ``claimx council`` and credentials issued with
``claimx credentials``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from web3 import Web3

from gateway.chain.client import FUNDING_WEI, Chain, Registry
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
    ("operator.dev", Role.OPERATOR, "Dev Operator", None),  # reads /status
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
        operator_file = folder / f"{slug}.operator"
        operator = _operator(sv.chain, operator_file)
        try:
            registry.member(mid)
        except ClaimxError:
            # the council admits (the development council's keys, held by this process);
            # the member's own operator account then registers its key
            registry.admit_member(mid, role, name, [operator])
        entry: dict[str, Any] = {"member_id": hex32(mid), "role": role.name.lower(),
                                 "operator": operator,
                                 "operator_key_file": str(operator_file.resolve())}
        if alg is not None:
            key_file = folder / f"{slug}.key"
            entry["key_file"] = str(_ensure_key(registry, mid, key_file, alg, now,
                                                operator).resolve())
        token = before.get(slug, {}).get("token")
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


def _operator(chain: Chain, operator_file: Path) -> str:
    """The member's operator account: the one in ``operator_file`` (signed for here again),
    else a fresh funded one written there (mode 0600)."""
    if operator_file.exists():
        operator = chain.add_local(operator_file.read_text().strip())
        if chain.w3.eth.get_balance(Web3.to_checksum_address(operator)) == 0:  # chain afresh
            chain.send_value(operator, FUNDING_WEI)
        return operator
    operator = chain.new_funded_account()
    operator_file.touch(mode=0o600)
    operator_file.write_text(chain.private_key_of(operator) + "\n")
    return operator


def _ensure_key(registry: Registry, mid: MemberId, key_file: Path, alg: KeyAlgorithm,
                now: int, operator: str) -> Path:
    """Reuse the key in ``key_file`` (registering it if the chain lacks it), else make one;
    the member's operator registers it, with a proof of possession."""
    key = SigningKey.load(key_file) if key_file.exists() else None
    if key is None:
        key = SigningKey.generate(alg)
        key_file.write_bytes(key.to_pem())
        key_file.chmod(0o600)
    if not registry.key_status_at(mid, key.key_id, now).valid:
        registry.register_key(mid, key, sender=operator)
    return key_file
