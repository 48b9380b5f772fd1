"""``claimx serve``, ``claimx worker`` and ``claimx demo``: running the exchange."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gateway.cli.common import DEFAULT_DEPLOYMENT, DeploymentOpt

if TYPE_CHECKING:
    from gateway.config import Settings
    from gateway.services.wiring import Services


def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    rpc_url: Annotated[str | None, typer.Option(
        envvar="CLAIMX_RPC_URL", help="JSON-RPC node; default: a local anvil node run by serve, "
        "its chain kept in .claimx/chain/ (needs `npm ci`)")] = None,
    database_url: Annotated[str | None, typer.Option(
        envvar="CLAIMX_DATABASE_URL", help="SQLAlchemy URL, e.g. "
        "postgresql+psycopg://user@127.0.0.1/claimx; default SQLite .claimx/claimx.db")] = None,
    deployment: Annotated[Path | None, typer.Option(
        envvar="CLAIMX_DEPLOYMENT_FILE", show_default=False,
        help="file written by `claimx deploy` (default .claimx/deployment.json, under "
        "CLAIMX_HOME); written at first start on the local node or with --dev-members")] = None,
    worker: Annotated[bool, typer.Option(help="run the anchor worker in this process")] = True,
    dev_members: Annotated[Path | None, typer.Option(
        help="development only: admit a hospital, police bureau, insurer and auditor and write "
        "their keys and API tokens to DIR/members.json (try them with scripts/api_flow.py); "
        "a restart reuses those already in DIR",
    )] = None,
) -> None:
    """Run the HTTP gateway (OpenAPI at /docs and /openapi.json) with its anchor worker.

    With no URLs it runs a local network that keeps its state under .claimx/ (CLAIMX_HOME):
    an anvil chain (.claimx/chain/state.json), SQLite .claimx/claimx.db and the contracts'
    .claimx/deployment.json, made at first start and reused after a restart or kill -9.

    \b
    Examples:
      claimx serve --dev-members .claimx/dev      # local network, state kept in .claimx/
      claimx serve --rpc-url http://127.0.0.1:8545 --dev-members .claimx/dev  # deploys once
      claimx serve --rpc-url http://127.0.0.1:8545 \\
          --database-url postgresql+psycopg://claimx@127.0.0.1/claimx
    """
    from gateway.config import Settings

    _log_to_stderr()
    overrides: dict[str, object] = {"rpc_url": rpc_url, "database_url": database_url}
    if deployment:
        overrides["deployment_file"] = deployment
    settings = Settings(**overrides)  # type: ignore[arg-type]
    node = None
    if rpc_url is None:
        from gateway.dev.node import LocalNode

        node = LocalNode(settings.home)
        settings = settings.model_copy(update={"rpc_url": node.start()})
    try:
        _run(settings, host, port, worker, dev_members, local_node=node is not None)
    finally:
        if node is not None:
            node.stop()


def _log_to_stderr() -> None:
    """INFO lines with time and source; Alembic's plugin set-up (a dozen lines at every
    start that say nothing to an operator) only from WARNING up."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def _run(settings: Settings, host: str, port: int, worker: bool, dev_members: Path | None, *,
         local_node: bool) -> None:
    import uvicorn

    from gateway.api.app import create_app
    from gateway.services.lease import claim_worker_id
    from gateway.services.wiring import build_services

    if worker:  # a restart takes its own lease back at once (gateway/services/lease.py)
        settings = settings.model_copy(update={
            "worker_id": claim_worker_id(settings.home, settings.worker_id)})
    services = build_services(settings, deploy_missing=local_node or dev_members is not None,
                              local_node=local_node)
    if dev_members is not None:
        from gateway.dev.members import seed_dev_members

        seed_dev_members(services, dev_members)
        typer.echo(f"dev members' keys and tokens in {dev_members / 'members.json'}")
    _banner(services, host, port, local_node, dev_members)
    from gateway.api.server import tune_interpreter, uvicorn_options

    tune_interpreter()
    uvicorn.run(create_app(services, run_worker=worker), host=host, port=port,
                **uvicorn_options(services.settings))


def _banner(services: Services, host: str, port: int, local_node: bool,
            dev_members: Path | None) -> None:
    """Say where everything is: the docs, the database, the chain, the contracts."""
    st, d = services.settings, services.deployment
    chain = f"local anvil {st.rpc_url} (state {st.home / 'chain'})" if local_node else \
        services.chain.description
    dev_keys = [w for w, on in (("development master key", not st.master_key),
                                ("dev members", dev_members is not None)) if on]
    lines = [f"claimx gateway on http://{host}:{port} (API docs http://{host}:{port}/docs)",
             f"  database   {services.db.engine.url.render_as_string(hide_password=True)}",
             f"  chain      {d.chain_id}: {chain}",
             f"  deployment {st.resolved_deployment_file()} (registry {d.registry}, "
             f"evidence log {d.log})",
             f"  dev keys   {', '.join(dev_keys) if dev_keys else 'off'}"]
    typer.echo("\n".join(lines))


def worker(
    rpc_url: Annotated[str, typer.Option(envvar="CLAIMX_RPC_URL", help="JSON-RPC node")],
    database_url: Annotated[str, typer.Option(envvar="CLAIMX_DATABASE_URL",
                                              help="the gateways' database")],
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
    worker_id: Annotated[str | None, typer.Option(
        envvar="CLAIMX_WORKER_ID", show_default=False,
        help="this worker's lease holder id, one per process (default: kept in "
        "CLAIMX_HOME/worker.id); a restart under the same id takes the lease back at once, "
        "any other worker waits for it to expire")] = None,
) -> None:
    """Run the background jobs without the HTTP API (gateways then run `serve --no-worker`):
    anchoring, webhook delivery and the evidence-request clock sweep.

    Several may run: the one holding the anchor lease anchors, the others stand by; webhook
    deliveries are claimed row by row, so every worker sends, none twice. The lease fences:
    a worker paused past it (SIGSTOP, a frozen VM) writes nothing once another took over.

    \b
    Example:
      claimx worker --rpc-url http://127.0.0.1:8545 \\
          --database-url postgresql+psycopg://claimx@127.0.0.1/claimx
    """
    from gateway.config import Settings
    from gateway.services.lease import claim_worker_id
    from gateway.services.wiring import build_services

    _log_to_stderr()
    settings = Settings(rpc_url=rpc_url, database_url=database_url, deployment_file=deployment)
    settings = settings.model_copy(update={"worker_id": claim_worker_id(settings.home,
                                                                        worker_id)})
    services = build_services(settings)
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
    """Run the whole trust path on an in-process EVM and SQLite, then show tampering caught.

    A throwaway run: its chain lives only as long as the command (use `claimx serve` for a
    local network that keeps its state).
    """
    import warnings

    warnings.filterwarnings("ignore", message=".*httpx.*")  # starlette TestClient note
    from rich.console import Console

    from gateway.dev.demo import run_demo

    logging.basicConfig(level=logging.WARNING)
    typer.echo("a throwaway run on an in-process chain: nothing is kept after it ends "
               "(`claimx serve` keeps its state)", err=True)
    if not run_demo(out, Console()):
        raise typer.Exit(1)
