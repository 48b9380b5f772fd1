"""The README's examples work when pasted: its local-network blocks (shell, then the SDK's
Python) are run as written (the port moved off 8000 so parallel runs do not collide), and
every file it names exists."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support import ANVIL, ROOT, free_port

README = (ROOT / "README.md").read_text()


def block(name: str, lang: str = "sh") -> str:
    found = re.search(rf"<!-- readme-test: {name} -->\n```{lang}\n(.*?)```", README, re.S)
    assert found, f"README lost its `{name}` block"
    return found.group(1)


def shell_env(tmp_path: Path, port: int) -> dict[str, str]:
    """A shell where `claimx` is this checkout's, as `. .venv/bin/activate` would give."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "claimx"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m gateway.cli "$@"\n')
    shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMX_")}
    return env | {"PATH": f"{bin_dir}:{env['PATH']}", "PYTHONPATH": str(ROOT),
                  "CLAIMX_GATEWAY_URL": f"http://127.0.0.1:{port}",
                  "CLAIMX_ANCHOR_INTERVAL_SECONDS": "1"}  # quicker; the blocks wait anyway


@pytest.mark.slow
@pytest.mark.anvil
@pytest.mark.skipif(not ANVIL.exists(), reason="anvil missing: run `npm ci`")
def test_local_network_blocks_run_as_written(tmp_path: Path) -> None:
    port = free_port()
    env = shell_env(tmp_path, port)
    bill = tmp_path / "tests" / "assets" / "csv" / "bill_english.csv"
    bill.parent.mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "assets" / "csv" / "bill_english.csv", bill)
    serve = block("serve").split("#")[0].strip() + f" --port {port}"
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(["bash", "-c", f"exec {serve}"], cwd=tmp_path, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        script = block("client").replace("localhost:8000", f"127.0.0.1:{port}")
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "VALID" in done.stdout and "INVALID" not in done.stdout, done.stdout
        sdk = block("sdk", "python").replace("localhost:8000", f"127.0.0.1:{port}")
        ran = subprocess.run([sys.executable, "-c", sdk], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert ran.stdout.startswith("anchored in a tree of"), ran.stdout
    finally:
        proc.terminate()
        proc.wait(20)


def test_every_file_the_readme_names_exists() -> None:
    named = set(re.findall(r"(?<![\w./-])((?:docs|scripts|gateway|tests|contracts|adapters|"
                           r"\.ci)/[\w./-]*\w)", README))
    missing = sorted(p for p in named if not (ROOT / p).exists()
                     and not (ROOT / p).with_suffix(".py").exists())
    assert not missing, f"README names files that do not exist: {missing}"
