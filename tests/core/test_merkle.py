"""gateway.core.merkle against public RFC 6962 vectors, an independent implementation, mutation."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymerkle import InmemoryTree

from gateway.core import merkle
from gateway.core.errors import ProofError


def h(x: str) -> bytes:
    return bytes.fromhex(x)


def test_reference_roots(merkle_vectors: dict[str, Any]) -> None:
    entries = [h(e) for e in merkle_vectors["entries"]]
    for size, root in merkle_vectors["roots"].items():
        assert merkle.root_hash(entries[: int(size)]).hex() == root


def test_roots_match_pymerkle(merkle_vectors: dict[str, Any]) -> None:
    """pymerkle is an independent RFC 9162 implementation: the generated roots must agree."""
    other = InmemoryTree(algorithm="sha256")
    for i, e in enumerate(merkle_vectors["entries"], start=1):
        other.append_entry(h(e))
        assert other.get_root(i).hex() == merkle_vectors["roots"][str(i)]


def test_inclusion_vectors(merkle_vectors: dict[str, Any]) -> None:
    tree = _tree(merkle_vectors)
    for v in merkle_vectors["inclusion"]:
        proof = [h(p) for p in v["proof"]]
        if v["valid"]:
            merkle.verify_inclusion(h(v["leaf_hash"]), v["index"], v["size"], proof, h(v["root"]))
            assert merkle.inclusion_proof(tree.read, v["index"], v["size"]) == proof
        else:
            with pytest.raises(ProofError):
                merkle.verify_inclusion(h(v["leaf_hash"]), v["index"], v["size"], proof,
                                        h(v["root"]))


def test_consistency_vectors(merkle_vectors: dict[str, Any]) -> None:
    tree = _tree(merkle_vectors)
    checked = {True: 0, False: 0}
    for v in merkle_vectors["consistency"]:
        proof = [h(p) for p in v["proof"]]
        args = (v["size1"], v["size2"], proof, h(v["root1"]), h(v["root2"]))
        if v["valid"]:
            merkle.verify_consistency(*args)
            assert merkle.consistency_proof(tree.read, v["size1"], v["size2"]) == proof
        else:
            with pytest.raises(ProofError):
                merkle.verify_consistency(*args)
        checked[v["valid"]] += 1
    assert checked[True] > 100 and checked[False] > 50


def test_error_says_expected_and_got() -> None:
    tree = merkle.MemoryTree()
    for i in range(5):
        tree.append(bytes([i]) * 32)
    wrong = bytes(32)
    with pytest.raises(ProofError, match="root mismatch: expected 0000"):
        merkle.verify_inclusion(tree.read(0, 2), 2, 5, tree.inclusion_proof(2), wrong)


@pytest.mark.parametrize(
    ("index", "size"), [(-1, 4), (4, 4), (0, 0)],
)
def test_inclusion_index_out_of_range(index: int, size: int) -> None:
    with pytest.raises(ProofError, match="outside"):
        merkle.verify_inclusion(bytes(32), index, size, [], bytes(32))


def test_short_hashes_rejected() -> None:
    with pytest.raises(ProofError, match="32 bytes"):
        merkle.verify_inclusion(b"\x00" * 31, 0, 1, [], bytes(32))
    with pytest.raises(ProofError, match="proof element 0"):
        merkle.verify_consistency(1, 2, [b"x"], bytes(32), bytes(32))


def test_degenerate_consistency() -> None:
    r = merkle.root_hash([b"a"])
    merkle.verify_consistency(1, 1, [], r, r)
    merkle.verify_consistency(0, 1, [], merkle.EMPTY_ROOT, r)
    with pytest.raises(ProofError):
        merkle.verify_consistency(1, 1, [r], r, r)
    with pytest.raises(ProofError):
        merkle.verify_consistency(2, 1, [], r, r)
    with pytest.raises(ProofError):
        merkle.verify_consistency(0, 1, [], r, r)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=70), st.data())
def test_proofs_from_nodes_verify(entries: list[bytes], data: st.DataObject) -> None:
    """Proofs built from perfect subtrees verify against the leaf-scanning root."""
    tree = merkle.MemoryTree()
    for e in entries:
        tree.append(e)
    n = len(entries)
    size2 = data.draw(st.integers(1, n))
    size1 = data.draw(st.integers(0, size2))
    index = data.draw(st.integers(0, size2 - 1))
    root2 = merkle.root_hash(entries[:size2])
    assert tree.root(size2) == root2
    merkle.verify_inclusion(merkle.leaf_hash(entries[index]), index, size2,
                            tree.inclusion_proof(index, size2), root2)
    merkle.verify_consistency(size1, size2, tree.consistency_proof(size1, size2),
                              merkle.root_hash(entries[:size1]), root2)


def test_proof_reads_grow_logarithmically() -> None:
    """Building a proof reads O(log n) stored nodes, never every leaf."""
    tree = merkle.MemoryTree()
    for i in range(5000):
        tree.append(i.to_bytes(32, "big"))
    reads: list[tuple[int, int]] = []

    def counting(level: int, index: int) -> bytes:
        reads.append((level, index))
        return tree.read(level, index)

    merkle.inclusion_proof(counting, 1234, 5000)
    merkle.consistency_proof(counting, 3333, 5000)
    assert len(reads) <= 4 * 13  # log2(5000) ~ 12.3


def _tree(vectors: dict[str, Any]) -> merkle.MemoryTree:
    tree = merkle.MemoryTree()
    for e in vectors["entries"]:
        tree.append(h(e))
    return tree
