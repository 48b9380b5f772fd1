"""The drill's answer: a table for people, one JSON line for machines."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from drillkit.scenarios import Result

COLUMNS = ["scenario", "requests", "accepted", "503", "lost", "duplicated", "5xx≠503",
           "worst latency", "recovery", "verdict"]


def figures(r: Result) -> dict[str, Any]:
    """One scenario's figures, as the JSON line carries them."""
    t, f = r.tally, r.findings
    return {"scenario": r.scenario, "verdict": r.verdict, "requests": t.requests,
            "accepted": t.accepted, "lost": f.lost, "duplicated": f.duplicated,
            "unanchored": f.unanchored, "other_5xx": t.other_5xx, "hangs": t.hangs,
            "worst_latency_s": round(t.worst_latency, 3),
            "recovery_s": None if r.recovery is None else round(r.recovery, 2),
            "heads_match": f.heads_match, "statuses": dict(t.statuses), "reasons": r.reasons}


def table(results: list[Result]) -> Table:
    tab = Table(title="claimx drill", title_justify="left")
    for col in COLUMNS:
        tab.add_column(col, justify="left" if col in ("scenario", "verdict") else "right")
    for r in results:
        t, f = r.tally, r.findings
        style = {"pass": "green", "FAIL": "bold red"}.get(r.verdict, "yellow")
        skipped = r.verdict == "skipped"
        unavailable = sum(n for k, n in t.statuses.items() if k.startswith("503"))
        cells = ["–"] * 8 if skipped else [
            str(t.requests), str(t.accepted), str(unavailable), _bad(f.lost), _bad(f.duplicated),
            _bad(t.other_5xx), f"{t.worst_latency:.2f} s",
            "–" if r.recovery is None else f"{r.recovery:.1f} s"]
        tab.add_row(r.scenario, *cells, f"[{style}]{r.verdict}[/]")
    return tab


def _bad(n: int) -> str:
    return f"[bold red]{n}[/]" if n else "0"


def print_report(results: list[Result], console: Console, *, as_json: bool) -> None:
    if not console.is_terminal:  # a pipe or a file: rich would fold the table into 80 columns
        console.width = max(console.width, 120)
    console.print(table(results))
    for r in results:
        for reason in r.reasons:
            console.print(f"  [bold]{r.scenario}[/]: {reason}", highlight=False)
    if as_json:
        line = {"drill": [figures(r) for r in results], "ok": ok(results)}
        print(json.dumps(line, ensure_ascii=False), flush=True)


def ok(results: list[Result]) -> bool:
    return not any(r.verdict == "FAIL" for r in results)
