"""``claimx connect``: the institution-side agent (MLLP, FHIR, watch folder -> outbox -> gateway),
and ``claimx connect status`` (what the outbox holds)."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from gateway.connect.config import ConnectConfig

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
    outbox: Annotated[Path | None, typer.Option(
        envvar="CLAIMX_CONNECT_OUTBOX", help=f"the agent's SQLite outbox [default: "
        f"{DEFAULT_OUTBOX}]")] = None,
    on_request: Annotated[str | None, typer.Option(
        help="command run for each request.opened event, split like a shell line but run "
        "without one; the event JSON on its stdin")] = None,
    follow_events: Annotated[bool | None, typer.Option(
        "--follow-events/--no-follow-events",
        help="follow the member's event stream for evidence requests [default: yes]")] = None,
    settle: Annotated[float | None, typer.Option(
        help="seconds a watched file must stay unchanged [default: 1]")] = None,
    config: Annotated[Path | None, typer.Option(
        envvar="CLAIMX_CONNECT_CONFIG", help="TOML file with the same settings (gateway, "
        "issuer, key, mllp, fhir, watch, outbox, on_request, follow_events, settle); the "
        "command line wins. The token stays in CLAIMX_TOKEN")] = None,
) -> None:
    """Run the agent until SIGTERM (token from CLAIMX_TOKEN)."""
    if ctx.invoked_subcommand is not None:
        return
    import asyncio
    import logging

    from gateway.connect.agent import Agent
    from gateway.core.keys import SigningKey

    given = {"gateway": gateway, "issuer": issuer, "key": key, "mllp": mllp, "fhir": fhir,
             "watch": watch, "outbox": outbox, "on_request": on_request,
             "follow_events": follow_events, "settle": settle}
    settings = _merge(_read_config(config) if config else {}, given)
    cfg = _build(settings)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    agent = Agent(cfg, SigningKey.load(cfg.key_file))
    inputs = ", ".join(f"{n} {v}" for n, v in (("mllp", cfg.mllp), ("fhir", cfg.fhir),
                                                ("watch", cfg.watch)) if v)
    typer.echo(f"claimx connect: {inputs} -> {cfg.gateway} (outbox {cfg.outbox})", err=True)
    asyncio.run(agent.serve())


CONFIG_KEYS = frozenset({"gateway", "issuer", "key", "mllp", "fhir", "watch", "outbox",
                         "on_request", "follow_events", "settle"})


def _read_config(path: Path) -> dict[str, Any]:
    """Settings from a TOML file (a ``[connect]`` table or top-level keys); paths in it are
    relative to the file."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint="--config") from exc
    table = data.get("connect", data)
    unknown = sorted(set(table) - CONFIG_KEYS)
    if unknown:
        raise typer.BadParameter(f"unknown setting(s) {', '.join(unknown)} in {path}",
                                 param_hint="--config")
    for name in ("key", "watch", "outbox"):
        if name in table:
            table[name] = path.parent / str(table[name])
    return dict(table)


def _merge(file: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    return {**file, **{k: v for k, v in given.items() if v is not None}}


def _build(s: dict[str, Any]) -> ConnectConfig:
    """The validated agent settings, or a usage error naming what is missing."""
    from gateway.cli.common import member_arg
    from gateway.connect.config import ConnectConfig, HostPort
    from gateway.core.types import hex32

    missing = [f"--{n}" for n in ("gateway", "issuer", "key") if not s.get(n)]
    if missing:
        raise typer.BadParameter(f"{', '.join(missing)} required (on the command line or in "
                                 "--config)")
    token = os.environ.get("CLAIMX_TOKEN", "").strip()
    if not token:
        raise typer.BadParameter("set CLAIMX_TOKEN to the institution's API token")
    if not (s.get("mllp") or s.get("fhir") or s.get("watch")):
        raise typer.BadParameter("open at least one input: --mllp, --fhir or --watch")
    command = s.get("on_request") or ()
    argv = tuple(shlex.split(command) if isinstance(command, str) else map(str, command))
    return ConnectConfig(
        gateway=str(s["gateway"]), issuer=hex32(member_arg(str(s["issuer"]))),
        key_file=Path(s["key"]), token=token, outbox=Path(s.get("outbox") or DEFAULT_OUTBOX),
        mllp=HostPort.parse(str(s["mllp"]), "--mllp") if s.get("mllp") else None,
        fhir=HostPort.parse(str(s["fhir"]), "--fhir") if s.get("fhir") else None,
        watch=Path(s["watch"]) if s.get("watch") else None, on_request=argv,
        follow_events=bool(s.get("follow_events", True)),
        settle_seconds=float(s.get("settle", 1.0)))


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
