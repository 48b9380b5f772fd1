"""``claimx monitor``: an institution watches everything done in its name.

It imports the verify and chain layers and httpx only (no database, no web framework): it
reads the chain and the gateway's public log, never the exchange's database.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gateway.cli.common import DEFAULT_DEPLOYMENT, DeploymentOpt
from gateway.cli.outcome import (
    CHAIN_TIMEOUT,
    INVALID,
    UNCHECKED,
    VALID,
    LogOpt,
    TimeoutOpt,
    Unchecked,
    log_address,
    open_chain,
    open_log,
    unanswered,
)
from gateway.core.errors import ChainError, ClaimxError, InputError

if TYPE_CHECKING:
    import httpx

    from gateway.verify.monitor import Check, Monitor
    from gateway.verify.profile import Profile


def monitor(
    rpc_url: Annotated[str, typer.Option(envvar="CLAIMX_RPC_URL",
                                         help="JSON-RPC node of the consortium chain (ideally "
                                         "your own node, not the operator's)")],
    profile: Annotated[Path | None, typer.Option(
        help="JSON profile: member, keys, operators, published, acknowledged (see above)")
    ] = None,
    member: Annotated[str | None, typer.Option(
        help="your member slug or 0x id (else the profile's)")] = None,
    expect_key: Annotated[list[str] | None, typer.Option(
        "--expect-key", help="a key you registered: 0x key id, or its PEM file (public or "
        "private); repeatable")] = None,
    expect_operator: Annotated[list[str] | None, typer.Option(
        "--expect-operator", help="an operator account you named; repeatable")] = None,
    published: Annotated[Path | None, typer.Option(
        help="what you published: your `claimx connect` outbox (SQLite) or a file of hex "
        "digests, one per line")] = None,
    promises: Annotated[Path | None, typer.Option(
        help="the acceptance promises you were given: your `claimx connect` outbox, a folder "
        "of saved promise JSON files, or one file")] = None,
    acknowledge: Annotated[list[str] | None, typer.Option(
        "--acknowledge", help="0x transaction hash of a council action you have reviewed; "
        "repeatable")] = None,
    gateway: Annotated[str | None, typer.Option(
        envvar="CLAIMX_GATEWAY_URL", help="the gateway's base URL; its log is checked when "
        "given (API token from CLAIMX_TOKEN)")] = None,
    token: Annotated[str | None, typer.Option(
        envvar="CLAIMX_TOKEN", show_default=False,
        help="your API token (cx1_…), from the environment")] = None,
    log: LogOpt = None,
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
    from_block: Annotated[int, typer.Option(
        min=0, help="first block to read registry events from (0: the whole chain; a later one "
        "misses earlier operator changes)")] = 0,
    follow: Annotated[bool, typer.Option(
        "--follow", help="keep watching: poll every --interval seconds, print each new "
        "finding once, and a progress line on stderr")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="seconds between polls (--follow)")
                        ] = 15.0,
    rounds: Annotated[int, typer.Option(
        min=0, help="with --follow, stop after this many polls (0: until interrupted)")] = 0,
    timeout: TimeoutOpt = CHAIN_TIMEOUT,
) -> None:
    """Report what was done in your name that you did not do: one line per finding.

    Checked against the chain (its events and state) and the gateway's public log, never
    the exchange's word:

    \b
      unexpected_key        a key registered for you that you did not list
      bad_possession_proof  a key whose stored proof of possession does not verify
      expected_key_missing  a key you listed that the registry does not hold for you
      unexpected_operator   an operator account of yours that you did not list
      operator_missing      a listed operator that is no longer yours
      foreign_key_entry     a log entry issued as you, signed by a key that is not yours
      unpublished_entry     a log entry signed by your key that you never published
                            (needs --published)
      log_mismatch          the gateway's listing does not reproduce the root on chain
      council_action        the council suspended/reinstated you, revoked a key of yours,
                            or changed your operators (with the SafeTx and its signers)
      broken_promise        an acceptance promise past its deadline (extensions counted)
                            without inclusion in a head anchored in time (needs --promises)
      invalid_promise       a promise not signed by this deployment's exchange operator

    Your admission is printed as a note, not a finding. A profile file holds the same as
    the options (a JSON object; relative paths from the file's folder):

    \b
      {"member": "hospital.ruijin",
       "keys": ["0xKEYID", "hospital.pub.pem"],
       "operators": ["0xOPERATOR"],
       "published": "outbox.db", "promises": "outbox.db",
       "acknowledged": ["0xTXHASH"]}

    Exit status: 0 nothing found; 1 findings (on stdout, one per line: `CODE: what, who,
    which transaction`); 2 UNCHECKED (node or gateway unreachable, bad profile).

    \b
    Examples:
      claimx monitor --member hospital.ruijin --expect-key hospital.pub.pem \\
          --expect-operator 0xOPS --rpc-url http://127.0.0.1:8545
      CLAIMX_TOKEN=cx1_... claimx monitor --profile ruijin.json --gateway URL \\
          --rpc-url URL --follow --interval 30
    """
    try:
        watched = _profile(profile, member, expect_key, expect_operator, published,
                           acknowledge)
        if promises is not None:
            watched.promises.append(promises)
        mon, client = _monitor(watched, rpc_url, log_address(log, deployment), gateway, token,
                               from_block, timeout)
    except Unchecked as exc:
        typer.echo(f"UNCHECKED: {exc.cause}. Fix: {exc.fix}", err=True)
        raise typer.Exit(UNCHECKED) from exc
    try:
        raise typer.Exit(_run(mon, watched.name, follow, interval, rounds))
    finally:
        if client is not None:
            client.close()


def _profile(path: Path | None, member: str | None, keys: list[str] | None,
             operators: list[str] | None, published: Path | None,
             acknowledged: list[str] | None) -> Profile:
    from gateway.verify.profile import Profile

    try:
        if path is not None:
            watched = Profile.load(path)
            if member is not None and Profile.for_member(member).member != watched.member:
                raise InputError(f"--member {member} is not the profile's member "
                                 f"{watched.name}", code="bad_profile")
        elif member is not None:
            watched = Profile.for_member(member)
        else:
            raise InputError("name the member to watch: --member SLUG or --profile FILE",
                             code="bad_profile")
        watched.add_keys(keys or [])
        watched.add_operators(operators or [])
        watched.acknowledge(acknowledged or [])
        if published is not None:
            watched.add_published(published)
    except (InputError, ValueError) as exc:
        msg = exc.msg if isinstance(exc, InputError) else str(exc)
        raise Unchecked(f"profile: {msg}", "see `claimx monitor --help` for the profile's "
                        "fields", "bad_profile") from exc
    if not watched.keys:
        typer.echo("note: no keys listed (--expect-key or the profile's \"keys\"): every key "
                   "registered for you will be reported", err=True)
    return watched


def _monitor(watched: Profile, rpc_url: str, address: str, gateway: str | None,
             token: str | None, from_block: int, timeout: float
             ) -> tuple[Monitor, httpx.Client | None]:
    from gateway.verify.monitor import Monitor

    chain = open_chain(rpc_url, timeout)
    ev = open_log(chain, address)
    client, fetch = None, None
    if gateway is not None:
        if not token:
            raise Unchecked("the gateway's log needs your API token",
                            "set CLAIMX_TOKEN (from `claimx credentials issue`)",
                            "missing_credentials")
        import httpx

        from gateway.verify.audit import http_fetch

        client = httpx.Client(base_url=gateway, headers={"Authorization": f"Bearer {token}"},
                              timeout=30)
        get = http_fetch(client)

        def fetch(path: str) -> dict[str, Any]:
            try:
                return get(path)
            except httpx.HTTPError as exc:
                raise ClaimxError(f"cannot reach the gateway at {gateway} "
                                  f"({type(exc).__name__})", code="gateway_unreachable"
                                  ) from exc
    else:
        typer.echo("note: the log is not checked (no --gateway)", err=True)
    checks: list[Check] = []
    if watched.promises:
        from gateway.verify.promises import PromiseWatch, read_promises

        try:
            given = [p for path in watched.promises for p in read_promises(path)]
        except InputError as exc:
            raise Unchecked(f"promises: {exc.msg}", "give your connect outbox, a folder of "
                            "promise JSON files or one file as --promises", "bad_profile"
                            ) from exc
        typer.echo(f"note: {len(given)} acceptance promise(s) to follow", err=True)
        checks.append(PromiseWatch(given, fetch))
    try:
        return Monitor(watched, chain, ev.registry_address(), address, fetch=fetch,
                       from_block=from_block, checks=checks), client
    except ChainError as exc:
        raise unanswered(exc, chain) from exc


def _run(mon: Monitor, name: str, follow: bool, interval: float, rounds: int) -> int:
    """Poll once (or keep polling); print findings; the exit status."""
    total, n, unchecked = 0, 0, False
    try:
        while True:
            n += 1
            try:
                found = mon.poll()
                unchecked = False
            except ClaimxError as exc:
                unchecked = _unchecked(f"the chain did not answer ({exc.code}: {exc.msg})",
                                       "check that the node is up and --rpc-url")
                found = []
            if mon.progress.log_error is not None:
                unchecked = _unchecked(f"the gateway's log could not be read "
                                       f"({mon.progress.log_error})",
                                       "check --gateway and CLAIMX_TOKEN")
            for note in mon.progress.notes:
                typer.echo(f"note: {note}", err=True)
            for f in found:
                typer.echo(f.line())
            total += len(found)
            if not follow or (rounds and n >= rounds):
                break
            p = mon.progress
            log = "" if p.log_size is None else f", log {p.log_size} leaves " \
                                                f"({p.anchored_size or 0} anchored)"
            if p.open_promises is not None:
                log += f", {p.open_promises} promise(s) open"
            typer.echo(f"monitor: {name}: poll {n} at block {p.block}{log}, {total} "
                       f"finding(s) so far", err=True)
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    if total:
        typer.echo(f"monitor: {total} finding(s) for {name}", err=True)
        return INVALID
    if unchecked:
        return UNCHECKED
    typer.echo(f"monitor: nothing found for {name} (through block {mon.progress.block})",
               err=True)
    return VALID


def _unchecked(cause: str, fix: str) -> bool:
    typer.echo(f"UNCHECKED: {cause}. Fix: {fix}", err=True)
    return True
