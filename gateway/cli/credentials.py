"""``claimx credentials issue|revoke``: API credentials for members' systems (operator)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gateway.cli.common import (
    DEFAULT_DEPLOYMENT,
    DeploymentOpt,
    MemberArg,
    member_arg,
    registry,
)
from gateway.core.errors import ChainError, ClaimxError
from gateway.core.types import MemberId

credentials_app = typer.Typer(help="Issue and revoke members' API credentials (stored only as "
                              "hashes in the gateway database).", no_args_is_help=True)
DbOpt = Annotated[str | None, typer.Option(
    "--database-url", envvar="CLAIMX_DATABASE_URL", show_default=False,
    help="the gateway's database; default: the local network's CLAIMX_HOME/claimx.db "
    "(.claimx/claimx.db, made by `claimx serve` with no URLs)")]


@credentials_app.command("issue")
def issue(member: MemberArg, database_url: DbOpt = None,
          label: Annotated[str, typer.Option(help="which system holds it")] = "",
          rpc_url: Annotated[str | None, typer.Option(
              "--rpc-url", envvar="CLAIMX_RPC_URL", show_default=False,
              help="JSON-RPC node, to check that MEMBER is in the registry")] = None,
          deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
          no_check: Annotated[bool, typer.Option(
              "--no-check", help="offline set-up only: issue without asking the registry "
              "(a token for a non-member fails only when used)")] = False) -> None:
    """Print a new bearer token for MEMBER (slug or 0x id); it is shown only this once.

    MEMBER must be admitted in the registry of --deployment on --rpc-url; a typo is
    refused here rather than found when the token is first used.

    \b
    Example:
      claimx credentials issue hospital.ruijin --label his-prod \\
          --database-url postgresql+psycopg://claimx@127.0.0.1/claimx \\
          --rpc-url http://127.0.0.1:8545
    """
    from gateway.services.auth import issue_credential
    from gateway.store.db import Database

    mid = member_arg(member)
    if not no_check:
        _check_member(member, mid, rpc_url, deployment)
    with Database(_database_url(database_url)).session() as s:
        token = issue_credential(s, mid, label)
    typer.echo(token)
    typer.echo("send it as `Authorization: Bearer <token>`; it cannot be shown again",
               err=True)


def _database_url(given: str | None) -> str:
    """``given``, else the local network's SQLite file, which must exist: a token written
    into a database no gateway uses would fail only when first used."""
    if given:
        return given
    from gateway.config import Settings

    path = Settings().home / "claimx.db"
    if not path.exists():
        raise typer.BadParameter(f"no gateway database at {path}: start `claimx serve` in "
                                 "this folder first, or give the gateway's --database-url",
                                 param_hint="--database-url")
    return f"sqlite:///{path.resolve()}"


def _check_member(member: str, mid: MemberId, rpc_url: str | None,
                  deployment: Path) -> None:
    """Refuse a member the registry does not know; warn about a suspended one."""
    if rpc_url is None:
        raise typer.BadParameter("give --rpc-url (or CLAIMX_RPC_URL) so MEMBER can be checked "
                                 "against the registry, or --no-check for offline set-up",
                                 param_hint="--rpc-url")
    reg = registry(rpc_url, deployment, None)
    try:
        info = reg.member(mid)
    except ChainError as exc:
        if exc.name == "MemberRegistryUnknownMember":
            raise ClaimxError(f"{member} is not a member of the registry {reg.address}: admit "
                              "it first (`claimx members admit`), or check the spelling",
                              code="unknown_member") from exc
        raise
    if info.suspended_at:
        typer.echo(f"warning: {member} is suspended in the registry (since "
                   f"{info.suspended_at}); `claimx members reinstate` lifts it", err=True)


@credentials_app.command("revoke")
def revoke(member: MemberArg, database_url: DbOpt = None) -> None:
    """Revoke every credential of MEMBER."""
    from gateway.services.auth import revoke_credentials
    from gateway.store.db import Database

    with Database(_database_url(database_url)).session() as s:
        n = revoke_credentials(s, member_arg(member))
    typer.echo(f"revoked {n} credential(s)")
