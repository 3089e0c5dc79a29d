"""One asynchronous HTTP client for an external FHIR server (https://hl7.org/fhir/R4/http.html).

A single ``httpx.AsyncClient`` with connection limits and timeouts. Temporary
failures (408, 429, 5xx, connection errors, dropped or truncated responses) are
retried with exponential backoff and jitter (tenacity), waiting ``Retry-After``
when the server sends it; other errors are raised typed (``sync.errors``).
A 401 renews the access token once.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from fhir_service.sync.auth import Auth
from fhir_service.sync.capabilities import Capabilities
from fhir_service.sync.errors import (
    TRANSIENT,
    RemoteAuthError,
    RemoteUnreachable,
    error_for_status,
)

FHIR_JSON = "application/fhir+json"
Params = list[tuple[str, str | int | float | bool | None]] | None


@dataclass(frozen=True)
class Response:
    """A successful answer: status, headers and the parsed JSON body (None when empty)."""

    status: int
    headers: Mapping[str, str]
    body: Any

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry temporary failures."""

    attempts: int = 8
    initial: float = 0.2
    max_wait: float = 20.0
    jitter: float = 0.3


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from Retry-After: delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class FhirClient:
    """Requests to one FHIR base URL; use as ``async with FhirClient(url) as client``."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: Auth | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        max_connections: int = 8,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.retry = retry or RetryPolicy()
        self.requests = 0
        self.retries = 0
        self._http = httpx.AsyncClient(
            base_url=self.base_url + "/",
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=4),
            headers={"accept": FHIR_JSON},
        )
        self._capabilities: Capabilities | None = None

    async def __aenter__(self) -> FhirClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(float(retry_after), self.retry.max_wait)
        backoff = wait_exponential_jitter(
            multiplier=self.retry.initial, max=self.retry.max_wait, jitter=self.retry.jitter
        )
        return float(backoff(state))

    async def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Params = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send one request, retrying temporary failures; raise a RemoteError otherwise."""
        content = orjson.dumps(json) if json is not None else None
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TRANSIENT),
            stop=stop_after_attempt(self.retry.attempts),
            wait=self._wait,
            reraise=True,
            before_sleep=self._count_retry,
        )
        async for attempt in retrying:
            with attempt:
                return await self._send(method, url, content, params, headers)
        raise AssertionError("unreachable")  # pragma: no cover

    def _count_retry(self, state: RetryCallState) -> None:
        self.retries += 1

    async def _send(
        self,
        method: str,
        url: str,
        content: bytes | None,
        params: Params,
        headers: Mapping[str, str] | None,
    ) -> Response:
        for renewed in (False, True):
            all_headers = dict(headers or {})
            if content is not None:
                all_headers["content-type"] = FHIR_JSON
            if self.auth is not None:
                value = await self.auth.header(self._http)
                if value:
                    all_headers["authorization"] = value
            self.requests += 1
            try:
                response = await self._http.request(
                    method, url, content=content, params=params, headers=all_headers
                )
                raw = response.content
            except httpx.TransportError as exc:
                raise RemoteUnreachable(f"{method} {url}: {exc!r}") from exc
            body: Any = None
            if raw:
                try:
                    body = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    raise RemoteUnreachable(f"{method} {url}: unreadable body: {exc}") from exc
            if response.status_code == 401 and self.auth is not None and not renewed:
                self.auth.invalidate()
                continue
            if response.status_code >= 400:
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                raise error_for_status(response.status_code, method, url, body, retry_after)
            return Response(response.status_code, response.headers, body)
        raise RemoteAuthError(f"{method} {url}: still 401 after renewing the token")

    async def capabilities(self) -> Capabilities:
        """The remote's CapabilityStatement (GET metadata), read once per client."""
        if self._capabilities is None:
            response = await self.request("GET", "metadata")
            self._capabilities = Capabilities.parse(response.body or {})
        return self._capabilities

    async def get(self, url: str, params: Params = None) -> Any:
        return (await self.request("GET", url, params=params)).body

    async def bundle(self, bundle: dict[str, Any]) -> dict[str, Any]:
        """POST a batch or transaction Bundle to the base (https://hl7.org/fhir/R4/http.html#transaction)."""
        body = (await self.request("POST", "", json=bundle)).body
        return body if isinstance(body, dict) else {}
