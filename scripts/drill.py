"""Outage drills for operators: publish signed envelopes at a steady rate while the chain node,
the database or the anchor worker fails, then check that nothing was lost or duplicated.

For each scenario the drill runs a load generator (one signed envelope per request, short
client timeouts, no retries, so every answer counts as given), carries out the disturbance,
restores it, waits for recovery and checks every accepted digest through the public API and
the chain: present in the log once (its own leaf, an RFC 9162 inclusion proof that checks),
anchored in a head the chain holds, and the gateway's latest anchored head equal to the
chain's. A scenario fails on any record lost or duplicated, any 5xx other than 503, any
request that hangs over 5 s, or no recovery within --recovery-timeout; the reasons are
printed under the table.

Two ways to run it:

  own deployment (default): for each scenario the drill starts anvil with --state (the
  project's npm toolchain, as `claimx serve` finds it), a PostgreSQL cluster of its own on a
  free port (pg_createcluster; never the shared server) or SQLite, `claimx serve --no-worker
  --dev-members` and separate `claimx worker`s, with quick timings (anchor interval 1 s,
  lease 3 s), and removes them afterwards. It reads the database too: anchors against the
  chain's heads, no leaf twice.

  a deployment you point it at: --gateway URL --token cx1_... --key member.pem --member-id
  0x... --rpc-url URL, plus one shell command per action (--node-pause-cmd "kill -STOP
  $(pidof anvil)", ...). A scenario whose commands are missing is skipped and says which.
  Checks go through the API and the chain only. Scenarios run one after another on the
  same deployment, so a scenario that breaks it also fails the ones after it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
warnings.filterwarnings("ignore")

from drillkit.load import HANG_SECONDS, Member  # noqa: E402
from drillkit.local import TIMINGS, LocalDeployment, PgCluster  # noqa: E402
from drillkit.report import ok, print_report  # noqa: E402
from drillkit.scenarios import SCENARIOS, Plan, Result, Say, Scenario, run  # noqa: E402
from drillkit.target import ACTIONS, ActionFailed, Endpoints, ForeignTarget  # noqa: E402
from rich.console import Console  # noqa: E402

from gateway.core.keys import SigningKey  # noqa: E402

ERR = Console(stderr=True, soft_wrap=True)  # progress lines are never folded
EXAMPLES = f"""
scenarios:
{chr(10).join(f"  {s.name:17} {s.summary}" + (f" [depends on {s.depends}]" if s.depends else "")
              for s in SCENARIOS.values())}

examples:
  # two scenarios on a deployment the drill starts, a short run, a JSON line at the end
  python scripts/drill.py --scenario worker-killed --scenario database-stopped \\
      --duration 20 --rate 5 --json
  # everything, longer
  python scripts/drill.py --all --duration 60 --rate 20
  # your staging deployment: anvil and the worker under systemd, PostgreSQL on this host
  python scripts/drill.py --scenario node-paused --scenario database-stopped \\
      --gateway https://staging.example/ --rpc-url http://10.0.0.5:8545 \\
      --token "$TOKEN" --key hospital.pem --member-id 0x2f1c... \\
      --node-pause-cmd "ssh node1 'kill -STOP $(pidof anvil)'" \\
      --node-resume-cmd "ssh node1 'kill -CONT $(pidof anvil)'" \\
      --db-stop-cmd "sudo systemctl stop postgresql" \\
      --db-start-cmd "sudo systemctl start postgresql"

own deployment timings: {', '.join(f'{k}={v}' for k, v in TIMINGS.items())}.
exit status: 0 every scenario passed (or was skipped), 1 one failed, 2 wrong usage.
A request answered after {HANG_SECONDS:.0f} s, or not within --client-timeout, is a hang.
"""


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/drill.py", description=__doc__,
                                epilog=EXAMPLES, formatter_class=argparse.RawTextHelpFormatter)
    which = p.add_argument_group("what to run")
    which.add_argument("--scenario", action="append", choices=list(SCENARIOS), default=[],
                       metavar="NAME", help="a scenario to run (repeatable): "
                       + ", ".join(SCENARIOS))
    which.add_argument("--all", action="store_true", help="run every scenario")
    which.add_argument("--duration", type=float, default=30.0,
                       help="seconds of load per scenario (default 30)")
    which.add_argument("--rate", type=float, default=10.0,
                       help="envelopes published per second (default 10)")
    which.add_argument("--outage", type=float, default=None,
                       help="seconds a dependency stays down (default 0.4 × duration)")
    which.add_argument("--recovery-timeout", type=float, default=60.0,
                       help="seconds from the restoration within which the gateway must be "
                       "ready and every accepted record anchored (default 60)")
    which.add_argument("--client-timeout", type=float, default=HANG_SECONDS + 0.5,
                       help=f"per request (default {HANG_SECONDS + 0.5})")
    which.add_argument("--seed", type=int, default=None,
                       help="random seed for the kill points (default: time)")
    which.add_argument("--json", action="store_true",
                       help="end with one JSON line: each scenario's figures and reasons")
    own = p.add_argument_group("own deployment")
    own.add_argument("--database", choices=["postgres", "sqlite"], default=None,
                     help="PostgreSQL cluster of the drill's own (default when "
                     "pg_createcluster exists) or SQLite (database-stopped is skipped)")
    own.add_argument("--workdir", type=Path, default=None,
                     help="where the deployments live (default a temporary folder)")
    own.add_argument("--keep", action="store_true",
                     help="keep the work folder (logs, state) afterwards")
    foreign = p.add_argument_group("a deployment you point it at")
    foreign.add_argument("--gateway", help="the gateway's base URL")
    foreign.add_argument("--token", help="an API token (cx1_...) of a publishing member")
    foreign.add_argument("--key", type=Path, help="that member's signing key (PEM)")
    foreign.add_argument("--member-id", help="that member's 0x id (the packets' issuer)")
    foreign.add_argument("--kind", default="hospital.invoice",
                         help="packet kind to publish (default hospital.invoice)")
    foreign.add_argument("--rpc-url", help="a JSON-RPC node of the deployment's chain")
    for action, what in ACTIONS.items():
        foreign.add_argument(f"--{action}-cmd", dest=action.replace("-", "_"),
                             metavar="CMD", help=what)
    a = p.parse_args(argv)
    if not a.scenario and not a.all:
        p.error("name a --scenario (repeatable) or --all; --help lists them")
    if a.gateway and not all([a.token, a.key, a.member_id, a.rpc_url]):
        p.error("--gateway needs --token, --key, --member-id and --rpc-url")
    if a.duration < 5 or a.rate <= 0:
        p.error("--duration must be at least 5 s and --rate above 0")
    return a


def _say(name: str) -> Say:
    def say(line: str) -> None:
        ERR.print(f"  [dim]{time.strftime('%H:%M:%S')}[/] [bold]{name}[/] {line}",
                  highlight=False)
    return say


def _foreign(a: argparse.Namespace, plan: Plan, names: list[str]) -> list[Result]:
    member = Member(a.token, SigningKey.load(a.key), a.member_id, a.kind)
    commands = {act: getattr(a, act.replace("-", "_")) for act in ACTIONS
                if getattr(a, act.replace("-", "_"))}
    target = ForeignTarget(Endpoints(a.gateway.rstrip("/"), a.rpc_url, member), commands)
    results = []
    for name in names:
        ERR.print(f"[bold]{name}[/]: {SCENARIOS[name].summary}")
        results.append(run(SCENARIOS[name], target, plan, _say(name)))
    return results


@contextmanager
def _workdir(a: argparse.Namespace) -> Iterator[Path]:
    folder = a.workdir or Path(tempfile.mkdtemp(prefix="claimx-drill-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    finally:
        if a.keep or a.workdir:
            ERR.print(f"logs and state kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def _own(a: argparse.Namespace, plan: Plan, names: list[str]) -> list[Result]:
    use_pg = a.database == "postgres" or (a.database is None and shutil.which(
        "pg_createcluster") is not None)
    results = []
    with _workdir(a) as folder:
        pg = PgCluster(f"claimx_drill_{os.getpid()}").create() if use_pg else None
        try:
            for name in names:
                results.append(_own_one(SCENARIOS[name], folder, pg, plan))
        finally:
            if pg is not None:
                pg.drop()
    return results


def _own_one(scenario: Scenario, folder: Path, pg: PgCluster | None, plan: Plan) -> Result:
    say = _say(scenario.name)
    ERR.print(f"[bold]{scenario.name}[/]: {scenario.summary}")
    say(f"starting anvil, {'PostgreSQL' if pg else 'SQLite'}, claimx serve --no-worker and "
        f"{scenario.workers} worker(s)")
    deployment = LocalDeployment(folder / scenario.name, pg=pg, workers=scenario.workers)
    try:
        deployment.start()
        return run(scenario, deployment, plan, say)
    except ActionFailed as exc:
        result = Result(scenario.name)
        result.fail(f"the deployment did not start: {exc} "
                    f"(logs in {folder / scenario.name})")
        return result
    finally:
        deployment.close()


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    names = list(SCENARIOS) if a.all else list(dict.fromkeys(a.scenario))
    seed = a.seed if a.seed is not None else int(time.time())
    plan = Plan(a.duration, a.rate, a.outage if a.outage is not None else 0.4 * a.duration,
                a.recovery_timeout, a.client_timeout, seed)
    ERR.print(f"drill: {len(names)} scenario(s), {a.duration:.0f} s at {a.rate:g}/s each, "
              f"outage {plan.outage:.0f} s, seed {seed}")
    results = _foreign(a, plan, names) if a.gateway else _own(a, plan, names)
    print_report(results, Console(), as_json=a.json)
    return 0 if ok(results) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        ERR.print("interrupted")
        sys.exit(130)
