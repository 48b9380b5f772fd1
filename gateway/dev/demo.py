"""``claimx demo``: the whole exchange on the embedded default, narrated.

An insurer opens an accident claim first, with the claimant's signed consent, and asks a
hospital and a police bureau for evidence (green channel: a 30-minute clock). The
institutions see the requests and publish signed records through the real HTTP API; the
records attach to the claim as they arrive and are pushed to the insurer's webhook (a local
receiver that checks every signature) (a re-published bill is recognised as a
duplicate), the accident determination is anchored at once, the claim becomes ready, the
insurer's claims engine follows the claim's event stream (dropped and resumed), and the
insurer fetches receipts (each read logged on the evidence log) and verifies them against
the chain alone. A tampered receipt fails.

Every member system here is the members' SDK, :class:`gateway.client.Client`, talking to the
gateway over real HTTP on a loopback port (:mod:`gateway.dev.loopback`); the claimant's key,
consent and key binding are made with :mod:`gateway.core.claimant`. Only what an operator
does (deploying, admitting members, issuing credentials, running an anchor cycle now rather
than at its interval) reaches into the gateway's services directly.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from gateway.api.app import create_app
from gateway.chain.client import Chain
from gateway.chain.council import dev_council
from gateway.client import ApiError, Client, Event
from gateway.config import Settings
from gateway.core.claimant import make_binding, new_claimant_key, public_key_b64, sign_consent
from gateway.core.consent import ConsentScope
from gateway.core.envelope import sign_packet
from gateway.core.keys import SigningKey, algorithm_name
from gateway.core.packet import SourceRef, new_packet
from gateway.core.receipt import Receipt
from gateway.core.types import KeyAlgorithm, MemberId, Role, hex32, member_id
from gateway.dev.loopback import ThreadedGateway, WebhookReceiver
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

    def client(self, gateway: ThreadedGateway) -> Client:
        """The member's own system: the SDK with the member's credential."""
        return Client(gateway.url, self.token, timeout=30)


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
    with ThreadedGateway(create_app(sv)) as gw, WebhookReceiver() as hook, \
            insurer.client(gw) as insurer_cx, hospital.client(gw) as hospital_cx, \
            police.client(gw) as police_cx, auditor.client(gw) as auditor_cx:
        console.print(f"gateway on {gw.url}; every member below uses the SDK "
                      "(gateway.client.Client) over HTTP")
        started = time.monotonic()
        hook.secret = insurer_cx.create_webhook(hook.url).secret or ""
        console.print(f"[bold]insurer[/] registered a webhook ({hook.url}) for pushed events")
        claim = _open_claim(insurer_cx, hospital_cx, insurer, hospital, police, console)
        _request(insurer_cx, claim, hospital, ["hospital.discharge_summary",
                                               "hospital.invoice"], console)
        _request(insurer_cx, claim, police, ["police.accident_determination"], console)
        _institutions_answer(hospital_cx, police_cx, hospital, police, console)
        sv.worker.wake.set()
        sv.worker.cycle()  # the routine batch, without waiting for its interval
        view = insurer_cx.claim(claim)
        _show_claim(console, view, time.monotonic() - started)
        hook.wait_for(len(view["timeline"]))
        _show_pushed(hook, console)
        followed = _follow(insurer_cx, claim, view, console)
        paths = _receipts(insurer_cx, claim, view, receipts_dir, console)
        sv.worker.cycle()  # the reads' log entries, anchored
        audited = _audit(sv, auditor_cx, view["records"][0]["digest"], console)
    pushed_ok = bool(hook.events) and all(ok for _, ok in hook.events)
    ok = view["status"] == "ready" and pushed_ok and followed and audited and \
        _verify_all(sv, paths, console)
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


def _open_claim(insurer_cx: Client, hospital_cx: Client, insurer: Member, hospital: Member,
                police: Member, console: Console) -> str:
    claimant_key = new_claimant_key()  # the claimant's own key, in the claimant's app
    assert hospital.key is not None
    binding = make_binding(hospital.key, hex32(hospital.id), CLAIMANT,
                           public_key_b64(claimant_key))
    hospital_cx.publish(binding)
    console.print("[bold]hospital[/] bound the claimant's key to the claimant's pseudonym "
                  "(identity.binding, signed and logged): only that key's consent counts")
    scope = ConsentScope(
        subject=CLAIMANT, insurer=hex32(insurer.id),
        institutions=[hex32(hospital.id), hex32(police.id)],
        kinds=["hospital.discharge_summary", "hospital.invoice",
               "police.accident_determination"],
        date_from=date(2026, 10, 1), date_to=date(2026, 12, 31),
        expires_at=datetime.now(UTC) + timedelta(days=90))
    consent = sign_consent(claimant_key, scope.model_dump(mode="json", exclude_none=True))
    claim = insurer_cx.open_claim({"reference": "PAC-2026-0042", "subject": CLAIMANT,
                                   "policy": "ACC-778120", "incident_date": "2026-11-01",
                                   "kind": "accident", "consent": consent})
    console.print(f"[bold]insurer[/] opened claim {claim['reference']} ({claim['kind']}, "
                  f"green channel) first, with the claimant's signed consent; consent digest "
                  f"{claim['consent']['digest'][:16]}… goes into the evidence log")
    return str(claim["id"])


def _request(insurer_cx: Client, claim: str, institution: Member, kinds: list[str],
             console: Console) -> None:
    req = insurer_cx.request_evidence(claim, hex32(institution.id), kinds)
    due = req["remaining_seconds"] // 60
    console.print(f"[bold]insurer[/] asked {institution.name} for {', '.join(kinds)} "
                  f"(response clock: {due} min)")


def _institutions_answer(hospital_cx: Client, police_cx: Client, hospital: Member,
                         police: Member, console: Console) -> None:
    open_reqs = hospital_cx.requests(status="open")
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
    published = hospital_cx.publish_batch([sign_packet(p, hospital.key)
                                           for p in hospital_packets])
    console.print(f"[bold]hospital[/] published {len(published)} signed records in one batch "
                  "(the bill twice)")
    accident = new_packet(kind="police.accident_determination", issuer=hex32(police.id),
                          subject=CLAIMANT, urgent=True, body={
                              "case_number": "沪公交认字[2026]第01234号",
                              "occurred_at": "2026-11-01T22:40:00Z",
                              "place": "Yan'an Rd, Shanghai",
                              "liability": [{"party": 1, "share": 0},
                                            {"party": 2, "share": 100}]})
    start = time.monotonic()
    digest = police_cx.publish(sign_packet(accident, police.key)).digest
    police_cx.wait_anchored(digest, timeout=30)
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


def _show_pushed(hook: WebhookReceiver, console: Console) -> None:
    signed = sum(ok for _, ok in hook.events)
    received = sum(t == "record.received" for t, _ in hook.events)
    console.print(f"[bold]insurer's webhook[/] was pushed {len(hook.events)} events as they "
                  f"happened ({received} record.received), {signed} with a valid signature")


def _follow(insurer_cx: Client, claim: str, view: dict[str, Any], console: Console) -> bool:
    """The claims engine follows the claim's server-sent events, loses the connection part
    way and resumes with ``Last-Event-ID``: it must see the timeline, nothing missed or
    repeated."""
    expected = [e["id"] for e in view["timeline"]]
    half = len(expected) // 2

    def take(n: int, after: int) -> list[Event]:
        stream = insurer_cx.stream_events(after, claim_id=claim, reconnect=False,
                                          read_timeout=10)
        try:
            return list(itertools.islice(stream, n))
        finally:
            stream.close()  # the connection drops here

    try:
        first = take(half, 0)
        rest = take(len(expected) - half, first[-1].id if first else 0)
    except ApiError as exc:
        console.print(f"[red]event stream failed[/]: {exc}")
        return False
    seen = [e.id for e in first + rest]
    ok = seen == expected
    console.print(f"[bold]insurer's claims engine[/] followed the claim's event stream (SSE): "
                  f"{len(first)} events, connection dropped, resumed with Last-Event-ID for "
                  f"{len(rest)} more: " + ("[green]none missed, none repeated[/]" if ok else
                                           f"[red]got {seen}, expected {expected}[/]"))
    return ok


def _receipts(insurer_cx: Client, claim: str, view: dict[str, Any], out: Path,
              console: Console) -> dict[str, Path]:
    paths = {}
    for rec in view["records"]:
        receipt = insurer_cx.receipt(rec["digest"], claim=claim)
        path = out / f"{rec['kind']}.receipt.json"
        path.write_text(json.dumps(receipt, indent=2, ensure_ascii=False) + "\n")
        paths[rec["kind"]] = path
    console.print(f"[bold]insurer[/] fetched {len(paths)} receipts under the claim's consent "
                  f"(each read appended to the evidence log) into {out}")
    return paths


def _audit(sv: Services, auditor_cx: Client, digest: str, console: Console) -> bool:
    """The auditor sees who read the record but not the record, and proves from the chain
    that each read was consented (gateway.verify.audit, as `claimx audit` does against a node)."""
    try:
        auditor_cx.envelope(digest)
        console.print("[bold red]the auditor read a payload: this must never happen[/]")
        return False
    except ApiError as denied:
        console.print(f"[bold]auditor[/] may not read payloads (HTTP {denied.status}: "
                      f"{denied.code}) but proves every read was allowed:")
    reads = audit_reads(digest, auditor_cx.get, sv.chain, sv.deployment.log)
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
