"""Hardening around the API: per-client rate limits, security headers, CORS
(https://hl7.org/fhir/R4/security.html#http, https://www.rfc-editor.org/rfc/rfc6585#section-4).

Request bodies are already limited where they are read (``fhir_service.api.body``:
``FHIR_SERVICE_MAX_BODY_BYTES`` checked against Content-Length and while streaming, JSON
nesting at most 64 levels, no NUL characters); the token endpoint reads at most
``TOKEN_BODY_LIMIT`` bytes.

The rate limiter is a token bucket per client kept in the process: with several replicas
each enforces the limit on its own share of the traffic.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from threading import Lock

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOKEN_BODY_LIMIT = 64 * 1024

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
}
CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'"
_INTERACTIVE = ("/docs", "/openapi.json", "/ui")

CORS_HEADERS = [
    "Authorization",
    "Content-Type",
    "Accept",
    "If-Match",
    "If-None-Match",
    "If-None-Exist",
    "If-Modified-Since",
    "Prefer",
]
CORS_EXPOSED = ["ETag", "Location", "Content-Location", "Last-Modified", "WWW-Authenticate"]


class RateLimiter:
    """At most ``per_minute`` requests per client, refilled evenly (0 turns it off)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = Lock()

    def acquire(self, client: str) -> float | None:
        """``None`` when ``client`` may go on, else the seconds until it may retry."""
        if self.per_minute <= 0:
            return None
        rate = self.per_minute / 60.0
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(client, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[client] = (tokens, now)
                return (1.0 - tokens) / rate
            self._buckets[client] = (tokens - 1.0, now)
            if len(self._buckets) > 100_000:
                self._buckets.clear()
            return None


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def _encoded(csp: bool, https: bool) -> tuple[tuple[bytes, bytes], ...]:
    extra = dict(SECURITY_HEADERS)
    if csp:
        extra["content-security-policy"] = CONTENT_SECURITY_POLICY
    if https:
        extra["strict-transport-security"] = "max-age=31536000"
    return tuple((name.encode(), value.encode()) for name, value in extra.items())


_EXTRA = {(csp, https): _encoded(csp, https) for csp in (True, False) for https in (True, False)}
"""The headers added to a response, by (with a CSP, over https)."""


class SecurityHeaders:
    """Adds the security headers to every HTTP response (HSTS over https, a strict CSP
    except on the interactive documentation pages)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        extra = _EXTRA[(not path.startswith(_INTERACTIVE), scope.get("scheme") == "https")]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(header for header in extra if header[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_cors(app: FastAPI, origins: list[str]) -> None:
    """CORS for the configured origins only (none: no CORS headers at all)."""
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=CORS_HEADERS,
        expose_headers=CORS_EXPOSED,
        allow_credentials=False,
        max_age=600,
    )
