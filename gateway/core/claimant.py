"""The claimant's and the institution desk's artifacts, made without writing crypto code.

A claimant key is a raw Ed25519 key (PEM on disk). With it the claimant signs a consent
scope or a withdrawal (Ed25519 over the RFC 8785 bytes of the JSON object, docs/api.md §7.1);
an institution that knows the person binds the key's public half to the subject with an
``identity.binding`` packet signed (DSSE) by its registered key. ``claimx consent ...`` is a
thin shell over these functions; the gateway checks the same bytes in
:mod:`gateway.core.consent` and :mod:`gateway.core.binding`.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import ValidationError

from gateway.core.binding import (
    BINDING_KIND,
    WithdrawalArtifact,
    WithdrawalStatement,
    binding_body,
    claimant_key_bytes,
)
from gateway.core.canonical import canonical_bytes
from gateway.core.consent import ConsentArtifact, ConsentScope
from gateway.core.envelope import Envelope, sign_packet
from gateway.core.errors import InputError, from_validation
from gateway.core.keys import SigningKey
from gateway.core.packet import new_packet
from gateway.core.types import hex32, member_id, parse_hex32


def new_claimant_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def write_claimant_key(key: ed25519.Ed25519PrivateKey, path: Path) -> None:
    """Write the key as unencrypted PKCS#8 PEM, readable by its owner only (mode 0600);
    refuses to overwrite, since a lost claimant key cannot be recovered."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("xb") as out:  # exclusive: never overwrite a key
        path.chmod(0o600)
        out.write(pem)


def load_claimant_key(path: Path) -> ed25519.Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as exc:
        raise InputError(f"{path} is not an unencrypted PEM private key",
                         code="bad_claimant_key") from exc
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise InputError(f"{path} is not an Ed25519 key (claimant keys are Ed25519)",
                         code="bad_claimant_key")
    return key


def public_key_b64(key: ed25519.Ed25519PrivateKey) -> str:
    """The base64 raw public key, as bindings and claimant signatures carry it."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def member_hex(name: str) -> str:
    """A member as ``0x`` hex: given as its id already, or as its consortium slug."""
    if name.startswith(("0x", "0X")):
        try:
            return hex32(parse_hex32(name, "member"))
        except ValueError as exc:
            raise InputError(str(exc), code="invalid_member") from exc
    return hex32(member_id(name))


def _signature(key: ed25519.Ed25519PrivateKey, obj: dict[str, Any]) -> dict[str, str]:
    return {"algorithm": "ed25519", "public_key": public_key_b64(key),
            "sig": base64.b64encode(key.sign(canonical_bytes(obj))).decode()}


def sign_consent(key: ed25519.Ed25519PrivateKey, scope: dict[str, Any],
                 now: datetime | None = None) -> dict[str, Any]:
    """A consent artifact: ``scope`` (a ConsentScope object; ``signed_at`` added when
    absent, so a later withdrawal can tell this consent is older) and its signature."""
    scope = dict(scope)
    scope.setdefault("signed_at", (now or datetime.now(UTC)).isoformat())
    try:
        ConsentScope.model_validate(scope)
    except ValidationError as exc:
        raise from_validation(exc, "consent scope", code="invalid_consent") from exc
    artifact = {"scope": scope, "claimant_signature": _signature(key, scope)}
    ConsentArtifact.model_validate(artifact)
    return artifact


def sign_withdrawal(key: ed25519.Ed25519PrivateKey, subject: str, insurer: str,
                    now: datetime | None = None) -> dict[str, Any]:
    """A withdrawal of every consent of ``subject`` to ``insurer`` (0x hex), signed now."""
    obj = {"subject": subject, "insurer": insurer,
           "withdrawn_at": (now or datetime.now(UTC)).isoformat()}  # as docs/api.md §7.1
    try:
        WithdrawalStatement.model_validate(obj)
    except ValidationError as exc:
        raise from_validation(exc, "withdrawal", code="invalid_withdrawal") from exc
    artifact = {"withdrawal": obj, "claimant_signature": _signature(key, obj)}
    WithdrawalArtifact.model_validate(artifact)
    return artifact


def make_binding(signer: SigningKey, issuer: str, subject: str, claimant_public_key: str,
                 expires_at: datetime | None = None,
                 now: datetime | None = None) -> Envelope:
    """The institution binds ``claimant_public_key`` (base64 raw Ed25519) to ``subject``:
    an ``identity.binding`` packet issued by ``issuer`` (0x hex), signed with ``signer``."""
    try:
        raw = claimant_key_bytes(claimant_public_key)
    except ValueError as exc:
        raise InputError(str(exc), code="bad_claimant_key") from exc
    at = now or datetime.now(UTC)
    try:
        packet = new_packet(kind=BINDING_KIND, issuer=issuer, subject=subject,
                            body=binding_body(subject, raw, at, expires_at))
    except ValidationError as exc:
        raise from_validation(exc, "binding", code="invalid_binding") from exc
    return sign_packet(packet, signer)
