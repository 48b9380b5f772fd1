"""``claimx verify`` and ``claimx audit``: the auditor's commands, trusting only the chain.

They import the verify and chain layers only: no database, no web framework.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from gateway.core.errors import ClaimxError


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
