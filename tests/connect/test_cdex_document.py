"""CDex ``$submit-attachment`` whose Content is a DocumentReference (the CDex way to carry an
attachment with its metadata), through the real Starlette endpoint, intake and SQLite outbox:
the document becomes an ``attachment`` record linked by the MemberId; a DocumentReference whose
bytes do not match its declared hash is refused with the location as the expression."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from adapters.pseudonym import pseudonymise
from gateway.connect.fhir_endpoint import create_app
from gateway.connect.intake import Intake
from gateway.connect.outbox import Outbox
from gateway.core.keys import SigningKey
from gateway.core.types import hex32, member_id

PDF = b"%PDF-1.4\n% discharge summary for the CDex test\n"
RESIDENT = "11010519491231002X"


def _parameters(document: dict[str, Any]) -> bytes:
    return json.dumps({"resourceType": "Parameters", "parameter": [
        {"name": "TrackingId", "valueIdentifier": {"system": "urn:payer", "value": "T-1"}},
        {"name": "AttachTo", "valueCode": "claim"},
        {"name": "MemberId", "valueIdentifier": {"value": RESIDENT}},
        {"name": "Attachment", "part": [{"name": "Content", "resource": document}]},
    ]}).encode()


def _document(**attachment: Any) -> dict[str, Any]:
    return {"resourceType": "DocumentReference", "status": "current",
            "type": {"coding": [{"system": "http://loinc.org", "code": "18842-5"}]},
            "content": [{"attachment": {"contentType": "application/pdf",
                                        "data": base64.b64encode(PDF).decode(), **attachment}}]}


def test_document_reference_content_becomes_a_linked_attachment(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    app = create_app(Intake(box, SigningKey.generate(), hex32(member_id("hospital.dev"))),
                     lambda: None, max_body=1 << 20)
    with TestClient(app) as client:
        r = client.post("/$submit-attachment", content=_parameters(_document()),
                        headers={"Content-Type": "application/fhir+json"})
        assert r.status_code == 201, r.text
        [digest] = [i["details"]["coding"][0]["code"] for i in r.json()["issue"]]
        [item] = box.due(10)
        packet = json.loads(base64.b64decode(item.envelope["payload"]))
        assert item.digest == digest and packet["kind"] == "attachment"
        assert packet["subject"] == pseudonymise("cn_resident_id", RESIDENT)
        assert packet["body"]["subject_from"] == "publisher"
        assert packet["attachments"][0]["sha256"] == hashlib.sha256(PDF).hexdigest()
        assert packet["attachments"][0]["doc_type"] == "discharge_summary"
        forged = _document(hash=base64.b64encode(b"\1" * 20).decode())
        r = client.post("/$submit-attachment", content=_parameters(forged))
        assert r.status_code == 422
        issue = r.json()["issue"][0]
        assert issue["details"]["coding"][0]["code"] == "hash_mismatch"
        assert issue["expression"] == [
            "Parameters.parameter.Attachment.0./content/0/attachment/hash"]
    box.close()
