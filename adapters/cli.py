"""``claimx adapt``: institutional exports in, claim packets (JSON) out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from adapters import AdapterContext, adapt_bytes
from adapters.registry import adapters
from gateway.errors import AdapterError, ClaimxError
from gateway.types import hex32, member_id, parse_hex32


def adapt(
    files: Annotated[list[Path] | None, typer.Argument(help="export files to map")] = None,
    fmt: Annotated[str, typer.Option("--format", help="adapter name, or auto to recognise "
                                     "the format from content")] = "auto",
    list_: Annotated[bool, typer.Option("--list", help="list formats and kinds")] = False,
    issuer: Annotated[str, typer.Option(help="publishing member: slug or 0x id")] = "demo.hospital",
) -> None:
    """Map exports into unsigned claim packets (JSON on stdout; sign with `claimx sign`).

    Every file is tried; each failure prints one line `FILE:line N:location: code: message`
    on stderr (no patient data), and the exit status is 1 if any file failed.
    """
    if list_:
        table = Table("format", "kinds", "description")
        for a in adapters().values():
            table.add_row(a.name, ", ".join(a.kinds), a.description)
        Console().print(table)
        return
    if not files:
        raise typer.BadParameter("give one or more FILES, or --list")
    try:
        member = hex32(parse_hex32(issuer) if issuer.startswith("0x") else member_id(issuer))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    out, failed = [], 0
    for path in files:
        try:
            raw = path.read_bytes()
            packets = adapt_bytes(raw, AdapterContext(issuer=member, file=path.name), fmt)
            out.append({"file": str(path), "packets": [p.to_obj() for p in packets]})
        except AdapterError as exc:
            failed += 1
            exc.file = exc.file or path.name
            typer.echo(str(exc) if exc.file in str(exc) else f"{path.name}: {exc}", err=True)
        except ClaimxError as exc:
            failed += 1
            typer.echo(f"{path.name}: {exc.code}: {exc.msg}", err=True)
        except OSError as exc:
            failed += 1
            typer.echo(f"{path}: cannot read: {exc.strerror}", err=True)
    typer.echo(json.dumps(out, indent=2, ensure_ascii=False))
    if failed:
        raise typer.Exit(1)
