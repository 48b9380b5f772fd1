"""Institution signing keys: Ed25519 and ECDSA P-256 through ``cryptography``.

On chain a public key is stored in its compact form (Ed25519: the 32 raw bytes; P-256: the
33-byte compressed SEC1 point) and named by its key id, SHA-256 of the SubjectPublicKeyInfo
DER, so the id is the same whichever encoding a tool prints. ECDSA signatures are DER
encoded over SHA-256, as DSSE implementations expect; the raw r||s form of WebCrypto and JOSE
is accepted on verification (:func:`ecdsa_der`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from gateway.core.errors import InputError, VerificationError
from gateway.core.types import KeyAlgorithm, KeyId

_ECDSA = ec.ECDSA(hashes.SHA256())
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKeyObj = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey

CANONICAL_NAMES = {KeyAlgorithm.ED25519: "ed25519", KeyAlgorithm.ECDSA_P256: "p256"}
"""The one spelling claimx prints for each algorithm (``keys new``, ``members show``, reports)."""
ALGORITHM_NAMES = {"ed25519": KeyAlgorithm.ED25519, "p256": KeyAlgorithm.ECDSA_P256,
                   "ecdsa-p256": KeyAlgorithm.ECDSA_P256, "ecdsa_p256": KeyAlgorithm.ECDSA_P256,
                   "p-256": KeyAlgorithm.ECDSA_P256}
"""Names accepted on input: the canonical ones and the aliases older output printed."""
_SEC1_PREFIXES = {33: (0x02, 0x03), 65: (0x04,)}


def algorithm_name(algorithm: KeyAlgorithm | int) -> str:
    """The canonical name (``ed25519``, ``p256``) of an algorithm."""
    alg = KeyAlgorithm(algorithm)
    return CANONICAL_NAMES.get(alg, alg.name.lower())


def parse_algorithm(text: str) -> KeyAlgorithm:
    """An algorithm from its name or an alias, case-insensitively."""
    try:
        return ALGORITHM_NAMES[text.strip().lower()]
    except KeyError:
        raise InputError(f"unknown algorithm {text!r}: use "
                         f"{' or '.join(CANONICAL_NAMES.values())}",
                         code="bad_algorithm") from None


def detect_algorithm(raw: bytes) -> KeyAlgorithm:
    """The algorithm of a public key from its encoding: 32 raw bytes are Ed25519, a 33-byte
    compressed or 65-byte uncompressed SEC1 point is P-256; the key must also parse."""
    if len(raw) == 32:
        alg = KeyAlgorithm.ED25519
    elif raw[:1] and raw[0] in _SEC1_PREFIXES.get(len(raw), ()):
        alg = KeyAlgorithm.ECDSA_P256
    else:
        raise InputError(f"cannot tell the algorithm of a {len(raw)}-byte public key: expected "
                         "32 bytes (Ed25519) or a 33/65-byte SEC1 point starting 02, 03 or 04 "
                         "(P-256); name it with --alg", code="bad_public_key")
    PublicKey.from_chain(alg, raw)
    return alg


def ecdsa_der(signature: bytes) -> bytes:
    """A P-256 signature as DER. DER is what claimx signs; the fixed 64-byte r||s form that
    WebCrypto and JOSE (RFC 7518 section 3.4) produce is accepted too and converted here. A
    DER signature is 8 to 72 bytes and starts with a SEQUENCE, so the two never collide when
    the bytes parse as DER first."""
    if len(signature) != 64:
        return signature
    try:
        decode_dss_signature(signature)
        return signature  # a (rare) 64-byte DER signature
    except ValueError:
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        return encode_dss_signature(r, s)


@dataclass(frozen=True)
class PublicKey:
    """A verification key as the registry holds it."""

    algorithm: KeyAlgorithm
    raw: bytes
    """Compact form stored on chain."""

    @classmethod
    def from_chain(cls, algorithm: KeyAlgorithm | int, raw: bytes) -> PublicKey:
        key = cls(KeyAlgorithm(algorithm), bytes(raw))
        key._load()  # reject malformed keys here, once
        return key

    @cached_property
    def key_id(self) -> KeyId:
        der = self._load().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
        return KeyId(hashlib.sha256(der).digest())

    def verify(self, signature: bytes, message: bytes) -> None:
        """Return None when ``signature`` is valid for ``message``, else raise."""
        key = self._load()
        try:
            if isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(signature, message)
            else:
                key.verify(ecdsa_der(signature), message, _ECDSA)
        except InvalidSignature as exc:
            raise VerificationError("signature does not verify with the registered key",
                                    code="bad_signature") from exc

    def _load(self) -> PublicKeyObj:
        return self._obj

    @cached_property
    def _obj(self) -> PublicKeyObj:
        try:
            if self.algorithm == KeyAlgorithm.ED25519:
                return ed25519.Ed25519PublicKey.from_public_bytes(self.raw)
            if self.algorithm == KeyAlgorithm.ECDSA_P256:
                return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), self.raw)
        except ValueError as exc:
            raise InputError(f"malformed {algorithm_name(self.algorithm)} public key",
                             code="bad_public_key") from exc
        raise InputError(f"unsupported key algorithm {self.algorithm!r}", code="bad_algorithm")


@dataclass(frozen=True)
class SigningKey:
    """An institution's private signing key."""

    private: PrivateKey

    @classmethod
    def generate(cls, algorithm: KeyAlgorithm = KeyAlgorithm.ED25519) -> SigningKey:
        if algorithm == KeyAlgorithm.ED25519:
            return cls(ed25519.Ed25519PrivateKey.generate())
        if algorithm == KeyAlgorithm.ECDSA_P256:
            return cls(ec.generate_private_key(ec.SECP256R1()))
        raise InputError(f"unsupported key algorithm {algorithm!r}", code="bad_algorithm")

    @property
    def algorithm(self) -> KeyAlgorithm:
        if isinstance(self.private, ed25519.Ed25519PrivateKey):
            return KeyAlgorithm.ED25519
        return KeyAlgorithm.ECDSA_P256

    @property
    def public(self) -> PublicKey:
        pub = self.private.public_key()
        if isinstance(pub, ed25519.Ed25519PublicKey):
            raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        else:
            raw = pub.public_bytes(serialization.Encoding.X962,
                                   serialization.PublicFormat.CompressedPoint)
        return PublicKey(self.algorithm, raw)

    @property
    def key_id(self) -> KeyId:
        return self.public.key_id

    def sign(self, message: bytes) -> bytes:
        if isinstance(self.private, ed25519.Ed25519PrivateKey):
            return self.private.sign(message)
        return self.private.sign(message, _ECDSA)

    def to_pem(self, passphrase: bytes | None = None) -> bytes:
        """PKCS#8 PEM, encrypted when a passphrase is given."""
        enc: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase) if passphrase
            else serialization.NoEncryption())
        return self.private.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8, enc)

    @classmethod
    def from_pem(cls, data: bytes, passphrase: bytes | None = None) -> SigningKey:
        try:
            key = serialization.load_pem_private_key(data, password=passphrase)
        except (ValueError, TypeError) as exc:
            raise InputError(f"cannot read private key: {exc}", code="bad_private_key") from exc
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return cls(key)
        if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
            return cls(key)
        raise InputError("private key must be Ed25519 or ECDSA P-256", code="bad_algorithm")

    @classmethod
    def load(cls, path: Path, passphrase: bytes | None = None) -> SigningKey:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read key file {path}: {exc.strerror}",
                             code="key_file_unreadable") from exc
        return cls.from_pem(data, passphrase)
