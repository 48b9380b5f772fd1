"""The auditor commands' three outcomes and the chain access they share.

``claimx verify`` and ``claimx audit`` exit 0 when the chain proves the claim (VALID), 1 when
the chain contradicts it (INVALID) and 2 when it could not be checked at all (UNCHECKED): an
unreachable node, an address that is not an EvidenceLog, an unreadable receipt. The last is
a configuration problem, never evidence of tampering, so it is told apart on the exit status,
on stderr (one line naming the cause and the fix) and in ``--json`` (``"verdict"``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from gateway.core.errors import ChainError, ClaimxError

if TYPE_CHECKING:
    from gateway.chain.client import Chain, EvidenceLogClient

VALID, INVALID, UNCHECKED = 0, 1, 2
CHAIN_TIMEOUT = 5.0
"""Seconds one JSON-RPC request may take; a silent node gives exit 2 after about this long."""

TimeoutOpt = Annotated[float, typer.Option(
    "--timeout", min=0.1, help="seconds to wait for each answer from the node")]
LogOpt = Annotated[str | None, typer.Option(
    "--log", help="EvidenceLog contract address (the `log` field of the deployment file); "
    "default: read from --deployment", show_default=False)]


class Unchecked(Exception):
    """The check could not be made; ``fix`` says what to change."""

    def __init__(self, cause: str, fix: str, code: str = "unchecked") -> None:
        super().__init__(cause)
        self.cause, self.fix, self.code = cause, fix, code


def give_up(exc: Unchecked, as_json: bool, checks: list[dict[str, Any]] | None = None) -> NoReturn:
    """Print the UNCHECKED outcome (stderr line, and the JSON document with --json); exit 2."""
    if as_json:
        typer.echo(json.dumps({"valid": False, "verdict": "UNCHECKED", "checks": checks or [],
                               "error": {"code": exc.code, "message": exc.cause,
                                         "fix": exc.fix}}, indent=2))
    typer.echo(f"UNCHECKED: {exc.cause}. Fix: {exc.fix}", err=True)
    raise typer.Exit(UNCHECKED)


def log_address(log: str | None, deployment: Path) -> str:
    """The EvidenceLog address: --log, else the deployment file's ``log``."""
    if log:
        return log
    from gateway.chain.client import Deployment
    from gateway.core.errors import InputError

    try:
        return Deployment.from_json(deployment.read_text()).log
    except (OSError, InputError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else exc.msg
        raise Unchecked(f"no EvidenceLog address: --log not given and {deployment} unreadable "
                        f"({reason})", "pass --log 0x… (the `log` address `claimx deploy` "
                        "printed) or --deployment FILE", "no_log_address") from exc


def open_chain(rpc_url: str, timeout: float) -> Chain:
    """A read-only chain client whose every request is bounded by ``timeout`` seconds."""
    from gateway.chain.client import Chain

    try:
        return Chain.connect(rpc_url, timeout=timeout)  # never retried
    except ChainError as exc:
        raise Unchecked(f"cannot reach the chain at {rpc_url} ({exc.msg})",
                        "check --rpc-url (or CLAIMX_RPC_URL) and that the node is running",
                        "chain_unreachable") from exc


def open_log(chain: Chain, address: str, registry_hint: str | None = None) -> EvidenceLogClient:
    """The EvidenceLog at ``address``, refused unless it answers as one (has a ``registry()``
    pointing at a contract); ``registry_hint`` is a registry address to recognise."""
    fix = "pass the `log` address of the deployment file (not `registry`) as --log"
    try:
        log = chain.evidence_log(address)
    except ChainError as exc:
        if exc.code in ("bad_address", "no_contract"):
            raise Unchecked(exc.msg, fix, exc.code) from exc
        raise unanswered(exc, chain) from exc
    try:
        chain.registry(log.registry_address())
    except ChainError as exc:
        if exc.code == "chain_unreachable":
            raise unanswered(exc, chain) from exc
        what = ("the MemberRegistry" if registry_hint and registry_hint.lower() == address.lower()
                else "not an EvidenceLog")
        raise Unchecked(f"the contract at {address} is {what}: it does not answer registry()",
                        fix, "not_an_evidence_log") from exc
    return log


def unanswered(exc: ChainError, chain: Chain | None = None) -> Unchecked:
    """A chain error that carries no verdict (node down, timed out, not our contract)."""
    where = f" at {chain.description}" if chain is not None else ""
    return Unchecked(f"the chain{where} did not answer ({exc.code}: {exc.msg})",
                     "check that the node is up and synced, and --rpc-url and --log", exc.code)


def unreadable_receipt(path: Path, exc: OSError | ClaimxError) -> Unchecked:
    if isinstance(exc, OSError):
        return Unchecked(f"cannot read receipt {path} ({exc.strerror})",
                         "give the path of a receipt JSON saved from "
                         "GET /v1/records/{digest}/receipt", "unreadable_receipt")
    return Unchecked(f"{path} is not a claimx receipt ({exc.code}: {exc.msg})",
                     "save it again from GET /v1/records/{digest}/receipt, unchanged",
                     "malformed_receipt")
