"""The members' client without a gateway: stream resumption and waiting for an anchor, on
httpx's in-memory transport (pure unit tests of the client's own logic; the client against a
real `claimx serve` is tests/e2e/test_publish_client.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from gateway.client import ApiError, Client


def _frame(event_id: int) -> bytes:
    data = {"id": event_id, "type": "record.received", "claim_id": None,
            "at": "2026-11-03T09:00:00+00:00", "data": {}}
    return f"id: {event_id}\nevent: record.received\ndata: {json.dumps(data)}\n\n".encode()


class _Dropping(httpx.SyncByteStream):
    """An SSE body that sends ``ids`` and then loses the connection."""

    def __init__(self, ids: list[int]) -> None:
        self.ids = ids

    def __iter__(self) -> Iterator[bytes]:
        yield b"retry: 2000\n\n: keepalive\n\n"
        for i in self.ids:
            yield _frame(i)
        raise httpx.ReadError("connection reset")


def test_a_dropped_stream_resumes_after_the_highest_id_seen_not_the_last() -> None:
    asked: list[str] = []
    bodies = [[5, 7, 6], [8]]  # 6 committed late: it arrives after 7 with a lower id

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers["Last-Event-ID"])
        return httpx.Response(200, headers={"Content-Type": "text/event-stream"},
                              stream=_Dropping(bodies.pop(0) if bodies else []))

    cx = Client("http://gw", "cx1_x", transport=httpx.MockTransport(handler),
                sleep=lambda _s: None)
    stream = cx.stream_events(4)
    assert [next(stream).id for _ in range(4)] == [5, 7, 6, 8]
    stream.close()
    assert asked == ["4", "7"]  # resuming from 6 would have sent 7 twice


def test_a_stream_that_keeps_failing_ends_in_an_api_error() -> None:
    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=_Dropping([]))

    cx = Client("http://gw", "cx1_x", transport=httpx.MockTransport(handler), retries=2,
                sleep=lambda _s: None)
    with pytest.raises(ApiError) as lost:
        next(cx.stream_events())
    assert lost.value.code == "unreachable"


def test_wait_anchored_polls_metadata_until_anchored_and_names_a_rejection() -> None:
    statuses = {"aa": ["accepted", "logged", "anchored"], "bb": ["accepted", "rejected"]}
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        digest = request.url.path.rsplit("/", 1)[1]
        return httpx.Response(200, json={"digest": digest, "status": statuses[digest].pop(0),
                                         "reject_code": "key_revoked"})

    cx = Client("http://gw", "cx1_x", transport=httpx.MockTransport(handler),
                sleep=lambda _s: None)
    assert cx.wait_anchored("aa")["status"] == "anchored"
    assert paths == ["/v1/records/aa"] * 3  # metadata only: no payload read is logged
    with pytest.raises(ApiError) as rejected:
        cx.wait_anchored("bb")
    assert rejected.value.code == "record_rejected" and "key_revoked" in str(rejected.value)


def test_wait_anchored_gives_up_after_its_timeout() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"digest": "cc", "status": "logged"})

    cx = Client("http://gw", "cx1_x", transport=httpx.MockTransport(handler),
                sleep=lambda _s: None)
    with pytest.raises(ApiError) as late:
        cx.wait_anchored("cc", timeout=0)
    assert late.value.code == "not_anchored"


def test_without_a_token_no_authorization_header_is_sent() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        return httpx.Response(201, json={"subject": "s"})

    with Client("http://gw", transport=httpx.MockTransport(handler)) as anonymous:
        anonymous.withdraw_by_claimant({"withdrawal": {}, "claimant_signature": {}})
    assert seen == [None]
