"""``claimx council`` end to end through the real CLI on anvil, and production's refusal of a
development council at deploy and at serve.

A 2-of-3 council of fresh accounts (their keys only in environment variables, as a member
would keep them) admits a hospital: one signature is refused and changes nothing, two
execute. A member the council removed then cannot sign. The deployer alone cannot admit.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from typer.testing import CliRunner

from gateway.chain.client import Chain
from gateway.cli.main import app
from gateway.core.types import member_id
from tests.support import CLAIMX, ROOT

pytestmark = [pytest.mark.anvil, pytest.mark.slow]


def run(*args: str, code: int = 0, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture
def council(anvil_url: str, tmp_path: Path) -> tuple[Path, list[LocalAccount], dict[str, str]]:
    """A deployment governed by a 2-of-3 council; its members' keys in K0, K1, K2."""
    owners: list[LocalAccount] = [Account.create() for _ in range(3)]
    dep = tmp_path / "deployment.json"
    run("deploy", "--rpc-url", anvil_url, "--out", str(dep),
        "--council", ",".join(o.address for o in owners), "--threshold", "2")
    env = {f"K{i}": "0x" + bytes(o.key).hex() for i, o in enumerate(owners)}
    return dep, owners, env


def test_k_minus_one_refused_k_executes_removed_member_refused(
        anvil_url: str, tmp_path: Path,
        council: tuple[Path, list[LocalAccount], dict[str, str]]) -> None:
    dep, owners, env = council
    common = ("--rpc-url", anvil_url, "--deployment", str(dep))
    reg = Chain.connect(anvil_url).registry(json.loads(dep.read_text())["registry"])
    hid = member_id("hospital.council")
    # the deployer alone cannot admit: the council holds the governing role
    out = run("members", "admit", "hospital.council", "--role", "hospital", "--name", "H",
              *common, code=1)
    assert "AccessControlUnauthorizedAccount" in out

    admit = tmp_path / "admit.json"
    run("council", "propose", "admit", "--member", "hospital.council", "--role", "hospital",
        "--name", "Council Hospital", "--operator", Account.create().address,
        "--out", str(admit), *common)
    assert "1 signature" in run("council", "sign", str(admit), "--key-env", "K0", env=env)
    out = run("council", "execute", str(admit), *common, code=1)
    assert "not_enough_signatures" in out and "1 of 2" in out
    assert reg.members() == []  # k-1 signatures did nothing
    assert "2 signature" in run("council", "sign", str(admit), "--key-env", "K2", env=env)
    assert "executed admit" in run("council", "execute", str(admit), *common)
    assert reg.member(hid).name == "Council Hospital"
    out = run("council", "execute", str(admit), *common, code=1)  # no replay
    assert "stale_proposal" in out

    removal = tmp_path / "remove.json"
    run("council", "propose", "remove-owner", "--owner", owners[1].address,
        "--threshold", "2", "--out", str(removal), *common)
    for k in ("K0", "K2"):
        run("council", "sign", str(removal), "--key-env", k, env=env)
    run("council", "execute", str(removal), *common)
    shown = json.loads(run("council", "show", *common))
    assert owners[1].address not in shown["owners"] and shown["threshold"] == 2

    suspend = tmp_path / "suspend.json"
    run("council", "propose", "suspend", "--member", "hospital.council", "--out",
        str(suspend), *common)
    for k in ("K0", "K1"):  # K1 was removed from the council
        run("council", "sign", str(suspend), "--key-env", k, env=env)
    shown = json.loads(run("council", "show", *common, "--proposal", str(suspend)))
    assert shown["proposal"]["signed_by"] == [owners[0].address]
    assert shown["proposal"]["not_owners"] == [owners[1].address]
    out = run("council", "execute", str(suspend), *common, code=1)
    assert "not_council_member" in out
    assert reg.member(hid).active  # still not suspended
    run("council", "sign", str(suspend), "--key-env", "K2", env=env)
    # the removed member's signature stays in the file: refused until it is taken out
    assert "not_council_member" in run("council", "execute", str(suspend), *common, code=1)
    body = json.loads(suspend.read_text())
    del body["signatures"][owners[1].address]
    suspend.write_text(json.dumps(body))
    run("council", "execute", str(suspend), *common)
    assert not reg.member(hid).active


def test_an_edited_proposal_is_refused(anvil_url: str, tmp_path: Path,
                                       council: tuple[Path, list[LocalAccount],
                                                      dict[str, str]]) -> None:
    dep, _, env = council
    common = ("--rpc-url", anvil_url, "--deployment", str(dep))
    p = tmp_path / "p.json"
    run("council", "propose", "suspend", "--member", "hospital.x", "--out", str(p), *common)
    body = json.loads(p.read_text())
    body["safe_tx"]["to"] = Account.create().address  # aimed elsewhere after review
    p.write_text(json.dumps(body))
    assert "bad_proposal" in run("council", "sign", str(p), "--key-env", "K0", env=env, code=1)


def test_production_refuses_a_development_council(anvil_url: str, tmp_path: Path) -> None:
    prod = {"CLAIMX_ENVIRONMENT": "production"}
    out = run("deploy", "--rpc-url", anvil_url, "--out", str(tmp_path / "p.json"), env=prod,
              code=2)
    assert "production needs a real council" in out
    assert not (tmp_path / "p.json").exists()

    dev = tmp_path / "dev.json"
    run("deploy", "--rpc-url", anvil_url, "--out", str(dev))  # development: allowed
    assert json.loads(dev.read_text())["development_council"] is True
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMX_")}
    env |= {"PYTHONPATH": str(ROOT), "CLAIMX_ENVIRONMENT": "production",
            "CLAIMX_HOME": str(tmp_path / "home"),
            "CLAIMX_DATABASE_URL": f"sqlite:///{tmp_path / 'prod.db'}",
            "CLAIMX_MASTER_KEY": "ab" * 32}
    served = subprocess.run([*CLAIMX, "serve", "--rpc-url", anvil_url, "--deployment",
                             str(dev), "--port", "0"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert served.returncode == 1, served.stdout + served.stderr
    assert "development_council" in served.stderr
