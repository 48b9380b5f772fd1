"""``claimx demo``: the whole trust path on the embedded default, narrated.

Deploys the contracts on an in-process EVM, admits a hospital, a police bureau and an
insurer, publishes three signed records through the real HTTP API, lets the anchor worker
anchor them (the accident determination through the green channel), writes receipts,
verifies them against the chain alone, and shows a tampered receipt failing.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient
from rich.console import Console
from rich.table import Table

from gateway.api import create_app
from gateway.chain import Chain
from gateway.config import Settings
from gateway.envelope import sign_packet
from gateway.keys import SigningKey
from gateway.packet import Packet, SourceRef, new_packet
from gateway.receipt import Receipt
from gateway.services import Services, build_services
from gateway.types import KeyAlgorithm, Role, hex32, member_id
from gateway.verify import Report, verify_receipt


@dataclass
class Member:
    slug: str
    role: Role
    name: str
    key: SigningKey | None
    operator: str = ""

    @property
    def id(self) -> bytes:
        return member_id(self.slug)


def run_demo(out_dir: Path, console: Console) -> bool:
    """Run the story; True when every genuine receipt verifies and the tampered one fails."""
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(home=out_dir, anchor_interval_seconds=3600, urgent_poll_seconds=0.1)
    console.rule("[bold]claimx demo[/]: embedded EVM + SQLite, nothing to start by hand")
    chain = Chain.embedded()
    deployment = chain.deploy()
    console.print(f"deployed MemberRegistry [cyan]{deployment.registry}[/] and EvidenceLog "
                  f"[cyan]{deployment.log}[/] on chain {deployment.chain_id}")
    sv = build_services(settings, chain=chain, deployment=deployment)
    members = _admit(sv, console)
    hospital, police = members[0], members[1]
    envelopes = _packets(hospital, police)
    receipts_dir = out_dir / "receipts"
    receipts_dir.mkdir(exist_ok=True)
    with TestClient(create_app(sv)) as client:
        digests = _publish(client, envelopes, console)
        _wait_urgent(client, digests["accident determination"], console)
        sv.worker.wake.set()
        sv.worker.cycle()  # the routine batch, without waiting for its interval
        paths = _receipts(client, digests, receipts_dir, console)
    ok = _verify_all(sv, paths, console)
    tampered = _tamper(paths["itemised bill"], receipts_dir)
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
    ]
    table = Table("member", "role", "key", title="consortium members admitted on chain")
    for m in members:
        m.operator = sv.chain.new_funded_account()
        registry.admit_member(m.id, m.role, m.name, [m.operator])
        if m.key is not None:
            registry.add_key(m.id, m.key.key_id, m.key.algorithm, m.key.public.raw)
        table.add_row(m.name, m.role.name.lower(),
                      f"{m.key.algorithm.name} {m.key.key_id.hex()[:12]}…" if m.key else "-")
    console.print(table)
    return members


def _packets(hospital: Member, police: Member) -> dict[str, dict[str, object]]:
    assert hospital.key is not None and police.key is not None
    subject = "5f" * 32  # the claimant's pseudonym (keyed HMAC of the ID number)
    src = SourceRef(format="hl7v2", sha256="ab" * 32)
    packets: dict[str, tuple[Packet, SigningKey]] = {
        "discharge summary": (new_packet(
            kind="hospital.discharge_summary", issuer=hex32(hospital.id), subject=subject,
            source=src, body={"admitted_at": "2026-11-02T08:10:00Z",
                              "discharged_at": "2026-11-12T10:00:00Z", "department": "cardiology",
                              "diagnoses": [{"system": "ICD-10", "code": "I21.0",
                                             "text": "acute anterior myocardial infarction"}]},
        ), hospital.key),
        "itemised bill": (new_packet(
            kind="hospital.invoice", issuer=hex32(hospital.id), subject=subject,
            body={"currency": "CNY", "items": [
                {"name": "coronary stent", "category": "material", "quantity": "1",
                 "unit_price": "12800.00", "amount": "12800.00", "self_pay": "3840.00",
                 "insurer_paid": "8960.00"},
                {"name": "ward bed", "category": "bed", "quantity": "10", "unit_price": "120.00",
                 "amount": "1200.00", "self_pay": "360.00", "insurer_paid": "840.00"}],
                "totals": {"amount": "14000.00", "self_pay": "4200.00",
                           "insurer_paid": "9800.00"}},
        ), hospital.key),
        "accident determination": (new_packet(
            kind="police.accident_determination", issuer=hex32(police.id), subject=subject,
            urgent=True, body={"case_number": "沪公交认字[2026]第01234号",
                               "occurred_at": "2026-11-01T22:40:00Z",
                               "place": "Yan'an Rd, Shanghai",
                               "liability": [{"party": 1, "share": 0}, {"party": 2, "share": 100}]},
        ), police.key),
    }
    return {name: sign_packet(p, k).to_json() for name, (p, k) in packets.items()}


def _publish(client: TestClient, envelopes: dict[str, dict[str, object]],
             console: Console) -> dict[str, str]:
    digests = {}
    for name, env in envelopes.items():
        r = client.post("/v1/records", json=env)
        r.raise_for_status()
        digests[name] = r.json()["digest"]
        again = client.post("/v1/records", json=env).json()
        console.print(f"published {name:<24} digest {digests[name][:16]}… "
                      f"{'[yellow]urgent[/]' if r.json()['urgent'] else 'routine'}; replay → "
                      f"duplicate={again['duplicate']}")
    return digests


def _wait_urgent(client: TestClient, digest: str, console: Console) -> None:
    start = time.monotonic()
    while time.monotonic() - start < 30:
        if client.get(f"/v1/records/{digest}").json()["status"] == "anchored":
            console.print(f"[yellow]green channel[/]: accident determination anchored "
                          f"{time.monotonic() - start:.2f} s after publication")
            return
        time.sleep(0.05)
    raise RuntimeError("urgent record was not anchored within 30 s")


def _receipts(client: TestClient, digests: dict[str, str], out: Path,
              console: Console) -> dict[str, Path]:
    paths = {}
    for name, digest in digests.items():
        r = client.get(f"/v1/records/{digest}/receipt")
        r.raise_for_status()
        path = out / f"{name.replace(' ', '_')}.receipt.json"
        path.write_text(json.dumps(r.json(), indent=2, ensure_ascii=False) + "\n")
        paths[name] = path
    head = client.get("/v1/log/head").json()["anchored"]
    console.print(f"anchored tree head: size {head['size']}, root {head['root'][:16]}…, "
                  f"tx {head['tx_hash'][:16]}…; receipts written to {out}")
    return paths


def _verify_all(sv: Services, paths: dict[str, Path], console: Console) -> bool:
    ok = True
    for name, path in paths.items():
        report = verify_receipt(Receipt.from_json(path.read_text()), sv.chain, sv.deployment.log)
        _show(console, f"{name} ({path.name})", report)
        ok = ok and report.valid
    return ok


def _tamper(path: Path, out: Path) -> Path:
    """Raise the bill's self-pay total in the payload, keeping the original signature."""
    receipt = json.loads(path.read_text())
    payload = base64.b64decode(receipt["envelope"]["payload"])
    receipt["envelope"]["payload"] = base64.b64encode(
        payload.replace(b'"self_pay":"4200.00"', b'"self_pay":"1200.00"')).decode()
    tampered = out / "TAMPERED_itemised_bill.receipt.json"
    tampered.write_text(json.dumps(receipt, indent=2) + "\n")
    return tampered


def _show(console: Console, title: str, report: Report) -> None:
    table = Table("check", "result", "detail", title=f"verify {title}", title_justify="left")
    for c in report.checks:
        table.add_row(c.name, "[green]pass[/]" if c.ok else "[red]FAIL[/]", c.detail)
    console.print(table)
    console.print("[bold green]VALID[/]" if report.valid else "[bold red]INVALID[/]")
