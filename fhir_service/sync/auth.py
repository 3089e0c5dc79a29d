"""Authentication to the external server: a static bearer token, or SMART Backend Services.

SMART Backend Services (https://hl7.org/fhir/smart-app-launch/backend-services.html):
the client signs a short-lived JWT assertion (RS384 or ES384) with its private key,
posts it to the token endpoint with ``grant_type=client_credentials``, and uses the
returned access token until shortly before ``expires_in`` runs out, then asks again.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Protocol

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from fhir_service.sync.errors import RemoteAuthError, outcome_text

REFRESH_MARGIN_SECONDS = 30.0
ASSERTION_LIFETIME_SECONDS = 300


class Auth(Protocol):
    """Gives the Authorization header for the next request."""

    async def header(self, http: httpx.AsyncClient) -> str | None: ...

    def invalidate(self) -> None: ...


@dataclass
class BearerToken:
    """A fixed bearer token (https://www.rfc-editor.org/rfc/rfc6750)."""

    token: str

    async def header(self, http: httpx.AsyncClient) -> str | None:
        return f"Bearer {self.token}"

    def invalidate(self) -> None:
        """A fixed token cannot be renewed."""


@dataclass
class SmartBackendAuth:
    """Client-credentials grant with a signed JWT assertion (private_key_jwt)."""

    token_url: str
    client_id: str
    private_key_pem: bytes
    scope: str = "system/*.read system/*.write"
    kid: str | None = None
    _token: str | None = field(default=None, init=False, repr=False)
    _expires_at: float = field(default=0.0, init=False, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)
    requests: int = field(default=0, init=False)

    def _key(self) -> tuple[RSAKey | ECKey, str]:
        text = self.private_key_pem
        if b"EC PRIVATE KEY" in text:
            return ECKey.import_key(text), "ES384"
        try:
            return RSAKey.import_key(text), "RS384"
        except ValueError:
            return ECKey.import_key(text), "ES384"

    def assertion(self, now: float) -> str:
        """The signed client assertion for one token request."""
        key, alg = self._key()
        header = {"alg": alg, "typ": "JWT", **({"kid": self.kid} if self.kid else {})}
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "exp": int(now) + ASSERTION_LIFETIME_SECONDS,
            "iat": int(now),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(header, claims, key, algorithms=[alg])

    async def header(self, http: httpx.AsyncClient) -> str | None:
        async with self._lock:
            now = time.time()
            if self._token is None or now >= self._expires_at - REFRESH_MARGIN_SECONDS:
                await self._fetch(http, now)
            return f"Bearer {self._token}"

    async def _fetch(self, http: httpx.AsyncClient, now: float) -> None:
        form = {
            "grant_type": "client_credentials",
            "scope": self.scope,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": self.assertion(now),
        }
        try:
            response = await http.post(self.token_url, data=form)
        except httpx.TransportError as exc:
            raise RemoteAuthError(f"token endpoint unreachable: {exc!r}") from exc
        self.requests += 1
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
            detail = outcome_text(body) or (body.get("error") if isinstance(body, dict) else "")
            raise RemoteAuthError(
                f"token endpoint refused the client ({response.status_code}) {detail}".strip(),
                remote_status=response.status_code,
            )
        self._token = str(body["access_token"])
        self._expires_at = now + float(body.get("expires_in", 300))

    def invalidate(self) -> None:
        self._token = None


def remote_auth(
    token: str | None,
    token_url: str | None,
    client_id: str | None,
    private_key_pem: bytes | None,
) -> Auth | None:
    """The authentication these settings describe: SMART Backend Services when any of
    its three settings is given (then all three must be), else a bearer token, else none.
    A ValueError names what is missing."""
    if token_url or client_id or private_key_pem:
        if not (token_url and client_id and private_key_pem):
            raise ValueError(
                "SMART Backend Services needs the token URL, the client id and the private key"
            )
        return SmartBackendAuth(token_url, client_id, private_key_pem)
    return BearerToken(token) if token else None


def same_remote(a: str, b: str) -> bool:
    """Whether two base URLs name the same server endpoint (trailing slashes aside)."""
    return a.rstrip("/") == b.rstrip("/")
