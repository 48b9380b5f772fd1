"""Helpers the CLI tests share (their fixtures are in conftest.py)."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.chain.client import Deployment


@dataclass(frozen=True)
class Published:
    receipt: dict[str, Any]
    deployment: Deployment
    deployment_file: Path
    rpc_url: str


def closed_port_url() -> str:
    """A URL nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
