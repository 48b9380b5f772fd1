"""Schemathesis fuzzes the gateway's own OpenAPI schema, every route, as every role: never
a 5xx. Event routes answer plain clients with a JSON page, so none hangs; fuzzed webhook
URLs are registered but never called (delivery is switched off here)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import serve_gateway

ST = shutil.which("st") or str(Path(sys.executable).parent / "st")


@pytest.mark.slow  # schemathesis over every route: ~1 min
def test_no_request_gets_a_server_error(tmp_path: Path) -> None:
    if not Path(ST).exists():
        pytest.skip("schemathesis CLI `st` missing: pip install -e .[dev] installs it")
    # webhooks are never delivered here: fuzzed URLs must not make the server connect anywhere
    with serve_gateway(tmp_path, env={"CLAIMX_WEBHOOK_POLL_SECONDS": "86400"}) as served:
        base = served.url
        members = json.loads((tmp_path / "dev" / "members.json").read_text())
        for who in ("hospital.dev", "insurer.dev", "auditor.dev", None):
            auth = ["-H", f"Authorization: Bearer {members[who]['token']}"] if who else []
            run = subprocess.run([ST, "run", f"{base}/openapi.json", *auth, "--checks",
                                  "not_a_server_error", "--max-examples", "15", "--workers",
                                  "1", "--seed", "7", "--request-timeout", "20",
                                  ], capture_output=True, text=True, timeout=240,
                                 cwd=tmp_path)  # its .schemathesis cache stays out of the repo
            assert run.returncode == 0, f"{who}: {run.stdout[-3000:]}"
    assert "500 Internal Server Error" not in served.log_text()
