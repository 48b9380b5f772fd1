"""`claimx connect` as a command: usage errors, a TOML config file, `status`, a clean stop on
SIGTERM, and files kept queued while the gateway cannot be reached."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from gateway.core.keys import SigningKey
from tests.connect.support import wait_for
from tests.support import ASSETS, CLAIMX, free_port, serve_env


def _run(args: list[str], tmp_path: Path, token: str | None = "cx1_x",
         ) -> subprocess.CompletedProcess[str]:
    env = serve_env(tmp_path) | ({"CLAIMX_TOKEN": token} if token else {})
    return subprocess.run([*CLAIMX, "connect", *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=60)


def test_missing_settings_are_named(tmp_path: Path) -> None:
    r = _run(["--mllp", "127.0.0.1:2575"], tmp_path)
    assert r.returncode == 2 and "--gateway, --issuer, --key required" in r.stderr
    r = _run(["--gateway", "http://127.0.0.1:9", "--issuer", "hospital.dev", "--key", "k.pem",
              "--mllp", "127.0.0.1:2575"], tmp_path, token=None)
    assert r.returncode == 2 and "CLAIMX_TOKEN" in r.stderr
    r = _run(["--gateway", "http://127.0.0.1:9", "--issuer", "hospital.dev", "--key", "k.pem"],
             tmp_path)
    assert r.returncode == 2 and "at least one input" in r.stderr


def test_a_bad_address_is_a_located_error(tmp_path: Path) -> None:
    r = _run(["--gateway", "http://127.0.0.1:9", "--issuer", "hospital.dev", "--key", "k.pem",
              "--mllp", "nonsense"], tmp_path)
    assert r.returncode == 1 and "error: bad_option: --mllp must be HOST:PORT" in r.stderr


def test_an_unknown_config_setting_is_refused(tmp_path: Path) -> None:
    (tmp_path / "connect.toml").write_text('[connect]\ngateway = "http://x"\ntokn = "y"\n')
    r = _run(["--config", str(tmp_path / "connect.toml")], tmp_path)
    assert r.returncode == 2 and "unknown setting(s) tokn" in r.stderr


def test_with_the_gateway_unreachable_files_wait_queued_and_sigterm_stops_cleanly(
        tmp_path: Path) -> None:
    (tmp_path / "hospital.pem").write_bytes(SigningKey.generate().to_pem())
    inbox = tmp_path / "inbox"
    (tmp_path / "connect.toml").write_text(
        f'[connect]\ngateway = "http://127.0.0.1:{free_port()}"\nissuer = "hospital.dev"\n'
        'key = "hospital.pem"\nwatch = "inbox"\noutbox = "state/outbox.db"\n'
        'follow_events = false\nsettle = 0.3\n')
    env = serve_env(tmp_path) | {"CLAIMX_TOKEN": "cx1_x"}
    proc = subprocess.Popen([*CLAIMX, "connect", "--config", str(tmp_path / "connect.toml")],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        wait_for(inbox.exists, 30, "the watch folder")
        (inbox / "bill.csv").write_bytes((ASSETS / "csv" / "bill_zh_utf8.csv").read_bytes())
        wait_for((inbox / "done" / "bill.csv").exists, 30, "bill.csv in done/")
        outbox = tmp_path / "state" / "outbox.db"

        def status() -> dict[str, object]:
            out = _run(["status", "--outbox", str(outbox)], tmp_path)
            assert out.returncode == 0, out.stderr
            return json.loads(out.stdout)  # type: ignore[no-any-return]

        wait_for(lambda: (status()["oldest_waiting"] or {}).get("last_error") == "ConnectError",
                 30, "a failed delivery try")
        now = status()
        assert now["queued"] == 1 and now["sent"] == 0
        start = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(20) == 0
        assert time.monotonic() - start < 15
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert status()["queued"] == 1  # still there for the next start


def test_status_without_an_outbox_says_so(tmp_path: Path) -> None:
    r = _run(["status", "--outbox", str(tmp_path / "none.db")], tmp_path)
    assert r.returncode == 2 and "no outbox" in r.stderr
