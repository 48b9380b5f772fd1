"""Append-only evidence log: RFC 9162 Merkle hashing, inclusion and consistency proofs.

Leaves are record digests; ``leaf_hash(d) = SHA-256(0x00 || d)`` and
``node = SHA-256(0x01 || left || right)``, so the proofs are the ones Certificate
Transparency auditors already verify. The verifiers are the RFC 9162 section 2.1.3.2 and
2.1.4.2 algorithms and return None or raise :class:`ProofError` with expected-vs-got.

Proofs are built from *perfect subtrees* only: the node at ``(level, index)`` covers leaves
``[index * 2**level, (index + 1) * 2**level)`` and never changes once complete, so a
database can store each exactly once, and any root or proof for any tree size needs
O(log n) of them, never a scan of the leaves. :func:`completed_nodes` says which nodes a
new leaf completes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from gateway.core.errors import ProofError

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeReader = Callable[[int, int], bytes]
"""``read(level, index)`` returns the hash of a complete perfect subtree."""


def leaf_hash(entry: bytes) -> bytes:
    """RFC 9162 leaf hash of one log entry (for claimx: a record digest)."""
    return hashlib.sha256(LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def root_hash(entries: Sequence[bytes]) -> bytes:
    """Merkle Tree Hash of a list of entries (reads them all: for tests and small trees)."""
    if not entries:
        return EMPTY_ROOT
    level = [leaf_hash(e) for e in entries]
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])  # RFC 9162: an unpaired right node is promoted unchanged
        level = nxt
    return level[0]


def verify_inclusion(leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes],
                     root: bytes) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``tree_size`` with ``root``."""
    _check_hashes(leaf_hash=leaf_hash, root=root, proof=proof)
    if not 0 <= index < tree_size:
        raise ProofError(f"leaf index {index} is outside a tree of size {tree_size}")
    fn, sn, r = index, tree_size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError(f"inclusion proof too long: expected fewer than {len(proof)} hashes")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"inclusion proof too short: {len(proof)} hashes")
    if r != root:
        raise ProofError(f"root mismatch: expected {root.hex()}, got {r.hex()}")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes,
                       root2: bytes) -> None:
    """Check that the tree of ``size2``/``root2`` extends the tree of ``size1``/``root1``."""
    _check_hashes(root1=root1, root2=root2, proof=proof)
    if not 0 <= size1 <= size2:
        raise ProofError(f"sizes out of order: {size1} then {size2}")
    if size1 == size2:
        if proof:
            raise ProofError("a proof between equal sizes must be empty")
        if root1 != root2:
            raise ProofError(f"root mismatch: expected {root1.hex()}, got {root2.hex()}")
        return
    if size1 == 0:
        if proof:
            raise ProofError("a proof from the empty tree must be empty")
        if root1 != EMPTY_ROOT:
            raise ProofError("the empty tree's root must be SHA-256 of the empty string")
        return
    if not proof:
        raise ProofError("empty consistency proof between different non-empty sizes")
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # size1 is a power of two: its root is the first node
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("consistency proof too short")
    if fr != root1:
        raise ProofError(f"old root mismatch: expected {root1.hex()}, got {fr.hex()}")
    if sr != root2:
        raise ProofError(f"new root mismatch: expected {root2.hex()}, got {sr.hex()}")


# --- a whole small tree in memory (a promise batch) ------------------------------------


def levels(leaf_hashes: Sequence[bytes]) -> list[list[bytes]]:
    """Every level of the tree over ``leaf_hashes`` (leaves first, the root last), built as
    :func:`root_hash` does: for a batch whose every leaf needs its path, one pass instead of
    a :func:`inclusion_proof` per leaf."""
    if not leaf_hashes:
        raise ProofError("a tree of no leaves has no levels")
    out = [list(leaf_hashes)]
    while len(out[-1]) > 1:
        level = out[-1]
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])  # promoted unchanged, as in root_hash
        out.append(nxt)
    return out


def path_from_levels(tree: Sequence[Sequence[bytes]], index: int) -> list[bytes]:
    """RFC 9162 PATH(index) in a tree from :func:`levels`: the sibling at each level, none
    where the node is the promoted last one of its level."""
    if not 0 <= index < len(tree[0]):
        raise ProofError(f"leaf index {index} is outside a tree of size {len(tree[0])}")
    path = []
    for level in tree[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        index >>= 1
    return path


# --- construction from perfect subtrees -------------------------------------------------


def completed_nodes(leaf_index: int, leaf: bytes, read: NodeReader) -> list[tuple[int, int, bytes]]:
    """Nodes ``(level, index, hash)`` that appending leaf ``leaf_index`` completes.

    Level 0 is the leaf itself; each further level is completed while the new node is a
    right child; ``read`` is asked only for left siblings, which earlier leaves completed.
    """
    out = [(0, leaf_index, leaf)]
    level, index, h = 0, leaf_index, leaf
    while index & 1:
        h = node_hash(read(level, index - 1), h)
        level, index = level + 1, index >> 1
        out.append((level, index, h))
    return out


def subtree_hash(read: NodeReader, start: int, end: int) -> bytes:
    """MTH of leaves ``[start, end)`` assembled from perfect subtrees (O(log n) reads)."""
    n = end - start
    if n <= 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0 and start % n == 0:
        return read(n.bit_length() - 1, start // n)
    k = _split(n)
    return node_hash(subtree_hash(read, start, start + k), subtree_hash(read, start + k, end))


def tree_root(read: NodeReader, size: int) -> bytes:
    """Root of the first ``size`` leaves."""
    return subtree_hash(read, 0, size)


def inclusion_proof(read: NodeReader, index: int, size: int) -> list[bytes]:
    """RFC 9162 PATH(index, D[0:size]), leaf-to-root order."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    return _path(read, index, 0, size)


def consistency_proof(read: NodeReader, size1: int, size2: int) -> list[bytes]:
    """RFC 9162 PROOF(size1, D[0:size2])."""
    if not 0 <= size1 <= size2:
        raise ProofError(f"sizes out of order: {size1} then {size2}")
    if size1 == 0 or size1 == size2:
        return []
    return _subproof(read, size1, 0, size2, True)


def _path(read: NodeReader, m: int, start: int, end: int) -> list[bytes]:
    n = end - start
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*_path(read, m, start, start + k), subtree_hash(read, start + k, end)]
    return [*_path(read, m - k, start + k, end), subtree_hash(read, start, start + k)]


def _subproof(read: NodeReader, m: int, start: int, end: int, whole: bool) -> list[bytes]:
    n = end - start
    if m == n:
        return [] if whole else [subtree_hash(read, start, end)]
    k = _split(n)
    if m <= k:
        return [*_subproof(read, m, start, start + k, whole), subtree_hash(read, start + k, end)]
    return [*_subproof(read, m - k, start + k, end, False), subtree_hash(read, start, start + k)]


def _split(n: int) -> int:
    """Largest power of two strictly less than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_hashes(*, proof: Sequence[bytes], **named: bytes) -> None:
    for name, value in named.items():
        if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
            raise ProofError(f"{name} must be {HASH_SIZE} bytes")
    for i, p in enumerate(proof):
        if not isinstance(p, bytes | bytearray) or len(p) != HASH_SIZE:
            raise ProofError(f"proof element {i} must be {HASH_SIZE} bytes")


class MemoryTree:
    """An in-memory log with the same perfect-node layout the database uses (tests, tools)."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.size = 0

    def read(self, level: int, index: int) -> bytes:
        return self.nodes[(level, index)]

    def append(self, entry: bytes) -> int:
        """Append an entry (a digest), returning its leaf index."""
        index = self.size
        for level, i, h in completed_nodes(index, leaf_hash(entry), self.read):
            self.nodes[(level, i)] = h
        self.size += 1
        return index

    def root(self, size: int | None = None) -> bytes:
        return tree_root(self.read, self.size if size is None else size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_proof(self.read, index, self.size if size is None else size)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        return consistency_proof(self.read, size1, self.size if size2 is None else size2)
