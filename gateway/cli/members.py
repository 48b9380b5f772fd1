"""``claimx deploy`` and ``claimx members ...``: the consortium admin's commands."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gateway.cli.common import (
    DEFAULT_DEPLOYMENT,
    DeploymentOpt,
    KeyEnvOpt,
    MemberArg,
    RpcOpt,
    member_arg,
    registry,
)
from gateway.core.errors import InputError
from gateway.core.types import KeyAlgorithm, MemberId, Role, hex32, parse_hex32

if TYPE_CHECKING:
    from gateway.chain.client import Registry

members_app = typer.Typer(help="Admit, suspend and reinstate members; register and revoke "
                          "their signing keys (consortium admin).", no_args_is_help=True)


@members_app.command("admit")
def admit(slug: Annotated[str, typer.Argument(help="the new member's slug, e.g. "
                                              "hospital.ruijin", show_default=False)],
          role: Annotated[str, typer.Option(help="hospital, police, insurer, auditor, "
                                            "operator or civil")],
          name: Annotated[str, typer.Option(help="display name")], rpc_url: RpcOpt,
          deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
          operator: Annotated[list[str] | None, typer.Option(
              help="operator account, acting for the member on chain (repeatable)")] = None,
          private_key_env: KeyEnvOpt = None) -> None:
    """Admit an institution; its id is derived from SLUG.

    \b
    Example:
      claimx members admit hospital.ruijin --role hospital --name "Ruijin Hospital" \\
          --rpc-url http://127.0.0.1:8545 --operator 0xOPERATOR_ACCOUNT
    """
    try:
        r = Role[role.upper()]
    except KeyError as exc:
        raise typer.BadParameter(f"unknown role {role!r}", param_hint="--role") from exc
    mid = member_arg(slug)
    registry(rpc_url, deployment, private_key_env).admit_member(mid, r, name, operator or [])
    typer.echo(f"admitted {slug} as {r.name.lower()}: id {hex32(mid)}")


@members_app.command("add-key")
def add_key(member: MemberArg, key_id: Annotated[str, typer.Option(help="0x key id")],
            public_key: Annotated[str, typer.Option(help="0x public key (from keys new)")],
            rpc_url: RpcOpt, alg: Annotated[str | None, typer.Option(
                help="ed25519 or p256 (ecdsa_p256 accepted); default: read from the public "
                "key (32 bytes Ed25519, 33/65-byte SEC1 point P-256)",
                show_default=False)] = None,
            deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
            private_key_env: KeyEnvOpt = None,
            key: Annotated[Path | None, typer.Option(
                help="the new key's PEM file: it signs its own registration (proof of "
                "possession)")] = None,
            proof: Annotated[str | None, typer.Option(
                help="0x proof of possession made elsewhere (instead of --key)")] = None,
            ) -> None:
    """Register a signing key printed by `claimx keys new` for MEMBER.

    Sent by one of MEMBER's own operator accounts (--private-key-env, or the node's first
    account), with the key's proof of possession: its signature over member id, key id,
    chain id and registry address.

    The key id must be the one `keys new` printed for this public key; it is checked here
    before anything is sent.

    \b
    Example:
      claimx members add-key hospital.ruijin --key-id 0x... --public-key 0x... \\
          --rpc-url http://127.0.0.1:8545
    """
    from gateway.core.keys import PublicKey, algorithm_name

    raw, algorithm = _public_key(public_key, alg)
    kid = _key_id(key_id)
    actual = PublicKey(algorithm, raw).key_id
    if actual != kid:
        raise typer.BadParameter(f"key id {key_id} is not this public key's (it is "
                                 f"{hex32(actual)}); pass both from the same `keys new` output",
                                 param_hint="--key-id")
    reg = registry(rpc_url, deployment, private_key_env)
    if key is not None:
        from gateway.core.keys import SigningKey
        from gateway.core.possession import prove_possession

        signing = SigningKey.load(key)
        if signing.key_id != kid:
            raise typer.BadParameter("--key is not the key named by --key-id", param_hint="--key")
        made = prove_possession(signing, member_arg(member), reg.chain.chain_id, reg.address)
    elif proof is not None:
        made = bytes.fromhex(proof.removeprefix("0x"))
    else:
        raise typer.BadParameter("give --key PEM (or --proof 0x...): a key is registered only "
                                 "with its proof of possession", param_hint="--key")
    reg.add_key(member_arg(member), kid, algorithm, raw, proof=made)
    typer.echo(f"key {key_id} ({algorithm_name(algorithm)}) registered for {member}")


def _key_id(text: str) -> bytes:
    try:
        return parse_hex32(text, "key id")
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--key-id") from exc


def _public_key(text: str, alg: str | None) -> tuple[bytes, KeyAlgorithm]:
    """The public key's bytes and algorithm: named by --alg, else detected from the bytes."""
    from gateway.core.keys import PublicKey, detect_algorithm, parse_algorithm

    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError as exc:
        raise typer.BadParameter("not hex: give the 0x public_key that `claimx keys new` "
                                 "printed", param_hint="--public-key") from exc
    try:
        algorithm = parse_algorithm(alg) if alg is not None else detect_algorithm(raw)
        PublicKey.from_chain(algorithm, raw)
    except InputError as exc:
        hint = "--alg" if exc.code == "bad_algorithm" else "--public-key"
        raise typer.BadParameter(exc.msg, param_hint=hint) from exc
    return raw, algorithm


@members_app.command("revoke-key")
def revoke_key(member: MemberArg, key_id: Annotated[str, typer.Option(help="0x key id")],
               rpc_url: RpcOpt, at: Annotated[int, typer.Option(
                   help="unix time the key stops being valid (0 = now; earlier for a "
                   "compromise)")] = 0,
               deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
               private_key_env: KeyEnvOpt = None) -> None:
    """Revoke a signing key from a time on."""
    kid = _key_id(key_id)
    registry(rpc_url, deployment, private_key_env).revoke_key(member_arg(member), kid, at)
    typer.echo(f"key {key_id} of {member} revoked")


def _member_action(name: str, act: Callable[[Registry, MemberId], None], done: str,
                   doc: str) -> None:
    """Register ``claimx members NAME MEMBER``: one registry call on MEMBER, then a line."""
    def command(member: MemberArg, rpc_url: RpcOpt,
                deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
                private_key_env: KeyEnvOpt = None) -> None:
        act(registry(rpc_url, deployment, private_key_env), member_arg(member))
        typer.echo(f"{member} {done}")

    command.__doc__ = doc
    members_app.command(name)(command)


_member_action("suspend", lambda reg, mid: reg.suspend_member(mid), "suspended",
               "Suspend a member: its keys are invalid from now until reinstated.")
_member_action("reinstate", lambda reg, mid: reg.reinstate_member(mid), "reinstated",
               "Lift a member's suspension.")


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
def show(member: MemberArg, rpc_url: RpcOpt, deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
         at: Annotated[int, typer.Option(help="unix time to ask key validity for (0 = the "
                                         "latest block's time)")] = 0) -> None:
    """One member, with each key's status at a time as the registry answers it, as JSON."""
    from gateway.chain.directory import describe

    reg = registry(rpc_url, deployment, None)
    out = describe(reg, member_arg(member), at or reg.chain.now())
    typer.echo(json.dumps(out, indent=2, ensure_ascii=False))
