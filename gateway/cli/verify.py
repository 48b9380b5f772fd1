"""``claimx verify``, ``claimx verify-promise`` and ``claimx audit``: the auditor's (and the
institution's) commands, trusting only the chain.

They import the verify and chain layers only: no database, no web framework.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gateway.cli.common import DEFAULT_DEPLOYMENT, DeploymentOpt
from gateway.cli.outcome import (
    CHAIN_TIMEOUT,
    INVALID,
    VALID,
    LogOpt,
    TimeoutOpt,
    Unchecked,
    give_up,
    log_address,
    open_chain,
    open_log,
    unanswered,
    unreadable_receipt,
)
from gateway.core.errors import ChainError, ClaimxError

if TYPE_CHECKING:
    from gateway.core.promise import PromiseBundle
    from gateway.core.receipt import Receipt
    from gateway.verify.audit import ReadAudit
    from gateway.verify.receipt import Report


def verify(
    receipt: Annotated[Path, typer.Argument(help="receipt JSON from GET "
                                            "/v1/records/{digest}/receipt")],
    rpc_url: Annotated[str, typer.Option(envvar="CLAIMX_RPC_URL",
                                         help="JSON-RPC node of the consortium chain")],
    log: LogOpt = None,
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    timeout: TimeoutOpt = CHAIN_TIMEOUT,
) -> None:
    """Verify a receipt trusting only the chain.

    Recomputes the digest, checks the inclusion proof against a tree head read from the
    EvidenceLog, the signature with the key the registry says was valid when the record
    was anchored, and that the issuer has not revoked it.

    Exit status: 0 VALID; 1 INVALID (the chain contradicts the receipt: tampering or a
    forged receipt); 2 UNCHECKED (node unreachable, --log not an EvidenceLog, receipt
    unreadable: a set-up problem, told on stderr with its fix). --json adds "verdict".

    \b
    Example:
      claimx verify receipt.json --rpc-url http://127.0.0.1:8545 --log 0xEVIDENCE_LOG
    """
    from gateway.core.receipt import Receipt
    from gateway.verify.receipt import verify_receipt

    report: Report | None = None
    try:
        try:
            parsed = Receipt.from_json(receipt.read_bytes())
        except (OSError, ClaimxError) as exc:
            raise unreadable_receipt(receipt, exc) from exc
        address = log_address(log, deployment)
        chain = open_chain(rpc_url, timeout)
        open_log(chain, address, parsed.chain.registry)
        try:
            report = verify_receipt(parsed, chain, address)
        except ChainError as exc:
            raise unanswered(exc, chain) from exc
        if not report.valid:
            _elsewhere(parsed, chain.chain_id, address)
    except Unchecked as exc:
        give_up(exc, as_json, report.to_dict()["checks"] if report else None)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for c in report.checks:
            typer.echo(f"[{'PASS' if c.ok else 'FAIL'}] {c.name}: {c.detail}")
        typer.echo(report.verdict)
    if not report.valid:
        failed = next((c.name for c in report.checks if not c.ok), "no check")
        typer.echo(f"INVALID: the chain contradicts the receipt ({failed} failed); the node and "
                   "log answered, so this is the receipt or the record, not the set-up", err=True)
    raise typer.Exit(VALID if report.valid else INVALID)


def _elsewhere(receipt: Receipt, chain_id: int, address: str) -> None:
    """An invalid result against another log or chain than the receipt names is a set-up
    question first: the receipt cannot be judged against a log it does not claim."""
    named = receipt.chain
    if named.chain_id != chain_id or named.evidence_log.lower() != address.lower():
        raise Unchecked(f"the receipt names evidence log {named.evidence_log} on chain "
                        f"{named.chain_id}, but it was checked against {address} on chain "
                        f"{chain_id}", "point --rpc-url and --log at the consortium chain and "
                        "log the record was published to", "other_log")


def audit(
    digests: Annotated[list[str], typer.Argument(help="hex digests of the records to audit")],
    gateway: Annotated[str, typer.Option(envvar="CLAIMX_GATEWAY_URL",
                                         help="the gateway's base URL")],
    rpc_url: Annotated[str, typer.Option(envvar="CLAIMX_RPC_URL",
                                         help="JSON-RPC node of the consortium chain")],
    token: Annotated[str, typer.Option(envvar="CLAIMX_TOKEN", show_default=False,
                                       help="the auditor's API token (cx1_…); from the "
                                       "environment, so it stays out of shell history")],
    log: LogOpt = None,
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
    as_json: Annotated[bool, typer.Option("--json", help="print the reports as JSON")] = False,
    timeout: TimeoutOpt = CHAIN_TIMEOUT,
) -> None:
    """Prove that every payload read of each record was consented, against the chain.

    Each read's log entry and the consent it cites are verified like receipts (inclusion in a
    head on chain, operator signature by a key valid in the registry) and checked against
    each other: the claimant's signature over the consent scope, the reader named as insurer,
    the same claimant, consent logged before the read and live at it, scope covering the
    record. Then the consent's claimant key binding, link by link: its own entry on chain
    (signed by the attester's key valid then), an attester that may attest identities, is
    not the reader and was valid when the consent was anchored, this key bound to this
    subject, and no revocation the gateway lists logged before the read. A [FAIL] line
    names the link that does not hold.

    Exit status: 0 every read proven; 1 some read unproven; 2 UNCHECKED (gateway or node
    unreachable, token refused, --log not an EvidenceLog), told on stderr with its fix.

    \b
    Example:
      CLAIMX_TOKEN=cx1_... claimx audit DIGEST --gateway http://127.0.0.1:8000 \\
          --rpc-url http://127.0.0.1:8545 --log 0xEVIDENCE_LOG
    """
    try:
        results = _audit(digests, gateway, token, rpc_url, log_address(log, deployment),
                         timeout)
    except Unchecked as exc:
        give_up(exc, as_json)
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
    if not proven:
        typer.echo("INVALID: some read is not proven consented (see the [FAIL] lines)",
                   err=True)
    raise typer.Exit(VALID if proven else INVALID)


def _audit(digests: list[str], gateway: str, token: str, rpc_url: str, address: str,
           timeout: float) -> dict[str, list[ReadAudit]]:
    """Every read of every digest, or :class:`Unchecked` when gateway or chain cannot say."""
    import httpx

    from gateway.verify.audit import audit_reads, http_fetch

    chain = open_chain(rpc_url, timeout)
    open_log(chain, address)
    results = {}
    try:
        with httpx.Client(base_url=gateway, headers={"Authorization": f"Bearer {token}"},
                          timeout=30) as client:
            for digest in digests:
                results[digest] = audit_reads(digest.lower().removeprefix("0x"),
                                              http_fetch(client), chain, address)
    except httpx.HTTPError as exc:
        raise Unchecked(f"cannot reach the gateway at {gateway} ({type(exc).__name__})",
                        "check --gateway (or CLAIMX_GATEWAY_URL)",
                        "gateway_unreachable") from exc
    except ChainError as exc:
        raise unanswered(exc, chain) from exc
    except ClaimxError as exc:
        raise Unchecked(f"the gateway refused: {exc.code}: {exc.msg}",
                        "check the auditor's token (CLAIMX_TOKEN) and the digests",
                        exc.code) from exc
    return results


OPEN = 3
"""``claimx verify-promise``: the promise is genuine and still running (its deadline ahead)."""


def verify_promise(
    promise: Annotated[Path, typer.Argument(help="the promise: the bundle from GET "
                                            "/v1/records/{digest}/promise, or the `promise` "
                                            "object of a publish response")],
    rpc_url: Annotated[str, typer.Option(envvar="CLAIMX_RPC_URL",
                                         help="JSON-RPC node of the consortium chain")],
    log: LogOpt = None,
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
    at: Annotated[int | None, typer.Option("--at", help="decide as of this Unix time "
                                           "(default: now, or the latest block's time if "
                                           "the chain is ahead)", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    timeout: TimeoutOpt = CHAIN_TIMEOUT,
) -> None:
    """Check an acceptance promise against the chain alone: kept, or broken.

    The signature must be by a key the MemberRegistry holds for the exchange operator, and
    the promise must name this chain and evidence log (no replay from another deployment).
    Then: KEPT when its inclusion proof reaches a head on chain anchored by the deadline in
    force (extensions are signed by the operator too, each made before the deadline it
    moves); REJECTED (honoured) when a signed rejection came in time and the registry
    confirms the record's key was not valid; OPEN while the deadline is ahead; BROKEN
    otherwise: with this file, proof the exchange broke its promise.

    Exit status: 0 KEPT or REJECTED; 1 BROKEN or INVALID (not a genuine promise of this
    exchange: tampered, signed by another key, or for another deployment); 2 UNCHECKED
    (node unreachable, file unreadable); 3 OPEN (not decided yet: check again later).

    \b
    Example:
      curl -H "Authorization: Bearer $CLAIMX_TOKEN" \\
          $GATEWAY/v1/records/$DIGEST/promise > promise.json
      claimx verify-promise promise.json --rpc-url http://127.0.0.1:8545 --log 0xEVIDENCE_LOG
    """
    import time

    from gateway.verify.promise import verify_promise as check

    try:
        bundle = _read_promise(promise)
        address = log_address(log, deployment)
        chain = open_chain(rpc_url, timeout)
        open_log(chain, address, bundle.promise.chain.registry)
        try:
            now = max(int(time.time()), chain.now()) if at is None else at
            report = check(bundle, chain, address, now=now)
        except ChainError as exc:
            raise unanswered(exc, chain) from exc
    except Unchecked as exc:
        give_up(exc, as_json)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for c in report.checks:
            typer.echo(f"[{'PASS' if c.ok else 'FAIL'}] {c.name}: {c.detail}")
        if report.decision is not None:
            typer.echo(f"{report.verdict}: {report.decision.detail}")
        else:
            typer.echo(report.verdict)
    if report.verdict in ("BROKEN", "INVALID"):
        typer.echo(f"{report.verdict}: " + ("the exchange did not keep this promise (no "
                   "timely inclusion in an anchored head, no justified signed rejection)"
                   if report.verdict == "BROKEN" else "not a genuine promise of this "
                   "deployment's exchange (see the [FAIL] line)"), err=True)
    raise typer.Exit(VALID if report.honoured else OPEN if report.verdict == "OPEN"
                     else INVALID)


def _read_promise(path: Path) -> PromiseBundle:
    """A bundle, or a bare promise (nothing proven yet about how it ended)."""
    from gateway.core.promise import Promise, PromiseBundle

    try:
        raw = path.read_bytes()
        try:
            return PromiseBundle.from_json(raw)
        except ClaimxError:
            bare = Promise.from_json(raw)
            return PromiseBundle(promise=bare, state="open", deadline=bare.deadline)
    except OSError as exc:
        raise Unchecked(f"cannot read {path} ({exc.strerror})", "give the path of a promise "
                        "saved from GET /v1/records/{digest}/promise", "unreadable_promise"
                        ) from exc
    except ClaimxError as exc:
        raise Unchecked(f"{path} is not a claimx promise ({exc.code}: {exc.msg})",
                        "save it again from GET /v1/records/{digest}/promise, unchanged",
                        "malformed_promise") from exc
