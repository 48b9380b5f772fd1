"""``claimx publish``: sign packets (or take signed envelopes) and publish them in batches.

Built on the members' client (gateway/client/): a batch is retried on 503 (after its
``Retry-After``) and on network errors, which is safe because records are content-addressed
(a batch sent twice stores each record once and says ``duplicate``).
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gateway.core.errors import InputError

if TYPE_CHECKING:
    from gateway.core.envelope import Envelope

DEFAULT_GATEWAY = "http://127.0.0.1:8000"


def publish(
    files: Annotated[list[Path], typer.Argument(
        help="JSON files of packets (one, a list, or `claimx adapt` output) or of signed "
        "envelopes (as `claimx sign` prints them); - for stdin", show_default=False)],
    key: Annotated[Path | None, typer.Option(
        "--key", "-k", help="private key PEM: sign the packets (needs --issuer)")] = None,
    issuer: Annotated[str | None, typer.Option(
        help="member slug whose key signs; every packet must name it as its issuer")] = None,
    gateway: Annotated[str | None, typer.Option(
        envvar="CLAIMX_GATEWAY_URL", show_default=False,
        help=f"gateway base URL (default: the profile's, else {DEFAULT_GATEWAY})")] = None,
    profile: Annotated[Path | None, typer.Option(
        help='JSON file {"gateway": URL, "token": "cx1_…"}, mode 0600; else the token comes '
        "from CLAIMX_TOKEN")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=5000,
                                            help="envelopes per request")] = 500,
    passphrase_env: Annotated[str | None, typer.Option(help="key passphrase variable")] = None,
) -> None:
    """Publish records to a gateway and print each one's digest, key_status and promise.

    Each record's `promise` is the exchange's signed acceptance promise: the record will be
    in a tree head anchored on chain within its merge_delay (or end in a signed rejection).
    Keep the output: `claimx verify-promise` proves with it whether the promise was kept.

    \b
    Examples:
      export CLAIMX_TOKEN=cx1_...     # from `claimx credentials issue` or --dev-members
      claimx publish packets.json --key hospital.key --issuer hospital.ruijin
      claimx publish envelopes.json --gateway https://gw.example --profile ~/.claimx.json
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from gateway.client import Client

    url, token = _target(gateway, profile)
    envelopes = _envelopes(files, key, issuer, passphrase_env)
    out: list[dict[str, Any]] = []
    columns = (TextColumn("publishing"), BarColumn(), MofNCompleteColumn())
    console = Console(stderr=True)
    with Client(url, token, on_retry=lambda why, wait: console.print(
            f"gateway answered {why}: retrying in {wait:g} s", highlight=False)) as client, \
            Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("publish", total=len(envelopes))
        try:
            for start in range(0, len(envelopes), batch_size):
                for p in client.publish_batch(envelopes[start:start + batch_size]):
                    out.append({"digest": p.digest, "kind": p.kind, "urgent": p.urgent,
                                "duplicate": p.duplicate, "key_status": p.key_status,
                                "promise": p.promise.model_dump(mode="json")
                                if p.promise else None})
                bar.advance(task, min(batch_size, len(envelopes) - start))
        finally:
            if out:
                typer.echo(json.dumps(out, indent=2))
    stale = sum(1 for p in out if p["key_status"] != "fresh")
    typer.echo(f"published {len(out)} records to {url}"
               + (f" ({stale} with key_status stale: the chain was down)" if stale else ""),
               err=True)
    _tell_promises(out)


def _tell_promises(out: list[dict[str, Any]]) -> None:
    """One line on the promises printed above: what the exchange is now bound to."""
    promised = [p["promise"] for p in out if p["promise"]]
    if not promised:
        return
    last = max(p["accepted_at"] + p["merge_delay"] for p in promised)
    typer.echo(f"{len(promised)} signed acceptance promises (the `promise` of each record "
               f"above): all due in an anchored head by {last} (Unix time); keep them and "
               "check with `claimx verify-promise`", err=True)


def _target(gateway: str | None, profile: Path | None) -> tuple[str, str]:
    """The gateway URL and token: options and environment first, then the profile."""
    saved: dict[str, Any] = {}
    if profile is not None:
        mode = profile.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise InputError(f"profile {profile} is readable by others (mode "
                             f"{stat.S_IMODE(mode):o}): run `chmod 600 {profile}`",
                             code="profile_exposed")
        try:
            saved = json.loads(profile.read_text())
        except ValueError as exc:
            raise InputError(f"profile {profile} is not JSON: {exc}", code="bad_profile") from exc
    token = os.environ.get("CLAIMX_TOKEN") or saved.get("token")
    if not isinstance(token, str) or not token:
        raise InputError("no API token: set CLAIMX_TOKEN or pass --profile FILE",
                         code="missing_credentials")
    return str(gateway or saved.get("gateway") or DEFAULT_GATEWAY), token


def _envelopes(files: list[Path], key: Path | None, issuer: str | None,
               passphrase_env: str | None) -> list[Envelope]:
    """Every file's items as envelopes: envelopes as given, packets signed with ``key``."""
    from gateway.core.envelope import Envelope

    packets: list[Any] = []
    envelopes: list[Envelope] = []
    for path in files:
        for n, item in enumerate(_items(path), start=1):
            if isinstance(item, dict) and "signatures" in item:
                envelopes.append(Envelope.from_json(item))
            else:
                packets.append((path, n, item))
    if packets:
        envelopes += _sign(packets, key, issuer, passphrase_env)
    if not envelopes:
        raise InputError("nothing to publish: the files hold no packets or envelopes",
                         code="empty_batch")
    return envelopes


def _sign(packets: list[Any], key: Path | None, issuer: str | None,
          passphrase_env: str | None) -> list[Envelope]:
    from gateway.core.envelope import sign_packet
    from gateway.core.keys import SigningKey
    from gateway.core.packet import Packet
    from gateway.core.types import hex32, member_id

    if key is None or issuer is None:
        raise InputError("the files hold unsigned packets: pass --key KEY.pem and --issuer "
                         "SLUG (the member whose key signs)", code="missing_key")
    from gateway.cli.keys import _passphrase

    signer = SigningKey.load(key, _passphrase(passphrase_env))
    expected = hex32(member_id(issuer))
    out = []
    for path, n, obj in packets:
        packet = Packet.from_obj(obj)
        if packet.issuer != expected:
            raise InputError(f"{path}: packet {n} names issuer {packet.issuer[:10]}…, not "
                             f"{issuer} ({expected[:10]}…): adapt it with --issuer {issuer}",
                             code="issuer_mismatch")
        out.append(sign_packet(packet, signer))
    return out


def _items(path: Path) -> list[Any]:
    """A file's packets or envelopes: one object, a list, or {file, packets} (adapt)."""
    try:
        raw = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", code="unreadable") from exc
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise InputError(f"{path}: not JSON: {exc}", code="malformed_json") from exc
    items = obj if isinstance(obj, list) else [obj]
    out: list[Any] = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("packets"), list):
            out.extend(item["packets"])
        else:
            out.append(item)
    return out
