"""What an institution tells its monitor it did: its member id, keys, operators, records.

A monitor reports what it was not told about, so the profile is the institution's own list,
kept by the institution (never fetched from the exchange). It is a JSON file, and each of its
fields can be given or extended on the command line::

    {
      "member": "hospital.ruijin",               # slug or 0x member id
      "keys": ["0x<key id>", "keys/hospital.key"],  # key ids, or PEM key files
      "operators": ["0x<operator account>"],
      "published": "connect/outbox.db",           # optional: what it published
      "promises": "connect/outbox.db",            # optional: the promises it was given
      "acknowledged": ["0x<transaction hash>"]    # council actions already reviewed
    }

``published`` is the ``claimx connect`` outbox (SQLite) or a text file of record digests,
one per line: with it, a record in the log under one of the institution's own keys that it
never published is reported too (its key was used by someone else). ``promises`` is the same
outbox (it keeps each sent record's acceptance promise), a folder of saved promise JSON files
or one such file: each is decided at every poll (:mod:`gateway.verify.promises`).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.core.errors import InputError
from gateway.core.types import MemberId, member_id, parse_hex32

SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass
class Profile:
    """The institution's own statement of what is its."""

    member: MemberId
    name: str
    """How findings name the member: the slug or id it was given as."""
    keys: set[bytes] = field(default_factory=set)
    operators: set[str] = field(default_factory=set)
    """Lowercased account addresses."""
    published: set[bytes] | None = None
    """Digests the institution published, when it said (None: not checked)."""
    acknowledged: set[str] = field(default_factory=set)
    """Lowercased transaction hashes of council actions already reviewed."""
    promises: list[Path] = field(default_factory=list)
    """Where the acceptance promises the institution was given are kept."""
    base: Path = Path(".")
    """Folder relative paths in the profile file are read from."""

    @classmethod
    def load(cls, path: Path) -> Profile:
        """Read a profile file (see the module's docstring)."""
        try:
            body = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a readable JSON profile: {exc}",
                             code="bad_profile", file=str(path)) from exc
        if not isinstance(body, dict) or not isinstance(body.get("member"), str):
            raise InputError(f"{path}: a profile is a JSON object with a \"member\" string",
                             code="bad_profile", file=str(path), loc=["member"])
        profile = cls.for_member(body["member"], base=path.parent)
        profile.add_keys(_strings(body, "keys", path))
        profile.add_operators(_strings(body, "operators", path))
        profile.acknowledge(_strings(body, "acknowledged", path))
        if body.get("published") is not None:
            published = body["published"]
            if not isinstance(published, str):
                raise InputError(f"{path}: \"published\" is a file name", code="bad_profile",
                                 file=str(path), loc=["published"])
            profile.add_published(profile.base / published)
        if body.get("promises") is not None:
            if not isinstance(body["promises"], str):
                raise InputError(f"{path}: \"promises\" is a file or folder name",
                                 code="bad_profile", file=str(path), loc=["promises"])
            profile.promises.append(profile.base / body["promises"])
        return profile

    @classmethod
    def for_member(cls, text: str, *, base: Path = Path(".")) -> Profile:
        """A profile with nothing expected yet for the member ``text`` (slug or 0x id)."""
        if text.startswith("0x") and len(text) == 66:
            try:
                mid = MemberId(parse_hex32(text, "member id"))
            except ValueError as exc:
                raise InputError(str(exc), code="bad_profile", loc=["member"]) from exc
        else:
            mid = member_id(text)
        return cls(mid, text, base=base)

    def add_keys(self, specs: Iterable[str]) -> None:
        """Key ids (0x + 64 hex) or PEM key files (their key id is computed here)."""
        for spec in specs:
            self.keys.add(_key_id(spec, self.base))

    def add_operators(self, accounts: Iterable[str]) -> None:
        for account in accounts:
            text = account.strip().lower()
            if not (text.startswith("0x") and len(text) == 42):
                raise InputError(f"operator {account!r} is not a 0x account address",
                                 code="bad_profile", loc=["operators"])
            self.operators.add(text)

    def acknowledge(self, tx_hashes: Iterable[str]) -> None:
        self.acknowledged.update(t.strip().lower() for t in tx_hashes)

    def add_published(self, path: Path) -> None:
        """Digests from a ``claimx connect`` outbox or a text file of hex digests."""
        self.published = (self.published or set()) | read_published(path)


def read_published(path: Path) -> set[bytes]:
    """The digests in ``path``: a connect outbox (SQLite, read only) or one hex per line."""
    try:
        with path.open("rb") as f:
            magic = f.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise InputError(f"cannot read published records {path}: {exc}", code="bad_profile",
                         file=str(path)) from exc
    if magic == SQLITE_MAGIC:
        return _outbox_digests(path)
    out = set()
    for n, line in enumerate(path.read_text().splitlines(), 1):
        text = line.strip().removeprefix("0x")
        if not text or text.startswith("#"):
            continue
        try:
            digest = bytes.fromhex(text)
        except ValueError:
            digest = b""
        if len(digest) != 32:
            raise InputError(f"{path} line {n}: not a 64-hex-digit digest", code="bad_profile",
                             file=str(path), line=n)
        out.add(digest)
    return out


def _outbox_digests(path: Path) -> set[bytes]:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT digest FROM items").fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise InputError(f"{path}: not a claimx connect outbox ({exc})", code="bad_profile",
                         file=str(path)) from exc
    return {bytes.fromhex(r[0]) for r in rows}


def _key_id(spec: str, base: Path) -> bytes:
    """A key id as given, or computed from a PEM file: a private key (``claimx keys new``)
    or just its public key (what a monitoring machine should hold), SHA-256 of its DER."""
    text = spec.strip()
    if text.startswith("0x") and len(text) == 66:
        return parse_hex32(text, "key id")
    from cryptography.hazmat.primitives import serialization

    from gateway.core.keys import SigningKey

    path = Path(text) if Path(text).is_absolute() else base / text
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"key {spec!r}: neither a 0x key id nor a readable key file "
                         f"({exc.strerror})", code="bad_profile", loc=["keys"]) from exc
    if b"PUBLIC KEY" in data:
        try:
            der = serialization.load_pem_public_key(data).public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        except (ValueError, TypeError) as exc:
            raise InputError(f"key file {path}: not a PEM public key ({exc})",
                             code="bad_profile", loc=["keys"]) from exc
        return hashlib.sha256(der).digest()
    try:
        return SigningKey.from_pem(data).key_id
    except InputError as exc:
        raise InputError(f"key file {path}: {exc.msg}", code="bad_profile", loc=["keys"]
                         ) from exc


def _strings(body: dict[str, Any], name: str, path: Path) -> list[str]:
    value = body.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"{path}: \"{name}\" is a list of strings", code="bad_profile",
                         file=str(path), loc=[name])
    return value
