"""The ``claimx`` command line: one Typer app; each command group lives in its own module.

Only Typer and the command modules load at start; each command imports its layer when it
runs, so ``claimx --help`` stays fast and an auditor's ``claimx verify`` loads no database.
"""

from __future__ import annotations

import typer

from adapters.cli import adapt, pseudonym
from gateway.cli import serve, verify
from gateway.cli.common import ClaimxGroup
from gateway.cli.connect import connect_app
from gateway.cli.credentials import credentials_app
from gateway.cli.deploy import deploy
from gateway.cli.keys import keys_app, sign
from gateway.cli.members import members_app

app = typer.Typer(
    name="claimx",
    cls=ClaimxGroup,
    help="claimx: a claims evidence exchange. Institutions sign records once; insurers and "
    "auditors verify them against a permissioned chain. Start with `claimx demo`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.command("demo")(serve.demo)
app.command("serve")(serve.serve)
app.command("worker")(serve.worker)
app.add_typer(keys_app, name="keys")
app.command("sign")(sign)
app.command("adapt")(adapt)
app.command("pseudonym")(pseudonym)
app.command("deploy")(deploy)
app.add_typer(members_app, name="members")
app.add_typer(credentials_app, name="credentials")
app.command("verify")(verify.verify)
app.command("audit")(verify.audit)
app.add_typer(connect_app, name="connect")


def main() -> None:
    """Console entry point (``claimx``); domain errors print one line, never a traceback."""
    app()


if __name__ == "__main__":
    main()
