"""Stable public path (DESIGN "Stable interfaces"): RFC 8785 canonical bytes of a packet.

The implementation lives in :mod:`gateway.core.canonical`.
"""

from gateway.core.canonical import canonical_bytes, digest_of

__all__ = ["canonical_bytes", "digest_of"]
