"""Limits against clients that send a request slowly (slowloris): the HTTP protocol of
uvicorn with a deadline for the request head (request line and headers). uvicorn has
none of its own; its ``timeout_keep_alive`` only bounds the idle time between requests.
The body has its own deadline per chunk in ``fhir_service.api.body.read_body``.
"""

from __future__ import annotations

import asyncio
import logging
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
        self._header_timer = self.loop.call_later(configured_header_timeout(), self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            log.info(
                "closed a connection whose request head took over %s s",
                configured_header_timeout(),
            )
            self.transport.close()
