"""gateway.core.claimant makes the artifacts of docs/api.md §7.1 byte for byte."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.core.binding import BINDING_KIND, BindingBody, verify_claimant_signature
from gateway.core.claimant import (
    load_claimant_key,
    make_binding,
    member_hex,
    public_key_b64,
    sign_consent,
    sign_withdrawal,
    write_claimant_key,
)
from gateway.core.consent import ClaimantSignature, ConsentArtifact, verify_consent
from gateway.core.errors import InputError
from gateway.core.keys import SigningKey

SEED0 = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(32))


def test_withdrawal_matches_the_documented_test_vector() -> None:
    w = sign_withdrawal(SEED0, "a" * 64, "0x" + "bb" * 32,
                        now=datetime.fromisoformat("2026-12-01T10:05:00+00:00"))
    assert w["claimant_signature"]["public_key"] == "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik="
    assert w["claimant_signature"]["sig"] == ("7IerYrO1Ojrhn4S7GakmA7T54YZRDKhhIpeKmeASFYK/Ajqiz"
                                              "MeIo9dcvZjzstUFkne4mTxG3V2CXJA4iqRRAQ==")


def test_consent_and_binding_verify_as_the_gateway_checks_them(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    write_claimant_key(SEED0, path)
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        write_claimant_key(SEED0, path)
    key = load_claimant_key(path)
    insurer = member_hex("insurer.dev")
    artifact = ConsentArtifact.model_validate(sign_consent(key, {
        "subject": "a" * 64, "insurer": insurer, "date_from": "2026-01-01",
        "date_to": "2026-12-31", "expires_at": "2099-01-01T00:00:00+00:00"}))
    verify_consent(artifact, insurer=insurer, subject="a" * 64)
    assert artifact.parsed.signed_at is not None
    signer = SigningKey.generate()
    env = make_binding(signer, member_hex("hospital.dev"), "a" * 64, public_key_b64(key))
    env.verify_with(signer.public)
    packet = env.packet()
    assert packet.kind == BINDING_KIND
    assert BindingBody.model_validate(packet.body).key_raw == SEED0.public_key().public_bytes_raw()
    w = sign_withdrawal(key, "a" * 64, insurer)
    assert verify_claimant_signature(ClaimantSignature.model_validate(w["claimant_signature"]),
                                     w["withdrawal"], "withdrawal") == \
        SEED0.public_key().public_bytes_raw()


@pytest.mark.parametrize("call", [
    lambda: make_binding(SigningKey.generate(), member_hex("h"), "a" * 64, "c2hvcnQ="),
    lambda: make_binding(SigningKey.generate(), member_hex("h"), "not-hex", public_key_b64(SEED0)),
    lambda: sign_withdrawal(SEED0, "a" * 64, "insurer.dev"),
    lambda: sign_consent(SEED0, {"subject": "a" * 64}),
    lambda: member_hex("0x1234"),
])
def test_bad_input_is_a_located_input_error(call: object) -> None:
    with pytest.raises(InputError):
        call()  # type: ignore[operator]
