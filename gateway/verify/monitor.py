"""``claimx monitor``: everything done in an institution's name that it did not do itself.

An institution (or anyone holding its profile, :mod:`gateway.verify.profile`) follows the
chain and the gateway's public log and is told, one finding per line, of

* ``unexpected_key``, ``expected_key_missing``, ``bad_possession_proof``: keys registered for
  its member id that it did not register, its own keys gone, and any key whose stored proof of
  possession does not verify (the contract stores proofs but cannot check them);
* ``unexpected_operator``, ``operator_missing``: operator accounts it did not name, or named
  ones that are no longer its operators (who added or removed them, from the chain's events);
* ``foreign_key_entry``, ``unpublished_entry``, ``log_mismatch``: log entries under its
  issuer signed by a key that is not its own, or by its own key but never published by it;
  and a listing that does not reproduce the root anchored on chain (leaves hidden or altered);
* ``council_action``: what the council's Safe executed about it (suspensions, reinstatements,
  emergency key revocations, operator changes), with the SafeTx and its signers. Its
  admission is a note, not a finding; reviewed actions are acknowledged in the profile;
* ``broken_promise``, ``invalid_promise``: acceptance promises past their deadline without
  inclusion in a head anchored in time, or not signed by the exchange operator
  (:mod:`gateway.verify.promises`, when the promises are given).

Nothing here trusts the gateway: keys, operators, proofs and council actions come from the
chain (its events and state), and the log listing is held to the anchored root.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.chain.directory import ProvenKeys
from gateway.chain.history import MemberEvent, RegistryHistory
from gateway.core.errors import ChainError, ClaimxError
from gateway.core.keys import algorithm_name
from gateway.core.types import hex32
from gateway.verify.logwatch import Fetch, LogMirror, new_leaves
from gateway.verify.profile import Profile

Check = Callable[["Monitor"], list["Finding"]]
"""An extra check run at each poll (acceptance promises plug in here)."""


@dataclass(frozen=True)
class Finding:
    """Something done in the member's name that its profile does not account for."""

    code: str
    message: str
    ref: str
    """What the finding is about (a key id, a leaf, a transaction): each is reported once."""

    def line(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass
class Progress:
    """Where a poll got to: what ``--follow`` prints between findings."""

    block: int = 0
    log_size: int | None = None
    anchored_size: int | None = None
    notes: list[str] = field(default_factory=list)
    open_promises: int | None = None
    """Promises not yet decided (None: no promises given)."""
    log_error: str | None = None
    """Why the log could not be read this poll (the chain's findings still stand)."""


class Monitor:
    """Polls the chain (registry events, keys, operators, council) and the gateway's log.

    Each :meth:`poll` returns the findings not reported before, so a follower prints each
    once; a single run is one poll from ``from_block``.
    """

    def __init__(self, profile: Profile, chain: Any, registry: str, log: str, *,
                 fetch: Fetch | None = None, from_block: int = 0,
                 checks: list[Check] | None = None) -> None:
        self.profile, self.chain, self.fetch = profile, chain, fetch
        self.reg = chain.registry(registry)
        self.log = chain.evidence_log(log)
        self.history = RegistryHistory(self.reg)
        self.proven = ProvenKeys(self.reg)
        self.mirror = LogMirror()
        self.checks = checks or []
        self.events: list[MemberEvent] = []
        self.progress = Progress(block=from_block - 1)
        self._seen: set[str] = set()

    def poll(self) -> list[Finding]:
        """One round: read what is new on chain and in the log; the new findings."""
        self.progress.notes = []
        latest = self.history.latest_block()
        governors = self.history.governors(latest)
        if latest > self.progress.block:
            self.events += self.history.member_events(self.profile.member,
                                                      self.progress.block + 1, latest, governors)
            self.progress.block = latest
        found = [*self._keys(), *self._operators(), *self._council()]
        self.progress.log_error = None
        if self.fetch is not None:
            try:
                found += self._log()
            except ChainError:
                raise
            except ClaimxError as exc:  # the gateway's answer, not the chain's
                self.progress.log_error = f"{exc.code}: {exc.msg}"
        for check in self.checks:
            found += check(self)
        fresh = [f for f in found if f.ref not in self._seen]
        self._seen.update(f.ref for f in fresh)
        self.progress.notes = [n for n in self.progress.notes if n not in self._seen]
        self._seen.update(self.progress.notes)
        return fresh

    # -- keys and operators (chain state, attributed by events) ---------------------------

    def _keys(self) -> list[Finding]:
        p, out = self.profile, []
        now = self.chain.now()
        held = self.reg.keys_of(p.member)
        for key_id in held:
            state = self.reg.key_status_at(p.member, key_id, now)
            what = f"key {hex32(key_id)} ({algorithm_name(state.algorithm)}, {state.status})"
            by = self._registered_by(key_id)
            if key_id not in p.keys:
                out.append(Finding("unexpected_key", f"{what} was registered for {p.name}{by}; "
                                   "it is not one of your keys", f"key:{key_id.hex()}"))
            failure = self.proven.failure(p.member, key_id, state)
            if failure is not None:
                out.append(Finding("bad_possession_proof", f"{what} of {p.name}{by}: "
                                   f"{failure.code}: {failure.msg}", f"pop:{key_id.hex()}"))
        for key_id in sorted(p.keys - set(held)):
            out.append(Finding("expected_key_missing", f"your key {hex32(key_id)} is not "
                               f"registered for {p.name} on chain", f"missing:{key_id.hex()}"))
        return out

    def _registered_by(self, key_id: bytes) -> str:
        for e in self.events:
            if e.name == "KeyProofOfPossession" and e.args["keyId"] == key_id:
                return f" by {e.args['registeredBy']} in tx {e.tx_hash} (block {e.block_number})"
        return ""

    def _operators(self) -> list[Finding]:
        p, out = self.profile, []
        changes: dict[str, MemberEvent] = {}
        for e in self.events:
            if e.name in ("OperatorAdded", "OperatorRemoved"):
                changes[str(e.args["account"]).lower()] = e
        for account in sorted(set(changes) | p.operators):
            current = self.reg.is_operator(p.member, account)
            last = changes.get(account)
            how = "" if last is None else f" ({_who(last)} in tx {last.tx_hash}, block " \
                                          f"{last.block_number})"
            if current and account not in p.operators:
                out.append(Finding("unexpected_operator", f"account {account} is an operator "
                                   f"of {p.name}{how}; you did not name it",
                                   f"op:{account}:{last.ref if last else ''}"))
            elif not current and account in p.operators:
                out.append(Finding("operator_missing", f"your operator {account} is not an "
                                   f"operator of {p.name}{how}",
                                   f"noop:{account}:{last.ref if last else ''}"))
        return out

    # -- council actions ------------------------------------------------------------------

    def _council(self) -> list[Finding]:
        p, out = self.profile, []
        admissions = {e.tx_hash for e in self.events if e.name == "MemberAdmitted"}
        for e in self.events:
            if e.council is None or e.name in ("KeyProofOfPossession", "KeyRevoked"):
                continue  # KeyRevokedBy says it once; proofs are never the council's
            if e.tx_hash in admissions:
                if e.name == "MemberAdmitted":
                    self.progress.notes.append(
                        f"admitted as {p.name} by the council in tx {e.tx_hash} "
                        f"(block {e.block_number}){_signed(e)}")
                continue
            if e.tx_hash.lower() in p.acknowledged:
                continue
            out.append(Finding("council_action", f"the council {e.council.safe} "
                               f"{_action(e, p.name)}{_signed(e)} in tx {e.tx_hash} "
                               f"(block {e.block_number})", f"council:{e.ref}"))
        return out

    # -- the gateway's log ------------------------------------------------------------------

    def _log(self) -> list[Finding]:
        assert self.fetch is not None
        p, out = self.profile, []
        for leaf in new_leaves(self.fetch, self.mirror.size):
            self.mirror.append(leaf.digest)
            if leaf.issuer != p.member:
                continue
            where = f"log entry #{leaf.index} ({leaf.kind}, digest {leaf.digest.hex()})"
            if leaf.key_id not in p.keys:
                out.append(Finding("foreign_key_entry", f"{where} is issued as {p.name} and "
                                   f"signed by key {hex32(leaf.key_id)}, which is not yours",
                                   f"leaf:{leaf.index}"))
            elif p.published is not None and leaf.digest not in p.published:
                out.append(Finding("unpublished_entry", f"{where} is signed by your key "
                                   f"{hex32(leaf.key_id)} but you never published it: is the "
                                   "key in other hands?", f"leaf:{leaf.index}"))
        self.progress.log_size = self.mirror.size
        head = self.log.latest_head()
        if head is None:
            return out
        self.progress.anchored_size = head.size
        if head.size > self.mirror.size:
            out.append(Finding("log_mismatch", f"the chain anchors {head.size} leaves but the "
                               f"gateway lists {self.mirror.size}: it withholds entries",
                               f"short:{head.size}"))
        elif self.mirror.root(head.size) != head.root:
            out.append(Finding("log_mismatch", f"the gateway's listing of the first "
                               f"{head.size} leaves does not hash to the root anchored on chain "
                               f"in head #{head.index}: entries are hidden or altered",
                               f"root:{head.size}"))
        return out


def _who(e: MemberEvent) -> str:
    verb = "added" if e.name == "OperatorAdded" else "removed"
    if e.council is not None:
        return f"{verb} by the council"
    return f"{verb} by {e.sender}"


def _signed(e: MemberEvent) -> str:
    c = e.council
    if c is None:
        return ""
    nonce = "" if c.nonce is None else f", nonce {c.nonce}"
    signers = f", signed by {', '.join(c.signers)}" if c.signers else ""
    return f" (SafeTx {c.safe_tx_hash}{nonce}{signers})"


def _action(e: MemberEvent, name: str) -> str:
    a = e.args
    if e.name == "MemberSuspended":
        return f"suspended {name} from {a['at']}"
    if e.name == "MemberReinstated":
        return f"reinstated {name}"
    if e.name == "KeyRevokedBy":
        return f"revoked key {hex32(a['keyId'])} of {name} (emergency revocation)"
    if e.name == "OperatorAdded":
        return f"added operator {a['account']} to {name}"
    if e.name == "OperatorRemoved":
        return f"removed operator {a['account']} from {name}"
    return f"did {e.name} concerning {name}"
