"""Following the gateway's public log, leaf by leaf, and holding it to the chain's roots.

The gateway lists each leaf's digest, issuer, key id and kind (``GET /v1/log/leaves``). The
listing is the gateway's word, so the mirror here rebuilds the RFC 9162 tree from the listed
digests and compares its root at the latest anchored size with the root on chain: a leaf
left out, added or altered in the listing cannot reproduce that root. (Issuer and key id are
the gateway's statement about each digest; a receipt or the record itself proves them.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from gateway.core import merkle
from gateway.core.errors import InputError
from gateway.core.types import parse_hex32

Fetch = Callable[[str], dict[str, Any]]
"""GET a gateway path, returning its JSON (raising ClaimxError when it cannot)."""

PAGE = 1000


@dataclass(frozen=True)
class Leaf:
    index: int
    digest: bytes
    issuer: bytes
    key_id: bytes
    kind: str


class LogMirror:
    """The log's complete perfect subtrees, built from the leaves as they are listed, so any
    root up to the mirrored size costs O(log n) (gateway.core.merkle's construction)."""

    def __init__(self) -> None:
        self._nodes: dict[tuple[int, int], bytes] = {}
        self.size = 0

    def append(self, digest: bytes) -> None:
        read = self._read
        for level, idx, h in merkle.completed_nodes(self.size, merkle.leaf_hash(digest), read):
            self._nodes[(level, idx)] = h
        self.size += 1

    def root(self, size: int) -> bytes:
        if not 0 <= size <= self.size:
            raise ValueError(f"root of {size} leaves asked of a mirror of {self.size}")
        return merkle.tree_root(self._read, size)

    def _read(self, level: int, index: int) -> bytes:
        return self._nodes[(level, index)]


def new_leaves(fetch: Fetch, start: int) -> Iterator[Leaf]:
    """Every listed leaf from ``start`` on, page by page, checked to be contiguous."""
    expected = start
    while True:
        page = fetch(f"/v1/log/leaves?start={expected}&limit={PAGE}")
        leaves = page.get("leaves")
        if not isinstance(leaves, list):
            raise InputError("the gateway's /v1/log/leaves answer has no \"leaves\" list",
                             code="bad_log_listing")
        if not leaves:
            return
        for raw in leaves:
            leaf = _leaf(raw)
            if leaf.index != expected:
                raise InputError(f"the gateway listed leaf {leaf.index} where leaf {expected} "
                                 "belongs: the listing has a gap", code="bad_log_listing")
            expected += 1
            yield leaf


def _leaf(raw: Any) -> Leaf:
    try:
        digest = bytes.fromhex(raw["digest"])
        if len(digest) != 32:
            raise ValueError("digest is not 32 bytes")
        return Leaf(int(raw["index"]), digest, parse_hex32(raw["issuer"], "issuer"),
                    parse_hex32(raw["key_id"], "key id"), str(raw["kind"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"the gateway listed a malformed leaf: {exc}",
                         code="bad_log_listing") from exc
