"""The signed claim, binding and records of scripts/api_flow.py as plain JSON bodies, for tests
that post them by hand (the script itself now goes through the SDK)."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.core.binding import BINDING_KIND, binding_body
from gateway.core.canonical import canonical_bytes
from gateway.core.envelope import sign_packet
from gateway.core.keys import SigningKey
from gateway.core.packet import new_packet

CLAIMANT = "7c" * 32


def _binding(members: dict[str, Any], who: str,
             claimant: ed25519.Ed25519PrivateKey) -> dict[str, Any]:
    """The hospital, which knows the claimant, binds the claimant's key to the subject: an
    ``identity.binding`` record signed by the hospital's registered key."""
    raw = claimant.public_key().public_bytes(serialization.Encoding.Raw,
                                             serialization.PublicFormat.Raw)
    body = binding_body(CLAIMANT, raw, datetime.now(UTC))
    key = SigningKey.load(Path(members[who]["key_file"]))
    packet = new_packet(kind=BINDING_KIND, issuer=members[who]["member_id"], subject=CLAIMANT,
                        body=body)
    return sign_packet(packet, key).to_json()


def _claim(members: dict[str, Any], claimant: ed25519.Ed25519PrivateKey) -> dict[str, Any]:
    """A claim with a consent the claimant signed (RFC 8785 bytes of the scope, Ed25519)."""
    scope = {"subject": CLAIMANT, "insurer": members["insurer.dev"]["member_id"],
             "institutions": [members["hospital.dev"]["member_id"],
                              members["police.dev"]["member_id"]],
             "kinds": [], "date_from": "2026-01-01", "date_to": "2026-12-31",
             "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
             "signed_at": datetime.now(UTC).isoformat()}
    pub = claimant.public_key().public_bytes(serialization.Encoding.Raw,
                                             serialization.PublicFormat.Raw)
    signature = claimant.sign(canonical_bytes(scope))  # RFC 8785 bytes of the scope as sent
    return {"reference": f"FLOW-{int(time.time())}", "subject": CLAIMANT, "policy": "ACC-1",
            "incident_date": "2026-11-01", "kind": "accident",
            "consent": {"scope": scope, "claimant_signature": {
                "algorithm": "ed25519", "public_key": base64.b64encode(pub).decode(),
                "sig": base64.b64encode(signature).decode()}}}


def _signed(members: dict[str, Any], who: str, kind: str) -> dict[str, Any]:
    key = SigningKey.load(Path(members[who]["key_file"]))
    packet = new_packet(kind=kind, issuer=members[who]["member_id"], subject=CLAIMANT,
                        issued_at="2026-11-03T09:00:00Z", body={"summary": f"{kind} (example)"},
                        urgent=kind == "police.accident_determination")
    return sign_packet(packet, key).to_json()


