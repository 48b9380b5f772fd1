"""`claimx connect` over MLLP against a real `claimx serve`: ACKs after the outbox commit,
located ERR segments, re-sent messages answered from the outbox, charsets, connections."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.connect.support import Connected, log_size, run_agent, segments, wait_for
from tests.support import ASSETS, Served, serve_gateway

pytestmark = pytest.mark.slow
HL7 = ASSETS / "hl7"


def _message(name: str) -> bytes:
    """A test message with ``\\r`` segment ends, as MLLP carries them."""
    raw = (HL7 / name).read_bytes().removeprefix(b"\xef\xbb\xbf").strip(b"\x0b\x1c\r\n ")
    return b"\r".join(raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")) + b"\r"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Served:  # type: ignore[misc]
    with serve_gateway(tmp_path_factory.mktemp("gw")) as served:
        yield served


@pytest.fixture
def agent(tmp_path: Path, gateway: Served) -> Connected:  # type: ignore[misc]
    with run_agent(tmp_path, gateway) as connected:
        yield connected


def test_aa_carries_the_digests_and_the_records_reach_the_log(agent: Connected,
                                                               gateway: Served) -> None:
    before = log_size(gateway)
    ack = segments(agent.send(_message("cn_adt_a03_v24.hl7")))
    assert ack["MSA"][0][1:3] == ["AA", "DIS20240305007"]
    assert ack["MSH"][0][8] == "ACK^A03^ACK"
    digests = [z[2] for z in ack["ZCX"]]
    assert len(digests) == 1 and len(digests[0]) == 64
    wait_for(lambda: log_size(gateway) == before + 1, 30, "the record on the log")
    status = agent.status()
    assert status["sent"] == 1 and status["queued"] == 0 and status["failed"] == 0


def test_a_resent_message_is_answered_from_the_outbox_not_signed_again(
        agent: Connected, gateway: Served) -> None:
    before = log_size(gateway)
    msg = _message("cn_oru_r01_v251.hl7")
    first = segments(agent.send(msg))
    again = segments(agent.send(msg))
    assert first["MSA"][0][1] == again["MSA"][0][1] == "AA"
    assert [z[2] for z in first["ZCX"]] == [z[2] for z in again["ZCX"]]
    n = len(first["ZCX"])
    wait_for(lambda: agent.status()["sent"] == n, 30, "publication")
    assert log_size(gateway) == before + n


def test_unmapped_message_types_get_ar_with_a_located_err(agent: Connected) -> None:
    ack = segments(agent.send(_message("public/em_adt_a08_v23.hl7")))
    msa, err = ack["MSA"][0], ack["ERR"][0]
    assert msa[1] == "AR"
    assert err[2].startswith("MSH^1^9")
    assert err[3].startswith("200^")
    assert err[5].startswith("unsupported_message^")


def test_a_content_error_gets_ae_with_its_location_and_no_patient_data(
        agent: Connected) -> None:
    msg = _message("cn_adt_a03_v24.hl7").replace(b"|20240305160000+0800|", b"||", 1)
    ack = agent.send(msg)
    fields = segments(ack)
    assert fields["MSA"][0][1] == "AE"
    assert fields["ERR"][0][2].startswith("MSH^1^7")
    assert fields["ERR"][0][3].startswith("101^")
    for value in ("310115197506150028", "P12345678", "王", "芳"):
        assert value.encode() not in ack


def test_gb18030_declared_in_msh18_is_read_and_echoed(agent: Connected) -> None:
    raw = _message("cn_dft_p03_gb18030.hl7")
    assert b"|GB 18030-2000" in raw
    ack = agent.send(raw)
    fields = segments(ack, "gb18030")
    assert fields["MSA"][0][1] == "AA", ack
    assert fields["MSH"][0][-1] == "GB 18030-2000"
    assert "武汉协和医院" in fields["MSH"][0][5]  # MSH-6 echoes the sending facility


def test_several_connections_at_once_each_acknowledged(agent: Connected,
                                                       gateway: Served) -> None:
    base = _message("cn_adt_a01_v251.hl7")
    results: dict[int, bytes] = {}

    def client(n: int) -> None:
        for i in range(5):
            control = f"PAR{n}X{i}".encode()
            msg = base.replace(b"|ADT^A01", b"|ADT^A01", 1)
            head, rest = msg.split(b"\r", 1)
            fields = head.split(b"|")
            fields[9] = control
            results[n * 10 + i] = agent.send(b"|".join(fields) + b"\r" + rest)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 15
    for key, ack in results.items():
        msa = segments(ack)["MSA"][0]
        assert msa[1:3] == ["AA", f"PAR{key // 10}X{key % 10}"]


def test_every_public_sample_gets_an_ack_and_every_refusal_a_located_err(
        agent: Connected) -> None:
    answers = {}
    for path in sorted((HL7 / "public").glob("*.hl7")):
        ack = segments(agent.send(_message(f"public/{path.name}")))
        status = ack["MSA"][0][1]
        answers[path.name] = status
        assert status in ("AA", "AE", "AR"), path.name
        if status == "AA":
            assert ack.get("ZCX"), path.name
        else:
            err = ack["ERR"][0]
            assert err[2] and err[3] and err[5], (path.name, err)
    assert "AA" in answers.values() and "AR" in answers.values()


def test_a_block_that_is_not_hl7_gets_ar_and_the_connection_goes_on(agent: Connected) -> None:
    ack = segments(agent.send(b"hello, this is not HL7\r"))
    assert ack["MSA"][0][1] == "AR"
    assert ack["ERR"][0][5].startswith("not_hl7^")
    assert segments(agent.send(_message("cn_adt_a01_v251.hl7")))["MSA"][0][1] == "AA"


def test_a_record_the_gateway_refuses_is_failed_with_its_error_kept(
        tmp_path: Path, gateway: Served) -> None:
    from gateway.core.keys import SigningKey

    stranger = tmp_path / "unregistered.pem"  # a key the registry does not know
    stranger.write_bytes(SigningKey.generate().to_pem())
    before = log_size(gateway)
    with run_agent(tmp_path / "stranger", gateway, key=stranger) as agent:
        assert segments(agent.send(_message("cn_adt_a01_v251.hl7")))["MSA"][0][1] == "AA"
        wait_for(lambda: agent.status()["failed"] == 1, 30, "the gateway's refusal")
        failure = agent.status()["recent_failures"][0]["error"]  # type: ignore[index]
        assert failure["status"] in (401, 403, 422) and failure["code"]
    assert log_size(gateway) == before
