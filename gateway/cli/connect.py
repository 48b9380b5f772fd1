"""``claimx connect``: the institution-side agent (MLLP, FHIR, watch folder -> outbox -> gateway),
and ``claimx connect status`` (what the outbox holds)."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Annotated

import typer

DEFAULT_OUTBOX = Path(".claimx/connect/outbox.db")
OutboxOpt = Annotated[Path, typer.Option(envvar="CLAIMX_CONNECT_OUTBOX",
                                         help="the agent's SQLite outbox")]

connect_app = typer.Typer(help="Run the institution-side agent that adapts, signs and publishes "
                          "what the hospital's or police bureau's systems send.",
                          rich_markup_mode=None)


@connect_app.callback(invoke_without_command=True)
def connect(
    ctx: typer.Context,
    gateway: Annotated[str | None, typer.Option(envvar="CLAIMX_GATEWAY",
                                                help="gateway base URL")] = None,
    issuer: Annotated[str | None, typer.Option(
        help="this institution: slug (hospital.ruijin) or 0x member id")] = None,
    key: Annotated[Path | None, typer.Option(help="the institution's signing key (PEM); "
                                             "it never leaves this machine")] = None,
    mllp: Annotated[str | None, typer.Option(help="HOST:PORT to take HL7 v2 over MLLP")] = None,
    fhir: Annotated[str | None, typer.Option(help="HOST:PORT for the FHIR endpoint")] = None,
    watch: Annotated[Path | None, typer.Option(help="folder of export files to publish")] = None,
    outbox: OutboxOpt = DEFAULT_OUTBOX,
    on_request: Annotated[str | None, typer.Option(
        help="command run for each request.opened event, split like a shell line but run "
        "without one; the event JSON on its stdin")] = None,
    follow_events: Annotated[bool, typer.Option(
        help="follow the member's event stream for evidence requests")] = True,
    settle: Annotated[float, typer.Option(help="seconds a watched file must stay unchanged")
                      ] = 1.0,
) -> None:
    """Run the agent until SIGTERM (token from CLAIMX_TOKEN)."""
    if ctx.invoked_subcommand is not None:
        return
    import asyncio
    import logging

    from gateway.cli.common import member_arg
    from gateway.connect.agent import Agent
    from gateway.connect.config import ConnectConfig, HostPort
    from gateway.core.keys import SigningKey
    from gateway.core.types import hex32

    missing = [n for n, v in (("--gateway", gateway), ("--issuer", issuer), ("--key", key))
               if v is None]
    if missing:
        raise typer.BadParameter(f"{', '.join(missing)} required")
    token = os.environ.get("CLAIMX_TOKEN", "").strip()
    if not token:
        raise typer.BadParameter("set CLAIMX_TOKEN to the institution's API token")
    if not (mllp or fhir or watch):
        raise typer.BadParameter("open at least one input: --mllp, --fhir or --watch")
    assert gateway is not None and issuer is not None and key is not None
    config = ConnectConfig(
        gateway=gateway, issuer=hex32(member_arg(issuer)), key_file=key, token=token,
        outbox=outbox, mllp=HostPort.parse(mllp, "--mllp") if mllp else None,
        fhir=HostPort.parse(fhir, "--fhir") if fhir else None, watch=watch,
        on_request=tuple(shlex.split(on_request)) if on_request else (),
        follow_events=follow_events, settle_seconds=settle)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    agent = Agent(config, SigningKey.load(key))
    inputs = ", ".join(f"{n} {v}" for n, v in (("mllp", mllp), ("fhir", fhir),
                                                ("watch", watch)) if v)
    typer.echo(f"claimx connect: {inputs} -> {gateway} (outbox {outbox})", err=True)
    asyncio.run(agent.serve())


@connect_app.command("status")
def status(outbox: OutboxOpt = DEFAULT_OUTBOX) -> None:
    """Queued, sent and failed records and the oldest waiting one, as JSON."""
    from gateway.connect.outbox import Outbox

    if not outbox.exists():
        raise typer.BadParameter(f"no outbox at {outbox}")
    box = Outbox(outbox)
    try:
        typer.echo(json.dumps(box.status(), indent=2))
    finally:
        box.close()
