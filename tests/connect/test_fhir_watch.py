"""`claimx connect`'s FHIR endpoint (real Bundles, CDex $submit-attachment, 413) and its watch
folder (done/, failed/ with the located error, partial writes left alone), against a real
`claimx serve`."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.connect.support import Connected, run_agent, wait_for
from tests.support import ASSETS, Served, serve_gateway

pytestmark = pytest.mark.slow
FHIR = ASSETS / "fhir"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve_gateway(tmp_path_factory.mktemp("gw")) as served:
        yield served


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("inbox")


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, gateway: Served,
          folder: Path) -> Iterator[Connected]:
    with run_agent(tmp_path_factory.mktemp("agent"), gateway, watch=folder) as connected:
        yield connected


def post(agent: Connected, path: str, body: bytes, ctype: str = "application/fhir+json",
         ) -> httpx.Response:
    return httpx.post(f"http://127.0.0.1:{agent.fhir}{path}", content=body,
                      headers={"Content-Type": ctype}, timeout=30)


def digests(outcome: dict[str, Any]) -> list[str]:
    assert outcome["resourceType"] == "OperationOutcome"
    return [i["details"]["coding"][0]["code"] for i in outcome["issue"]
            if i["severity"] == "information"]


def on_gateway(gateway: Served, digest: str) -> bool:
    r = httpx.get(f"{gateway.url}/v1/records/{digest}", headers=gateway.auth("hospital.dev"),
                  timeout=10)
    return r.status_code == 200


@pytest.mark.parametrize("name", ["cn_lab_transaction.json", "cn_chargeitems_collection.json",
                                  "cn_discharge_document.xml", "r4_examples_bundle.json"])
def test_a_real_bundle_is_published_once(agent: Connected, gateway: Served, name: str) -> None:
    raw = (FHIR / name).read_bytes()
    ctype = "application/fhir+xml" if name.endswith(".xml") else "application/fhir+json"
    first = post(agent, "/Bundle", raw, ctype)
    assert first.status_code == 201, first.text
    found = digests(first.json())
    assert found
    again = post(agent, "/Bundle", raw, ctype)
    assert again.status_code == 200 and digests(again.json()) == found
    wait_for(lambda: all(on_gateway(gateway, d) for d in found), 30, "records on the gateway")


def test_an_unmappable_bundle_is_an_operation_outcome_with_the_location(
        agent: Connected) -> None:
    r = post(agent, "/Bundle", (FHIR / "r4_medication_searchset.json").read_bytes())
    assert r.status_code == 422
    issue = r.json()["issue"][0]
    assert issue["severity"] == "error" and issue["expression"]
    assert issue["details"]["coding"][0]["code"] == "unsupported_resource"


def test_a_resource_that_is_not_a_bundle_is_refused(agent: Connected) -> None:
    r = post(agent, "/Bundle", (FHIR / "r4_patient_example.json").read_bytes())
    assert r.status_code == 422
    assert r.json()["issue"][0]["expression"] == ["resourceType"]


def test_a_body_past_the_limit_is_413(agent: Connected) -> None:
    r = post(agent, "/Bundle", b"{" + b" " * (11 << 20) + b"}")
    assert r.status_code == 413
    assert r.json()["issue"][0]["details"]["coding"][0]["code"] == "too_large"


def _parameters(content: bytes | None, member: bool = True) -> bytes:
    params: list[dict[str, Any]] = [
        {"name": "TrackingId", "valueIdentifier": {"system": "urn:example:payer",
                                                   "value": "TRK-0001"}},
        {"name": "AttachTo", "valueCode": "claim"}]
    if member:
        params.append({"name": "MemberId", "valueIdentifier": {
            "system": "urn:example:payer:member", "value": "M-000123"}})
    if content is not None:
        params.append({"name": "Attachment", "part": [{"name": "Content", "valueAttachment": {
            "contentType": "application/pdf", "data": base64.b64encode(content).decode()}}]})
    return json.dumps({"resourceType": "Parameters", "parameter": params}).encode()


def test_cdex_submit_attachment_publishes_the_document(agent: Connected,
                                                       gateway: Served) -> None:
    pdf = (ASSETS / "attachments" / "invoice_text_layer.pdf").read_bytes()
    r = post(agent, "/$submit-attachment", _parameters(pdf))
    assert r.status_code == 201, r.text
    found = digests(r.json())
    wait_for(lambda: all(on_gateway(gateway, d) for d in found), 30, "the attachment record")


def test_cdex_without_member_id_names_the_missing_parameter(agent: Connected) -> None:
    r = post(agent, "/$submit-attachment", _parameters(b"%PDF-1.4", member=False))
    assert r.status_code == 422
    assert r.json()["issue"][0]["expression"] == ["Parameters.parameter.MemberId"]


def _wait_moved(folder: Path, name: str, where: str, within: float = 20) -> Path:
    target = folder / where / name
    wait_for(target.exists, within, f"{name} in {where}/")
    return target


def test_a_dropped_police_export_is_published_and_moved_to_done(
        agent: Connected, folder: Path) -> None:
    before = agent.status()["sent"]
    (folder / "accident_zh.json").write_bytes((ASSETS / "police" / "accident_zh.json").read_bytes())
    _wait_moved(folder, "accident_zh.json", "done")
    assert not (folder / "accident_zh.json").exists()
    wait_for(lambda: agent.status()["sent"] > before, 30, "publication")


def test_a_bad_file_goes_to_failed_with_its_located_error(agent: Connected,
                                                          folder: Path) -> None:
    (folder / "bill.csv").write_bytes((ASSETS / "csv" / "bill_bad_decimal.csv").read_bytes())
    _wait_moved(folder, "bill.csv", "failed")
    error = (folder / "failed" / "bill.csv.error.txt").read_text()
    assert "bad_decimal" in error and "line" in error


def test_a_file_being_written_is_not_taken_until_it_is_whole(agent: Connected,
                                                            folder: Path) -> None:
    raw = (ASSETS / "police" / "accident_zh.xml").read_bytes()
    path = folder / "slow_accident.xml"
    with path.open("wb") as out:  # a slow writer: a chunk every 0.3 s for about 3 s
        for i in range(10):
            out.write(raw[i * len(raw) // 10:(i + 1) * len(raw) // 10])
            out.flush()
            time.sleep(0.3)
            assert not (folder / "failed" / path.name).exists(), "a partial file was taken"
    _wait_moved(folder, path.name, "done")


def test_a_file_renamed_into_place_is_taken_and_its_temporary_name_is_not(
        agent: Connected, folder: Path) -> None:
    part = folder / "death.json.part"
    part.write_bytes((ASSETS / "death" / "death_zh.json").read_bytes()[:40])
    time.sleep(2)
    assert part.exists(), "a .part file was taken"
    part.write_bytes((ASSETS / "death" / "death_zh.json").read_bytes())
    part.rename(folder / "death.json")
    _wait_moved(folder, "death.json", "done")


def test_a_symlink_is_not_followed(agent: Connected, folder: Path, tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere.json"
    secret.write_bytes((ASSETS / "police" / "accident_zh.json").read_bytes())
    (folder / "link.json").symlink_to(secret)
    _wait_moved(folder, "link.json", "failed")
    assert "symlink" in (folder / "failed" / "link.json.error.txt").read_text()
    assert secret.exists()


def test_a_file_past_the_size_limit_is_failed_unread(agent: Connected, folder: Path) -> None:
    (folder / "huge.csv").write_bytes(b"x" * (11 << 20))
    _wait_moved(folder, "huge.csv", "failed")
    assert "too_large" in (folder / "failed" / "huge.csv.error.txt").read_text()


def test_a_dropped_cda_front_page_is_published_with_both_records(
        agent: Connected, folder: Path) -> None:
    before = agent.status()["sent"]
    (folder / "front_page.xml").write_bytes((ASSETS / "cda" / "front_page_c0032.xml").read_bytes())
    _wait_moved(folder, "front_page.xml", "done")
    wait_for(lambda: agent.status()["sent"] >= before + 2, 30,  # type: ignore[operator]
             "the discharge summary and the invoice published")


def test_a_dropped_cda_bomb_goes_to_failed_as_unsafe_xml(agent: Connected, folder: Path) -> None:
    (folder / "cda_bomb.xml").write_bytes((ASSETS / "cda" / "bomb.xml").read_bytes())
    _wait_moved(folder, "cda_bomb.xml", "failed")
    assert "unsafe_xml" in (folder / "failed" / "cda_bomb.xml.error.txt").read_text()
