"""After the outage: did the deployment recover, and is every accepted record in the log once,
anchored in a head the chain holds?

Everything is asked of the public API and the chain, as an auditor would: a record's leaf
index, its inclusion proof (checked here, RFC 9162) against a tree head that must be the
chain's own head at that index, and the gateway's latest anchored head against the chain's
latest. Only for a deployment the drill started does it also read the database: every anchor
row against the chain's head at its index, and no leaf hash twice among the log's leaves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from drillkit.target import Endpoints
from gateway.core import merkle
from gateway.core.errors import ClaimxError

if TYPE_CHECKING:  # web3 and SQLAlchemy load when first used: `drill.py --help` stays quick
    from gateway.chain.contracts import EvidenceLogClient
    from gateway.chain.models import TreeHead


@dataclass
class Findings:
    """What the checks found for one scenario's accepted records."""

    checked: int = 0
    lost: int = 0
    """Accepted, yet not in the log: unknown to the gateway, rejected, or never sequenced."""
    duplicated: int = 0
    """In the log more than once (a leaf index shared, or the same leaf hash twice)."""
    unanchored: int = 0
    """In the log but not covered by a head the chain holds (or the proof does not check)."""
    heads_match: bool | None = None
    seen: dict[str, tuple[int, str]] = field(default_factory=dict, init=False)
    """Each kind of problem: how many records have it, and the first one's digest."""

    def note(self, problem: str, digest: str = "") -> None:
        count, first = self.seen.get(problem, (0, digest))
        self.seen[problem] = (count + 1, first)

    @property
    def problems(self) -> list[str]:
        return [(f"{n} record(s): " if first else "") + problem
                + (f" (first {first[:16]}…)" if first else "")
                for problem, (n, first) in self.seen.items()]


class Observer:
    """The public API (as the drill's member) and the chain, read with short timeouts."""

    def __init__(self, endpoints: Endpoints) -> None:
        self.endpoints = endpoints
        self.http = httpx.Client(base_url=endpoints.gateway, timeout=5, headers={
            "Authorization": f"Bearer {endpoints.member.token}"})
        self._log: EvidenceLogClient | None = None

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params or None)

    def ready(self) -> bool:
        return self.get("/readyz").status_code == 200

    def log(self) -> EvidenceLogClient:
        """The evidence log the gateway names, on the node the operator gave (its chain id
        must be the one the gateway states)."""
        if self._log is None:
            from gateway.chain.client import Chain

            ref = self.get("/v1/log/head").raise_for_status().json()["chain"]
            chain = Chain.connect(self.endpoints.rpc_url, timeout=3)
            if chain.chain_id != ref["chain_id"]:
                raise ClaimxError(f"the node at {self.endpoints.rpc_url} is chain "
                                  f"{chain.chain_id}, the gateway says {ref['chain_id']}",
                                  code="wrong_chain")
            self._log = chain.evidence_log(ref["evidence_log"])
        return self._log

    def log_root(self, size: int) -> str:
        """The gateway's own log root at ``size`` (from its consistency endpoint)."""
        answer = self.get("/v1/log/consistency", first=size, second=size)
        return str(answer.raise_for_status().json()["root2"])


def wait_recovered(obs: Observer, digests: list[str], since: float,
                   timeout: float) -> tuple[float | None, str]:
    """Seconds from ``since`` (monotonic) until the gateway is ready and the chain's latest
    head covers every digest's leaf, with the gateway's root at that size; None and what was
    still wrong if ``timeout`` passes first."""
    leaves: dict[str, int] = {}
    deadline, why = since + timeout, "not checked yet"
    while time.monotonic() < deadline:
        try:
            why = _still_wrong(obs, digests, leaves)
        except (httpx.HTTPError, ClaimxError, ValueError, KeyError) as exc:
            why = f"{type(exc).__name__}: {str(exc)[:120]}"
        if not why:
            return time.monotonic() - since, ""
        time.sleep(0.5)
    return None, why


def _still_wrong(obs: Observer, digests: list[str], leaves: dict[str, int]) -> str:
    if not obs.ready():
        return f"/readyz: {obs.get('/readyz').json().get('failing')}"
    for d in digests:
        if d not in leaves:
            rec = obs.get(f"/v1/records/{d}")
            if rec.status_code != 200 or rec.json()["leaf_index"] is None:
                return f"record {d[:12]}… not logged ({rec.status_code})"
            leaves[d] = int(rec.json()["leaf_index"])
    head = obs.log().latest_head()
    need = max(leaves.values(), default=-1) + 1
    if need and (head is None or head.size < need):
        return (f"the chain's latest head covers {0 if head is None else head.size} leaves, "
                f"the records need {need}")
    if head is not None and obs.log_root(head.size) != head.root.hex():
        return f"the chain's head of size {head.size} is not the gateway's log at that size"
    return ""


def verify(obs: Observer, digests: list[str], database_url: str | None) -> Findings:
    """Every accepted digest: in the log once, anchored in a head the chain holds."""
    f = Findings(checked=len(digests))
    heads: dict[int, TreeHead] = {}
    owner: dict[int, str] = {}
    for d in digests:
        leaf = _check_record(obs, d, f, heads)
        if leaf is None:
            continue
        if leaf in owner:
            f.duplicated += 1
            f.note(f"share leaf {leaf} with another accepted record", d)
        owner[leaf] = d
    f.heads_match = _heads_match(obs, f, heads)
    if database_url is not None:
        _check_database(database_url, obs, digests, f)
    return f


def _chain_head(obs: Observer, heads: dict[int, TreeHead], index: int) -> TreeHead | None:
    if index not in heads:
        if index >= obs.log().head_count():
            return None
        heads[index] = obs.log().head_at(index)
    return heads[index]


def _check_record(obs: Observer, d: str, f: Findings, heads: dict[int, TreeHead]) -> int | None:
    rec = obs.get(f"/v1/records/{d}")
    if rec.status_code != 200:
        f.lost += 1
        f.note(f"accepted, now {rec.status_code} {rec.text[:80]}", d)
        return None
    body = rec.json()
    if body["leaf_index"] is None:
        f.lost += 1
        f.note(f"accepted, then {body['status']} {body.get('reject_code') or ''}".strip(), d)
        return None
    leaf = int(body["leaf_index"])
    proof = obs.get(f"/v1/records/{d}/proof")
    if proof.status_code != 200:
        f.unanchored += 1
        f.note(f"logged, no inclusion proof ({proof.status_code} {_code(proof)})", d)
        return leaf
    p = proof.json()
    th = p["tree_head"]
    try:
        merkle.verify_inclusion(merkle.leaf_hash(bytes.fromhex(d)), leaf, int(th["size"]),
                                [bytes.fromhex(x) for x in p["inclusion_proof"]],
                                bytes.fromhex(th["root"]))
    except ClaimxError as exc:
        f.unanchored += 1
        f.note(f"inclusion proof does not check: {exc}", d)
        return leaf
    on_chain = _chain_head(obs, heads, int(th["head_index"]))
    if on_chain is None or (on_chain.size, on_chain.root.hex()) != (th["size"], th["root"]):
        f.unanchored += 1
        f.note(f"proof cites head #{th['head_index']} (size {th['size']}), which the chain "
               "does not hold", d)
    return leaf


def _code(r: httpx.Response) -> str:
    try:
        return str(r.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return r.text[:60]


def _heads_match(obs: Observer, f: Findings, heads: dict[int, TreeHead]) -> bool:
    anchored = obs.get("/v1/log/head").raise_for_status().json()["anchored"]
    chain = obs.log().latest_head()
    if anchored is None or chain is None:
        ok = anchored is None and chain is None
    else:
        ok = (anchored["head_index"], anchored["size"], anchored["root"]) == \
            (chain.index, chain.size, chain.root.hex())
    if not ok:
        f.note(f"the gateway's latest anchored head {_head(anchored)} is not the chain's "
               f"latest ({'none' if chain is None else f'#{chain.index} size {chain.size}'})")
    return ok


def _head(a: dict[str, Any] | None) -> str:
    return "none" if a is None else f"#{a['head_index']} size {a['size']}"


def _check_database(url: str, obs: Observer, digests: list[str], f: Findings) -> None:
    """The deployment's own database: anchors equal the chain's heads; no leaf twice."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            anchors = conn.execute(text("SELECT head_index, size, root FROM anchors "
                                        "ORDER BY head_index")).all()
            twice = {merkle.leaf_hash(bytes(r[0])) for r in conn.execute(text(
                "SELECT digest FROM records WHERE leaf_index IS NOT NULL GROUP BY digest "
                "HAVING count(*) > 1")).all()}  # leaves are the records' digests (0012)
    finally:
        engine.dispose()
    count = obs.log().head_count()
    chain_heads = [(h.index, h.size, h.root) for h in map(obs.log().head_at, range(count))]
    rows = [(int(i), int(s), bytes(r)) for i, s, r in anchors]
    if rows != chain_heads:
        f.heads_match = False
        missing = [r for r in rows if r not in chain_heads]
        f.note(f"database anchors {len(rows)}, chain heads {count}; "
               f"{len(missing)} anchor row(s) the chain does not hold")
    doubled = sum(merkle.leaf_hash(bytes.fromhex(d)) in twice for d in digests)
    if doubled:
        f.duplicated += doubled
        f.note(f"{doubled} accepted record(s) appear twice among the log's leaves")
