"""Settings of one ``claimx connect`` agent: where the gateway is, who the institution is, which
inputs to open. Built once from the command line (and ``CLAIMX_TOKEN``) and then trusted."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.core.errors import InputError

MAX_BODY_BYTES = 10 << 20
"""Largest HL7 message or FHIR body accepted (the adapters' own limit is of the same order)."""


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, option: str) -> HostPort:
        """``HOST:PORT`` (``[::1]:PORT`` for IPv6), refused with the option named."""
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise InputError(f"{option} must be HOST:PORT", code="bad_option", loc=[option])
        return cls(host.strip("[]"), int(port))


@dataclass(frozen=True)
class ConnectConfig:
    gateway: str
    """Base URL of the exchange's gateway, e.g. https://gateway.example."""
    issuer: str
    """0x-hex member id of this institution."""
    key_file: Path
    token: str
    outbox: Path
    mllp: HostPort | None = None
    fhir: HostPort | None = None
    watch: Path | None = None
    on_request: tuple[str, ...] = ()
    """argv run for each ``request.opened`` event (no shell), the event JSON on stdin."""
    follow_events: bool = True
    max_body: int = MAX_BODY_BYTES
    batch: int = 50
    settle_seconds: float = 1.0
    """A watched file is taken once its size and mtime have not changed for this long."""
