"""Institutional formats into claim packets: one module per format, registered by name."""

from __future__ import annotations

from adapters.registry import AdapterContext, adapters
from gateway.errors import AdapterError
from gateway.packet import Packet


def detect_format(raw: bytes) -> str:
    """Name of the first registered adapter that recognises ``raw``."""
    for name, adapter in adapters().items():
        if adapter.detect(raw):
            return name
    raise AdapterError(f"format not recognised; known formats: {', '.join(adapters())}",
                       code="unknown_format")


def adapt_bytes(raw: bytes, ctx: AdapterContext, fmt: str = "auto") -> list[Packet]:
    """Map raw bytes to packets with the named adapter, or the detected one."""
    registry = adapters()
    name = detect_format(raw) if fmt == "auto" else fmt
    if name not in registry:
        raise AdapterError(f"unknown format {fmt!r}; known: {', '.join(registry)}",
                           code="unknown_format")
    return registry[name].adapt(raw, ctx)


__all__ = ["AdapterContext", "adapt_bytes", "detect_format"]
