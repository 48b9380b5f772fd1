"""``claimx credentials issue|revoke``: API credentials for members' systems (operator)."""

from __future__ import annotations

from typing import Annotated

import typer

from gateway.cli.common import member_arg

credentials_app = typer.Typer(help="Issue and revoke members' API credentials (stored only as "
                              "hashes in the gateway database).", no_args_is_help=True)
DbOpt = Annotated[str, typer.Option("--database-url", envvar="CLAIMX_DATABASE_URL",
                                    help="the gateway's database")]


@credentials_app.command("issue")
def issue(member: str, database_url: DbOpt,
          label: Annotated[str, typer.Option(help="which system holds it")] = "") -> None:
    """Print a new bearer token for MEMBER (slug or 0x id); it is shown only this once."""
    from gateway.services.auth import issue_credential
    from gateway.store.db import Database

    with Database(database_url).session() as s:
        token = issue_credential(s, member_arg(member), label)
    typer.echo(token)
    typer.echo("send it as `Authorization: Bearer <token>`; it cannot be shown again",
               err=True)


@credentials_app.command("revoke")
def revoke(member: str, database_url: DbOpt) -> None:
    """Revoke every credential of MEMBER."""
    from gateway.services.auth import revoke_credentials
    from gateway.store.db import Database

    with Database(database_url).session() as s:
        n = revoke_credentials(s, member_arg(member))
    typer.echo(f"revoked {n} credential(s)")
