"""``claimx adapt``: institutional exports in, claim packets (JSON) out.

A batch runs every file and reports every failure, one line each on stderr in the form
``FILE:line N:loc: code: message`` (no traceback, no patient data); stdout carries one JSON
document, a list of ``{file, format, packets}`` or ``{file, error}``. Exit status: 0 all
adapted, 1 some file failed, 2 usage error.

Without ``--issuer`` the run is a preview: packets carry :data:`PLACEHOLDER_ISSUER` (the
packet schema has no room for a mark, so the last stderr line says so) and ``claimx sign``
refuses them; the old silent default, ``demo.hospital``, was signable for police files too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from gateway.core.errors import AdapterError, ClaimxError
from gateway.core.types import hex32, member_id, parse_hex32

USAGE_ERROR = 2
PLACEHOLDER_ISSUER = "0x" + "00" * 32
"""The issuer of packets adapted without --issuer: no member has it, `claimx sign` refuses it."""
_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
_PSEUDONYM = re.compile(r"^[0-9a-f]{64}$")


def issuer_id(text: str) -> str:
    """``0x`` member id as given, or the id derived from a member slug (``hospital.ruijin``)."""
    if text.startswith(("0x", "0X")):
        return hex32(parse_hex32(text, "issuer"))
    if not _SLUG.match(text):
        raise ValueError("issuer must be a member slug (e.g. hospital.ruijin) or a 0x id")
    return hex32(member_id(text))


def _usage(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=USAGE_ERROR)


def _list_formats() -> None:
    from rich.console import Console
    from rich.table import Table

    from adapters.registry import adapters

    table = Table(title="claimx adapt formats")
    table.add_column("format")
    table.add_column("packet kinds")
    table.add_column("extensions")
    table.add_column("description")
    for name, adapter in adapters().items():
        table.add_row(name, ", ".join(adapter.kinds), " ".join(adapter.extensions),
                      adapter.description)
    Console(width=160).print(table)


def _one(path: Path, fmt: str, issuer: str, subject: str | None = None) -> dict[str, Any]:
    from adapters import adapt_bytes, detect_format
    from adapters.registry import AdapterContext

    """Adapt one file; every failure comes back as an error entry, never as an exception."""
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError:
        error: ClaimxError = AdapterError("cannot read file", code="unreadable_file", file=name)
        return {"file": name, "error": error.to_dict(), "line": str(error)}
    ctx = AdapterContext(issuer=issuer, file=name, subject=subject)
    try:
        chosen = detect_format(raw) if fmt == "auto" else fmt
        packets = adapt_bytes(raw, chosen, ctx)
    except AdapterError as exc:
        exc.file = exc.file or name
        exc.detail["file"] = exc.file
        return {"file": name, "error": exc.to_dict(), "line": str(exc)}
    except ClaimxError as exc:
        return {"file": name, "error": exc.to_dict(), "line": f"{name}: {exc.code}: {exc.msg}"}
    except Exception as exc:  # noqa: BLE001 - an adapter bug: report the type, never the data
        code = "internal_error"
        return {"file": name, "error": {"code": code, "message": type(exc).__name__},
                "line": f"{name}: {code}: {type(exc).__name__} (please report)"}
    return {"file": name, "format": chosen, "packets": [p.to_obj() for p in packets]}


def adapt(
    files: Annotated[list[Path] | None, typer.Argument(
        help="export files to adapt (HL7 v2, FHIR, CSV bill, police, death certificate, "
        "PDF/JPEG/PNG/HEIC)", show_default=False)] = None,
    format: Annotated[str, typer.Option(
        "--format", "-f", help="format name from --list, or auto to detect from content")
    ] = "auto",
    list_: Annotated[bool, typer.Option("--list", help="list formats and packet kinds")] = False,
    issuer: Annotated[str | None, typer.Option(
        help="publishing member: slug (hospital.ruijin, police.shanghai) or 0x member id; "
        "required to sign the packets (omitted: a placeholder issuer, for a preview)",
        show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(
        help="also write each file's packets to OUT/<file name>.packets.json")] = None,
    subject: Annotated[str | None, typer.Option(
        help="pseudonym (64 hex, from `claimx pseudonym`) of the person the files concern: "
        "the subject of attachments whose text names nobody; a document naming someone "
        "else is refused")] = None,
) -> None:
    """Turn institutional exports into claim packets and print them as JSON.

    Exit status: 0 every file adapted, 1 some file failed (one stderr line each), 2 usage.

    \b
    Examples:
      claimx adapt --list
      claimx adapt --issuer hospital.ruijin export.hl7 bill.csv > packets.json
      claimx adapt --issuer police.shanghai --format police report.xml
      claimx adapt export.hl7        # preview: placeholder issuer, not signable
    """
    if list_:
        _list_formats()
        return
    if not files:
        raise _usage("give one or more FILEs, or --list")
    from adapters.registry import adapters
    if format != "auto" and format not in adapters():
        raise _usage(f"unknown format {format!r}; known: auto, {', '.join(adapters())}")
    try:
        issuer_hex = issuer_id(issuer) if issuer is not None else PLACEHOLDER_ISSUER
    except ValueError as exc:
        raise _usage(str(exc)) from None
    if subject is not None and not _PSEUDONYM.match(subject):
        raise _usage("--subject must be a 64-hex-digit pseudonym (see `claimx pseudonym`)")
    results = [_one(path, format, issuer_hex, subject) for path in files]
    failed = 0
    for result in results:
        line = result.pop("line", None)
        if line is not None:
            failed += 1
            typer.echo(line, err=True)
    if out is not None:
        _write(out, results)
    typer.echo(json.dumps(results, ensure_ascii=False, indent=2))
    if issuer is None:
        typer.echo(f"note: no --issuer: the packets carry the placeholder issuer "
                   f"{PLACEHOLDER_ISSUER[:10]}…, fine for a preview; `claimx sign` refuses "
                   "them, so pass --issuer SLUG (e.g. hospital.ruijin) to publish", err=True)
    if failed:
        raise typer.Exit(code=1)


def _write(out: Path, results: list[dict[str, Any]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for result in results:
        if "packets" in result:
            target = out / f"{Path(result['file']).name}.packets.json"
            target.write_text(json.dumps(result["packets"], ensure_ascii=False, indent=2) + "\n",
                              encoding="utf-8")



def pseudonym(
    scheme: Annotated[str, typer.Option(
        help="cn_resident_id, passport:<ISO country> (passport:GB) or mrn:<assigning "
        "authority> (CSV bills use mrn:<issuer 0x member id>)")] = "cn_resident_id",
) -> None:
    """Print the subject pseudonym of each identifier read from stdin, one per line.

    The same keyed HMAC the adapters apply (key: CLAIMX_PSEUDONYM_KEY), so an insurer can
    open a claim for the claimant whose records hospitals and police publish. Identifiers are
    read from stdin, never from the command line, which shells and `ps` keep. Example:
    `printf '%s\\n' "$ID" | claimx pseudonym`.
    """
    from adapters.pseudonym import pseudonym_key, pseudonymise

    try:
        key = pseudonym_key()
    except AdapterError as exc:
        raise _usage(exc.msg) from None
    failed = 0
    for n, line in enumerate(typer.get_text_stream("stdin"), start=1):
        if not line.strip():
            continue
        try:
            typer.echo(pseudonymise(scheme, line, loc=("line", n), key=key))
        except AdapterError as exc:
            failed += 1
            typer.echo(f"stdin:line {n}: {exc.code}: {exc.msg}", err=True)
    if failed:
        raise typer.Exit(code=1)
