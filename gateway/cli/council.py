"""``claimx council propose|sign|execute|show``: k-of-n council actions as offline files.

A proposal is a JSON file holding one SafeTx (the call the council's Safe will make) and the
signatures collected so far; members pass it around, each signs it offline with their own
key, and anyone executes it once the threshold is met.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from gateway.cli.common import DEFAULT_DEPLOYMENT, DeploymentOpt, KeyEnvOpt, RpcOpt, connect
from gateway.cli.common import member_arg as _member
from gateway.core.errors import InputError
from gateway.core.types import Role, hex32, parse_hex32

council_app = typer.Typer(no_args_is_help=True, help=__doc__.splitlines()[0])
ProposalArg = Annotated[Path, typer.Argument(help="proposal file (JSON)")]
ACTIONS = ("admit", "suspend", "reinstate", "revoke-key", "add-owner", "remove-owner",
           "change-threshold")


def _context(rpc_url: str, deployment: Path, key_env: str | None) -> tuple[Any, Any, Any]:
    from gateway.chain.client import Deployment
    from gateway.chain.council import Council

    d = Deployment.from_json(deployment.read_text())
    if d.council is None:
        raise InputError(f"deployment {deployment} has no council", code="no_council")
    chain = connect(rpc_url, key_env)
    return chain, d, Council(chain, d.council)


@council_app.command("propose")
def propose(action: Annotated[str, typer.Argument(help=", ".join(ACTIONS))],
            out: Annotated[Path, typer.Option(help="proposal file to write")],
            rpc_url: RpcOpt, deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
            member: Annotated[str | None, typer.Option(help="member slug or 0x id")] = None,
            role: Annotated[str | None, typer.Option(help="role, for admit")] = None,
            name: Annotated[str | None, typer.Option(help="display name, for admit")] = None,
            operator: Annotated[list[str] | None, typer.Option(
                help="the member's operator account, for admit (repeatable)")] = None,
            key_id: Annotated[str | None, typer.Option(help="0x key id, for revoke-key")] = None,
            at: Annotated[int, typer.Option(help="revocation time (0 = now), for revoke-key")
                          ] = 0,
            owner: Annotated[str | None, typer.Option(help="council member address")] = None,
            threshold: Annotated[int | None, typer.Option(help="new threshold")] = None) -> None:
    """Write a proposal for one council action (no signature yet).

    \b
    Example:
      claimx council propose admit --member hospital.ruijin --role hospital \\
          --name "Ruijin Hospital" --operator 0xOPS --out admit.json --rpc-url URL
    """
    chain, d, council = _context(rpc_url, deployment, None)
    reg = chain.registry(d.registry).c.functions
    need = _needs(member, threshold)
    if action == "admit":
        if role is None or name is None:
            raise typer.BadParameter("admit needs --role and --name")
        call: Any = reg.admitMember(need.member(), int(Role[role.upper()]), name, operator or [])
    elif action in ("suspend", "reinstate"):
        call = (reg.suspendMember if action == "suspend" else reg.reinstateMember)(need.member())
    elif action == "revoke-key":
        if key_id is None:
            raise typer.BadParameter("revoke-key needs --key-id")
        call = reg.revokeKey(need.member(), parse_hex32(key_id, "key id"), at)
    elif action in ("add-owner", "remove-owner", "change-threshold"):
        tx = council.propose(council.address, _owner_data(council, action, owner,
                                                          need.threshold()))
        return _write(out, action, tx, _describe(action, member, owner, threshold))
    else:
        raise typer.BadParameter(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
    tx = council.propose(d.registry, call._encode_transaction_data())
    _write(out, action, tx, _describe(action, member, owner, threshold))


class _needs:
    def __init__(self, member: str | None, threshold: int | None) -> None:
        self.m, self.t = member, threshold

    def member(self) -> bytes:
        if self.m is None:
            raise typer.BadParameter("this action needs --member")
        return _member(self.m)

    def threshold(self) -> int:
        if self.t is None:
            raise typer.BadParameter("this action needs --threshold")
        return self.t


def _owner_data(council: Any, action: str, owner: str | None, threshold: int) -> str:
    if action == "change-threshold":
        return str(council.change_threshold_data(threshold))
    if owner is None:
        raise typer.BadParameter(f"{action} needs --owner")
    if action == "add-owner":
        return str(council.add_owner_data(owner, threshold))
    return str(council.remove_owner_data(owner, threshold))


def _describe(action: str, member: str | None, owner: str | None,
              threshold: int | None) -> dict[str, Any]:
    described: dict[str, Any] = {"action": action}
    if member is not None:
        described["member"] = member
        described["member_id"] = hex32(_member(member))
    if owner is not None:
        described["owner"] = owner
    if threshold is not None:
        described["threshold"] = threshold
    return described


def _write(path: Path, action: str, tx: Any, described: dict[str, Any]) -> None:
    body = {"version": 1, "action": described, "safe_tx": tx.to_dict(),
            "safe_tx_hash": "0x" + tx.hash().hex(), "signatures": {}}
    path.write_text(json.dumps(body, indent=2) + "\n")
    typer.echo(f"proposal {action} written to {path}: SafeTx {body['safe_tx_hash']} "
               f"(council nonce {tx.nonce}); now `claimx council sign {path}`", err=True)


def _read(path: Path) -> tuple[dict[str, Any], Any]:
    from gateway.chain.council import SafeTx

    try:
        body = json.loads(path.read_text())
        tx = SafeTx.from_dict(body["safe_tx"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path} is not a council proposal: {exc}", code="bad_proposal"
                         ) from exc
    if body.get("safe_tx_hash") != "0x" + tx.hash().hex():
        raise InputError(f"{path}: the SafeTx does not hash to the hash it names (edited?)",
                         code="bad_proposal")
    return body, tx


@council_app.command("sign")
def sign(proposal: ProposalArg,
         key_env: Annotated[str | None, typer.Option(
             help="environment variable holding your council key (0x hex)")] = None,
         keystore: Annotated[Path | None, typer.Option(
             help="an Ethereum keystore file; its password from CLAIMX_KEYSTORE_PASSWORD")
         ] = None) -> None:
    """Add your EIP-712 signature of the proposal's SafeTx to the file (offline)."""
    from eth_account import Account

    body, tx = _read(proposal)
    if key_env:
        key = os.environ.get(key_env) or ""
        if not key:
            raise typer.BadParameter(f"environment variable {key_env} is empty or unset")
        account = Account.from_key(key)
    elif keystore:
        account = Account.from_key(Account.decrypt(
            keystore.read_text(), os.environ.get("CLAIMX_KEYSTORE_PASSWORD", "")))
    else:
        raise typer.BadParameter("give --key-env VAR or --keystore FILE")
    body["signatures"][account.address] = "0x" + tx.sign(account).hex()
    proposal.write_text(json.dumps(body, indent=2) + "\n")
    typer.echo(f"signed by {account.address}: {len(body['signatures'])} signature(s)")


@council_app.command("execute")
def execute(proposal: ProposalArg, rpc_url: RpcOpt,
            deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
            private_key_env: KeyEnvOpt = None) -> None:
    """Send the proposal once enough council members have signed it."""
    body, tx = _read(proposal)
    _, _, council = _context(rpc_url, deployment, private_key_env)
    sigs = {o: bytes.fromhex(s.removeprefix("0x")) for o, s in body["signatures"].items()}
    receipt = council.execute(tx, sigs)
    typer.echo(f"executed {body['action']['action']}: tx "
               f"0x{bytes(receipt['transactionHash']).hex()}")


@council_app.command("show")
def show(rpc_url: RpcOpt, deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
         proposal: Annotated[Path | None, typer.Option(help="also check this proposal")] = None
         ) -> None:
    """The council's owners, threshold and nonce (and a proposal's signatures) as JSON."""
    _, _, council = _context(rpc_url, deployment, None)
    out: dict[str, Any] = {"council": council.address, "owners": council.owners(),
                           "threshold": council.threshold(), "nonce": council.nonce()}
    if proposal is not None:
        body, tx = _read(proposal)
        owners = {o.lower() for o in out["owners"]}
        out["proposal"] = {"action": body["action"], "nonce": tx.nonce,
                           "signed_by": [o for o in body["signatures"] if o.lower() in owners],
                           "not_owners": [o for o in body["signatures"]
                                          if o.lower() not in owners]}
    typer.echo(json.dumps(out, indent=2))
