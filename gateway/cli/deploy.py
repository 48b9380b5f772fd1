"""``claimx deploy``: put the council's Safe, the registry and the evidence log on a node."""

from __future__ import annotations

import os
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
    admin: Annotated[str | None, typer.Option(
        help="account that anchors the log (default: the sender); it gets no other power")
    ] = None,
    council: Annotated[str | None, typer.Option(
        help="comma-separated council member addresses: a Safe of them governs the registry")
    ] = None,
    threshold: Annotated[int | None, typer.Option(
        help="how many council members must sign an action (with --council)")] = None,
) -> None:
    """Deploy a council Safe, MemberRegistry and EvidenceLog, and write their addresses.

    The council (k of n, a Safe multisig) alone admits and suspends members; the deployer
    keeps no power but anchoring. Without --council, in development only, a 2-of-3
    development council is made and its owner keys written next to the file (mode 0600).

    \b
    Example:
      claimx deploy --rpc-url http://127.0.0.1:8545 --council 0xA,0xB,0xC --threshold 2
    """
    from eth_account import Account

    from gateway.chain.council import deploy_with_council, dev_keys_path, write_dev_keys

    chain = connect(rpc_url, private_key_env)
    if council:
        owners = [o.strip() for o in council.split(",") if o.strip()]
        if threshold is None:
            raise typer.BadParameter("name how many must sign", param_hint="--threshold")
        d = deploy_with_council(chain, owners, threshold, anchorer=admin)
    else:
        if os.environ.get("CLAIMX_ENVIRONMENT") == "production":
            raise typer.BadParameter("production needs a real council: --council ADDR,... "
                                     "--threshold K", param_hint="--council")
        keys = [Account.create() for _ in range(3)]
        d = deploy_with_council(chain, [k.address for k in keys], threshold or 2,
                                development=True, anchorer=admin)
        assert d.council is not None
        write_dev_keys(dev_keys_path(out), d.council, threshold or 2, keys)
        chain.send_value(d.council, 10**18)  # lets calls be simulated from the Safe
        typer.echo(f"development council {threshold or 2}-of-3: owner keys in "
                   f"{dev_keys_path(out)}", err=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(d.to_json())
    typer.echo(d.to_json().strip())
    typer.echo(f"wrote {out}; run the gateway with `claimx serve --rpc-url {rpc_url} "
               f"--deployment {out}`", err=True)
