"""``claimx consent new|sign|bind|withdraw``: the claimant's and the desk's artifacts.

``new``, ``sign`` and ``withdraw`` run in the claimant's app (their key never leaves it);
``bind`` runs at the institution's desk that knows the person, with the institution's key.
Each command imports its layer when it runs (gateway.core, and httpx only to publish).
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

consent_app = typer.Typer(help="Claimant keys, consents, bindings and withdrawals.",
                          no_args_is_help=True)

GatewayOpt = Annotated[str | None, typer.Option(
    envvar="CLAIMX_GATEWAY_URL", help="the gateway's base URL, to publish or post to")]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="write here, not stdout")]


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


def _emit(obj: Any, out: Path | None) -> None:
    text = json.dumps(obj, indent=2)
    if out:
        out.write_text(text + "\n")
    else:
        typer.echo(text)


def _post(gateway: str, path: str, body: dict[str, Any],
          token: str | None = None) -> dict[str, Any]:
    """POST JSON; a refusal prints the gateway's error code and message and exits 1."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        r = httpx.post(gateway.rstrip("/") + path, json=body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach the gateway at {gateway} ({type(exc).__name__})",
                   err=True)
        raise typer.Exit(2) from exc
    if r.status_code >= 300:
        try:
            err = r.json()["error"]
            detail = f"{err['code']}: {err['message']}"
        except (ValueError, KeyError, TypeError):
            detail = r.text[:300]
        typer.echo(f"error: POST {path}: HTTP {r.status_code} {detail}", err=True)
        raise typer.Exit(1)
    return dict(r.json())


@consent_app.command("new")
def consent_new(
    out: Annotated[Path, typer.Option("--out", "-o", help="claimant key file to write (PEM)")],
) -> None:
    """Make a claimant key (Ed25519, PEM, mode 0600); print its public key.

    Take the public key to an institution that knows you, which binds it to you
    (`claimx consent bind`); then sign consents with the key.

    \b
      claimx consent new --out claimant.key
    """
    from gateway.core.claimant import new_claimant_key, public_key_b64, write_claimant_key

    key = new_claimant_key()
    try:
        write_claimant_key(key, out)
    except FileExistsError as exc:
        raise typer.BadParameter(f"{out} exists; refusing to overwrite a key") from exc
    typer.echo(json.dumps({"file": str(out), "algorithm": "ed25519",
                           "public_key": public_key_b64(key)}, indent=2))


@consent_app.command("sign")
def consent_sign(
    scope_file: Annotated[Path, typer.Argument(help="the consent scope JSON (docs/api.md)")],
    key: Annotated[Path, typer.Option("--key", "-k", help="the claimant key (PEM)")],
    out: OutOpt = None,
) -> None:
    """Sign a consent scope with the claimant key; print the consent artifact.

    The artifact is the `consent` of `POST /v1/claims`. `signed_at` is added (now) when the
    scope has none. The signature is Ed25519 over the RFC 8785 bytes of the scope.

    \b
      claimx consent sign scope.json --key claimant.key --out consent.json
    """
    from gateway.core.claimant import load_claimant_key, sign_consent
    from gateway.core.errors import ClaimxError

    try:
        scope = json.loads(scope_file.read_bytes())
        if not isinstance(scope, dict):
            raise ValueError("the scope must be a JSON object")
        artifact = sign_consent(load_claimant_key(key), scope)
    except (OSError, ValueError, ClaimxError) as exc:
        raise _fail(exc) from exc
    _emit(artifact, out)


@consent_app.command("bind")
def consent_bind(
    subject: Annotated[str, typer.Argument(help="the claimant's subject pseudonym (64 hex)")],
    claimant_public_key: Annotated[str, typer.Argument(
        help="the claimant's public key (base64, as `consent new` prints it)")],
    issuer: Annotated[str, typer.Option(help="your institution: slug or 0x member id")],
    key: Annotated[Path, typer.Option("--key", "-k", help="the institution's signing key")],
    expires: Annotated[datetime | None, typer.Option(
        help="when the binding stops counting (ISO 8601; default: until revoked)")] = None,
    gateway: GatewayOpt = None,
    out: OutOpt = None,
) -> None:
    """At the institution's desk: bind a claimant key to a subject you know.

    Writes the signed `identity.binding` envelope (to publish with `POST /v1/records`), or
    publishes it with --gateway and the institution's token in CLAIMX_TOKEN and prints
    the gateway's answer (the binding's digest).

    \b
      claimx consent bind SUBJECT PUBKEY --issuer hospital.ruijin --key hospital.key \\
          --gateway http://127.0.0.1:8000
    """
    from gateway.core.claimant import make_binding, member_hex
    from gateway.core.errors import ClaimxError
    from gateway.core.keys import SigningKey

    try:
        envelope = make_binding(SigningKey.load(key), member_hex(issuer), subject,
                                claimant_public_key, expires_at=expires).to_json()
    except (OSError, ValueError, ClaimxError) as exc:
        raise _fail(exc) from exc
    if gateway is None:
        _emit(envelope, out)
        return
    token = os.environ.get("CLAIMX_TOKEN")
    if not token:
        raise typer.BadParameter("set CLAIMX_TOKEN to the institution's API token to publish",
                                 param_hint="--gateway")
    _emit(_post(gateway, "/v1/records", envelope, token), out)


@consent_app.command("withdraw")
def consent_withdraw(
    subject: Annotated[str, typer.Option(help="your subject pseudonym (64 hex)")],
    insurer: Annotated[str, typer.Option(help="the insurer: slug or 0x member id")],
    key: Annotated[Path, typer.Option("--key", "-k", help="your bound claimant key")],
    gateway: GatewayOpt = None,
    out: OutOpt = None,
) -> None:
    """Withdraw every consent you gave the insurer, signed by your bound key.

    Posts the withdrawal to --gateway's `POST /v1/consents/withdraw` (no credential: the
    signature is the authority) and prints the answer; without --gateway prints the signed
    withdrawal for someone to relay within 10 minutes.

    \b
      claimx consent withdraw --subject SUBJECT --insurer insurer.pingan --key claimant.key \\
          --gateway http://127.0.0.1:8000
    """
    from gateway.core.claimant import load_claimant_key, member_hex, sign_withdrawal
    from gateway.core.errors import ClaimxError

    try:
        artifact = sign_withdrawal(load_claimant_key(key), subject, member_hex(insurer))
    except (OSError, ValueError, ClaimxError) as exc:
        raise _fail(exc) from exc
    if gateway is None:
        _emit(artifact, out)
        return
    _emit(_post(gateway, "/v1/consents/withdraw", artifact), out)
