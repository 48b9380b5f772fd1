"""ACK and ERR segments built from adapter errors: location as ERL, table 0357 codes."""

from __future__ import annotations

from adapters.hl7v2.parse import decode, split_messages
from gateway.connect.mllp import build_ack, err_segment, reject_ack
from gateway.connect.outbox import Stored
from gateway.core.errors import AdapterError

MSG = (b"MSH|^~\\&|HIS|RJH|CLAIMX|PICC|20240305160000||ADT^A03|C1|P|2.5\r"
       b"PID|1||X^^^A||N^M\rOBX|1|ST|A||v\rOBX|2|ST|B||w\r")


def _msh() -> tuple[object, str, str]:
    text, codec = decode(MSG)
    return split_messages(text, codec)[0][0], text, codec


def test_err_locates_segment_occurrence_field_and_component() -> None:
    _, text, _ = _msh()
    exc = AdapterError("value is not a date", code="bad_date", loc=("OBX", 5, 1, 2), line=4)
    err = err_segment(exc, text).split("|")
    assert err[2] == "OBX^2^5^1^2"
    assert err[3] == "102^Data type error^HL70357" and err[4] == "E"
    assert err[5] == "bad_date^^CLAIMX" and err[8] == "value is not a date"


def test_aa_lists_each_digest_in_a_zcx_segment() -> None:
    msh, text, codec = _msh()
    ack = build_ack(msh, "AA", text, codec,  # type: ignore[arg-type]
                    stored=Stored(("ab" * 32, "cd" * 32), ("a", "b"), False)).decode()
    segs = ack.split("\r")
    assert segs[0].split("|")[8] == "ACK^A03^ACK" and segs[0].split("|")[5] == "RJH"
    assert segs[1].startswith("MSA|AA|C1|")
    assert segs[2:4] == [f"ZCX|1|{'ab' * 32}|a", f"ZCX|2|{'cd' * 32}|b"]


def test_separators_in_echoed_values_cannot_inject_segments() -> None:
    exc = AdapterError("bad|value\rMSA|AA", code="x", loc=("PID",))
    assert "\r" not in err_segment(exc, "") and err_segment(exc, "").count("|") == 8
    assert reject_ack(exc).count(b"\r") == 3
