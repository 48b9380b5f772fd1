"""The ``claimx`` command line: one Typer app, each command group in the module of its concept."""

from __future__ import annotations

import typer

from adapters.cli import adapt

app = typer.Typer(
    name="claimx",
    help="claimx: a claims evidence exchange. Institutions sign records once; insurers and "
    "auditors verify them against a permissioned chain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


app.command("adapt")(adapt)


@app.callback()
def _main() -> None:
    """claimx command line. Run a command with --help to learn it; start with `claimx demo`."""


def main() -> None:
    app()


if __name__ == "__main__":
    main()
