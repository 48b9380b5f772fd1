"""The adapter registry: each format module registers one pure function, bytes -> packets.

Adapters produce *unsigned* packet contents; ``claimx sign`` (gateway.core.envelope) signs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # not at run time: `claimx --help` must not load pydantic
    from gateway.core.packet import Packet


@dataclass(frozen=True)
class AdapterContext:
    """What an adapter needs besides the raw bytes."""

    issuer: str
    """0x-hex member id of the publishing institution."""
    file: str | None = None
    """Source file name, used only in error locations."""
    pseudonym_key: bytes | None = None
    """HMAC key for subject pseudonyms; None means adapters.pseudonym.pseudonym_key()."""
    subject: str | None = None
    """Pseudonym (64 hex) of the person the files concern, given by the publisher: the subject
    of documents that name nobody themselves (photographed attachments)."""


AdaptFn = Callable[[bytes, AdapterContext], "list[Packet]"]
DetectFn = Callable[[bytes], bool]


@dataclass(frozen=True)
class Adapter:
    name: str
    description: str
    kinds: tuple[str, ...]
    adapt: AdaptFn
    detect: DetectFn
    extensions: tuple[str, ...] = field(default=())


_REGISTRY: dict[str, Adapter] = {}


def register(adapter: Adapter) -> Adapter:
    """Add an adapter; names are unique."""
    if adapter.name in _REGISTRY:
        raise ValueError(f"adapter {adapter.name!r} registered twice")
    _REGISTRY[adapter.name] = adapter
    return adapter


def adapters() -> dict[str, Adapter]:
    """All registered adapters, importing the format modules on first use."""
    import adapters.formats  # noqa: F401  (registers every format module)

    return dict(_REGISTRY)
