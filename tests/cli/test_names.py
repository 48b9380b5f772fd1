"""One spelling per algorithm (``ed25519``, ``p256``) printed everywhere, older spellings
accepted on input, and ``members add-key`` reading the algorithm from the public key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from gateway.cli.main import app
from gateway.core.errors import InputError
from gateway.core.keys import SigningKey, algorithm_name, detect_algorithm, parse_algorithm
from gateway.core.types import KeyAlgorithm

runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


@pytest.mark.parametrize(("text", "alg"), [
    ("ed25519", KeyAlgorithm.ED25519), ("p256", KeyAlgorithm.ECDSA_P256),
    ("ecdsa_p256", KeyAlgorithm.ECDSA_P256), ("ECDSA-P256", KeyAlgorithm.ECDSA_P256),
    ("P-256", KeyAlgorithm.ECDSA_P256), ("Ed25519", KeyAlgorithm.ED25519),
])
def test_names_and_aliases_parse(text: str, alg: KeyAlgorithm) -> None:
    assert parse_algorithm(text) == alg
    assert algorithm_name(alg) in {"ed25519", "p256"}


def test_unknown_name_says_what_to_use() -> None:
    with pytest.raises(InputError, match="use ed25519 or p256"):
        parse_algorithm("rsa")


def test_algorithm_is_detected_from_the_public_key() -> None:
    p256 = SigningKey.generate(KeyAlgorithm.ECDSA_P256)
    uncompressed = p256.private.public_key().public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    assert detect_algorithm(SigningKey.generate().public.raw) == KeyAlgorithm.ED25519
    assert detect_algorithm(p256.public.raw) == KeyAlgorithm.ECDSA_P256
    assert detect_algorithm(uncompressed) == KeyAlgorithm.ECDSA_P256
    for bad in (b"\x01" * 20, b"\x05" + b"\x01" * 32, b"\x02" + b"\xff" * 32):
        with pytest.raises(InputError):
            detect_algorithm(bad)


@pytest.mark.parametrize("alg", ["p256", "ecdsa_p256", "ecdsa-p256"])
def test_keys_new_prints_the_canonical_name(alg: str, tmp_path: Path) -> None:
    out = json.loads(run("keys", "new", "--out", str(tmp_path / "k.pem"), "--alg", alg))
    assert out["algorithm"] == "p256"


def test_keys_new_refuses_an_unknown_algorithm(tmp_path: Path) -> None:
    out = run("keys", "new", "--out", str(tmp_path / "k.pem"), "--alg", "rsa", code=2)
    assert "use ed25519 or p256" in out and not (tmp_path / "k.pem").exists()


@pytest.mark.anvil
def test_add_key_with_and_without_alg_and_members_show_agree(anvil_url: str,
                                                             tmp_path: Path) -> None:
    """What `keys new` prints registers as is, with its own name, an alias or no --alg."""
    dep = str(tmp_path / "deployment.json")
    run("deploy", "--rpc-url", anvil_url, "--out", dep)
    common = ("--rpc-url", anvil_url, "--deployment", dep)
    run("members", "admit", "police.names", "--role", "police", "--name", "P", *common,
        "--operator", "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266")  # the sender: it registers keys
    printed = []
    for n, (alg, given) in enumerate([("p256", None), ("p256", "ecdsa_p256"),
                                      ("ed25519", None), ("p256", "p256")]):
        key = json.loads(run("keys", "new", "--out", str(tmp_path / f"{n}.pem"), "--alg", alg))
        assert key["algorithm"] == alg
        extra = ("--alg", given) if given else ()
        run("members", "add-key", "police.names", "--key-id", key["key_id"], "--public-key",
            key["public_key"], *extra, *common, "--key", str(tmp_path / f"{n}.pem"))
        printed.append((key["key_id"], alg))
    shown = json.loads(run("members", "show", "police.names", *common))
    assert [(k["key_id"], k["algorithm"]) for k in shown["keys"]] == printed


@pytest.mark.anvil
def test_add_key_refusals_are_clear_before_the_chain(anvil_url: str, tmp_path: Path) -> None:
    dep = str(tmp_path / "deployment.json")
    run("deploy", "--rpc-url", anvil_url, "--out", dep)
    common = ("--rpc-url", anvil_url, "--deployment", dep)
    run("members", "admit", "hospital.names", "--role", "hospital", "--name", "H", *common)
    p256 = SigningKey.generate(KeyAlgorithm.ECDSA_P256)
    kid, pub = "0x" + p256.key_id.hex(), "0x" + p256.public.raw.hex()
    out = run("members", "add-key", "hospital.names", "--key-id", kid, "--public-key", pub,
              "--alg", "ed25519", *common, code=2)
    assert "malformed ed25519 public key" in out and "MemberRegistryBadPublicKey" not in out
    out = run("members", "add-key", "hospital.names", "--key-id", kid, "--public-key",
              "0x" + "01" * 20, *common, code=2)
    assert "cannot tell the algorithm of a 20-byte public key" in out and "--alg" in out
    other = "0x" + SigningKey.generate().key_id.hex()
    out = run("members", "add-key", "hospital.names", "--key-id", other, "--public-key", pub,
              *common, code=2)
    assert "is not this public key's" in out
    out = run("members", "add-key", "hospital.names", "--key-id", kid, "--public-key", "0xzz",
              *common, code=2)
    assert "not hex" in out
    assert json.loads(run("members", "show", "hospital.names", *common))["keys"] == []
