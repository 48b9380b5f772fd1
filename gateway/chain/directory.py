"""The member directory as the registry on chain states it: who belongs to the consortium,
in which role, with which keys and whether each key is valid now. Served to members over HTTP
(``GET /v1/members``) so a client can find an institution's id and check signatures, and
printed by ``claimx members show``; the chain stays the authority either way. Each key's
stored proof of possession is checked here too (:class:`ProvenKeys`, :func:`check_possession`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.chain.models import KeyState
from gateway.core.errors import ForbiddenError, InputError, VerificationError
from gateway.core.keys import PublicKey, algorithm_name
from gateway.core.possession import verify_possession
from gateway.core.types import hex32

if TYPE_CHECKING:  # verifiers import this module: it loads no web3 itself
    from gateway.chain.contracts import Registry


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


def check_possession(reg: Registry, member: bytes, key_id: bytes, state: KeyState) -> None:
    """Raise ``VerificationError`` (``bad_possession_proof``, ``key_id_mismatch``) unless the
    proof stored with ``key_id`` is that key's signature over its own registration for
    ``member`` on this chain and registry. ``state`` is the registry's answer for the key
    (its algorithm and public key); the check is off chain because the EVM cannot run it."""
    public = PublicKey.from_chain(state.algorithm, state.public_key)
    verify_possession(public, member, key_id, reg.chain.chain_id, reg.address,
                      reg.proof_of(key_id))


class ProvenKeys:
    """The registry's key answers, refusing keys whose stored proof of possession fails.

    The contract stores a registration's proof but cannot check it, so a member's (possibly
    compromised) operator account can register a public key copied from elsewhere, or one it
    does not hold, with any bytes as proof. The gateway does not trust its node for this: a
    key known to the registry is accepted only after its proof verifies here. Proofs never
    change once stored (key ids are global and registered once), so each key's outcome is
    kept for the life of the process; chain failures are not kept and propagate.
    """

    def __init__(self, reg: Registry) -> None:
        self.reg = reg
        self._checked: dict[tuple[bytes, bytes], VerificationError | None] = {}

    def key_status_at(self, member_id: bytes, key_id: bytes, at: int) -> KeyState:
        """The registry's answer; raises ``ForbiddenError`` (403 ``bad_possession_proof``)
        for a key the registry holds for ``member_id`` whose proof does not verify."""
        state = self.reg.key_status_at(member_id, key_id, at)
        if state.status in ("unknown_member", "unknown_key"):
            return state
        failure = self.failure(member_id, key_id, state)
        if failure is not None:
            raise ForbiddenError(f"key {hex32(key_id)} of issuer {hex32(member_id)}: "
                                 f"{failure.msg}", code="bad_possession_proof",
                                 key_id=hex32(key_id), reason=failure.code)
        return state

    def failure(self, member_id: bytes, key_id: bytes, state: KeyState
                ) -> VerificationError | None:
        """Why the key's proof fails (None when it verifies), checked once per key."""
        cached = (member_id, key_id)
        if cached not in self._checked:
            try:
                check_possession(self.reg, member_id, key_id, state)
                self._checked[cached] = None
            except VerificationError as exc:
                self._checked[cached] = exc
            except InputError as exc:  # a stored public key that does not parse
                self._checked[cached] = VerificationError(exc.msg, code="bad_public_key")
        return self._checked[cached]
