"""Photographed or scanned documents (PDF, JPEG, PNG, HEIC) -> ``attachment`` packets.

The media type is sniffed from magic numbers (PDF ``%PDF-``, JPEG SOI ``FF D8 FF``, PNG's
eight-byte signature, HEIF's ISO BMFF ``ftyp`` box with a HEVC brand, ISO/IEC 23008-12),
never from the file name. Text comes from the PDF text layer or Tesseract OCR and is used
only to classify the document (adapters._classify) and, when it holds exactly one valid
resident ID, to derive the subject pseudonym: the text itself never enters the packet.
"""

from __future__ import annotations

import hashlib
import re
import struct
from typing import Any

from adapters import _classify, _ocr
from adapters._values import check_size, source_ref, subject_of
from adapters.pseudonym import cn_resident_id_valid
from adapters.registry import Adapter, AdapterContext, register
from gateway.core.errors import AdapterError
from gateway.core.packet import AttachmentRef, Packet, new_packet

FORMAT = "attachment"
MAX_ATTACHMENT_BYTES = 50 * 1024 * 1024
UNLINKED_SUBJECT = "0" * 64
"""Subject of an attachment whose text names no single person: the publisher links it."""

_PNG = b"\x89PNG\r\n\x1a\n"
_HEIC_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis"}
_HEIF_GENERIC = {b"mif1", b"msf1"}
_ID_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")


def sniff(raw: bytes) -> str | None:
    """Media type from the leading bytes, or None for anything else."""
    if raw.startswith(b"%PDF-"):
        return "application/pdf"
    if raw.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if raw.startswith(_PNG):
        return "image/png"
    if len(raw) >= 16 and raw[4:8] == b"ftyp":
        size = struct.unpack(">I", raw[:4])[0]
        major = raw[8:12]
        compatible = {raw[i:i + 4] for i in range(16, min(size, len(raw), 64), 4)}
        if major in _HEIC_BRANDS or (major in _HEIF_GENERIC and compatible & _HEIC_BRANDS):
            return "image/heic"
    return None


def detect(raw: bytes) -> bool:
    return sniff(raw) is not None


def _subject(text: str, ctx: AdapterContext) -> tuple[str, str]:
    """One distinct valid resident ID in the text links the document; otherwise the subject
    the publisher gave (``ctx.subject``), else nobody. A document naming someone other than
    the given subject is refused: a photo of the wrong person's papers must not attach."""
    found = {m.upper() for m in _ID_IN_TEXT.findall(text.replace(" ", ""))
             if cn_resident_id_valid(m)}
    if len(found) == 1:
        named = subject_of(found.pop(), ctx=ctx, loc=("text",))
        if ctx.subject is not None and ctx.subject != named:
            raise AdapterError("the document's resident ID is not the given subject's",
                               code="subject_mismatch", loc=("text",))
        return named, "document_text"
    if ctx.subject is not None:
        return ctx.subject, "publisher"
    return UNLINKED_SUBJECT, "none"


def adapt(raw: bytes, ctx: AdapterContext) -> list[Packet]:
    """Hash, sniff, read and classify one document; one ``attachment`` packet."""
    check_size(raw, MAX_ATTACHMENT_BYTES)
    media_type = sniff(raw)
    if media_type is None:
        raise AdapterError("not a PDF, JPEG, PNG or HEIC file (judged by content)",
                           code="unsupported_media_type", loc=("magic",))
    if media_type == "application/pdf":
        extracted = _ocr.from_pdf(raw)
    else:
        extracted = _ocr.from_image(raw, media_type)
    verdict = _classify.classify(extracted.text)
    subject, linked_by = _subject(extracted.text, ctx)
    digest = hashlib.sha256(raw).hexdigest()
    body: dict[str, Any] = {
        "doc_type": verdict.doc_type,
        "confidence": _classify.confidence_str(verdict.confidence),
        "media_type": media_type,
        "size": len(raw),
        "ocr": extracted.ocr,
        "subject_from": linked_by,
    }
    if verdict.matched:
        body["keywords"] = list(verdict.matched[:8])
    if extracted.pages is not None:
        body["pages"] = extracted.pages
    if extracted.text.strip():
        body["text_sha256"] = hashlib.sha256(extracted.text.encode()).hexdigest()
    if extracted.notes:
        body["notes"] = extracted.notes
    ref = AttachmentRef(sha256=digest, media_type=media_type, doc_type=verdict.doc_type,
                        size=len(raw))
    return [new_packet(kind="attachment", issuer=ctx.issuer, subject=subject, body=body,
                       source=source_ref(FORMAT, raw), attachments=[ref])]


register(Adapter(
    name=FORMAT,
    description="scanned or photographed document (PDF, JPEG, PNG, HEIC), classified by type",
    kinds=("attachment",),
    adapt=adapt,
    detect=detect,
    extensions=(".pdf", ".jpg", ".jpeg", ".png", ".heic", ".heif"),
))
