"""``claimx deploy`` and ``claimx members ...`` against anvil, in process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli.main import app
from gateway.core.keys import SigningKey

pytestmark = pytest.mark.anvil


def _run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_members_show_reports_each_key_status(anvil_url: str, tmp_path: Path) -> None:
    dep = str(tmp_path / "deployment.json")
    _run("deploy", "--rpc-url", anvil_url, "--out", dep)
    common = ("--rpc-url", anvil_url, "--deployment", dep)
    # the sending account (anvil's first) is the police's own operator: it registers keys
    _run("members", "admit", "police.cli", "--role", "police", "--name", "Police", *common,
         "--operator", "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
    old, new = SigningKey.generate(), SigningKey.generate()
    for n, key in enumerate((old, new)):
        (tmp_path / f"{n}.pem").write_bytes(key.to_pem())
        _run("members", "add-key", "police.cli", "--key-id", "0x" + key.key_id.hex(),
             "--public-key", "0x" + key.public.raw.hex(), *common,
             "--key", str(tmp_path / f"{n}.pem"))
    _run("members", "revoke-key", "police.cli", "--key-id", "0x" + old.key_id.hex(), *common)
    shown = json.loads(_run("members", "show", "police.cli", "--rpc-url", anvil_url,
                            "--deployment", dep))
    assert shown["role"] == "police" and shown["suspended_at"] is None
    assert [(k["key_id"], k["status"]) for k in shown["keys"]] == [
        ("0x" + old.key_id.hex(), "revoked"), ("0x" + new.key_id.hex(), "valid")]
    _run("members", "suspend", "police.cli", *common)
    shown = json.loads(_run("members", "show", "police.cli", "--rpc-url", anvil_url,
                            "--deployment", dep))
    assert shown["suspended_at"] is not None
    assert {k["status"] for k in shown["keys"]} == {"member_suspended"}
    assert "police.cli reinstated" in _run("members", "reinstate", "police.cli", *common)
    shown = json.loads(_run("members", "show", "police.cli", *common))
    assert shown["suspended_at"] is None
    assert [k["status"] for k in shown["keys"]] == ["revoked", "valid"]


def test_members_refusals_are_one_line_errors(anvil_url: str, tmp_path: Path) -> None:
    dep = tmp_path / "deployment.json"
    _run("deploy", "--rpc-url", anvil_url, "--out", str(dep))
    common = ("--rpc-url", anvil_url, "--deployment", str(dep))
    out = _run("members", "show", "nobody.cli", *common, code=1)
    assert "MemberRegistryUnknownMember" in out
    _run("members", "admit", "insurer.cli", "--role", "insurer", "--name", "I", *common)
    out = _run("members", "admit", "insurer.cli", "--role", "insurer", "--name", "I", *common,
               code=1)
    assert "MemberRegistryMemberExists" in out
    out = _run("members", "add-key", "insurer.cli", "--key-id", "0x" + "ab" * 32,
               "--public-key", "0x" + "01" * 32, "--alg", "rsa", *common, code=2)
    assert "unknown algorithm" in out
    out = _run("members", "revoke-key", "insurer.cli", "--key-id", "0xnot-hex", *common, code=2)
    assert "--key-id" in out  # a usage error naming the option, not a traceback
    out = _run("members", "admit", "x.cli", "--role", "pharmacy", "--name", "X", *common, code=2)
    assert "--role" in out and "unknown role" in out
    dep.write_text('{"chain_id": 1}')
    out = _run("members", "suspend", "insurer.cli", *common, code=2)
    assert "cannot read deployment file" in out
