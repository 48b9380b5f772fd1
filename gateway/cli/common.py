"""What several ``claimx`` commands share: options, member arguments, the one error handler.

Commands import their layer's modules inside the function body, so ``claimx --help`` and
``claimx verify`` load only what they use (no web3 for help, no SQLAlchemy for verify).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from gateway.core.errors import ClaimxError
from gateway.core.types import MemberId, member_id, parse_hex32

if TYPE_CHECKING:
    from gateway.chain.client import Chain, Registry

RpcOpt = Annotated[str, typer.Option("--rpc-url", envvar="CLAIMX_RPC_URL",
                                     help="JSON-RPC node, e.g. http://127.0.0.1:8545")]
KeyEnvOpt = Annotated[str | None, typer.Option(
    help="environment variable holding the admin's private key (for nodes without unlocked "
    "accounts, e.g. Besu); the key itself never goes on the command line")]
MemberArg = Annotated[str, typer.Argument(
    help="member slug (hospital.ruijin) or its 0x bytes32 id", show_default=False)]
DEFAULT_DEPLOYMENT = Path(".claimx/deployment.json")
DeploymentOpt = Annotated[Path, typer.Option("--deployment", envvar="CLAIMX_DEPLOYMENT_FILE",
                                             help="file written by `claimx deploy`")]


class ClaimxGroup(TyperGroup):
    """The one place a domain error becomes ``error: CODE: message`` and exit status 1."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context
        try:
            return super().invoke(ctx)
        except ClaimxError as exc:
            typer.echo(f"error: {exc.code}: {exc.msg}", err=True)
            raise typer.Exit(1) from exc


def member_arg(text: str) -> MemberId:
    """A member given as a slug (hospital.ruijin) or as its 0x bytes32 id."""
    if text.startswith("0x") and len(text) == 66:
        return MemberId(parse_hex32(text, "member id"))
    return member_id(text)


def connect(rpc_url: str, key_env: str | None) -> Chain:
    """A chain client, signing with the key in ``key_env`` when given."""
    from gateway.chain.client import Chain

    key = None
    if key_env:
        key = os.environ.get(key_env)
        if not key:
            raise typer.BadParameter(f"environment variable {key_env} is empty or unset")
    return Chain.connect(rpc_url, key)


def registry(rpc_url: str, deployment: Path, key_env: str | None) -> Registry:
    """The registry named in a deployment file."""
    from gateway.chain.client import Deployment
    from gateway.core.errors import InputError

    try:
        d = Deployment.from_json(deployment.read_text())
    except (OSError, InputError) as exc:
        raise typer.BadParameter(f"cannot read deployment file {deployment}: {exc}") from exc
    chain = connect(rpc_url, key_env)
    if d.development_council and os.environ.get("CLAIMX_ENVIRONMENT") != "production":
        from gateway.chain.council import attach_council, dev_keys_path, load_dev_keys

        keys = dev_keys_path(deployment)
        if keys.exists():  # council calls go through the development council's Safe
            attach_council(chain, d, load_dev_keys(keys))
    return chain.registry(d.registry)
