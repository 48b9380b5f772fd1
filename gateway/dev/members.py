"""Development members for a local gateway: ``claimx serve --dev-members DIR``.

Admits a hospital, a police bureau, an insurer and an auditor on the gateway's chain,
writes each signing key (PEM) and API token into DIR/members.json, so the API can be tried
at once (scripts/api_flow.py drives it). Refused in production: real members are admitted
with ``claimx members`` and credentials issued with ``claimx credentials``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway.core.errors import ClaimxError
from gateway.core.keys import SigningKey
from gateway.core.types import KeyAlgorithm, Role, hex32, member_id
from gateway.services.auth import issue_credential
from gateway.services.wiring import Services

DEV_MEMBERS = [
    ("hospital.dev", Role.HOSPITAL, "Dev Hospital", KeyAlgorithm.ED25519),
    ("police.dev", Role.POLICE, "Dev Traffic Police", KeyAlgorithm.ECDSA_P256),
    ("insurer.dev", Role.INSURER, "Dev Insurer", None),
    ("auditor.dev", Role.AUDITOR, "Dev Auditor", None),
    ("operator.dev", Role.OPERATOR, "Dev Operator", None),  # reads /status
]


def seed_dev_members(sv: Services, folder: Path) -> dict[str, Any]:
    """Admit the dev members (keys and tokens into ``folder``); returns what was written."""
    if sv.settings.environment == "production":
        raise ClaimxError("--dev-members is for development only", code="not_in_production")
    folder.mkdir(parents=True, exist_ok=True)
    registry = sv.chain.registry(sv.deployment.registry)
    out: dict[str, Any] = {}
    for slug, role, name, alg in DEV_MEMBERS:
        mid = member_id(slug)
        # the council admits (the development council's keys, held by this process); the
        # member's own operator account then registers its key with a proof of possession
        operator = sv.chain.new_funded_account()
        registry.admit_member(mid, role, name, [operator])
        entry: dict[str, Any] = {"member_id": hex32(mid), "role": role.name.lower(),
                                 "operator": operator}
        operator_file = folder / f"{slug}.operator"
        operator_file.touch(mode=0o600)
        operator_file.write_text(sv.chain.private_key_of(operator) + "\n")
        entry["operator_key_file"] = str(operator_file.resolve())
        if alg is not None:
            key = SigningKey.generate(alg)
            registry.register_key(mid, key, sender=operator)
            key_file = folder / f"{slug}.key"
            key_file.write_bytes(key.to_pem())
            key_file.chmod(0o600)
            entry["key_file"] = str(key_file.resolve())
        with sv.db.session() as s:
            entry["token"] = issue_credential(s, mid, "dev-members")
        out[slug] = entry
    path = folder / "members.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    path.chmod(0o600)
    return out
