"""Who is calling: per-member API credentials (stored only as hashes) and on-chain roles.

A member's systems send ``Authorization: Bearer cx1_…``. The token names a member; the
member's role and standing come from the MemberRegistry on chain (cached briefly), so a
suspension there locks the member out here too; while the chain is down the last answer
serves for a grace period, then the request is a 503, never a 403.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.core.errors import AuthError, ChainError, ChainUnavailableError, ForbiddenError
from gateway.core.types import MemberId, Role, hex32
from gateway.store.tables import Credential, utcnow

if TYPE_CHECKING:
    from gateway.chain.contracts import Registry

TOKEN_PREFIX = "cx1_"

PUBLISHERS = frozenset({Role.HOSPITAL, Role.POLICE, Role.CIVIL})
"""Roles whose systems publish evidence."""


@dataclass(frozen=True)
class Caller:
    member_id: MemberId
    role: Role
    name: str

    @property
    def hex(self) -> str:
        return hex32(self.member_id)


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def issue_credential(s: Session, member_id: MemberId, label: str = "") -> str:
    """Create a credential and return the token; it is shown once and stored only hashed."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    s.add(Credential(member_id=member_id, token_hash=_hash(token), label=label[:128]))
    return token


def credential_is_live(s: Session, member_id: MemberId, token: str) -> bool:
    """Whether ``token`` is an unrevoked credential of ``member_id`` (dev members' reuse)."""
    row = s.scalar(select(Credential).where(Credential.token_hash == _hash(token)))
    return row is not None and row.revoked_at is None and bytes(row.member_id) == member_id


def revoke_credentials(s: Session, member_id: MemberId) -> int:
    """Revoke every live credential of a member; returns how many."""
    rows = s.scalars(select(Credential).where(Credential.member_id == member_id,
                                              Credential.revoked_at.is_(None))).all()
    for row in rows:
        row.revoked_at = utcnow()
    return len(rows)


class MemberDirectory:
    """Members' roles and standing from the registry, reused for ``ttl`` seconds.

    While the chain does not answer, the last answer it gave is used for ``grace`` seconds
    (a member suspended meanwhile keeps access that long, the price of staying up); after
    that, or for a member never seen, the lookup is a 503. A failed call is never taken as
    "no such member".
    """

    def __init__(self, registry: Registry, ttl: float = 10.0, *, grace: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry, self.ttl, self.grace, self.clock = registry, ttl, grace, clock
        self._cache: dict[MemberId, tuple[float, Caller | None]] = {}
        """The last answer the registry gave per member, and when it gave it."""

    def lookup(self, member_id: MemberId) -> Caller | None:
        """The active member, or None when unknown or suspended."""
        hit = self._cache.get(member_id)
        now = self.clock()
        if hit and now - hit[0] < self.ttl:
            return hit[1]
        try:
            info = self.registry.member(member_id)
        except ChainError as exc:
            if exc.name is not None and not isinstance(exc, ChainUnavailableError):
                caller = None  # the registry answered: a revert (unknown member)
            elif hit and now - hit[0] <= self.grace:
                return hit[1]
            else:
                raise _unavailable(exc) from exc
        else:
            caller = None if info.suspended_at else Caller(member_id, info.role, info.name)
        self._cache[member_id] = (now, caller)
        return caller


def _unavailable(exc: ChainError) -> ChainUnavailableError:
    if isinstance(exc, ChainUnavailableError):
        return exc
    return ChainUnavailableError(f"the chain could not say who the member is ({exc.code}); "
                                 "try again shortly")


def authenticate(s: Session, directory: MemberDirectory, header: str | None) -> Caller:
    """Resolve an Authorization header to an active member, or raise 401/403 saying why."""
    if not header:
        raise AuthError("missing Authorization header: send `Authorization: Bearer <token>` "
                        "with a credential from `claimx credentials issue`",
                        code="missing_credentials")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.startswith(TOKEN_PREFIX):
        raise AuthError("Authorization must be `Bearer cx1_…`", code="bad_credentials")
    row = s.scalar(select(Credential).where(Credential.token_hash == _hash(token.strip())))
    if row is None or row.revoked_at is not None:
        raise AuthError("unknown or revoked credential", code="bad_credentials")
    caller = directory.lookup(MemberId(row.member_id))
    if caller is None:
        raise ForbiddenError("member is suspended or no longer in the registry",
                             code="member_inactive")
    return caller


def require_role(caller: Caller, *roles: Role, action: str) -> None:
    """403 unless the caller has one of ``roles``."""
    if caller.role not in roles:
        allowed = ", ".join(r.name.lower() for r in roles)
        raise ForbiddenError(f"{caller.role.name.lower()} members may not {action} (allowed: "
                             f"{allowed})", code="role_forbidden")
