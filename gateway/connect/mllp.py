"""HL7 v2 over MLLP (HL7 v2 Minimal Lower Layer Protocol, release 2) with original-mode ACKs.

The listener is python-hl7's asyncio ``hl7.mllp.start_hl7_server``; blocks are read as bytes so
that the adapters decode them with the character set MSH-18 declares. Each connection is served
in order (the next block is read only once the previous one is acknowledged); connections run
side by side.

The ACK goes back only once the message's records are committed to the outbox:

* ``MSA-1 = AA``: accepted; one ``ZCX`` segment per record, ``ZCX|<n>|<sha256 digest>|<kind>``
  (MSA-3 is an 80-character text field in v2.5, too short for several digests, so it only
  says how many records there are);
* ``AE`` (the content is wrong) or ``AR`` (message type, version or framing not accepted): an
  ``ERR`` segment with ERR-2 the location (segment^sequence^field^repetition^component),
  ERR-3 the HL7 table 0357 code, ERR-4 ``E``, ERR-5 the adapter's code and ERR-8 its message,
  which never holds a value from the message, so no patient data goes back on the wire.

A re-sent message (same sending facility, MSH-10 and bytes) is answered from the outbox.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime

import hl7.mllp

from adapters.hl7v2.parse import Segment, decode, split_messages
from gateway.connect.intake import Intake, source_key
from gateway.connect.outbox import Stored
from gateway.core.errors import AdapterError

log = logging.getLogger("claimx.connect.mllp")

REJECT_CODES = frozenset({"unsupported_message", "unsupported_version", "not_hl7", "missing_msh",
                          "bad_separators", "too_large"})
"""Adapter codes answered ``AR`` (the message is not taken at all) rather than ``AE``."""
HL7_ERROR = {"missing_field": "101", "missing_segment": "101", "missing_identifier": "101",
             "unsupported_message": "200", "unsupported_version": "203", "not_hl7": "100",
             "missing_msh": "100", "bad_segment": "100", "bad_date": "102",
             "bad_datetime": "102", "bad_decimal": "102", "unknown_id_type": "103"}
"""Adapter code -> HL7 table 0357 (message error condition codes); anything else is 207."""
_0357 = {"100": "Segment sequence error", "101": "Required field missing",
         "102": "Data type error", "103": "Table value not found",
         "200": "Unsupported message type", "203": "Unsupported version id",
         "207": "Application internal error"}
_UNSAFE = re.compile(r"[|^~\\&\r\n]")


class MllpListener:
    """Serves MLLP connections, taking each message through the intake."""

    def __init__(self, intake: Intake, on_stored: Callable[[], None], *,
                 limit: int = 10 << 20) -> None:
        self.intake = intake
        self.on_stored = on_stored
        self.limit = limit
        self.counts = {"AA": 0, "AE": 0, "AR": 0}

    async def start(self, host: str, port: int) -> asyncio.Server:
        server: asyncio.Server = await hl7.mllp.start_hl7_server(
            self._serve, host, port, limit=self.limit)
        return server

    async def _serve(self, reader: hl7.mllp.HL7StreamReader,
                     writer: hl7.mllp.HL7StreamWriter) -> None:
        try:
            while True:
                try:
                    block = await reader.readblock()
                except asyncio.IncompleteReadError:
                    return  # the peer closed
                except hl7.mllp.InvalidBlockError:
                    log.warning("MLLP block without a start character; connection closed")
                    return
                except ValueError:  # over the limit: python-hl7 dropped the block
                    ack = reject_ack(AdapterError("message exceeds the size limit",
                                                  code="too_large", loc=("MSH",)))
                else:
                    try:
                        ack = await asyncio.to_thread(self.handle, block)
                    except Exception:  # noqa: BLE001 - e.g. the outbox's disk is full
                        log.exception("message not stored; connection closed without an ACK "
                                      "so that the engine sends it again")
                        return
                writer.writeblock(ack)
                await writer.drain()
        except (ConnectionError, OSError):
            log.info("MLLP connection lost")
        finally:
            writer.close()

    def handle(self, block: bytes) -> bytes:
        """The ACK for one message, after its records are durably in the outbox."""
        try:
            text, codec = decode(block)
            msh = split_messages(text, codec)[0][0]
        except AdapterError as exc:
            self.counts["AR"] += 1
            return reject_ack(exc)
        key = source_key("hl7", block, msh.text(4, 1, 1), msh.text(10))
        try:
            stored = self.intake.take(block, key=key, channel="mllp", fmt="hl7v2")
        except AdapterError as exc:
            status = "AR" if exc.code in REJECT_CODES else "AE"
            self.counts[status] += 1
            log.info("MLLP message refused: %s %s", status, exc.code)
            return build_ack(msh, status, text, codec, error=exc)
        self.counts["AA"] += 1
        if not stored.replayed:
            self.on_stored()
        return build_ack(msh, "AA", text, codec, stored=stored)


def build_ack(msh: Segment, status: str, text: str, codec: str, *,
              stored: Stored | None = None, error: AdapterError | None = None) -> bytes:
    """An original-mode ACK answering ``msh`` in the message's own character set."""
    version = msh.text(12, 1, 1) or "2.5"
    event = msh.text(9, 1, 2)
    header = ["MSH", "^~\\&", "CLAIMX", _safe(msh.text(6, 1, 1)), _safe(msh.text(3, 1, 1)),
              _safe(msh.text(4, 1, 1)), _now(), "", f"ACK^{_safe(event)}^ACK",
              _control_id(), msh.text(11, 1, 1) or "P", _safe(version)]
    charset = msh.text(18, 1, 1)
    if charset:
        header += [""] * 5 + [_safe(charset)]
    segments = ["|".join(header)]
    control = _safe(msh.text(10))
    if stored is not None:
        n = len(stored.digests)
        segments.append(f"MSA|AA|{control}|{n} record(s) in the claimx outbox")
        segments += [f"ZCX|{i}|{d}|{k}"
                     for i, (d, k) in enumerate(zip(stored.digests, stored.kinds, strict=True),
                                                start=1)]
    else:
        assert error is not None
        segments.append(f"MSA|{status}|{control}|{_safe(error.code)}")
        segments.append(err_segment(error, text))
    return ("\r".join(segments) + "\r").encode(codec, errors="replace")


def reject_ack(error: AdapterError) -> bytes:
    """An ``AR`` for a block whose MSH could not be read (so nothing of it can be echoed)."""
    segments = ["|".join(["MSH", "^~\\&", "CLAIMX", "", "", "", _now(), "", "ACK",
                          _control_id(), "P", "2.5"]),
                f"MSA|AR||{_safe(error.code)}", err_segment(error, "")]
    return ("\r".join(segments) + "\r").encode()


def err_segment(error: AdapterError, text: str) -> str:
    """ERR (v2.5 layout): ERR-2 location, ERR-3 table 0357 code, ERR-4 severity, ERR-5 the
    adapter's code, ERR-8 its message; ERR-1 (the v2.3 location) is left empty."""
    loc = list(error.loc)
    seg = str(loc[0]) if loc and isinstance(loc[0], str) else ""
    nums = [str(p) for p in loc[1:4]]
    sequence = _occurrence(text, seg, error.line) if seg else ""
    erl = "^".join([_safe(seg), sequence, *nums]).rstrip("^")
    code = HL7_ERROR.get(error.code, "207")
    return "|".join(["ERR", "", erl, f"{code}^{_0357[code]}^HL70357", "E",
                     f"{_safe(error.code)}^^CLAIMX", "", "", _safe(error.msg)[:250]])


def _occurrence(text: str, name: str, line: int | None) -> str:
    """Which ``name`` segment (1-based) the error's line is, for ERL-2."""
    if line is None or not text:
        return "1" if name == "MSH" else ""
    lines = re.split(r"\r\n|\r|\n", text)[:line]
    return str(max(1, sum(1 for s in lines if s.lstrip("\x0b\ufeff").startswith(name))))


def _safe(value: str) -> str:
    """A value placed in an ACK field: no separators, no escapes, no segment breaks."""
    return _UNSAFE.sub(" ", value)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")


def _control_id() -> str:
    return "CX" + datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")
