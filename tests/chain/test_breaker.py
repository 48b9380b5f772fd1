"""The chain's circuit breaker: opens on repeated or slow failures, probes, closes on an answer."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from gateway.chain.breaker import CircuitBreaker
from gateway.chain.client import Chain
from gateway.core.errors import ChainError, ChainUnavailableError


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_opens_after_threshold_fails_fast_and_probes_once() -> None:
    clock = Clock()
    b = CircuitBreaker(threshold=3, probe_after=2.0, clock=clock)
    for _ in range(2):
        b.before()
        b.failure(OSError())
    assert b.state == "closed"
    b.before()
    b.failure(OSError())
    assert b.state == "open" and b.last_error == "OSError"
    with pytest.raises(ChainUnavailableError) as err:
        b.before()
    assert err.value.http_status == 503 and err.value.retry_after == 2
    clock.t = 2.0
    b.before()  # the probe
    assert b.state == "half_open"
    with pytest.raises(ChainUnavailableError):
        b.before()  # only one probe at a time
    b.failure(OSError())  # probe failed: open again for probe_after
    clock.t = 3.0
    with pytest.raises(ChainUnavailableError):
        b.before()
    clock.t = 4.0
    b.before()
    b.success()
    assert b.state == "closed"
    b.before()


def test_a_timeout_opens_at_once() -> None:
    b = CircuitBreaker(threshold=3)
    b.failure(TimeoutError(), timed_out=True)
    assert b.state == "open"


def test_silent_node_costs_one_timeout_then_fails_fast() -> None:
    """A node that accepts connections and never answers (like a SIGSTOPped anvil)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    port = server.getsockname()[1]
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        start = time.monotonic()
        with pytest.raises(ChainError) as err:  # at start-up: the "cannot reach" message
            Chain.connect(f"http://127.0.0.1:{port}", timeout=0.5)
        assert err.value.code == "chain_unreachable"
        assert time.monotonic() - start < 2  # one short timeout, no hidden retries
    finally:
        stop.set()
        t.join()
        for c in accepted:
            c.close()
        server.close()


@pytest.mark.anvil
def test_breaker_counts_real_transport_failures(anvil_url: str) -> None:
    """A guarded connection to a closed port fails fast and opens after the threshold."""
    live = Chain.connect(anvil_url, timeout=1)
    provider = live.w3.provider
    provider.endpoint_uri = "http://127.0.0.1:9"  # type: ignore[attr-defined]
    for _ in range(live.breaker.threshold):
        with pytest.raises(ChainUnavailableError):
            live.now()
    assert live.breaker.state == "open"
    start = time.monotonic()
    with pytest.raises(ChainUnavailableError):
        live.now()
    assert time.monotonic() - start < 0.1
    provider.endpoint_uri = anvil_url  # type: ignore[attr-defined]
    live.breaker.probe_after = 0.0
    assert live.now() > 0 and live.breaker.state == "closed"


def _until_answered(chain: Chain, within: float) -> float:
    """Call the node as traffic would (every 0.1 s) until it answers; the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        try:
            chain.now()
            return time.monotonic() - start
        except ChainError:  # ChainUnavailableError while open, a time-out while probing
            time.sleep(0.1)
    pytest.fail(f"the breaker let no call through within {within} s of the node answering")


@pytest.mark.anvil
@pytest.mark.slow  # its own anvil, frozen then killed
def test_traffic_flows_again_within_5_s_of_the_node_answering() -> None:
    """Frozen (SIGSTOP) and resumed, then killed and restarted on the same port: each time
    calls go through again within 5 s of the node answering, with the default probe period."""
    import signal

    from tests.support import free_port, own_anvil

    port = free_port()
    with own_anvil(port=port) as node:
        anvil, chain = node.proc, Chain.connect(node.url, timeout=1)
        anvil.send_signal(signal.SIGSTOP)
        while chain.breaker.state == "closed":
            with pytest.raises(ChainError):
                chain.now()
        time.sleep(1.5)  # mid-way through the breaker's probe period
        anvil.send_signal(signal.SIGCONT)
        assert _until_answered(chain, 10) < 5
        assert chain.breaker.state == "closed"
        anvil.kill()
        anvil.wait(10)
        while chain.breaker.state == "closed":
            with pytest.raises(ChainError):
                chain.now()
        with own_anvil(port=port):  # returns once the new node answers
            assert _until_answered(chain, 10) < 5
            assert chain.breaker.state == "closed"
