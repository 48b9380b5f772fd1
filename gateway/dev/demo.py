"""``claimx demo``: the whole exchange on the embedded default, narrated.

An insurer opens an accident claim first, with the claimant's signed consent, and asks a
hospital and a police bureau for evidence (green channel: a 30-minute clock). The
institutions see the requests and publish signed records through the real HTTP API; the
records attach to the claim as they arrive and are pushed to the insurer's webhook (a local
receiver that checks every signature) (a re-published bill is recognised as a
duplicate), the accident determination is anchored at once, the claim becomes ready, and
the insurer fetches receipts (each read logged on the evidence log) and verifies them
against the chain alone. A tampered receipt fails.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi.testclient import TestClient
from rich.console import Console
from rich.table import Table

from gateway.api.app import create_app
from gateway.chain.client import Chain
from gateway.chain.council import dev_council
from gateway.config import Settings
from gateway.core.binding import BINDING_KIND, binding_body
from gateway.core.consent import ConsentScope, scope_bytes
from gateway.core.envelope import sign_packet
from gateway.core.errors import ClaimxError
from gateway.core.keys import SigningKey, algorithm_name
from gateway.core.packet import SourceRef, new_packet
from gateway.core.receipt import Receipt
from gateway.core.types import KeyAlgorithm, MemberId, Role, hex32, member_id
from gateway.core.webhook import verify_signature
from gateway.services.auth import issue_credential
from gateway.services.wiring import Services, build_services
from gateway.verify.audit import audit_reads
from gateway.verify.receipt import Report, verify_receipt

CLAIMANT = "5f" * 32
"""The claimant's pseudonym: keyed HMAC of the ID number, made by the adapters."""


@dataclass
class Member:
    slug: str
    role: Role
    name: str
    key: SigningKey | None
    token: str = ""

    @property
    def id(self) -> MemberId:
        return member_id(self.slug)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def run_demo(out_dir: Path, console: Console) -> bool:
    """Run the story; True when the claim is served and verified and tampering is caught."""
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(home=out_dir, anchor_interval_seconds=3600, urgent_poll_seconds=0.1,
                        webhook_allow_hosts=["127.0.0.1"])  # the insurer's local receiver
    console.rule("[bold]claimx demo[/]: embedded EVM + SQLite, nothing to start by hand")
    chain = Chain.embedded()
    deployment, _ = dev_council(chain)  # a 2-of-3 development council admits the members
    console.print(f"deployed MemberRegistry [cyan]{deployment.registry}[/] and EvidenceLog "
                  f"[cyan]{deployment.log}[/] on chain {deployment.chain_id}")
    sv = build_services(settings, chain=chain, deployment=deployment)
    hospital, police, insurer, auditor = _admit(sv, console)
    receipts_dir = out_dir / "receipts"
    receipts_dir.mkdir(exist_ok=True)
    hook = _Hook()
    with TestClient(create_app(sv)) as client, hook:
        started = time.monotonic()
        r = client.post("/v1/webhooks", json={"url": hook.url}, headers=insurer.auth)
        r.raise_for_status()
        hook.secret = r.json()["secret"]
        console.print(f"[bold]insurer[/] registered a webhook ({hook.url}) for pushed events")
        claim = _open_claim(client, insurer, hospital, police, console)
        _request(client, insurer, claim, hospital, ["hospital.discharge_summary",
                                                    "hospital.invoice"], console)
        _request(client, insurer, claim, police, ["police.accident_determination"], console)
        _institutions_answer(client, hospital, police, console)
        sv.worker.wake.set()
        sv.worker.cycle()  # the routine batch, without waiting for its interval
        view = client.get(f"/v1/claims/{claim}", headers=insurer.auth).json()
        _show_claim(console, view, time.monotonic() - started)
        _show_pushed(hook, len(view["timeline"]), console)
        paths = _receipts(client, insurer, claim, view, receipts_dir, console)
        sv.worker.cycle()  # the reads' log entries, anchored
        audited = _audit(sv, client, auditor, view["records"][0]["digest"], console)
    pushed_ok = bool(hook.events) and all(ok for _, ok in hook.events)
    ok = view["status"] == "ready" and pushed_ok and audited and _verify_all(sv, paths, console)
    tampered = _tamper(paths["hospital.invoice"], receipts_dir)
    report = verify_receipt(Receipt.from_json(tampered.read_text()), sv.chain, deployment.log)
    _show(console, f"tampered receipt {tampered.name}", report)
    if report.valid:
        console.print("[bold red]the tampered receipt verified: this must never happen[/]")
        return False
    console.print("[green]tampered receipt rejected[/], as it must be")
    console.rule("[bold green]demo complete" if ok else "[bold red]demo failed")
    console.print(f"receipts in {receipts_dir}; check any of them yourself with "
                  "`claimx verify RECEIPT --rpc-url URL --log ADDRESS` against a node")
    return ok


def _admit(sv: Services, console: Console) -> list[Member]:
    registry = sv.chain.registry(sv.deployment.registry)
    members = [
        Member("hospital.ruijin", Role.HOSPITAL, "Ruijin Hospital",
               SigningKey.generate(KeyAlgorithm.ED25519)),
        Member("police.shanghai.traffic", Role.POLICE, "Shanghai Traffic Police",
               SigningKey.generate(KeyAlgorithm.ECDSA_P256)),
        Member("insurer.pacific", Role.INSURER, "Pacific Life Insurance", None),
        Member("auditor.cbirc", Role.AUDITOR, "Insurance Regulator (audit)", None),
    ]
    table = Table("member", "role", "signing key", title="consortium members admitted on chain")
    for m in members:
        operator = sv.chain.new_funded_account()
        registry.admit_member(m.id, m.role, m.name, [operator])
        if m.key is not None:  # the member's own operator registers its key, proving possession
            registry.register_key(m.id, m.key, sender=operator)
        with sv.db.session() as s:
            m.token = issue_credential(s, m.id, "demo")
        key = f"{algorithm_name(m.key.algorithm)} {m.key.key_id.hex()[:12]}…" if m.key else "-"
        table.add_row(m.name, m.role.name.lower(), key)
    console.print(table)
    return members


def _open_claim(client: TestClient, insurer: Member, hospital: Member, police: Member,
                console: Console) -> str:
    claimant_key = ed25519.Ed25519PrivateKey.generate()
    scope = ConsentScope(
        subject=CLAIMANT, insurer=hex32(insurer.id),
        institutions=[hex32(hospital.id), hex32(police.id)],
        kinds=["hospital.discharge_summary", "hospital.invoice",
               "police.accident_determination"],
        date_from=datetime(2026, 10, 1).date(), date_to=datetime(2026, 12, 31).date(),
        expires_at=datetime.now(UTC) + timedelta(days=90))
    raw_pub = claimant_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                     serialization.PublicFormat.Raw)
    assert hospital.key is not None
    binding = new_packet(kind=BINDING_KIND, issuer=hex32(hospital.id), subject=CLAIMANT,
                         body=binding_body(CLAIMANT, raw_pub, datetime.now(UTC)))
    client.post("/v1/records", json=sign_packet(binding, hospital.key).to_json(),
                headers=hospital.auth).raise_for_status()
    console.print("[bold]hospital[/] bound the claimant's key to the claimant's pseudonym "
                  "(identity.binding, signed and logged): only that key's consent counts")
    body = {"reference": "PAC-2026-0042", "subject": CLAIMANT, "policy": "ACC-778120",
            "incident_date": "2026-11-01", "kind": "accident",
            "consent": {"scope": scope.model_dump(mode="json"), "claimant_signature": {
                "algorithm": "ed25519", "public_key": base64.b64encode(raw_pub).decode(),
                "sig": base64.b64encode(claimant_key.sign(scope_bytes(scope))).decode()}}}
    r = client.post("/v1/claims", json=body, headers=insurer.auth)
    r.raise_for_status()
    claim = r.json()
    console.print(f"[bold]insurer[/] opened claim {claim['reference']} ({claim['kind']}, "
                  f"green channel) first, with the claimant's signed consent; consent digest "
                  f"{claim['consent']['digest'][:16]}… goes into the evidence log")
    return str(claim["id"])


def _request(client: TestClient, insurer: Member, claim: str, institution: Member,
             kinds: list[str], console: Console) -> None:
    r = client.post(f"/v1/claims/{claim}/requests", headers=insurer.auth,
                    json={"institution": hex32(institution.id), "kinds": kinds})
    r.raise_for_status()
    due = r.json()["remaining_seconds"] // 60
    console.print(f"[bold]insurer[/] asked {institution.name} for {', '.join(kinds)} "
                  f"(response clock: {due} min)")


def _institutions_answer(client: TestClient, hospital: Member, police: Member,
                         console: Console) -> None:
    open_reqs = client.get("/v1/requests", headers=hospital.auth).json()
    console.print(f"[bold]hospital[/] sees {len(open_reqs)} open request(s) addressed to it")
    assert hospital.key is not None and police.key is not None
    bill_source = SourceRef(format="csv_bill", sha256="c3" * 32)
    bill_body: dict[str, Any] = {"currency": "CNY", "items": [
        {"description": "coronary stent", "category": "material", "quantity": "1",
         "unit_price": "12800.00", "amount": "12800.00", "self_pay": "3840.00",
         "insurer_paid": "8960.00"},
        {"description": "ward bed", "category": "bed", "quantity": "10", "unit_price": "120.00",
         "amount": "1200.00", "self_pay": "360.00", "insurer_paid": "840.00"}],
        "total": "14000.00",
        "totals": {"amount": "14000.00", "self_pay": "4200.00", "insurer_paid": "9800.00"}}
    issuer = hex32(hospital.id)
    hospital_packets = [
        new_packet(kind="hospital.discharge_summary", issuer=issuer, subject=CLAIMANT,
                   source=SourceRef(format="hl7v2", sha256="ab" * 32),
                   body={"admitted_at": "2026-11-02T08:10:00Z",
                         "discharged_at": "2026-11-12T10:00:00Z", "department": "cardiology",
                         "diagnoses": [{"system": "ICD-10", "code": "S22.3",
                                        "text": "fracture of rib"}]}),
        new_packet(kind="hospital.invoice", issuer=issuer, subject=CLAIMANT, body=bill_body,
                   source=bill_source),
        # the billing office re-sends the same bill export: a new salt, the same source
        new_packet(kind="hospital.invoice", issuer=issuer, subject=CLAIMANT, body=bill_body,
                   source=bill_source),
    ]
    envs = [sign_packet(p, hospital.key).to_json() for p in hospital_packets]
    r = client.post("/v1/records/batch", json={"envelopes": envs}, headers=hospital.auth)
    r.raise_for_status()
    console.print(f"[bold]hospital[/] published {len(envs)} signed records in one batch "
                  "(the bill twice)")
    accident = new_packet(kind="police.accident_determination", issuer=hex32(police.id),
                          subject=CLAIMANT, urgent=True, body={
                              "case_number": "沪公交认字[2026]第01234号",
                              "occurred_at": "2026-11-01T22:40:00Z",
                              "place": "Yan'an Rd, Shanghai",
                              "liability": [{"party": 1, "share": 0},
                                            {"party": 2, "share": 100}]})
    start = time.monotonic()
    r = client.post("/v1/records", json=sign_packet(accident, police.key).to_json(),
                    headers=police.auth)
    r.raise_for_status()
    digest = r.json()["digest"]
    while client.get(f"/v1/records/{digest}", headers=police.auth).json()["status"] != \
            "anchored":
        if time.monotonic() - start > 30:
            raise RuntimeError("urgent record was not anchored within 30 s")
        time.sleep(0.05)
    console.print(f"[bold]police[/] published the accident determination; [yellow]green "
                  f"channel[/]: anchored {time.monotonic() - start:.2f} s after publication")


def _show_claim(console: Console, view: dict[str, Any], elapsed: float) -> None:
    table = Table("kind", "issuer", "status", "digest", title=f"claim {view['reference']}: "
                  f"{view['status']}", title_justify="left")
    for r in view["records"]:
        table.add_row(r["kind"], r["issuer"][:10] + "…", f"verified, {r['status']}",
                      r["digest"][:16] + "…")
    for r in view["duplicates"]:
        table.add_row(r["kind"], r["issuer"][:10] + "…", "duplicate of " +
                      r["duplicate_of"][:12] + "…", r["digest"][:16] + "…")
    console.print(table)
    for q in view["requests"]:
        console.print(f"request to {q['institution'][:10]}… for {', '.join(q['kinds'])}: "
                      f"[green]{q['status']}[/] after {q['elapsed_seconds']} s of a "
                      f"30-minute clock{' [red](breached)[/]' if q['breached'] else ''}")
    console.print("timeline: " + " → ".join(e["type"] for e in view["timeline"]))
    console.print(f"claim ready {elapsed:.1f} s after it was opened")


class _Hook:
    """The insurer's webhook receiver: a local HTTP server checking each signature."""

    def __init__(self) -> None:
        self.secret = ""
        self.events: list[tuple[str, bool]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    verify_signature(hook.secret, self.headers.get("X-Claimx-Signature"), body)
                    ok = True
                except ClaimxError:
                    ok = False
                hook.events.append((json.loads(body)["event"]["type"], ok))
                self.send_response(204 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/claimx"

    def __enter__(self) -> _Hook:
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _show_pushed(hook: _Hook, expected: int, console: Console) -> None:
    deadline = time.monotonic() + 15
    while len(hook.events) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    signed = sum(ok for _, ok in hook.events)
    received = sum(t == "record.received" for t, _ in hook.events)
    console.print(f"[bold]insurer's webhook[/] was pushed {len(hook.events)} events as they "
                  f"happened ({received} record.received), {signed} with a valid signature")


def _receipts(client: TestClient, insurer: Member, claim: str, view: dict[str, Any],
              out: Path, console: Console) -> dict[str, Path]:
    paths = {}
    for rec in view["records"]:
        r = client.get(f"/v1/records/{rec['digest']}/receipt", params={"claim": claim},
                       headers=insurer.auth)
        r.raise_for_status()
        path = out / f"{rec['kind']}.receipt.json"
        path.write_text(json.dumps(r.json(), indent=2, ensure_ascii=False) + "\n")
        paths[rec["kind"]] = path
    console.print(f"[bold]insurer[/] fetched {len(paths)} receipts under the claim's consent "
                  f"(each read appended to the evidence log) into {out}")
    return paths


def _audit(sv: Services, client: TestClient, auditor: Member, digest: str,
           console: Console) -> bool:
    """The auditor sees who read the record but not the record, and proves from the chain
    that each read was consented (gateway.verify.audit, as `claimx audit` does against a node)."""
    denied = client.get(f"/v1/records/{digest}/envelope", headers=auditor.auth)
    console.print(f"[bold]auditor[/] may not read payloads (HTTP {denied.status_code}: "
                  f"{denied.json()['error']['code']}) but proves every read was allowed:")

    def fetch(path: str) -> dict[str, Any]:
        r = client.get(path, headers=auditor.auth)
        r.raise_for_status()
        return dict(r.json())

    reads = audit_reads(digest, fetch, sv.chain, sv.deployment.log)
    for r in reads:
        verdict = "[green]consented[/]" if r.report.valid else "[red]NOT PROVEN[/]"
        console.print(f"  read by {r.member[:10]}… under claim {str(r.claim_id)[:8]}…: "
                      f"{verdict} ({'; '.join(c.name for c in r.report.checks if c.ok)})")
    return bool(reads) and all(r.report.valid for r in reads)


def _verify_all(sv: Services, paths: dict[str, Path], console: Console) -> bool:
    ok = True
    for name, path in paths.items():
        report = verify_receipt(Receipt.from_json(path.read_text()), sv.chain, sv.deployment.log)
        _show(console, f"{name} ({path.name})", report)
        ok = ok and report.valid
    return ok


def _tamper(path: Path, out: Path) -> Path:
    """Lower the bill's self-pay total in the payload, keeping the original signature."""
    receipt = json.loads(path.read_text())
    payload = base64.b64decode(receipt["envelope"]["payload"])
    receipt["envelope"]["payload"] = base64.b64encode(
        payload.replace(b'"self_pay":"4200.00"', b'"self_pay":"1200.00"')).decode()
    tampered = out / "TAMPERED_hospital.invoice.receipt.json"
    tampered.write_text(json.dumps(receipt, indent=2) + "\n")
    return tampered


def _show(console: Console, title: str, report: Report) -> None:
    table = Table("check", "result", "detail", title=f"verify {title}", title_justify="left")
    for c in report.checks:
        table.add_row(c.name, "[green]pass[/]" if c.ok else "[red]FAIL[/]", c.detail)
    console.print(table)
    console.print("[bold green]VALID[/]" if report.valid else "[bold red]INVALID[/]")
