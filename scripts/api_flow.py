"""The insurer's API flow over HTTP, as a claims engine, a hospital and a police system run it.

Start a gateway with development members, then run this against it:

    claimx serve --dev-members .claimx/dev          # terminal 1
    python scripts/api_flow.py --members .claimx/dev/members.json   # terminal 2

Steps: the insurer opens an accident claim with the claimant's signed consent and asks the
hospital and the police for evidence; each institution lists its open requests and
publishes signed records; the insurer polls the claim until it is ready and every record is
anchored, then downloads a receipt under the claim's consent. Exits 0 when all of that holds.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.core.binding import BINDING_KIND, binding_body
from gateway.core.canonical import canonical_bytes
from gateway.core.envelope import sign_packet
from gateway.core.keys import SigningKey
from gateway.core.packet import new_packet

CLAIMANT = "7c" * 32


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="gateway base URL")
    parser.add_argument("--members", type=Path, default=Path(".claimx/dev/members.json"),
                        help="members.json written by `claimx serve --dev-members DIR`")
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for ready")
    args = parser.parse_args()
    members = json.loads(args.members.read_text())
    http = httpx.Client(base_url=args.url, timeout=30)

    def as_(slug: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {members[slug]['token']}"}

    insurer, hospital, police = "insurer.dev", "hospital.dev", "police.dev"
    claimant = ed25519.Ed25519PrivateKey.generate()  # the claimant's own key, in their app
    binding = _ok(http.post("/v1/records", headers=as_(hospital),
                            json=_binding(members, hospital, claimant)))
    say(f"{hospital}: bound the claimant's key to the subject, binding {binding['digest'][:16]}…")
    claim = _ok(http.post("/v1/claims", headers=as_(insurer), json=_claim(members, claimant)))
    say(f"insurer: opened claim {claim['reference']} ({claim['kind']}), consent digest "
        f"{claim['consent']['digest'][:16]}…")
    for who, kinds in [(hospital, ["hospital.discharge_summary", "hospital.invoice"]),
                       (police, ["police.accident_determination"])]:
        req = _ok(http.post(f"/v1/claims/{claim['id']}/requests", headers=as_(insurer),
                            json={"institution": members[who]["member_id"], "kinds": kinds}))
        say(f"insurer: asked {who} for {', '.join(kinds)}; clock {req['remaining_seconds']} s")
    for who in (hospital, police):
        for req in _ok(http.get("/v1/requests", headers=as_(who), params={"status": "open"})):
            envelopes = [_signed(members, who, kind) for kind in req["kinds"]]
            done = _ok(http.post("/v1/records/batch", headers=as_(who),
                                 json={"envelopes": envelopes}))
            say(f"{who}: answered request {req['id'][:8]}… with {len(done)} signed record(s)")
    deadline = time.monotonic() + args.timeout
    while True:
        view = _ok(http.get(f"/v1/claims/{claim['id']}", headers=as_(insurer)))
        anchored = all(r["status"] == "anchored" for r in view["records"])
        if view["status"] == "ready" and anchored and view["records"]:
            break
        if time.monotonic() > deadline:
            say(f"claim not ready and anchored within {args.timeout} s: {view['status']}")
            return 1
        time.sleep(0.5)
    say(f"insurer: claim {view['status']}; {len(view['records'])} records verified and "
        f"anchored; timeline {' → '.join(e['type'] for e in view['timeline'])}")
    digest = view["records"][0]["digest"]
    receipt = _ok(http.get(f"/v1/records/{digest}/receipt", headers=as_(insurer),
                           params={"claim": claim["id"]}))
    say(f"insurer: receipt for {digest[:16]}…: leaf {receipt['leaf_index']} of tree "
        f"{receipt['tree_head']['size']}, anchored by tx {receipt['anchored_in']['tx_hash'][:16]}…")
    return 0


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


def _ok(r: httpx.Response) -> Any:
    if r.status_code >= 300:
        raise SystemExit(f"{r.request.method} {r.request.url.path}: HTTP {r.status_code} "
                         f"{r.text[:400]}")
    return r.json()


def say(text: str) -> None:
    print(text, flush=True)


if __name__ == "__main__":
    sys.exit(main())
