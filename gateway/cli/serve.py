"""``claimx serve``, ``claimx worker`` and ``claimx demo``: running the exchange."""

from __future__ import annotations

import logging
import os
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
    workers: Annotated[int, typer.Option(
        min=1, help="gateway processes sharing the one listening socket (uvicorn's workers; "
        "use PostgreSQL). Each runs an anchor worker under the database lease: one anchors, "
        "the others stand by")] = 1,
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
      claimx serve --workers 2 --rpc-url http://127.0.0.1:8545 \\
          --database-url postgresql+psycopg://claimx@127.0.0.1/claimx  # two processes
    """
    from gateway.api.server import log_to_stderr
    from gateway.config import Settings

    log_to_stderr()
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
        _run(settings, host, port, worker, dev_members, local_node=node is not None,
             workers=workers)
    finally:
        if node is not None:
            node.stop()


def _run(settings: Settings, host: str, port: int, worker: bool, dev_members: Path | None, *,
         local_node: bool, workers: int = 1) -> None:
    import uvicorn

    from gateway.api.app import create_app
    from gateway.services.lease import claim_worker_id
    from gateway.services.wiring import build_services

    if worker and workers == 1:  # a restart takes its lease back at once (services/lease.py)
        settings = settings.model_copy(update={
            "worker_id": claim_worker_id(settings.home, settings.worker_id)})
    services = build_services(settings, deploy_missing=local_node or dev_members is not None,
                              local_node=local_node)
    if dev_members is not None:
        from gateway.dev.members import seed_dev_members

        seed_dev_members(services, dev_members)
        typer.echo(f"dev members' keys and tokens in {dev_members / 'members.json'}")
    _banner(services, host, port, local_node, dev_members)
    from gateway.api.server import FACTORY, tune_interpreter, uvicorn_options

    if workers > 1:
        _hand_over(services, worker, workers)
        uvicorn.run(FACTORY, host=host, port=port,
                    **uvicorn_options(services.settings, workers=workers))
        return
    tune_interpreter()
    uvicorn.run(create_app(services, run_worker=worker), host=host, port=port,
                **uvicorn_options(services.settings))


def _hand_over(services: Services, worker: bool, workers: int) -> None:
    """Before `serve --workers N` starts its processes: this one has migrated, deployed and
    seeded; it lets go of the lease (taken if it re-anchored lost heads) and its database
    connections, and leaves its settings in the environment each process builds from."""
    from gateway.api.server import RUN_WORKER_ENV

    st = services.settings
    services.worker.lease.release()
    services.db.engine.dispose()
    env = {"CLAIMX_HOME": str(st.home), "CLAIMX_DATABASE_URL": st.database_url,
           "CLAIMX_RPC_URL": st.rpc_url,
           "CLAIMX_DEPLOYMENT_FILE": str(st.resolved_deployment_file()),
           RUN_WORKER_ENV: "1" if worker else "0"}
    os.environ.update({k: v for k, v in env.items() if v is not None})
    if services.db.engine.dialect.name == "sqlite":
        logging.getLogger("claimx.serve").warning(
            "%d processes on one SQLite file take turns to write: use PostgreSQL to scale "
            "out", workers)
    typer.echo(f"  processes  {workers} on one socket, each with its own database pool and "
               "chain client; " + ("the anchor lease elects one worker" if worker else
                                   "no anchor worker (run `claimx worker`)"))


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
    from gateway.api.server import log_to_stderr
    from gateway.config import Settings
    from gateway.services.lease import claim_worker_id
    from gateway.services.wiring import build_services

    log_to_stderr()
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
