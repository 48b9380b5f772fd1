"""claimx adapters: institutional exports (HL7 v2, FHIR, CSV bills, police and civil records,
scanned documents) into unsigned claim packets.

Public API: :func:`adapt_bytes` and :func:`detect_format`; each format lives in its own
module and registers itself in :mod:`adapters.registry`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adapters.registry import AdapterContext, adapters
from gateway.core.errors import AdapterError, InputError
from gateway.core.types import hex32, member_id

if TYPE_CHECKING:  # the packet model loads with the format modules, not with `--help`
    from gateway.core.packet import Packet

LAST_RESORT = ("csv_bill",)
"""Formats whose detector is loose: chosen by ``auto`` only when nothing else matches."""

DEFAULT_ISSUER_SLUG = "demo.hospital"


def default_context() -> AdapterContext:
    """A development context: the ``demo.hospital`` member id and the dev pseudonym key."""
    return AdapterContext(issuer=hex32(member_id(DEFAULT_ISSUER_SLUG)))


def detect_format(raw: bytes) -> str:
    """Name of the registered format that recognises ``raw`` by its content."""
    matches = []
    for name, adapter in adapters().items():
        try:
            if adapter.detect(raw):
                matches.append(name)
        except Exception:  # noqa: BLE001 - a detector bug must not hide the other formats
            continue
    preferred = [m for m in matches if m not in LAST_RESORT] or matches
    if not preferred:
        raise AdapterError("format not recognised from content; name one with --format "
                           "(see claimx adapt --list)", code="unknown_format")
    return preferred[0]


def adapt_bytes(raw: bytes, fmt: str = "auto", ctx: AdapterContext | None = None) -> list[Packet]:
    """Map one raw export to packets with the named format, or the detected one."""
    name = detect_format(raw) if fmt == "auto" else fmt
    adapter = adapters().get(name)
    if adapter is None:
        raise AdapterError(f"unknown format {name!r}; see claimx adapt --list",
                           code="unknown_format")
    try:
        return adapter.adapt(raw, ctx or default_context())
    except AdapterError:
        raise
    except InputError as exc:  # a packet the adapter built is invalid: the source's fault
        raise AdapterError(f"the source yields an invalid packet: {exc.msg}",
                           code="invalid_packet", file=(ctx.file if ctx else None)) from exc


__all__ = ["AdapterContext", "AdapterError", "adapt_bytes", "adapters", "default_context",
           "detect_format"]
