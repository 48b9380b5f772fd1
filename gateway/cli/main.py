"""The ``claimx`` command line: one Typer app; each command group lives in its concept's module."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from adapters.cli import adapt, pseudonym
from gateway.cli.chain import deploy, members_app
from gateway.cli.credentials import credentials_app
from gateway.cli.keys import keys_app, sign
from gateway.core.errors import ClaimxError

app = typer.Typer(
    name="claimx",
    help="claimx: a claims evidence exchange. Institutions sign records once; insurers and "
    "auditors verify them against a permissioned chain. Start with `claimx demo`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(keys_app, name="keys")
app.command("sign")(sign)
app.command("deploy")(deploy)
app.command("adapt")(adapt)
app.command("pseudonym")(pseudonym)
app.add_typer(members_app, name="members")
app.add_typer(credentials_app, name="credentials")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="folder for the demo's database and receipts")] = Path(
        ".claimx/demo"),
) -> None:
    """Run the whole trust path on an in-process EVM and SQLite, then show tampering caught."""
    import warnings

    warnings.filterwarnings("ignore", message=".*httpx.*")  # starlette TestClient note
    from gateway.dev.demo import run_demo

    logging.basicConfig(level=logging.WARNING)
    if not run_demo(out, Console()):
        raise typer.Exit(1)


@app.command()
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
        envvar="CLAIMX_DEPLOYMENT_FILE", help="contract addresses from `claimx deploy`")] = None,
    worker: Annotated[bool, typer.Option(help="run the anchor worker in this process")] = True,
    dev_members: Annotated[Path | None, typer.Option(
        help="development only: admit a hospital, police bureau, insurer and auditor and write "
        "their keys and API tokens to DIR/members.json (try them with scripts/api_flow.py)",
    )] = None,
) -> None:
    """Run the HTTP gateway (OpenAPI at /docs and /openapi.json) with its anchor worker."""
    import uvicorn

    from gateway.api.app import create_app
    from gateway.config import Settings
    from gateway.services.wiring import build_services

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    overrides: dict[str, object] = {"rpc_url": rpc_url, "database_url": database_url}
    if deployment:
        overrides["deployment_file"] = deployment
    try:
        services = build_services(Settings(**overrides))  # type: ignore[arg-type]
    except ClaimxError as exc:
        typer.echo(f"error: {exc.msg}", err=True)
        raise typer.Exit(1) from exc
    if dev_members is not None:
        from gateway.dev.members import seed_dev_members

        seed_dev_members(services, dev_members)
        typer.echo(f"dev members' keys and tokens written to {dev_members / 'members.json'}")
    d = services.deployment
    typer.echo(f"claimx gateway on http://{host}:{port} (chain {d.chain_id}, registry "
               f"{d.registry}, evidence log {d.log})")
    uvicorn.run(create_app(services, run_worker=worker), host=host, port=port)


@app.command()
def worker(
    rpc_url: Annotated[str, typer.Option(envvar="CLAIMX_RPC_URL", help="JSON-RPC node")],
    database_url: Annotated[str, typer.Option(envvar="CLAIMX_DATABASE_URL",
                                              help="the gateways' database")],
    deployment: Annotated[Path, typer.Option(envvar="CLAIMX_DEPLOYMENT_FILE",
                                             help="contract addresses from `claimx deploy`")],
) -> None:
    """Run only the anchor worker (gateways then run `serve --no-worker`).

    Several may run: the one holding the database lease works, the others stand by.
    """
    from gateway.config import Settings
    from gateway.services.wiring import build_services

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    services = build_services(Settings(rpc_url=rpc_url, database_url=database_url,
                                       deployment_file=deployment))
    typer.echo(f"anchor worker for evidence log {services.deployment.log}", err=True)
    services.worker.run()


@app.command()
def verify(
    receipt: Annotated[Path, typer.Argument(help="receipt JSON from GET "
                                            "/v1/records/{digest}/receipt")],
    rpc_url: Annotated[str, typer.Option(help="JSON-RPC node of the consortium chain")],
    log: Annotated[str, typer.Option("--log", help="EvidenceLog contract address")],
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Verify a receipt trusting only the chain. Exit 0 when valid, 1 when not.

    Recomputes the digest, checks the inclusion proof against a tree head read from the
    EvidenceLog, the signature with the key the registry says was valid when the record
    was anchored, and that the issuer has not revoked it.
    """
    from gateway.chain.client import Chain
    from gateway.core.receipt import Receipt
    from gateway.verify.receipt import verify_receipt

    try:
        parsed = Receipt.from_json(receipt.read_bytes())
        report = verify_receipt(parsed, Chain.connect(rpc_url), log)
    except (ClaimxError, OSError) as exc:
        typer.echo(f"error: {receipt}: {exc}", err=True)
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for c in report.checks:
            typer.echo(f"[{'PASS' if c.ok else 'FAIL'}] {c.name}: {c.detail}")
        typer.echo("VALID" if report.valid else "INVALID")
    raise typer.Exit(0 if report.valid else 1)


@app.command()
def audit(
    digests: Annotated[list[str], typer.Argument(help="hex digests of the records to audit")],
    gateway: Annotated[str, typer.Option(envvar="CLAIMX_GATEWAY_URL",
                                         help="the gateway's base URL")],
    rpc_url: Annotated[str, typer.Option(help="JSON-RPC node of the consortium chain")],
    log: Annotated[str, typer.Option("--log", help="EvidenceLog contract address")],
    token: Annotated[str, typer.Option(envvar="CLAIMX_TOKEN", show_default=False,
                                       help="the auditor's API token (cx1_…); from the "
                                       "environment, so it stays out of shell history")],
    as_json: Annotated[bool, typer.Option("--json", help="print the reports as JSON")] = False,
) -> None:
    """Prove that every payload read of each record was consented, against the chain.

    Each read's log entry and the consent it cites are verified like receipts (inclusion in a
    head on chain, operator signature by a key valid in the registry) and checked against
    each other: the claimant's signature over the consent scope, the reader named as insurer,
    the same claimant, consent logged before the read and live at it, scope covering the
    record. Exit 0 when every read is proven, 1 otherwise.
    """
    import httpx

    from gateway.chain.client import Chain
    from gateway.verify.audit import audit_reads, http_fetch

    chain = Chain.connect(rpc_url)
    headers = {"Authorization": f"Bearer {token}"}
    results = {}
    try:
        with httpx.Client(base_url=gateway, headers=headers, timeout=30) as client:
            for digest in digests:
                results[digest] = audit_reads(digest.lower().removeprefix("0x"),
                                              http_fetch(client), chain, log)
    except httpx.HTTPError as exc:
        raise ClaimxError(f"cannot reach the gateway at {gateway}: {type(exc).__name__}; check "
                          "--gateway (or CLAIMX_GATEWAY_URL)", code="gateway_unreachable") from exc
    proven = all(r.report.valid for reads in results.values() for r in reads)
    if as_json:
        typer.echo(json.dumps({d: [r.to_dict() for r in reads] for d, reads in results.items()},
                              indent=2))
    else:
        for digest, reads in results.items():
            typer.echo(f"record {digest}: {len(reads)} payload read(s)")
            for r in reads:
                typer.echo(f"  read by {r.member} (claim {r.claim_id or '-'}), entry {r.entry}")
                for c in r.report.checks:
                    typer.echo(f"    [{'PASS' if c.ok else 'FAIL'}] {c.name}: {c.detail}")
        typer.echo("EVERY READ CONSENTED" if proven else "UNPROVEN READS")
    raise typer.Exit(0 if proven else 1)


def main() -> None:
    """Console entry point: domain errors print one line, never a traceback."""
    try:
        app()
    except ClaimxError as exc:
        typer.echo(f"error: {exc.code}: {exc.msg}", err=True)
        raise SystemExit(1) from exc


if __name__ == "__main__":
    main()
