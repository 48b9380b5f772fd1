"""Routes for the member directory: read from the registry on chain, for every member."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from gateway.api.deps import CallerDep, ServicesDep
from gateway.api.schemas import MemberOut
from gateway.chain.directory import describe, describe_all
from gateway.core.errors import ChainError, NotFoundError
from gateway.core.types import parse_hex32

router = APIRouter(tags=["members"])
MemberPath = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{64}$", description="0x member id")]


@router.get("/v1/members", response_model=list[MemberOut])
def list_members(sv: ServicesDep, caller: CallerDep) -> list[MemberOut]:
    """Every member: id, name, role, suspension, and each key with its status now. Use it to
    find the institution to ask for evidence, or the key that signed a record."""
    registry = sv.chain.registry(sv.deployment.registry)
    return [MemberOut.model_validate(m) for m in describe_all(registry, sv.chain.now())]


@router.get("/v1/members/{member}", response_model=MemberOut)
def get_member(sv: ServicesDep, caller: CallerDep, member: MemberPath) -> MemberOut:
    """One member as the registry states it now."""
    registry = sv.chain.registry(sv.deployment.registry)
    try:
        found = describe(registry, parse_hex32(member, "member"), sv.chain.now())
    except ChainError as exc:
        if exc.name != "MemberRegistryUnknownMember":
            raise  # the node failed: a 502 that says so
        raise NotFoundError("no member with this id in the registry",
                            code="member_not_found") from exc
    return MemberOut.model_validate(found)
