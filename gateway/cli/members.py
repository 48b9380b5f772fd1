"""``claimx deploy`` and ``claimx members ...``: the consortium operator's commands."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from gateway.chain.client import Chain, Deployment, Registry
from gateway.chain.directory import describe
from gateway.core.errors import ClaimxError, InputError
from gateway.core.types import KeyAlgorithm, Role, member_id, parse_hex32

members_app = typer.Typer(help="Admit, suspend and reinstate members; register and revoke "
                          "their signing keys (consortium admin).", no_args_is_help=True)

RpcOpt = Annotated[str, typer.Option("--rpc-url", envvar="CLAIMX_RPC_URL",
                                     help="JSON-RPC node, e.g. http://127.0.0.1:8545")]
KeyEnvOpt = Annotated[str | None, typer.Option(
    help="environment variable holding the admin's private key (for nodes without unlocked "
    "accounts, e.g. Besu); the key itself never goes on the command line")]
DeploymentOpt = Annotated[Path, typer.Option("--deployment", envvar="CLAIMX_DEPLOYMENT_FILE",
                                             help="file written by `claimx deploy`")]


_ALGORITHMS = {"ed25519": KeyAlgorithm.ED25519, "p256": KeyAlgorithm.ECDSA_P256}


def _chain(rpc_url: str, key_env: str | None) -> Chain:
    key = None
    if key_env:
        key = os.environ.get(key_env)
        if not key:
            raise typer.BadParameter(f"environment variable {key_env} is empty or unset")
    return Chain.connect(rpc_url, key)


def _fail(exc: ClaimxError) -> typer.Exit:
    typer.echo(f"error: {exc.code}: {exc.msg}", err=True)
    return typer.Exit(1)


def member_arg(text: str) -> bytes:
    """A member given as a slug (hospital.ruijin) or as its 0x bytes32 id."""
    if text.startswith("0x") and len(text) == 66:
        return parse_hex32(text, "member id")
    return member_id(text)


def deploy(
    rpc_url: RpcOpt,
    out: Annotated[Path, typer.Option(help="where to write the contract addresses")] = Path(
        ".claimx/deployment.json"),
    private_key_env: KeyEnvOpt = None,
    admin: Annotated[str | None, typer.Option(help="admin account (default: the sender)")] = None,
) -> None:
    """Deploy MemberRegistry and EvidenceLog to a JSON-RPC node and write their addresses."""
    try:
        d = _chain(rpc_url, private_key_env).deploy(admin)
    except ClaimxError as exc:
        raise _fail(exc) from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(d.to_json())
    typer.echo(d.to_json().strip())
    typer.echo(f"wrote {out}; run the gateway with `claimx serve --rpc-url {rpc_url} "
               f"--deployment {out}`", err=True)


def _registry(rpc_url: str, deployment: Path, key_env: str | None) -> Registry:
    try:
        d = Deployment.from_json(deployment.read_text())
    except (OSError, InputError) as exc:
        raise typer.BadParameter(f"cannot read deployment file {deployment}: {exc}") from exc
    return _chain(rpc_url, key_env).registry(d.registry)


@members_app.command("admit")
def admit(slug: str, role: Annotated[str, typer.Option(help="hospital, police, insurer, "
                                                       "auditor, operator or civil")],
          name: Annotated[str, typer.Option(help="display name")], rpc_url: RpcOpt,
          deployment: DeploymentOpt = Path(".claimx/deployment.json"),
          operator: Annotated[list[str] | None, typer.Option(
              help="operator account (repeatable)")] = None,
          private_key_env: KeyEnvOpt = None) -> None:
    """Admit an institution; its id is derived from SLUG (e.g. hospital.ruijin)."""
    try:
        r = Role[role.upper()]
    except KeyError as exc:
        raise typer.BadParameter(f"unknown role {role!r}") from exc
    try:
        _registry(rpc_url, deployment, private_key_env).admit_member(
            member_arg(slug), r, name, operator or [])
    except ClaimxError as exc:
        raise _fail(exc) from exc
    typer.echo(f"admitted {slug} as {r.name.lower()}: id 0x{member_arg(slug).hex()}")


@members_app.command("add-key")
def add_key(member: str, key_id: Annotated[str, typer.Option(help="0x key id")],
            public_key: Annotated[str, typer.Option(help="0x public key (from keys new)")],
            rpc_url: RpcOpt, alg: Annotated[str, typer.Option(help="ed25519 or p256")] = "ed25519",
            deployment: DeploymentOpt = Path(".claimx/deployment.json"),
            private_key_env: KeyEnvOpt = None) -> None:
    """Register a signing key printed by `claimx keys new`."""
    if alg not in _ALGORITHMS:
        raise typer.BadParameter(f"unknown algorithm {alg!r}: use ed25519 or p256")
    algorithm = _ALGORITHMS[alg]
    try:
        _registry(rpc_url, deployment, private_key_env).add_key(
            member_arg(member), parse_hex32(key_id, "key id"), algorithm,
            bytes.fromhex(public_key.removeprefix("0x")))
    except (ClaimxError, ValueError) as exc:
        raise _fail(exc if isinstance(exc, ClaimxError) else ClaimxError(str(exc))) from exc
    typer.echo(f"key {key_id} registered for {member}")


@members_app.command("revoke-key")
def revoke_key(member: str, key_id: Annotated[str, typer.Option(help="0x key id")],
               rpc_url: RpcOpt, at: Annotated[int, typer.Option(
                   help="unix time the key stops being valid (0 = now; earlier for a "
                   "compromise)")] = 0,
               deployment: DeploymentOpt = Path(".claimx/deployment.json"),
               private_key_env: KeyEnvOpt = None) -> None:
    """Revoke a signing key from a time on."""
    try:
        _registry(rpc_url, deployment, private_key_env).revoke_key(
            member_arg(member), parse_hex32(key_id, "key id"), at)
    except ClaimxError as exc:
        raise _fail(exc) from exc
    typer.echo(f"key {key_id} of {member} revoked")


@members_app.command("suspend")
def suspend(member: str, rpc_url: RpcOpt,
            deployment: DeploymentOpt = Path(".claimx/deployment.json"),
            private_key_env: KeyEnvOpt = None) -> None:
    """Suspend a member: its keys are invalid from now until reinstated."""
    try:
        _registry(rpc_url, deployment, private_key_env).suspend_member(member_arg(member))
    except ClaimxError as exc:
        raise _fail(exc) from exc
    typer.echo(f"{member} suspended")


@members_app.command("reinstate")
def reinstate(member: str, rpc_url: RpcOpt,
              deployment: DeploymentOpt = Path(".claimx/deployment.json"),
              private_key_env: KeyEnvOpt = None) -> None:
    """Lift a member's suspension."""
    try:
        _registry(rpc_url, deployment, private_key_env).reinstate_member(member_arg(member))
    except ClaimxError as exc:
        raise _fail(exc) from exc
    typer.echo(f"{member} reinstated")


@members_app.command("list")
def list_members(rpc_url: RpcOpt, deployment: DeploymentOpt = Path(".claimx/deployment.json"),
                 ) -> None:
    """Every member with its role, status and keys, as JSON."""
    try:
        reg = _registry(rpc_url, deployment, None)
        out = [{"id": "0x" + m.member_id.hex(), "name": m.name, "role": m.role.name.lower(),
                "suspended_at": m.suspended_at or None,
                "keys": ["0x" + k.hex() for k in reg.keys_of(m.member_id)]}
               for m in reg.members()]
    except ClaimxError as exc:
        raise _fail(exc) from exc
    typer.echo(json.dumps(out, indent=2, ensure_ascii=False))


@members_app.command("show")
def show(member: str, rpc_url: RpcOpt, deployment: DeploymentOpt = Path(".claimx/deployment.json"),
         at: Annotated[int, typer.Option(help="unix time to ask key validity for (0 = the "
                                         "latest block's time)")] = 0) -> None:
    """One member, with each key's status at a time as the registry answers it, as JSON."""
    mid = member_arg(member)
    try:
        reg = _registry(rpc_url, deployment, None)
        out = describe(reg, mid, at or reg.chain.now())
    except ClaimxError as exc:
        raise _fail(exc) from exc
    typer.echo(json.dumps(out, indent=2, ensure_ascii=False))
