"""What a scenario acts on: the deployment's gateway, chain and the disruptive actions.

A :class:`Target` is either a deployment the drill started itself
(:class:`drillkit.local.LocalDeployment`, which acts with signals, ``pg_ctlcluster`` and copies
of the node's state file) or one the operator points it at (:class:`ForeignTarget`, which runs
the operator's own shell commands, one per action).
"""

from __future__ import annotations

import shlex
import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass

from drillkit.load import Member

ACTIONS = {
    "node-pause": "freeze the chain node (e.g. kill -STOP PID)",
    "node-resume": "let the frozen node run again (kill -CONT PID)",
    "node-snapshot": "keep a copy of the node's state now, for node-restore (optional)",
    "node-restore": "kill the node and start it from an older state (blocks lost)",
    "db-stop": "stop the database server",
    "db-start": "start the database server again",
    "worker-kill": "kill -9 the (leading) anchor worker",
    "worker-start": "start an anchor worker again",
    "leader-pause": "freeze the worker holding the anchor lease while a standby runs",
    "leader-resume": "let the frozen leader run again",
}
"""Every action a scenario may ask for, with what the operator's command must do."""

OPTIONAL = {"node-snapshot"}


class ActionFailed(Exception):
    """An action could not be carried out (its command failed): the scenario stops there."""


@dataclass(frozen=True)
class Endpoints:
    gateway: str
    rpc_url: str
    member: Member


class Target(ABC):
    """One deployment under drill."""

    @abstractmethod
    def endpoints(self) -> Endpoints: ...

    @abstractmethod
    def can(self, action: str) -> bool: ...

    @abstractmethod
    def act(self, action: str) -> str:
        """Carry the action out; returns what was done (for the progress lines)."""

    def database_url(self) -> str | None:
        """A URL to read the log and anchors directly (only a deployment the drill owns)."""
        return None

    def diagnosis(self) -> str:
        """The last error the deployment's own logs give (only a deployment the drill owns)."""
        return ""

    def crashed(self) -> list[str]:
        """Processes of the deployment that exited when they should not have."""
        return []


class ForeignTarget(Target):
    """A deployment the operator runs; actions are the operator's shell commands."""

    def __init__(self, endpoints: Endpoints, commands: dict[str, str], *,
                 timeout: float = 120.0) -> None:
        self._endpoints, self.commands, self.timeout = endpoints, commands, timeout

    def endpoints(self) -> Endpoints:
        return self._endpoints

    def can(self, action: str) -> bool:
        return action in self.commands

    def act(self, action: str) -> str:
        cmd = self.commands.get(action)
        if cmd is None:
            if action in OPTIONAL:
                return f"{action}: no command given, skipped"
            raise ActionFailed(f"no --{action}-cmd given")
        try:
            done = subprocess.run(cmd, shell=True, capture_output=True, text=True,  # noqa: S602
                                  timeout=self.timeout)
        except subprocess.TimeoutExpired as exc:
            raise ActionFailed(f"--{action}-cmd did not finish within {self.timeout:.0f} s: "
                               f"{shlex.quote(cmd)}") from exc
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
            raise ActionFailed(f"--{action}-cmd exited {done.returncode}: {tail[0][:200]}")
        return f"{action}: ran {cmd}"
