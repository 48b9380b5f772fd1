"""The agent's FHIR R4 endpoint: ``POST /Bundle`` and Da Vinci CDex ``POST /$submit-attachment``.

A Bundle (``transaction`` or ``collection``; JSON or XML) is adapted by the ``fhir`` adapter.
``$submit-attachment`` takes a ``Parameters`` resource (HL7 Da Vinci CDex, "Submit Attachment
Operation") with ``TrackingId``, ``AttachTo``, ``MemberId`` and one or more ``Attachment`` parts
whose ``Content`` is a base64 ``valueAttachment`` (or a resource); each is adapted by content.

Every answer is a FHIR ``OperationOutcome``: ``information`` issues naming each record's digest
when accepted; an ``error`` issue whose ``expression`` is the adapter's location otherwise.
Bodies past the size limit are refused with 413 before they are read whole. As for MLLP, the
answer comes only after the records are durably in the outbox.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from adapters.pseudonym import cn_resident_id_valid, pseudonymise
from gateway.connect.intake import Intake, source_key
from gateway.connect.outbox import Stored
from gateway.core.errors import AdapterError

log = logging.getLogger("claimx.connect.fhir")
FHIR_JSON = "application/fhir+json"
BUNDLE_TYPES = frozenset({"transaction", "collection", "batch", "document", "searchset"})


class TooLarge(Exception):
    pass


def outcome(status: int, issues: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"resourceType": "OperationOutcome", "issue": issues},
                        status_code=status, media_type=FHIR_JSON)


def error_outcome(exc: AdapterError, status: int = 422) -> JSONResponse:
    """The adapter's error as an OperationOutcome issue; ``expression`` is its location."""
    issue: dict[str, Any] = {"severity": "error", "code": "processing",
                             "details": {"coding": [{"system": "urn:claimx:adapter-error",
                                                     "code": exc.code}], "text": exc.msg},
                             "diagnostics": str(exc)}
    if exc.loc:
        issue["expression"] = [".".join(str(p) for p in exc.loc)]
    return outcome(status, [issue])


def accepted_outcome(stored: Stored) -> JSONResponse:
    issues = [{"severity": "information", "code": "informational",
               "details": {"coding": [{"system": "urn:claimx:record-digest", "code": d}],
                           "text": f"{k} record {d} in the claimx outbox"}}
              for d, k in zip(stored.digests, stored.kinds, strict=True)]
    return outcome(200 if stored.replayed else 201, issues or [
        {"severity": "information", "code": "informational", "diagnostics": "no records"}])


def create_app(intake: Intake, on_stored: Callable[[], None], max_body: int) -> Starlette:
    """The Starlette app; blocking work (adapting, signing, the commit) runs in a thread."""
    from starlette.concurrency import run_in_threadpool

    async def body(request: Request) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_body:
            raise TooLarge
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                raise TooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    async def guarded(request: Request, fn: Callable[[bytes], Stored]) -> JSONResponse:
        try:
            raw = await body(request)
            stored = await run_in_threadpool(fn, raw)
        except TooLarge:
            return error_outcome(AdapterError(f"body exceeds {max_body} bytes",
                                              code="too_large"), 413)
        except AdapterError as exc:
            return error_outcome(exc)
        except Exception:  # noqa: BLE001 - the outbox could not store it: try again later
            log.exception("FHIR body not stored")
            return outcome(503, [{"severity": "error", "code": "transient",
                                  "diagnostics": "the agent could not store the records; "
                                  "send again later"}])
        if not stored.replayed:
            on_stored()
        return accepted_outcome(stored)

    def take_bundle(raw: bytes) -> Stored:
        _check_bundle(raw)
        return intake.take(raw, key=source_key("fhir", raw), channel="fhir", fmt="fhir")

    def take_attachment(raw: bytes) -> Stored:
        parts, subject = _attachment_parts(raw)
        digests: list[str] = []
        kinds: list[str] = []
        replayed = True
        for i, content in enumerate(parts):
            try:
                s = intake.take(content, key=source_key("cdex", content), channel="fhir",
                                subject=subject, file=f"Attachment[{i}]")
            except AdapterError as exc:
                exc.loc = ("Parameters", "parameter", "Attachment", i, *exc.loc)
                exc.detail["loc"] = list(exc.loc)
                raise
            digests += s.digests
            kinds += s.kinds
            replayed = replayed and s.replayed
        return Stored(tuple(digests), tuple(kinds), replayed)

    async def bundle(request: Request) -> JSONResponse:
        return await guarded(request, take_bundle)

    async def submit_attachment(request: Request) -> JSONResponse:
        return await guarded(request, take_attachment)

    async def metadata(request: Request) -> JSONResponse:
        return JSONResponse({"resourceType": "CapabilityStatement", "status": "active",
                             "kind": "instance", "fhirVersion": "4.0.1",
                             "format": ["json", "xml"], "rest": [{"mode": "server"}]},
                            media_type=FHIR_JSON)

    return Starlette(routes=[Route("/Bundle", bundle, methods=["POST"]),
                             Route("/$submit-attachment", submit_attachment, methods=["POST"]),
                             Route("/metadata", metadata, methods=["GET"])])


def _check_bundle(raw: bytes) -> None:
    """A JSON body must be a Bundle (XML ones are checked by the adapter)."""
    if raw.lstrip()[:1] != b"{":
        return
    obj = _json(raw)
    if obj.get("resourceType") != "Bundle":
        raise AdapterError("POST /Bundle takes a Bundle resource", code="not_a_bundle",
                           loc=("resourceType",))
    if obj.get("type") not in BUNDLE_TYPES:
        raise AdapterError("Bundle.type must be transaction or collection (or batch, "
                           "document, searchset)", code="bad_bundle_type", loc=("Bundle", "type"))


def _json(raw: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterError("body is not JSON", code="malformed_json") from exc
    if not isinstance(obj, dict):
        raise AdapterError("body must be a JSON object", code="malformed_json")
    return obj


def _attachment_parts(raw: bytes) -> tuple[list[bytes], str | None]:
    """The attachments' bytes and the subject pseudonym from MemberId, validated."""
    obj = _json(raw)
    if obj.get("resourceType") != "Parameters":
        raise AdapterError("$submit-attachment takes a Parameters resource",
                           code="not_parameters", loc=("resourceType",))
    params = obj.get("parameter")
    if not isinstance(params, list):
        raise AdapterError("Parameters.parameter is required", code="missing_field",
                           loc=("Parameters", "parameter"))
    named = {p.get("name"): p for p in params if isinstance(p, dict)}
    for required in ("TrackingId", "AttachTo", "MemberId"):
        if required not in named:
            raise AdapterError(f"parameter {required} is required", code="missing_field",
                               loc=("Parameters", "parameter", required))
    contents = [_content(p, i) for i, p in enumerate(
        p for p in params if isinstance(p, dict) and p.get("name") == "Attachment")]
    if not contents:
        raise AdapterError("at least one Attachment parameter is required",
                           code="missing_field", loc=("Parameters", "parameter", "Attachment"))
    return contents, _member_subject(named["MemberId"])


def _content(param: dict[str, Any], i: int) -> bytes:
    loc = ("Parameters", "parameter", "Attachment", i, "part", "Content")
    part = next((p for p in param.get("part") or [] if isinstance(p, dict)
                 and p.get("name") == "Content"), None)
    if part is None:
        raise AdapterError("Attachment needs a Content part", code="missing_field", loc=loc)
    if isinstance(part.get("resource"), dict):
        return json.dumps(part["resource"], ensure_ascii=False).encode()
    att = part.get("valueAttachment")
    data = att.get("data") if isinstance(att, dict) else None
    if not isinstance(data, str) or not data:
        raise AdapterError("Content needs valueAttachment.data (base64) or a resource",
                           code="missing_field", loc=(*loc, "valueAttachment", "data"))
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AdapterError("valueAttachment.data is not base64", code="bad_base64",
                           loc=(*loc, "valueAttachment", "data")) from exc


def _member_subject(param: dict[str, Any]) -> str | None:
    """The subject pseudonym of CDex's MemberId (a resident ID, or an id under its system)."""
    loc = ("Parameters", "parameter", "MemberId", "valueIdentifier")
    ident = param.get("valueIdentifier")
    value = ident.get("value") if isinstance(ident, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise AdapterError("MemberId needs valueIdentifier.value", code="missing_identifier",
                           loc=loc)
    if cn_resident_id_valid(value):
        return pseudonymise("cn_resident_id", value, loc=loc)
    system = ident.get("system") if isinstance(ident, dict) else None
    return pseudonymise(f"mrn:{system or 'payer-member-id'}", value, loc=loc)
