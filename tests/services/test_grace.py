"""Last-known answers while the chain is down: members and keys within the grace period."""

from __future__ import annotations

import pytest

from gateway.chain.models import KeyState, MemberInfo
from gateway.core.errors import ChainError, ChainUnavailableError
from gateway.core.types import KeyAlgorithm, MemberId, Role
from gateway.services.auth import MemberDirectory
from gateway.services.publish import KeyCache

M = MemberId(b"\x01" * 32)
K = b"\x02" * 32


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class FlakyRegistry:
    """Answers until ``down`` is set, then raises what the guarded provider raises."""

    def __init__(self) -> None:
        self.down = False
        self.suspended = 0
        self.calls = 0

    def _check(self) -> None:
        self.calls += 1
        if self.down:
            raise ChainUnavailableError("node down")

    def member(self, member_id: bytes) -> MemberInfo:
        self._check()
        if member_id != M:
            raise ChainError("MemberRegistryUnknownMember(...)",
                             name="MemberRegistryUnknownMember", code="contract_error")
        return MemberInfo(M, Role.HOSPITAL, "H", 1, self.suspended)

    def key_status_at(self, member_id: bytes, key_id: bytes, at: int) -> KeyState:
        self._check()
        return KeyState("valid", KeyAlgorithm.ED25519, b"\x00" * 32)


def test_member_last_answer_serves_within_grace_then_503() -> None:
    reg, clock = FlakyRegistry(), Clock()
    d = MemberDirectory(reg, 10, grace=300, clock=clock)  # type: ignore[arg-type]
    assert d.lookup(M) is not None
    reg.down = True
    clock.t += 200
    caller = d.lookup(M)
    assert caller is not None and caller.role == Role.HOSPITAL
    clock.t += 101
    with pytest.raises(ChainUnavailableError) as err:
        d.lookup(M)
    assert err.value.http_status == 503 and err.value.code == "chain_unavailable"


def test_chain_error_is_never_cached_as_no_member() -> None:
    reg, clock = FlakyRegistry(), Clock()
    d = MemberDirectory(reg, 10, grace=300, clock=clock)  # type: ignore[arg-type]
    reg.down = True
    with pytest.raises(ChainUnavailableError):
        d.lookup(M)
    reg.down = False  # back at once: the member is found, no 10 s of "no member"
    assert d.lookup(M) is not None


def test_unknown_member_is_an_answer_and_suspension_is_too() -> None:
    reg, clock = FlakyRegistry(), Clock()
    d = MemberDirectory(reg, 10, grace=300, clock=clock)  # type: ignore[arg-type]
    assert d.lookup(MemberId(b"\x09" * 32)) is None
    reg.suspended = 5
    assert d.lookup(M) is None
    reg.down = True
    clock.t += 60
    assert d.lookup(M) is None  # the last answer was "suspended": still no access


def test_key_cache_serves_stale_within_grace() -> None:
    reg, clock = FlakyRegistry(), Clock()
    keys = KeyCache(reg, 10, chain_time=lambda: 1, clock=clock, grace=300)
    assert keys.lookup(M, K)[1] is True
    reg.down = True
    clock.t += 5
    assert keys.lookup(M, K)[1] is True  # within the ttl: no chain call at all
    clock.t += 100
    state, fresh = keys.lookup(M, K)
    assert state.valid and fresh is False
    with pytest.raises(ChainUnavailableError):
        keys.lookup(M, b"\x03" * 32)  # never seen
    clock.t += 300
    with pytest.raises(ChainUnavailableError):
        keys.lookup(M, K)


def test_key_cache_chain_time_failure_is_unavailability_too() -> None:
    reg, clock = FlakyRegistry(), Clock()
    fail = {"on": False}

    def chain_time() -> int:
        if fail["on"]:
            raise ChainUnavailableError("node down")
        return 1

    keys = KeyCache(reg, 0, chain_time=chain_time, clock=clock, grace=300)
    keys.lookup(M, K)
    fail["on"] = True
    assert keys.lookup(M, K)[1] is False


