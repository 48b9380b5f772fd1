"""Promise batches (claimx.promise/2) without a chain: one signature covers every record's
own fields through its leaf, each promise verifies alone, and nothing can be moved between
records, batches or deployments; promise/1 documents verify as before."""

from __future__ import annotations

import hashlib
import json

import pytest

from gateway.core import merkle
from gateway.core.canonical import canonical_bytes
from gateway.core.errors import VerificationError
from gateway.core.keys import SigningKey
from gateway.core.promise import (
    BATCH_VERSION,
    DOMAIN,
    LEAF_DOMAIN,
    Leaf,
    Promise,
    PromiseBatch,
    Signer,
    sign,
    verify_signature,
)
from gateway.core.receipt import ChainRef
from gateway.core.types import hex32

KEY = SigningKey.generate()
SIGNER = Signer(member_id=hex32(b"\x07" * 32), key_id=hex32(KEY.key_id))
CHAIN = ChainRef(chain_id=31337, evidence_log="0x" + "11" * 20, registry="0x" + "22" * 20)
OTHER = ChainRef(chain_id=31337, evidence_log="0x" + "33" * 20, registry="0x" + "44" * 20)


def leaves(n: int, tag: int = 0) -> list[Leaf]:
    """Mixed urgent (every third: 10 s) and routine (300 s) records of two issuers."""
    return [Leaf(hashlib.sha256(bytes([tag]) + i.to_bytes(4, "big")).digest(),
                 bytes([1 + i % 2]) * 32, bytes([9]) * 32, i % 3 == 0, 10 if i % 3 == 0 else 300)
            for i in range(n)]


def ok(p: Promise) -> None:
    verify_signature(p, KEY.public)


def bad(p: Promise, code: str = "bad_promise_batch") -> None:
    with pytest.raises(VerificationError) as exc:
        verify_signature(p, KEY.public)
    assert exc.value.code == code


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 100])
def test_every_promise_of_a_batch_verifies_alone_after_a_json_round_trip(n: int) -> None:
    batch = PromiseBatch.sign(KEY, SIGNER, CHAIN, 1_700_000_000, leaves(n))
    ids = set()
    for i in range(n):
        p = Promise.from_json(batch.promise(i).to_json())  # validated from its JSON alone
        assert p == batch.promise(i) and p.version == BATCH_VERSION
        assert p.model_fields_set == batch.promise(i).model_fields_set
        assert p.batch is not None and (p.batch.index, p.batch.size) == (i, n)
        ok(p)
        assert p.promise_id == batch.promise_id(i).hex()
        ids.add(p.promise_id)
    assert len(ids) == n  # a stable id per record, not per batch
    if n > 1:  # a mixed batch: the deadlines differ
        urgent, routine = batch.promise(0), batch.promise(1)
        assert (urgent.urgent, urgent.deadline) == (True, 1_700_000_010)
        assert (routine.urgent, routine.deadline) == (False, 1_700_000_300)


def test_a_tampered_leaf_field_wrong_index_or_foreign_path_is_refused() -> None:
    batch = PromiseBatch.sign(KEY, SIGNER, CHAIN, 1_700_000_000, leaves(10))
    p = batch.promise(4)
    assert p.batch is not None
    for change in ({"digest": "ab" * 32}, {"urgent": True}, {"merge_delay": 10**6},
                   {"issuer": hex32(b"\x05" * 32)}, {"key_id": hex32(b"\x06" * 32)}):
        bad(p.model_copy(update=change))
    for index in (3, 5, 9):
        bad(p.model_copy(update={"batch": p.batch.model_copy(update={"index": index})}))
    # a path, or a whole place, from another batch signed by the same key
    other = PromiseBatch.sign(KEY, SIGNER, CHAIN, 1_700_000_000, leaves(10, tag=1))
    q = other.promise(4)
    assert q.batch is not None
    bad(p.model_copy(update={"batch": p.batch.model_copy(update={"path": q.batch.path})}))
    bad(p.model_copy(update={"batch": q.batch}))
    bad(q.model_copy(update={"batch": p.batch}))
    # the same leaves signed again later: the same tree, but that signature is not this one's
    later = PromiseBatch.sign(KEY, SIGNER, CHAIN, 1_700_000_005, leaves(10)).promise(4)
    assert later.batch == p.batch
    bad(p.model_copy(update={"signature": later.signature}), code="bad_promise_signature")
    # another size: this path may still reach the root, but the signed statement has the size
    bad(p.model_copy(update={"batch": p.batch.model_copy(update={"size": 11})}),
        code="bad_promise_signature")
    bad(p.model_copy(update={"accepted_at": p.accepted_at + 1}), code="bad_promise_signature")
    ok(p)


def test_the_statement_names_the_deployment_and_the_signer() -> None:
    p = PromiseBatch.sign(KEY, SIGNER, CHAIN, 1_700_000_000, leaves(5)).promise(2)
    bad(p.model_copy(update={"chain": OTHER}), code="bad_promise_signature")
    bad(p.model_copy(update={"signer": SIGNER.model_copy(
        update={"member_id": hex32(b"\x08" * 32)})}), code="bad_promise_signature")
    elsewhere = PromiseBatch.sign(KEY, SIGNER, OTHER, 1_700_000_000, leaves(5)).promise(2)
    ok(elsewhere)  # genuine for the other deployment: which one it names is the verifier's
    assert elsewhere.chain == OTHER  # check (gateway/verify/promise.py), and it differs


def test_leaves_are_domain_separated_from_log_leaves_and_signed_documents() -> None:
    leaf = leaves(1)[0]
    entry = leaf.entry()
    assert entry.startswith(LEAF_DOMAIN) and len(entry) == len(LEAF_DOMAIN) + 3 * 32 + 1 + 8
    assert leaf.hash() != merkle.leaf_hash(leaf.digest)  # never an evidence-log leaf
    batch = PromiseBatch.sign(KEY, SIGNER, CHAIN, 1, [leaf])
    assert not batch.statement_bytes().startswith(DOMAIN)
    assert batch.root == leaf.hash()  # a batch of one: the root is the leaf


def test_a_promise_1_document_still_verifies_and_keeps_its_exact_json() -> None:
    v1 = sign(Promise, KEY, bytes.fromhex(SIGNER.member_id[2:]), chain=CHAIN, digest="cd" * 32,
              issuer=hex32(b"\x01" * 32), key_id=hex32(b"\x02" * 32), urgent=False,
              accepted_at=1_700_000_000, merge_delay=300)
    doc = json.loads(v1.to_json())
    assert "batch" not in doc and doc["version"] == "claimx.promise/1"
    fields = {k: v for k, v in doc.items() if k != "signature"}
    assert v1.signing_bytes() == DOMAIN + canonical_bytes(fields)  # as promise/1 always was
    assert v1.promise_id == hashlib.sha256(v1.signing_bytes()).hexdigest()
    again = Promise.from_json(json.dumps(doc))
    ok(again)
    bad(again.model_copy(update={"merge_delay": 301}), code="bad_promise_signature")


def test_version_and_batch_go_together() -> None:
    doc = json.loads(PromiseBatch.sign(KEY, SIGNER, CHAIN, 1, leaves(2)).promise(1).to_json())
    for broken in ({**doc, "version": "claimx.promise/1"},
                   {k: v for k, v in doc.items() if k != "batch"}):
        with pytest.raises(Exception, match="batch"):
            Promise.from_json(json.dumps(broken))
