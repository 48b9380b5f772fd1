"""Prometheus metrics at ``/metrics`` (prometheus-client): what an operator alerts on.

Requests by route template, method and status; records accepted and refused; the log size,
anchored size and anchor lag; chain transport failures and the circuit breaker's state;
database outages; webhook backlog and parked deliveries. Counts and states only: no member,
subject or record is ever a label. Each app has its own registry, so several apps in one
process (tests) do not collide.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.services.health import database_check

if TYPE_CHECKING:
    from gateway.services.wiring import Services

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BREAKER_STATES = ("closed", "half_open", "open")


class Metrics:
    """The registry of one app and the metrics updated while serving."""

    def __init__(self, services: Services) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("claimx_http_requests", "HTTP requests answered",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("claimx_http_request_seconds", "time to answer a request",
                                 ["route"], registry=self.registry,
                                 buckets=(0.005, 0.02, 0.1, 0.5, 1, 2.5, 5, 10))
        self.database_errors = Counter("claimx_database_errors",
                                       "requests refused because the database was down",
                                       registry=self.registry)
        self.registry.register(_StateCollector(services))

    def render(self) -> bytes:
        """The text exposition; the state collector asks the database (bounded by its pool)."""
        return generate_latest(self.registry)


class _StateCollector(Collector):
    """Values read at scrape time from the publisher, the chain breaker and the database."""

    def __init__(self, services: Services) -> None:
        self.sv = services

    def collect(self) -> Iterator[Any]:
        sv = self.sv
        yield _counter("claimx_records_accepted", "new records stored by this process",
                       sv.publisher.accepted_total)
        yield _counter("claimx_records_refused", "envelopes refused by this process",
                       sv.publisher.rejected_total)
        yield _counter("claimx_chain_errors", "chain transport failures",
                       sv.chain.breaker.failures_total)
        state = GaugeMetricFamily("claimx_chain_circuit_state",
                                  "1 for the chain circuit breaker's current state",
                                  labels=["state"])
        current = sv.chain.breaker.state
        for name in BREAKER_STATES:
            state.add_metric([name], 1.0 if name == current else 0.0)
        yield state
        db = database_check(sv)
        up = GaugeMetricFamily("claimx_database_up", "1 when the database answered this scrape")
        up.add_metric([], 1.0 if db["database"]["ok"] else 0.0)
        yield up
        if not db["database"]["ok"]:
            return
        anchor, push = db["anchor"], db["push"]
        yield _gauge("claimx_log_size", "leaves in the evidence log", anchor["log_size"])
        yield _gauge("claimx_anchored_size", "leaves covered by the latest head on chain",
                     anchor["anchored_size"])
        yield _gauge("claimx_anchor_lag", "leaves not yet anchored on chain", anchor["lag"])
        age = anchor["oldest_unanchored_age_seconds"]
        yield _gauge("claimx_oldest_unanchored_seconds",
                     "age of the oldest accepted record not yet anchored (0 when none)", age or 0)
        yield _gauge("claimx_webhook_backlog", "webhook deliveries waiting to be sent",
                     push["pending"])
        yield _gauge("claimx_webhook_parked", "webhook deliveries parked after their attempts",
                     push["parked"])


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc)
    g.add_metric([], float(value))
    return g


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    c = CounterMetricFamily(name, doc)
    c.add_metric([], float(value))
    return c


class RequestMetrics:
    """ASGI middleware counting every answered request by its route template (never the
    raw path: digests and ids would make a label per record)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), [500]

        async def send_status(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(template, scope.get("method", ""), str(status[0])).inc()
            self.metrics.latency.labels(template).observe(time.perf_counter() - start)
