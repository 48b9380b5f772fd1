"""The outage scenarios and the one runner they share.

Each scenario is a timeline over the load's ``duration``: a warm-up with everything up, the
disturbance, the restoration (from which recovery time is counted), more load, then the
checks. Times are fractions of the duration, so a short drill keeps the same shape.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from drillkit.checks import Findings, Observer, verify, wait_recovered
from drillkit.load import Load, Tally
from drillkit.target import OPTIONAL, ActionFailed, Target

Say = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    duration: float
    rate: float
    outage: float
    recovery_timeout: float
    client_timeout: float
    seed: int


@dataclass
class Result:
    scenario: str
    verdict: str = "pass"
    """pass, FAIL or skipped"""
    tally: Tally = field(default_factory=Tally)
    findings: Findings = field(default_factory=Findings)
    recovery: float | None = None
    reasons: list[str] = field(default_factory=list)

    def fail(self, reason: str) -> None:
        self.verdict = "FAIL"
        self.reasons.append(reason)


class Run:
    """What a scenario's timeline acts through."""

    def __init__(self, target: Target, load: Load, plan: Plan, say: Say) -> None:
        self.target, self.load, self.plan, self.say = target, load, plan, say
        self.t0 = time.monotonic()
        self.restored_at: float | None = None
        self.rng = random.Random(plan.seed)
        self._last_line = self.t0

    def at(self, fraction_or_seconds: float, *, seconds: bool = False) -> None:
        """Wait until that point of the duration, printing the load's figures every 5 s."""
        t = fraction_or_seconds if seconds else fraction_or_seconds * self.plan.duration
        while (left := self.t0 + t - time.monotonic()) > 0:
            time.sleep(min(left, 0.25))
            if time.monotonic() - self._last_line >= 5:
                self._last_line = time.monotonic()
                tl = self.load.tally()
                other = {k: v for k, v in tl.statuses.items() if not k.startswith("201")}
                self.say(f"t={self.elapsed():4.0f}s {tl.requests} sent, {tl.accepted} "
                         f"accepted{', ' + str(dict(other)) if other else ''}, worst "
                         f"{tl.worst_latency:.2f} s")

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def act(self, action: str) -> None:
        done = self.target.act(action)  # some take a while (a worker's start): stamp after
        self.say(f"t={self.elapsed():4.0f}s {done}")

    def restored(self) -> None:
        """The disturbance is over: recovery time counts from here."""
        self.restored_at = time.monotonic()


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    needs: tuple[str, ...]
    timeline: Callable[[Run], None]
    undo: tuple[str, ...] = ()
    """Run (errors ignored) if the timeline fails half-way, so nothing stays frozen."""
    workers: int = 1
    depends: str = ""


def _outage(r: Run, stop: str, start: str) -> None:
    r.at(0.25)
    r.act(stop)
    r.at(0.25 * r.plan.duration + r.plan.outage, seconds=True)
    r.act(start)
    r.restored()


def _node_restored(r: Run) -> None:
    r.at(0.15)
    r.act("node-snapshot")
    r.at(0.5)
    r.act("node-restore")
    r.restored()


def _worker_killed(r: Run) -> None:
    """SIGKILL at random points of the worker's cycle, a new worker started after each."""
    r.at(0.15)
    while r.elapsed() < 0.75 * r.plan.duration:
        r.at(r.elapsed() + r.rng.uniform(0.5, 3.0), seconds=True)
        r.act("worker-kill")
        r.at(r.elapsed() + r.rng.uniform(0.0, 1.0), seconds=True)
        r.act("worker-start")
    r.restored()


SCENARIOS = {s.name: s for s in [
    Scenario("node-paused", "the chain node frozen (SIGSTOP) for --outage seconds, then resumed",
             ("node-pause", "node-resume"), lambda r: _outage(r, "node-pause", "node-resume"),
             undo=("node-resume",)),
    Scenario("node-restored", "the node killed and restarted from a state copied earlier: the "
             "chain loses its latest heads, which must be anchored again",
             ("node-snapshot", "node-restore"), _node_restored,
             depends="re-anchoring a lost suffix on an external node (branch fence)"),
    Scenario("database-stopped", "the database server stopped for --outage seconds, then "
             "started", ("db-stop", "db-start"), lambda r: _outage(r, "db-stop", "db-start"),
             undo=("db-start",)),
    Scenario("worker-killed", "the anchor worker killed -9 every 0.5-3 s and started again",
             ("worker-kill", "worker-start"), _worker_killed),
    Scenario("leader-paused", "two workers; the lease holder frozen for --outage seconds (the "
             "standby takes over), then resumed", ("leader-pause", "leader-resume"),
             lambda r: _outage(r, "leader-pause", "leader-resume"), undo=("leader-resume",),
             workers=2, depends="lease fencing (branch fence)"),
]}


def run(scenario: Scenario, target: Target, plan: Plan, say: Say) -> Result:
    """Load, disturb, restore, wait for recovery, check; the truth in a :class:`Result`."""
    result = Result(scenario.name)
    missing = [a for a in scenario.needs if a not in OPTIONAL and not target.can(a)]
    if missing:
        result.verdict = "skipped"
        result.reasons.append("needs " + ", ".join(f"--{a}-cmd" for a in missing))
        return result
    obs = Observer(target.endpoints())
    try:
        since = time.monotonic()
        recovered, why = wait_recovered(obs, [], since, 30)
        if recovered is None:
            result.fail(f"not ready before the drill began: {why}")
            return result
        _disturb(scenario, target, plan, say, obs, result)
    finally:
        obs.close()
    return result


def _disturb(scenario: Scenario, target: Target, plan: Plan, say: Say, obs: Observer,
             result: Result) -> None:
    endpoints = target.endpoints()
    load = Load(endpoints.gateway, endpoints.member, rate=plan.rate,
                timeout=plan.client_timeout).start()
    r = Run(target, load, plan, say)
    try:
        scenario.timeline(r)
        r.at(1.0)
    except ActionFailed as exc:
        result.fail(f"action failed: {exc}")
        for action in scenario.undo:
            try:
                r.act(action)
            except ActionFailed:
                pass
    finally:
        say(f"t={r.elapsed():4.0f}s load stopped; waiting for the requests in flight")
        load.stop()
    result.tally = load.tally()
    digests = load.accepted()
    since = r.restored_at or time.monotonic()
    window = max(plan.recovery_timeout, time.monotonic() - since + 5.0)  # from the restoration
    say(f"waiting up to {since + window - time.monotonic():.0f} s more for recovery: ready, "
        f"{len(digests)} accepted records anchored on chain")
    result.recovery, why = wait_recovered(obs, digests, since, window)
    if result.recovery is None:
        diagnosis = target.diagnosis()
        result.fail(f"no recovery within {plan.recovery_timeout:.0f} s: {why}"
                    + (f"; last error: {diagnosis}" if diagnosis else ""))
    say(f"checking {len(digests)} accepted records against the log and the chain")
    result.findings = verify(obs, digests, target.database_url())
    _judge(result, target, scenario)


def _judge(result: Result, target: Target, scenario: Scenario) -> None:
    t, f = result.tally, result.findings
    if t.accepted == 0:
        result.fail("no envelope was accepted: the drill proved nothing")
    for count, what in [(f.lost, "accepted record(s) lost"),
                        (f.duplicated, "record(s) duplicated in the log"),
                        (f.unanchored, "record(s) not anchored in a head the chain holds"),
                        (t.other_5xx, "5xx answer(s) other than 503"),
                        (t.hangs, "request(s) hung over 5 s")]:
        if count:
            result.fail(f"{count} {what}")
    if f.heads_match is False:
        result.fail("chain heads differ from the gateway's anchors")
    result.reasons.extend(f.problems)
    for crash in target.crashed():
        result.fail(crash)
    if result.verdict == "FAIL" and scenario.depends:
        result.reasons.append(f"(this scenario depends on {scenario.depends})")
