"""The member directory as the registry on chain states it: who belongs to the consortium,
in which role, with which keys and whether each key is valid now. Served to members over HTTP
(``GET /v1/members``) so a client can find an institution's id and check signatures, and
printed by ``claimx members show``; the chain stays the authority either way.
"""

from __future__ import annotations

from typing import Any

from gateway.chain.contracts import Registry
from gateway.core.keys import algorithm_name
from gateway.core.types import hex32


def describe(reg: Registry, member: bytes, when: int) -> dict[str, Any]:
    """One member with each key's status at ``when`` (unix seconds, chain time)."""
    m = reg.member(member)
    keys = []
    for key_id in reg.keys_of(member):
        state = reg.key_status_at(member, key_id, when)
        keys.append({"key_id": hex32(key_id), "algorithm": algorithm_name(state.algorithm),
                     "status": state.status, "public_key": "0x" + state.public_key.hex()})
    return {"id": hex32(member), "name": m.name, "role": m.role.name.lower(),
            "admitted_at": m.admitted_at, "suspended_at": m.suspended_at or None, "at": when,
            "keys": keys}


def describe_all(reg: Registry, when: int) -> list[dict[str, Any]]:
    return [describe(reg, m.member_id, when) for m in reg.members()]
