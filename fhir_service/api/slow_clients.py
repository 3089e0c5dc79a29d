"""Limits against clients that send a request slowly (slowloris): the HTTP protocol of
uvicorn with a deadline for the request head (request line and headers). uvicorn has
none of its own; its ``timeout_keep_alive`` only bounds the idle time between requests.
The body has its own deadline per chunk in ``fhir_service.api.body.read_body``.

The deadline is kept by one sweep per event loop over the connections waiting for a
head, every quarter of the deadline (at most every second), not by a timer per request:
arming and cancelling a timer for every request cost more than a tenth of a read by id.
A slow head is closed between the deadline and a quarter of it later.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from functools import cache

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from fhir_service.settings import Settings

log = logging.getLogger("fhir_service.api")

PROTOCOL = "fhir_service.api.slow_clients:HeaderDeadlineProtocol"
"""The class as uvicorn's ``http`` setting: an import string, so that every worker
process of ``fhir-service serve --workers N`` imports it itself."""


@cache
def configured_header_timeout() -> float:
    """``FHIR_SERVICE_HEADER_READ_TIMEOUT`` of this process's environment."""
    return Settings().header_read_timeout


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """Closes a connection whose request head is not complete ``header_read_timeout``
    seconds after the connection opened or the request began (RFC 9112 section 9.8 lets
    a server close an idle or slow connection)."""

    head_started: float | None = None
    """``loop.time()`` when the awaited head began; None while none is awaited."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.head_started = self.loop.time()
        _sweep_of(self.loop).watch(self)

    def connection_lost(self, exc: Exception | None) -> None:
        _sweep_of(self.loop).forget(self)
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.head_started = self.loop.time()

    def on_headers_complete(self) -> None:
        self.head_started = None
        super().on_headers_complete()

    def head_overdue(self) -> None:
        """Close the connection: its head took longer than the deadline."""
        self.head_started = None
        if not self.transport.is_closing():
            log.info(
                "closed a connection whose request head took over %s s",
                configured_header_timeout(),
            )
            self.transport.close()


class _HeadSweep:
    """The open connections of one event loop, checked for an overdue head while any
    are open."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.connections: set[HeaderDeadlineProtocol] = set()
        self.timer: asyncio.TimerHandle | None = None

    def watch(self, connection: HeaderDeadlineProtocol) -> None:
        self.connections.add(connection)
        if self.timer is None:
            self.timer = self.loop.call_later(_interval(), self.sweep)

    def forget(self, connection: HeaderDeadlineProtocol) -> None:
        self.connections.discard(connection)

    def sweep(self) -> None:
        self.timer = None
        late = self.loop.time() - configured_header_timeout()
        for connection in list(self.connections):
            started = connection.head_started
            if started is not None and started < late:
                connection.head_overdue()
        if self.connections:
            self.timer = self.loop.call_later(_interval(), self.sweep)


def _interval() -> float:
    return min(1.0, configured_header_timeout() / 4)


_SWEEPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _HeadSweep] = (
    weakref.WeakKeyDictionary()
)


def _sweep_of(loop: asyncio.AbstractEventLoop) -> _HeadSweep:
    sweep = _SWEEPS.get(loop)
    if sweep is None:
        sweep = _SWEEPS[loop] = _HeadSweep(loop)
    return sweep
