"""Limits against clients that send a request slowly (slowloris): the HTTP protocol of
uvicorn with a deadline for the request head (request line and headers). uvicorn has
none of its own; its ``timeout_keep_alive`` only bounds the idle time between requests.
The body has its own deadline per chunk in ``fhir_service.api.body.read_body``.
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("fhir_service.api")


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """Closes a connection whose request head is not complete ``header_timeout`` seconds
    after the connection opened or the request began (RFC 9112 section 9.8 lets a server
    close an idle or slow connection)."""

    header_timeout: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            log.info("closed a connection whose request head took over %s s", self.header_timeout)
            self.transport.close()


def header_deadline(seconds: float) -> type[HeaderDeadlineProtocol]:
    """The protocol class for uvicorn's ``http`` setting, with this deadline."""
    return type("HeaderDeadline", (HeaderDeadlineProtocol,), {"header_timeout": seconds})
