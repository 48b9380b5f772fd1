"""``claimx keys new`` and ``claimx sign``: an institution's side of signing, offline."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gateway.core.errors import ClaimxError, InputError

if TYPE_CHECKING:
    from gateway.core.packet import Packet

keys_app = typer.Typer(help="Create institution signing keys.", no_args_is_help=True)


def _passphrase(env: str | None) -> bytes | None:
    if not env:
        return None
    value = os.environ.get(env)
    if not value:
        raise typer.BadParameter(f"environment variable {env} is empty or unset")
    return value.encode()


@keys_app.command("new")
def keys_new(
    out: Annotated[Path, typer.Option("--out", "-o", help="private key file to write (PEM)")],
    alg: Annotated[str, typer.Option(
        help="ed25519 or p256 (ECDSA P-256; ecdsa_p256 is accepted too)")] = "ed25519",
    passphrase_env: Annotated[str | None, typer.Option(
        help="encrypt the key with the passphrase in this environment variable")] = None,
) -> None:
    """Generate a signing key; print its key id and the public key to register on chain.

    The admin then registers it (the algorithm is read from the public key):

    \b
      claimx keys new --out hospital.key --alg p256
      claimx members add-key hospital.ruijin --key-id 0x... --public-key 0x...
    """
    from gateway.core.keys import SigningKey, algorithm_name, parse_algorithm
    from gateway.core.types import hex32

    try:
        algorithm = parse_algorithm(alg)
    except InputError as exc:
        raise typer.BadParameter(exc.msg, param_hint="--alg") from exc
    if out.exists():
        raise typer.BadParameter(f"{out} exists; refusing to overwrite a key")
    key = SigningKey.generate(algorithm)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(key.to_pem(_passphrase(passphrase_env)))
    out.chmod(0o600)
    typer.echo(json.dumps({"file": str(out), "algorithm": algorithm_name(key.algorithm),
                           "key_id": hex32(key.key_id),
                           "public_key": "0x" + key.public.raw.hex()}, indent=2))


def sign(
    packet_file: Annotated[Path, typer.Argument(help="packet JSON (one object, or a list as "
                                                "printed by `claimx adapt`), or - for stdin")],
    key: Annotated[Path, typer.Option("--key", "-k", help="private key PEM")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write here, not stdout")] = None,
    passphrase_env: Annotated[str | None, typer.Option(help="key passphrase variable")] = None,
) -> None:
    """Canonicalise claim packets (RFC 8785) and wrap each in a signed DSSE envelope.

    Prints one envelope, or a JSON list when given several packets; publish them with
    `POST /v1/records` or `/v1/records/batch`. Packets adapted without --issuer (the
    placeholder issuer) are refused.

    \b
    Examples:
      claimx sign packet.json --key hospital.key --out envelope.json
      claimx adapt --issuer hospital.ruijin bill.csv | claimx sign - --key hospital.key
    """
    from gateway.core.envelope import MAX_DEPTH, sign_packet
    from gateway.core.jsondepth import json_depth
    from gateway.core.keys import SigningKey
    from gateway.core.packet import Packet

    try:
        raw = sys.stdin.buffer.read() if str(packet_file) == "-" else packet_file.read_bytes()
        signer = SigningKey.load(key, _passphrase(passphrase_env))
        if json_depth(raw) > MAX_DEPTH:
            raise InputError(f"packet file nests deeper than {MAX_DEPTH} levels",
                             code="too_deep")
        obj = json.loads(raw)
        packets = [Packet.from_obj(o) for o in _packets(obj)]
        _refuse_placeholder(packets)
        envelopes = [sign_packet(p, signer).to_json() for p in packets]
    except json.JSONDecodeError as exc:
        typer.echo(f"error: {packet_file}: not JSON: {exc}", err=True)
        raise typer.Exit(1) from exc
    except (ClaimxError, OSError) as exc:
        typer.echo(f"error: {packet_file}: {exc}", err=True)
        raise typer.Exit(1) from exc
    text = json.dumps(envelopes[0] if len(envelopes) == 1 else envelopes, indent=2)
    if out:
        out.write_text(text + "\n")
    else:
        typer.echo(text)


def _refuse_placeholder(packets: list[Packet]) -> None:
    """Packets adapted without --issuer name no member; signing them would publish nothing."""
    from adapters.cli import PLACEHOLDER_ISSUER

    for n, packet in enumerate(packets, start=1):
        if packet.issuer == PLACEHOLDER_ISSUER:
            raise InputError(f"packet {n} has the placeholder issuer `claimx adapt` writes "
                             "without --issuer; adapt again with --issuer SLUG (the member "
                             "whose key signs)", code="placeholder_issuer")


def _packets(obj: object) -> list[object]:
    """Accept a packet, a list of packets, or `claimx adapt` output ({file, packets})."""
    if isinstance(obj, dict) and "packets" in obj:
        return list(obj["packets"])
    if isinstance(obj, list):
        out: list[object] = []
        for item in obj:
            out.extend(_packets(item) if isinstance(item, dict) and "packets" in item else [item])
        return out
    return [obj]
