"""The layers of docs/architecture.md, checked from outside: what each client loads, and
that import-linter's contracts really fail when a forbidden import appears."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("sqlalchemy", "alembic", "fastapi", "starlette", "httpx", "uvicorn")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _loaded_after(code: str) -> set[str]:
    """Top-level modules a fresh interpreter holds after running ``code``."""
    probe = code + ("\nimport json, sys\n"
                    "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


@pytest.mark.parametrize("code", [
    "from gateway.verify.receipt import verify_receipt",
    "from gateway.core.consent import verify_consent, scope_bytes",
    "from gateway.push import verify_signature",
    "from gateway.merkle import leaf_hash, root_hash, verify_inclusion, verify_consistency",
    "from gateway.canonical import canonical_bytes",
    "from gateway.core.promise import decide, verify_signature, PromiseBundle",
    "from gateway.verify.promise import verify_promise",
])
def test_client_entry_points_load_no_database_web_or_http_stack(code: str) -> None:
    loaded = _loaded_after(code)
    assert not loaded & set(HEAVY), f"{code!r} loaded {sorted(loaded & set(HEAVY))}"


def test_the_members_sdk_loads_httpx_but_no_database_chain_or_web_framework() -> None:
    loaded = _loaded_after("from gateway.client import Client, verify_signature\n"
                           "from gateway.core.claimant import sign_consent, make_binding")
    assert "httpx" in loaded
    assert not loaded & {"sqlalchemy", "alembic", "fastapi", "starlette", "uvicorn", "web3"}


def test_claimx_verify_loads_no_database_web_framework_or_http_client(tmp_path: Path) -> None:
    receipt = tmp_path / "receipt.json"
    receipt.write_text("{}")
    code = ("import sys\nfrom gateway.cli.main import app\n"
            f"sys.argv = ['claimx', 'verify', {str(receipt)!r}, '--rpc-url', "
            "'http://127.0.0.1:9', '--log', '0x' + '00' * 20]\n"
            "try:\n    app()\nexcept SystemExit:\n    pass")
    loaded = _loaded_after(code)
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_claimx_audit_loads_no_database_or_web_framework() -> None:
    code = ("import sys\nfrom gateway.cli.main import app\n"
            "sys.argv = ['claimx', 'audit', '00' * 32, '--gateway', 'http://127.0.0.1:9', "
            "'--rpc-url', 'http://127.0.0.1:9', '--log', '0x' + '00' * 20, '--token', 'x']\n"
            "try:\n    app()\nexcept BaseException:\n    pass")
    loaded = _loaded_after(code)
    assert not loaded & {"sqlalchemy", "alembic", "fastapi", "starlette"}


def test_claimx_monitor_loads_no_database_or_web_framework() -> None:
    """The monitor reads the chain and the gateway's public log over HTTP, nothing else."""
    code = ("import sys\nfrom gateway.cli.main import app\nimport gateway.verify.monitor\n"
            "sys.argv = ['claimx', 'monitor', '--member', 'hospital.x', '--gateway', "
            "'http://127.0.0.1:9', '--rpc-url', 'http://127.0.0.1:9', '--log', '0x' + '00' * 20, "
            "'--token', 'x']\n"
            "try:\n    app()\nexcept BaseException:\n    pass")
    loaded = _loaded_after(code)
    assert "gateway" in loaded and not loaded & {"sqlalchemy", "alembic", "fastapi", "starlette"}


def test_help_loads_no_chain_or_database() -> None:
    code = ("import sys\nfrom gateway.cli.main import app\nsys.argv = ['claimx', '--help']\n"
            "try:\n    app()\nexcept SystemExit:\n    pass")
    loaded = _loaded_after(code)
    assert not loaded & {"web3", "sqlalchemy", "fastapi", "eth_tester"}
    # fast help (issue 12 item 7): not even the packet model, the signing or the HTTP stack
    assert not loaded & {"pydantic", "cryptography", "httpx", "rich", "uvicorn"}


def test_adapt_list_loads_no_chain_database_or_web_stack() -> None:
    code = ("import sys\nfrom gateway.cli.main import app\n"
            "sys.argv = ['claimx', 'adapt', '--list']\n"
            "try:\n    app()\nexcept SystemExit:\n    pass")
    loaded = _loaded_after(code)
    assert not loaded & {"web3", "sqlalchemy", "fastapi", "eth_tester", "httpx", "uvicorn"}


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True,
                          text=True, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not LINT_IMPORTS.exists():
        pytest.fail(f"lint-imports not found beside {sys.executable}: pip install -e .[dev]")
    dst = tmp_path_factory.mktemp("tree")
    for name in ("gateway", "adapters"):
        shutil.copytree(ROOT / name, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", dst / "pyproject.toml")
    return dst


def test_import_contracts_hold_on_the_tree(tree_copy: Path) -> None:
    result = _lint_imports(tree_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" in result.stdout and " 0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("gateway/core/types.py", "import sqlalchemy", "core imports nothing else"),
    ("gateway/core/merkle.py", "from gateway.store import tables", "core imports nothing else"),
    ("gateway/verify/receipt.py", "import gateway.store.db", "verify (what an auditor runs)"),
    ("gateway/chain/directory.py", "import gateway.services.auth", "chain imports only core"),
    ("gateway/store/vault.py", "import gateway.chain.client", "store imports only core"),
    ("gateway/services/publish.py", "import gateway.api.deps", "services never import"),
    ("adapters/csv_bill.py", "import gateway.store.tables", "adapters import only"),
    ("gateway/connect/publisher.py", "import gateway.store.tables", "the connect agent talks"),
    ("gateway/connect/intake.py", "import gateway.services.publish", "the connect agent talks"),
])
def test_a_forbidden_import_breaks_its_contract(tree_copy: Path, module: str, line: str,
                                                contract: str) -> None:
    path = tree_copy / module
    original = path.read_text()
    path.write_text(original + f"\n{line}  # noqa\n")
    try:
        result = _lint_imports(tree_copy)
    finally:
        path.write_text(original)
    assert result.returncode != 0, result.stdout
    broken = [ln for ln in result.stdout.splitlines() if ln.endswith("BROKEN")]
    assert any(contract in ln for ln in broken) or contract in result.stdout.split(
        "Broken contracts")[-1], result.stdout
