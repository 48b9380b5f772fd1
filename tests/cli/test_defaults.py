"""No silent defaults: an adapted packet without --issuer is a marked preview that cannot be
signed, credentials are issued only to registry members, and every command that reads a
deployment takes --deployment with the same default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.cli import PLACEHOLDER_ISSUER
from gateway.cli.main import app
from gateway.core.keys import SigningKey
from gateway.core.types import hex32, member_id

ASSETS = Path(__file__).resolve().parents[1] / "assets"
POLICE = ASSETS / "police" / "accident_zh.json"
runner = CliRunner()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "police.key"
    path.write_bytes(SigningKey.generate().to_pem())
    return path


def test_adapt_without_issuer_is_a_preview_that_sign_refuses(tmp_path: Path,
                                                             key_file: Path) -> None:
    result = runner.invoke(app, ["adapt", str(POLICE)])
    assert result.exit_code == 0, result.output
    assert "placeholder issuer" in result.stderr and "--issuer" in result.stderr
    packets = json.loads(result.stdout)[0]["packets"]
    assert {p["issuer"] for p in packets} == {PLACEHOLDER_ISSUER}
    assert hex32(member_id("demo.hospital")) not in result.stdout  # the old silent default
    (tmp_path / "packets.json").write_text(result.stdout)
    signed = runner.invoke(app, ["sign", str(tmp_path / "packets.json"), "--key",
                                 str(key_file)])
    assert signed.exit_code == 1 and "placeholder issuer" in signed.stderr
    assert signed.stdout == ""


def test_adapt_with_issuer_signs_and_says_nothing_extra(tmp_path: Path,
                                                        key_file: Path) -> None:
    result = runner.invoke(app, ["adapt", "--issuer", "police.shanghai", str(POLICE)])
    assert result.exit_code == 0 and result.stderr == ""
    packets = json.loads(result.stdout)[0]["packets"]
    assert {p["issuer"] for p in packets} == {hex32(member_id("police.shanghai"))}
    (tmp_path / "packets.json").write_text(result.stdout)
    signed = runner.invoke(app, ["sign", str(tmp_path / "packets.json"), "--key",
                                 str(key_file)])
    assert signed.exit_code == 0, signed.output


def test_credentials_issue_needs_the_registry_or_an_explicit_no_check(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLAIMX_RPC_URL", raising=False)
    db = f"sqlite:///{tmp_path / 'claimx.db'}"
    refused = runner.invoke(app, ["credentials", "issue", "hospital.nosuch",
                                  "--database-url", db])
    assert refused.exit_code == 2 and "--no-check" in refused.output
    offline = runner.invoke(app, ["credentials", "issue", "hospital.later", "--database-url",
                                  db, "--no-check"])
    assert offline.exit_code == 0 and offline.stdout.startswith("cx1_")


@pytest.mark.anvil
def test_credentials_issue_refuses_members_unknown_to_the_registry(anvil_url: str,
                                                                   tmp_path: Path) -> None:
    dep = str(tmp_path / "deployment.json")
    chain = ("--rpc-url", anvil_url, "--deployment", dep)
    assert runner.invoke(app, ["deploy", "--rpc-url", anvil_url, "--out", dep]).exit_code == 0
    assert runner.invoke(app, ["members", "admit", "hospital.known", "--role", "hospital",
                               "--name", "K", *chain]).exit_code == 0
    db = ("--database-url", f"sqlite:///{tmp_path / 'claimx.db'}")
    unknown = runner.invoke(app, ["credentials", "issue", "hospital.nosuch", *db, *chain])
    assert unknown.exit_code == 1 and unknown.stdout == ""
    assert "hospital.nosuch is not a member of the registry" in unknown.stderr
    known = runner.invoke(app, ["credentials", "issue", "hospital.known", *db, *chain])
    assert known.exit_code == 0 and known.stdout.startswith("cx1_"), known.output
    assert runner.invoke(app, ["members", "suspend", "hospital.known", *chain]).exit_code == 0
    suspended = runner.invoke(app, ["credentials", "issue", "hospital.known", *db, *chain])
    assert suspended.exit_code == 0 and "is suspended" in suspended.stderr


@pytest.mark.parametrize("command", [
    ["deploy"], ["worker"], ["serve"], ["verify"], ["audit"], ["credentials", "issue"],
    ["members", "admit"], ["members", "add-key"], ["members", "list"], ["members", "show"],
])
def test_every_deployment_reader_takes_the_same_default(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "--deployment" in text and ".claimx/deployment.json" in text
    assert "CLAIMX_DEPLOYMENT_FILE" in text

@pytest.mark.anvil
def test_worker_reads_the_default_deployment_file(anvil_url: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLAIMX_DEPLOYMENT_FILE", raising=False)
    result = runner.invoke(app, ["worker", "--rpc-url", anvil_url,
                                 "--database-url", f"sqlite:///{tmp_path / 'x.db'}"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "no deployment file at .claimx/deployment.json" in result.stderr


def test_credentials_default_to_the_local_networks_database_and_refuse_a_missing_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.services.auth import credential_is_live
    from gateway.store.db import Database

    for name in ("CLAIMX_DATABASE_URL", "CLAIMX_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    missing = runner.invoke(app, ["credentials", "issue", "hospital.dev", "--no-check"])
    assert missing.exit_code == 2 and "no gateway database" in missing.output
    assert not (tmp_path / ".claimx").exists()  # nothing made on the way
    (tmp_path / ".claimx").mkdir()
    db = Database(f"sqlite:///{tmp_path / '.claimx' / 'claimx.db'}")  # as `claimx serve` makes
    issued = runner.invoke(app, ["credentials", "issue", "hospital.dev", "--no-check"])
    assert issued.exit_code == 0, issued.output
    with db.session() as s:
        assert credential_is_live(s, member_id("hospital.dev"), issued.stdout.strip())
