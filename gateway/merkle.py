"""Stable public path (DESIGN "Stable interfaces"): RFC 9162 Merkle hashing and proofs.

The implementation lives in :mod:`gateway.core.merkle`; outside clients and auditors keep
importing ``leaf_hash``, ``root_hash``, ``verify_inclusion`` and ``verify_consistency`` from
here.
"""

from gateway.core.errors import ProofError
from gateway.core.merkle import (
    EMPTY_ROOT,
    LEAF_PREFIX,
    NODE_PREFIX,
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

__all__ = ["EMPTY_ROOT", "LEAF_PREFIX", "NODE_PREFIX", "MemoryTree", "ProofError",
           "consistency_proof", "inclusion_proof", "leaf_hash", "node_hash", "root_hash",
           "verify_consistency", "verify_inclusion"]
