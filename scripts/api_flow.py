"""The insurer's API flow over HTTP, as a claims engine, a hospital and a police system run it.

Start a gateway with development members, then run this against it:

    claimx serve --dev-members .claimx/dev          # terminal 1
    python scripts/api_flow.py --members .claimx/dev/members.json   # terminal 2

Steps: the hospital binds the claimant's key to the claimant; the insurer opens an accident
claim with the claimant's signed consent and asks the hospital and the police for evidence;
each institution lists its open requests and publishes signed records; the insurer follows
the claim's event stream (server-sent events, resumed after a dropped connection) until the
claim is ready and every record is anchored, then downloads a receipt under the claim's
consent. Exits 0 when all of that holds.

Each system is the members' SDK (gateway.client.Client); the claimant's key, consent and
key binding come from gateway.core.claimant. docs/api.md describes the same calls on the
wire, for clients in other languages.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.client import ApiError, Client, Event
from gateway.core.claimant import make_binding, new_claimant_key, public_key_b64, sign_consent
from gateway.core.envelope import Envelope, sign_packet
from gateway.core.keys import SigningKey
from gateway.core.packet import new_packet

CLAIMANT = "7c" * 32
INSURER, HOSPITAL, POLICE = "insurer.dev", "hospital.dev", "police.dev"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="gateway base URL")
    parser.add_argument("--members", type=Path, default=Path(".claimx/dev/members.json"),
                        help="members.json written by `claimx serve --dev-members DIR`")
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for ready")
    args = parser.parse_args()
    members = json.loads(args.members.read_text())
    systems = {slug: Client(args.url, members[slug]["token"], timeout=30)
               for slug in (INSURER, HOSPITAL, POLICE)}
    try:
        return _flow(members, systems, args.timeout)
    except ApiError as exc:
        say(f"error: HTTP {exc.status} {exc.code}: {exc}")
        return 1
    finally:
        for cx in systems.values():
            cx.close()


def _flow(members: dict[str, Any], cx: dict[str, Client], timeout: float) -> int:
    insurer = cx[INSURER]
    claimant = new_claimant_key()  # the claimant's own key, in their app
    binding = cx[HOSPITAL].publish(make_binding(_key(members, HOSPITAL),
                                                members[HOSPITAL]["member_id"], CLAIMANT,
                                                public_key_b64(claimant)))
    say(f"{HOSPITAL}: bound the claimant's key to the subject, binding {binding.digest[:16]}…")
    scope = {"subject": CLAIMANT, "insurer": members[INSURER]["member_id"],
             "institutions": [members[HOSPITAL]["member_id"], members[POLICE]["member_id"]],
             "kinds": [], "date_from": "2026-01-01", "date_to": "2026-12-31",
             "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat()}
    claim = insurer.open_claim({"reference": f"FLOW-{int(time.time())}", "subject": CLAIMANT,
                                "policy": "ACC-1", "incident_date": "2026-11-01",
                                "kind": "accident", "consent": sign_consent(claimant, scope)})
    say(f"insurer: opened claim {claim['reference']} ({claim['kind']}), consent digest "
        f"{claim['consent']['digest'][:16]}…")
    for who, kinds in [(HOSPITAL, ["hospital.discharge_summary", "hospital.invoice"]),
                       (POLICE, ["police.accident_determination"])]:
        req = insurer.request_evidence(claim["id"], members[who]["member_id"], kinds)
        say(f"insurer: asked {who} for {', '.join(kinds)}; clock {req['remaining_seconds']} s")
    for who in (HOSPITAL, POLICE):
        for req in cx[who].requests(status="open"):
            done = cx[who].publish_batch([_signed(members, who, k) for k in req["kinds"]])
            say(f"{who}: answered request {req['id'][:8]}… with {len(done)} signed record(s)")
    if not _follow(insurer, claim["id"], timeout):
        return 1
    view = insurer.claim(claim["id"])
    say(f"insurer: claim {view['status']}; {len(view['records'])} records verified and "
        f"anchored; timeline {' → '.join(e['type'] for e in view['timeline'])}")
    digest = view["records"][0]["digest"]
    receipt = insurer.receipt(digest, claim=claim["id"])
    say(f"insurer: receipt for {digest[:16]}…: leaf {receipt['leaf_index']} of tree "
        f"{receipt['tree_head']['size']}, anchored by tx {receipt['anchored_in']['tx_hash'][:16]}…")
    return 0


def _follow(insurer: Client, claim_id: str, timeout: float) -> bool:
    """Follow the claim's events until it is ready and every attached record is anchored;
    the first connection is dropped after three events and resumed from the last one seen."""
    deadline = time.monotonic() + timeout
    attached: set[str] = set()
    anchored: set[str] = set()
    ready, last = False, 0
    for dropped in (True, False):
        for event in _events(insurer, claim_id, last, limit=3 if dropped else None,
                             deadline=deadline):
            last = event.id
            if event.type == "record.received" and "duplicate_of" not in event.data:
                attached.add(event.data["digest"])
            elif event.type == "record.anchored":
                anchored.add(event.data["digest"])
            ready = ready or event.type == "claim.ready"
            if ready and attached and attached <= anchored:
                say(f"insurer: followed the claim's events up to {last} (SSE, one dropped "
                    f"connection resumed): claim ready, {len(attached)} records anchored")
                return True
        if dropped:
            say(f"insurer: event stream dropped after event {last}; resuming with "
                "Last-Event-ID")
    say(f"claim not ready and anchored within {timeout} s: ready={ready}, "
        f"{len(anchored & attached)} of {len(attached)} records anchored")
    return False


def _events(insurer: Client, claim_id: str, after: int, *, limit: int | None,
            deadline: float) -> Iterator[Event]:
    """The claim's server-sent events after ``after``: ``limit`` of them then the connection
    is closed, or until ``deadline``."""
    stream = insurer.stream_events(after, claim_id=claim_id, read_timeout=5)
    try:
        for n, event in enumerate(stream, 1):
            yield event
            if (limit is not None and n >= limit) or time.monotonic() > deadline:
                return
    finally:
        stream.close()


def _key(members: dict[str, Any], who: str) -> SigningKey:
    return SigningKey.load(Path(members[who]["key_file"]))


def _signed(members: dict[str, Any], who: str, kind: str) -> Envelope:
    packet = new_packet(kind=kind, issuer=members[who]["member_id"], subject=CLAIMANT,
                        issued_at="2026-11-03T09:00:00Z", body={"summary": f"{kind} (example)"},
                        urgent=kind == "police.accident_determination")
    return sign_packet(packet, _key(members, who))


def say(text: str) -> None:
    print(text, flush=True)


if __name__ == "__main__":
    sys.exit(main())
