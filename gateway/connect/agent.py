"""The ``claimx connect`` agent: the inputs, the outbox and the publisher running together.

The MLLP listener runs on the main asyncio loop; the publisher, the watch folder, the event
stream follower and the FHIR endpoint (uvicorn, on a loop of its own) each run in a thread.
SIGTERM or SIGINT stops them all; a ``kill -9`` loses nothing either, since nothing is
acknowledged before it is committed to the outbox.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.connect.config import ConnectConfig
from gateway.connect.intake import Intake
from gateway.connect.outbox import Outbox
from gateway.connect.publisher import Publisher
from gateway.core.keys import SigningKey

log = logging.getLogger("claimx.connect")


@dataclass
class Agent:
    config: ConnectConfig
    key: SigningKey
    outbox: Outbox = field(init=False)
    publisher: Publisher = field(init=False)
    intake: Intake = field(init=False)
    _stops: list[Callable[[], None]] = field(default_factory=list, init=False)
    _threads: list[threading.Thread] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        c = self.config
        self.outbox = Outbox(c.outbox)
        self.intake = Intake(self.outbox, self.key, c.issuer)
        self.publisher = Publisher(self.outbox, c.gateway, c.token, batch=c.batch)

    def _thread(self, name: str, run: Callable[[], None], stop: Callable[[], None]) -> None:
        t = threading.Thread(target=run, name=name, daemon=True)
        t.start()
        self._threads.append(t)
        self._stops.append(stop)

    def start_threads(self) -> None:
        """Publisher, watch folder, event follower and FHIR endpoint, as configured."""
        c = self.config
        self._thread("publisher", self.publisher.run, self.publisher.stop)
        if c.watch is not None:
            from gateway.connect.watch import Watcher

            watcher = Watcher(c.watch, self.intake, self.publisher.wake, settle=c.settle_seconds,
                              max_bytes=c.max_body)
            self._thread("watch", watcher.run, watcher.stop)
        if c.follow_events:
            from gateway.connect.requests import RequestFollower

            follower = RequestFollower(self.outbox, c.gateway, c.token, c.on_request)
            self._thread("events", follower.run, follower.stop)
        if c.fhir is not None:
            import uvicorn

            from gateway.connect.fhir_endpoint import create_app

            app = create_app(self.intake, self.publisher.wake, c.max_body)
            server = uvicorn.Server(uvicorn.Config(app, host=c.fhir.host, port=c.fhir.port,
                                                   log_level="warning", lifespan="off"))

            def stop_fhir() -> None:
                server.should_exit = True

            self._thread("fhir", server.run, stop_fhir)  # not the main thread: no signals

    async def serve(self) -> None:
        """Run until SIGTERM or SIGINT."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        self.start_threads()
        server = None
        if self.config.mllp is not None:
            from gateway.connect.mllp import MllpListener

            listener = MllpListener(self.intake, self.publisher.wake, limit=self.config.max_body)
            server = await listener.start(self.config.mllp.host, self.config.mllp.port)
        log.info("claimx connect ready")
        await stop.wait()
        if server is not None:
            server.close()
        self.shutdown()

    def shutdown(self) -> None:
        for fn in self._stops:
            fn()
        for t in self._threads:
            t.join(5)
        self.outbox.close()
