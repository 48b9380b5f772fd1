"""FHIR R4 DocumentReference -> an ``attachment`` packet, as the attachment adapter makes one.

Da Vinci CDex carries attachments so (a DocumentReference in ``$submit-attachment`` or a
Bundle), as do Synthea's clinical notes. Each ``content.attachment`` with inline ``data`` is
decoded and referenced by its SHA-256 in ``packet.attachments`` (media type, size, the document
type); the declared ``size`` and ``hash`` (base64 SHA-1, FHIR's) are checked against the bytes.
A ``url`` is followed only to a ``Binary`` in the same input: adapters make no network requests,
so any other URL is noted (``fetched: false``, without query or fragment) and never fetched.
The title, description and the bytes' text are read only to classify the document: none of
them enters the packet (they can name the patient).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from adapters import _classify
from adapters._clinical import compact
from adapters.attachment import sniff
from adapters.fhir import mapping as m
from adapters.fhir.tree import Index, Node
from adapters.fhir.values import concept, concept_label, when
from gateway.core.packet import AttachmentRef

ATTACHMENTS = "_attachments"
"""Body key holding the AttachmentRefs; the adapter moves them to ``packet.attachments``."""
MAX_CONTENT = 64
_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}$")
LOINC_TYPES = {
    "18842-5": "discharge_summary", "11490-0": "discharge_summary",
    "34105-7": "discharge_summary", "11502-2": "lab_report", "26436-6": "lab_report",
    "11506-3": "other", "34108-1": "other", "34117-2": "other", "11488-4": "other",
}
"""LOINC document types (DocumentReference.type) -> the attachment adapter's doc types; other
codes are classified from the type's and category's names and the title, like a scan's text."""


def document_body(doc: Node, index: Index, used: m.Used) -> dict[str, Any]:
    """The document's type, its contents by hash (or noted URL), and the refs to attach."""
    contents = doc["content"].items()
    if not contents:
        raise doc["content"].error("DocumentReference.content is required", "missing_field")
    if len(contents) > MAX_CONTENT:
        raise doc["content"].error(f"more than {MAX_CONTENT} contents", "too_many_contents")
    doc_type, confidence = _doc_type(doc)
    entries, refs = [], []
    for content in contents:
        entry, raw = _content(content, index, doc)
        if raw is not None:
            entry["sha256"] = hashlib.sha256(raw).hexdigest()
            refs.append(AttachmentRef(sha256=entry["sha256"], media_type=entry["media_type"],
                                      doc_type=doc_type, size=len(raw)))
        entries.append(entry)
    first = entries[0]
    return compact({
        "doc_type": doc_type, "confidence": confidence,
        "document_type": concept(doc["type"]),
        "category": [c for c in map(concept_label, doc["category"].items()) if c],
        "doc_status": doc["docStatus"].string(), "date": when(doc["date"]),
        "security_labels": [c["code"].string() for s in doc["securityLabel"].items()
                            for c in s["coding"].items() if c["code"].string()],
        "media_type": first["media_type"], "size": first.get("size"), "content": entries,
        ATTACHMENTS: refs,
    })


def _doc_type(doc: Node) -> tuple[str, str]:
    for coding in doc["type"]["coding"].items():
        if coding["system"].string() == "http://loinc.org":
            found = LOINC_TYPES.get(coding["code"].string())
            if found:
                return found, "1.00"
    words = [concept_label(doc["type"]), doc["type"]["text"].string(),
             *(concept_label(c) for c in doc["category"].items()),
             *(c["attachment"]["title"].string() for c in doc["content"].items())]
    verdict = _classify.classify("\n".join(w for w in words if w))
    return verdict.doc_type, _classify.confidence_str(verdict.confidence)


def _content(content: Node, index: Index, doc: Node) -> tuple[dict[str, Any], bytes | None]:
    att = content["attachment"]
    declared = _media_type(att["contentType"])
    entry: dict[str, Any] = compact({"format": content["format"]["code"].string()})  # a Coding
    data_node, url = att["data"], att["url"].string()
    if not data_node.present and url:
        binary = index.lookup(Node({"reference": url}, att["url"].ptr, att.xml), doc)
        if binary is None or binary["resourceType"].string() != "Binary":
            return entry | _noted_url(att, url, declared), None
        data_node = binary["data"]
        declared = declared or _media_type(binary["contentType"])
        entry["from_binary"] = True
    if not data_node.present:
        raise att.error("attachment needs data or a url", "missing_field")
    try:
        raw = base64.b64decode(data_node.string(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise data_node.error("attachment data is not base64", "bad_base64") from exc
    size = att["size"].dec()
    if size is not None and size != len(raw):
        raise att["size"].error("attachment size differs from its data", "size_mismatch")
    if att["hash"].string() and not _sha1_matches(att["hash"].string(), raw):
        raise att["hash"].error("attachment hash (SHA-1) differs from its data",
                                "hash_mismatch")
    sniffed = sniff(raw)
    if sniffed and declared and sniffed != declared:
        raise att["contentType"].error("contentType differs from the data's own signature",
                                       "media_type_mismatch")
    media = declared or sniffed or "application/octet-stream"
    return entry | {"media_type": media, "size": len(raw)}, raw


def _media_type(node: Node) -> str:
    """``type/subtype`` of a contentType, parameters (``; charset=utf-8``) dropped."""
    text = node.string().split(";", 1)[0].strip().lower()
    if text and not _MEDIA_TYPE.match(text):
        raise node.error("contentType is not a media type", "bad_media_type")
    return text


def _sha1_matches(text: str, raw: bytes) -> bool:
    try:
        stated = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return stated == hashlib.sha1(raw).digest()  # noqa: S324 - FHIR's own check, not security


def _noted_url(att: Node, url: str, declared: str) -> dict[str, Any]:
    """A URL-only content: kept without its query and fragment (they can carry identifiers),
    with the declared size and hash, and never fetched."""
    parts = urlsplit(url)
    hashed = att["hash"].string()
    try:
        sha1 = base64.b64decode(hashed, validate=True).hex() if hashed else None
    except (binascii.Error, ValueError) as exc:
        raise att["hash"].error("attachment hash is not base64", "bad_base64") from exc
    size = att["size"].dec()
    return compact({
        "media_type": declared or "application/octet-stream",
        "url": urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
        "url_query_dropped": True if parts.query or parts.fragment else None,
        "size": int(size) if size is not None else None, "sha1": sha1, "fetched": False,
    })
