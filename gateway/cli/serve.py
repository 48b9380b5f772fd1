"""``claimx serve``, ``claimx worker`` and ``claimx demo``: running the exchange."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from gateway.cli.common import DEFAULT_DEPLOYMENT, DeploymentOpt


def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    rpc_url: Annotated[str | None, typer.Option(
        envvar="CLAIMX_RPC_URL", help="JSON-RPC node; default: in-process EVM (a sandbox "
        "that deploys fresh contracts and forgets everything on exit)")] = None,
    database_url: Annotated[str | None, typer.Option(
        envvar="CLAIMX_DATABASE_URL", help="SQLAlchemy URL, e.g. "
        "postgresql+psycopg://user@127.0.0.1/claimx; default SQLite under .claimx/")] = None,
    deployment: Annotated[Path | None, typer.Option(
        envvar="CLAIMX_DEPLOYMENT_FILE", show_default=False,
        help="file written by `claimx deploy` (default .claimx/deployment.json, under "
        "CLAIMX_HOME); unused on the in-process EVM")] = None,
    worker: Annotated[bool, typer.Option(help="run the anchor worker in this process")] = True,
    dev_members: Annotated[Path | None, typer.Option(
        help="development only: admit a hospital, police bureau, insurer and auditor and write "
        "their keys and API tokens to DIR/members.json (try them with scripts/api_flow.py)",
    )] = None,
) -> None:
    """Run the HTTP gateway (OpenAPI at /docs and /openapi.json) with its anchor worker.

    \b
    Examples:
      claimx serve --dev-members .claimx/dev      # sandbox: in-process EVM and SQLite
      claimx serve --rpc-url http://127.0.0.1:8545 \\
          --database-url postgresql+psycopg://claimx@127.0.0.1/claimx
    """
    import uvicorn

    from gateway.api.app import create_app
    from gateway.config import Settings
    from gateway.services.wiring import build_services

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    overrides: dict[str, object] = {"rpc_url": rpc_url, "database_url": database_url}
    if deployment:
        overrides["deployment_file"] = deployment
    services = build_services(Settings(**overrides))  # type: ignore[arg-type]
    if dev_members is not None:
        from gateway.dev.members import seed_dev_members

        seed_dev_members(services, dev_members)
        typer.echo(f"dev members' keys and tokens written to {dev_members / 'members.json'}")
    d = services.deployment
    typer.echo(f"claimx gateway on http://{host}:{port} (chain {d.chain_id}, registry "
               f"{d.registry}, evidence log {d.log})")
    from gateway.api.server import tune_interpreter, uvicorn_options

    tune_interpreter()
    uvicorn.run(create_app(services, run_worker=worker), host=host, port=port,
                **uvicorn_options(services.settings))


def worker(
    rpc_url: Annotated[str, typer.Option(envvar="CLAIMX_RPC_URL", help="JSON-RPC node")],
    database_url: Annotated[str, typer.Option(envvar="CLAIMX_DATABASE_URL",
                                              help="the gateways' database")],
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
) -> None:
    """Run the background jobs without the HTTP API (gateways then run `serve --no-worker`):
    anchoring, webhook delivery and the evidence-request clock sweep.

    Several may run: the one holding the anchor lease anchors, the others stand by; webhook
    deliveries are claimed row by row, so every worker sends, none twice.

    \b
    Example:
      claimx worker --rpc-url http://127.0.0.1:8545 \\
          --database-url postgresql+psycopg://claimx@127.0.0.1/claimx
    """
    from gateway.config import Settings
    from gateway.services.wiring import build_services

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    services = build_services(Settings(rpc_url=rpc_url, database_url=database_url,
                                       deployment_file=deployment))
    typer.echo(f"worker for evidence log {services.deployment.log}: anchoring, webhooks, "
               "request clocks", err=True)
    services.push.start()  # webhook delivery and the request-clock sweep, in a thread
    try:
        services.worker.run()
    finally:
        services.push.stop()


def demo(
    out: Annotated[Path, typer.Option(help="folder for the demo's database and receipts")] = Path(
        ".claimx/demo"),
) -> None:
    """Run the whole trust path on an in-process EVM and SQLite, then show tampering caught."""
    import warnings

    warnings.filterwarnings("ignore", message=".*httpx.*")  # starlette TestClient note
    from rich.console import Console

    from gateway.dev.demo import run_demo

    logging.basicConfig(level=logging.WARNING)
    if not run_demo(out, Console()):
        raise typer.Exit(1)
