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
from gateway.cli.consent import consent_app
from gateway.cli.council import council_app
from gateway.cli.credentials import credentials_app
from gateway.cli.deploy import deploy
from gateway.cli.keys import keys_app, sign
from gateway.cli.members import members_app
from gateway.cli.monitor import monitor
from gateway.cli.publish import publish

app = typer.Typer(
    name="claimx",
    cls=ClaimxGroup,
    help="claimx: a claims evidence exchange. Institutions sign records once; insurers and "
    "auditors verify them against a permissioned chain. Start with `claimx demo`; every "
    "command explains itself with --help (e.g. `claimx verify --help`).\n\n"
    "\b\nA hospital's path, end to end:\n"
    "  claimx deploy --rpc-url http://127.0.0.1:8545\n"
    "  claimx members admit hospital.ruijin --role hospital --name Ruijin --rpc-url URL\n"
    "  claimx keys new --out hospital.key\n"
    "  claimx members add-key hospital.ruijin --key-id 0x.. --public-key 0x.. --rpc-url URL\n"
    "  claimx adapt --issuer hospital.ruijin export.hl7 > packets.json\n"
    "  claimx sign packets.json --key hospital.key > envelopes.json\n"
    "  claimx publish envelopes.json --gateway URL   # token from CLAIMX_TOKEN\n"
    "  # save GET /v1/records/DIGEST/receipt\n"
    "  claimx verify receipt.json --rpc-url URL      # 0 valid, 1 invalid, 2 unchecked",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.command("demo", short_help="the whole trust path in-process, tampering caught")(serve.demo)
app.command("serve", short_help="run the HTTP gateway and its anchor worker")(serve.serve)
app.command("worker", short_help="run only the anchor worker")(serve.worker)
app.add_typer(keys_app, name="keys", short_help="create institution signing keys")
app.command("sign", short_help="sign claim packets into DSSE envelopes")(sign)
app.command("publish", short_help="sign and publish records to a gateway, in batches")(
    publish)
app.command("adapt", short_help="institutional exports to claim packets")(adapt)
app.command("pseudonym", short_help="subject pseudonyms of identifiers on stdin")(pseudonym)
app.command("deploy", short_help="put the contracts on a chain, write the deployment")(deploy)
app.add_typer(council_app, name="council",
              short_help="k-of-n council actions: propose, sign, execute, show")
app.add_typer(members_app, name="members",
              short_help="admit members, register their keys (admin)")
app.add_typer(credentials_app, name="credentials",
              short_help="issue and revoke members' API tokens (operator)")
app.add_typer(consent_app, name="consent",
              short_help="claimant keys, consents, bindings, withdrawals")
app.command("verify", short_help="verify a receipt against the chain alone")(verify.verify)
app.command("verify-promise", short_help="was an acceptance promise kept? (chain alone)")(
    verify.verify_promise)
app.command("audit", short_help="prove every read of records was consented")(verify.audit)
app.command("monitor", short_help="watch the chain and the log for anything done in your "
            "name")(monitor)
app.add_typer(connect_app, name="connect",
              short_help="the institution's agent: MLLP, FHIR, watch folder -> gateway")


def main() -> None:
    """Console entry point (``claimx``); domain errors print one line, never a traceback."""
    app()


if __name__ == "__main__":
    main()
