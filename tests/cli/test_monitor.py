"""``claimx monitor`` through the real CLI: anvil, a real `claimx serve`, the hospital's own
profile; a compromised operator account and the council act, and the monitor says so."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from gateway.cli.main import app
from gateway.core.envelope import sign_packet
from gateway.core.keys import SigningKey
from gateway.core.packet import new_packet
from tests.support import Served, serve_gateway

pytestmark = [pytest.mark.anvil, pytest.mark.slow]


@dataclass
class Setup:
    served: Served
    deployment: Path
    rpc_url: str
    hospital: dict[str, Any]

    def monitor(self, *args: str, gateway: bool = True) -> Result:
        base = ["monitor", "--member", "hospital.dev", "--expect-key",
                self.hospital["key_file"], "--expect-operator", self.hospital["operator"],
                "--rpc-url", self.rpc_url, "--deployment", str(self.deployment)]
        if gateway:
            base += ["--gateway", self.served.url]
        return CliRunner().invoke(app, [*base, *args],
                                  env={"CLAIMX_TOKEN": self.hospital["token"]})


@pytest.fixture(scope="module")
def setup(anvil_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    home = tmp_path_factory.mktemp("monitor")
    dep = home / "deployment.json"
    result = CliRunner().invoke(app, ["deploy", "--rpc-url", anvil_url, "--out", str(dep)])
    assert result.exit_code == 0, result.output
    with serve_gateway(home, ["--rpc-url", anvil_url, "--deployment", str(dep)]) as served:
        hospital = served.members["hospital.dev"]
        key = SigningKey.load(Path(hospital["key_file"]))
        packet = new_packet(kind="hospital.invoice", issuer=hospital["member_id"],
                            subject="cd" * 32, body={"total": "9.00"})
        r = httpx.post(served.url + "/v1/records", json=sign_packet(packet, key).to_json(),
                       headers=served.auth("hospital.dev"), timeout=30)
        assert r.status_code == 201, r.text
        yield Setup(served, dep, anvil_url, hospital)


def test_help_teaches_every_finding() -> None:
    out = CliRunner().invoke(app, ["monitor", "--help"]).output
    for code in ("unexpected_key", "bad_possession_proof", "unexpected_operator",
                 "foreign_key_entry", "log_mismatch", "council_action", "--follow",
                 "Exit status"):
        assert code in out


def test_clean_then_an_extra_key_and_a_council_action(setup: Setup, tmp_path: Path) -> None:
    clean = setup.monitor()
    assert clean.exit_code == 0, clean.output
    assert clean.stdout == ""  # no finding lines
    assert "admitted as hospital.dev by the council" in clean.stderr

    # the hospital's operator account is compromised: it registers a key of the attacker's
    rogue = SigningKey.generate()
    (tmp_path / "rogue.pem").write_bytes(rogue.to_pem())
    op_key = Path(setup.hospital["operator_key_file"]).read_text().strip()
    added = CliRunner().invoke(app, [
        "members", "add-key", "hospital.dev", "--key-id", "0x" + rogue.key_id.hex(),
        "--public-key", "0x" + rogue.public.raw.hex(), "--key", str(tmp_path / "rogue.pem"),
        "--rpc-url", setup.rpc_url, "--deployment", str(setup.deployment),
        "--private-key-env", "OPKEY"], env={"OPKEY": op_key})
    assert added.exit_code == 0, added.output
    found = setup.monitor()
    assert found.exit_code == 1, found.output
    [line] = found.stdout.splitlines()
    assert line.startswith("unexpected_key: key 0x" + rogue.key_id.hex())
    assert setup.hospital["operator"] in line

    # the council (the development council's keys next to the deployment) suspends it
    suspended = CliRunner().invoke(app, ["members", "suspend", "hospital.dev", "--rpc-url",
                                         setup.rpc_url, "--deployment", str(setup.deployment)])
    assert suspended.exit_code == 0, suspended.output
    found = setup.monitor("--follow", "--rounds", "2", "--interval", "0.2")
    assert found.exit_code == 1, found.output
    codes = sorted(line.split(":")[0] for line in found.stdout.splitlines())
    assert codes == ["council_action", "unexpected_key"]  # each once, though polled twice
    assert "monitor: hospital.dev: poll 1 at block" in found.stderr
    assert "suspended hospital.dev" in found.stdout
    # the reviewed suspension is acknowledged; the key is still reported
    tx = found.stdout.split("council_action:")[1].split(" in tx ")[1].split()[0]
    again = setup.monitor("--acknowledge", tx)
    assert [line.split(":")[0] for line in again.stdout.splitlines()] == ["unexpected_key"]


def test_profile_file_and_unchecked_exits(setup: Setup, tmp_path: Path) -> None:
    profile = tmp_path / "ruijin.json"
    profile.write_text(json.dumps({"member": "hospital.dev", "keys": ["0x" + "00" * 31],
                                   "operators": []}))
    r = CliRunner().invoke(app, ["monitor", "--profile", str(profile), "--rpc-url",
                                 setup.rpc_url, "--deployment", str(setup.deployment)])
    assert r.exit_code == 2 and "UNCHECKED: profile" in r.stderr
    r = CliRunner().invoke(app, ["monitor", "--member", "hospital.dev", "--rpc-url",
                                 "http://127.0.0.1:9", "--deployment", str(setup.deployment)])
    assert r.exit_code == 2 and "cannot reach the chain" in r.stderr
    # the gateway refuses a bad token: the log is unchecked, the chain's findings still stand
    bad = CliRunner().invoke(app, ["monitor", "--member", "hospital.dev", "--rpc-url",
                                   setup.rpc_url, "--deployment", str(setup.deployment),
                                   "--gateway", setup.served.url],
                             env={**os.environ, "CLAIMX_TOKEN": "cx1_wrong"})
    assert bad.exit_code == 1 and "UNCHECKED: the gateway's log" in bad.stderr
    assert "unauthorized" in bad.stderr or "401" in bad.stderr
    assert "unexpected_key" in bad.stdout  # no keys listed: every key is reported
