"""``claimx deploy`` and ``claimx members ...``: the consortium admin's commands."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from gateway.cli.common import (
    DEFAULT_DEPLOYMENT,
    DeploymentOpt,
    KeyEnvOpt,
    RpcOpt,
    member_arg,
    registry,
)
from gateway.core.types import KeyAlgorithm, Role, hex32, parse_hex32

members_app = typer.Typer(help="Admit, suspend and reinstate members; register and revoke "
                          "their signing keys (consortium admin).", no_args_is_help=True)

_ALGORITHMS = {"ed25519": KeyAlgorithm.ED25519, "p256": KeyAlgorithm.ECDSA_P256}


@members_app.command("admit")
def admit(slug: str, role: Annotated[str, typer.Option(help="hospital, police, insurer, "
                                                       "auditor, operator or civil")],
          name: Annotated[str, typer.Option(help="display name")], rpc_url: RpcOpt,
          deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
          operator: Annotated[list[str] | None, typer.Option(
              help="operator account (repeatable)")] = None,
          private_key_env: KeyEnvOpt = None) -> None:
    """Admit an institution; its id is derived from SLUG (e.g. hospital.ruijin)."""
    try:
        r = Role[role.upper()]
    except KeyError as exc:
        raise typer.BadParameter(f"unknown role {role!r}") from exc
    registry(rpc_url, deployment, private_key_env).admit_member(
        member_arg(slug), r, name, operator or [])
    typer.echo(f"admitted {slug} as {r.name.lower()}: id {hex32(member_arg(slug))}")


@members_app.command("add-key")
def add_key(member: str, key_id: Annotated[str, typer.Option(help="0x key id")],
            public_key: Annotated[str, typer.Option(help="0x public key (from keys new)")],
            rpc_url: RpcOpt, alg: Annotated[str, typer.Option(help="ed25519 or p256")] = "ed25519",
            deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
            private_key_env: KeyEnvOpt = None) -> None:
    """Register a signing key printed by `claimx keys new`."""
    if alg not in _ALGORITHMS:
        raise typer.BadParameter(f"unknown algorithm {alg!r}: use ed25519 or p256")
    algorithm = _ALGORITHMS[alg]
    try:
        registry(rpc_url, deployment, private_key_env).add_key(
            member_arg(member), parse_hex32(key_id, "key id"), algorithm,
            bytes.fromhex(public_key.removeprefix("0x")))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"key {key_id} registered for {member}")


@members_app.command("revoke-key")
def revoke_key(member: str, key_id: Annotated[str, typer.Option(help="0x key id")],
               rpc_url: RpcOpt, at: Annotated[int, typer.Option(
                   help="unix time the key stops being valid (0 = now; earlier for a "
                   "compromise)")] = 0,
               deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
               private_key_env: KeyEnvOpt = None) -> None:
    """Revoke a signing key from a time on."""
    registry(rpc_url, deployment, private_key_env).revoke_key(
        member_arg(member), parse_hex32(key_id, "key id"), at)
    typer.echo(f"key {key_id} of {member} revoked")


@members_app.command("suspend")
def suspend(member: str, rpc_url: RpcOpt,
            deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
            private_key_env: KeyEnvOpt = None) -> None:
    """Suspend a member: its keys are invalid from now until reinstated."""
    registry(rpc_url, deployment, private_key_env).suspend_member(member_arg(member))
    typer.echo(f"{member} suspended")


@members_app.command("reinstate")
def reinstate(member: str, rpc_url: RpcOpt,
              deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
              private_key_env: KeyEnvOpt = None) -> None:
    """Lift a member's suspension."""
    registry(rpc_url, deployment, private_key_env).reinstate_member(member_arg(member))
    typer.echo(f"{member} reinstated")


@members_app.command("list")
def list_members(rpc_url: RpcOpt, deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
                 ) -> None:
    """Every member with its role, status and keys, as JSON."""
    reg = registry(rpc_url, deployment, None)
    out = [{"id": hex32(m.member_id), "name": m.name, "role": m.role.name.lower(),
            "suspended_at": m.suspended_at or None,
            "keys": [hex32(k) for k in reg.keys_of(m.member_id)]}
           for m in reg.members()]
    typer.echo(json.dumps(out, indent=2, ensure_ascii=False))


@members_app.command("show")
def show(member: str, rpc_url: RpcOpt, deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
         at: Annotated[int, typer.Option(help="unix time to ask key validity for (0 = the "
                                         "latest block's time)")] = 0) -> None:
    """One member, with each key's status at a time as the registry answers it, as JSON."""
    from gateway.chain.directory import describe

    mid = member_arg(member)
    reg = registry(rpc_url, deployment, None)
    out = describe(reg, mid, at or reg.chain.now())
    typer.echo(json.dumps(out, indent=2, ensure_ascii=False))
