"""``claimx deploy``: put the registry and the evidence log on a JSON-RPC node."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gateway.cli.common import DEFAULT_DEPLOYMENT, KeyEnvOpt, RpcOpt, connect


def deploy(
    rpc_url: RpcOpt,
    out: Annotated[Path, typer.Option(
        "--out", "--deployment", envvar="CLAIMX_DEPLOYMENT_FILE",
        help="where to write the contract addresses (the file every other command reads "
        "with --deployment)")] = DEFAULT_DEPLOYMENT,
    private_key_env: KeyEnvOpt = None,
    admin: Annotated[str | None, typer.Option(help="admin account (default: the sender)")] = None,
) -> None:
    """Deploy MemberRegistry and EvidenceLog to a JSON-RPC node and write their addresses.

    \b
    Example:
      claimx deploy --rpc-url http://127.0.0.1:8545      # writes .claimx/deployment.json
    """
    d = connect(rpc_url, private_key_env).deploy(admin)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(d.to_json())
    typer.echo(d.to_json().strip())
    typer.echo(f"wrote {out}; run the gateway with `claimx serve --rpc-url {rpc_url} "
               f"--deployment {out}`", err=True)
