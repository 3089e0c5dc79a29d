"""The client's error typing, retries and authentication.

These faults and the token endpoint are served by httpx.MockTransport: the peer
server cannot answer 503 on demand and has no SMART token endpoint (the fault
proxy tests in test_faults.py cover real connections). The token endpoint here
checks the client's signed JWT assertion with the client's public key.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from fhir_service.sync.auth import BearerToken, SmartBackendAuth
from fhir_service.sync.client import FhirClient, RetryPolicy, parse_retry_after
from fhir_service.sync.errors import (
    RemoteAuthError,
    RemoteConflict,
    RemoteRejected,
    RemoteUnavailable,
)

FAST = RetryPolicy(attempts=4, initial=0.01, max_wait=0.05, jitter=0.01)
OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "invalid", "diagnostics": "bad gender code"}],
}


def call(handler: Any, work: Any, auth: Any = None) -> Any:
    async def main() -> Any:
        transport = httpx.MockTransport(handler)
        async with FhirClient(
            "http://fhir.test/fhir", transport=transport, retry=FAST, auth=auth
        ) as c:
            return await work(c), c

    return asyncio.run(main())


def test_503_with_retry_after_is_retried_then_succeeds() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if len(seen) < 3:
            return httpx.Response(503, headers={"Retry-After": "0"})
        return httpx.Response(200, json={"resourceType": "Patient", "id": "a"})

    body, client = call(handler, lambda c: c.get("Patient/a"))
    assert body["id"] == "a"
    assert client.retries == 2
    assert seen == ["/fhir/Patient/a"] * 3


def test_retry_after_sets_the_wait() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "0"})

    async def work(c: FhirClient) -> Any:
        with pytest.raises(RemoteUnavailable) as raised:
            await c.get("Patient")
        return raised.value

    error, client = call(handler, work)
    assert error.remote_status == 429 and error.retry_after == 0.0
    assert client.requests == FAST.attempts


def test_dropped_connection_is_retried() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.RemoteProtocolError("peer closed connection", request=request)
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset"})

    body, client = call(handler, lambda c: c.get("Patient"))
    assert body["type"] == "searchset" and client.retries == 1


def test_client_errors_are_typed_with_their_outcome() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        status = 412 if request.method == "PUT" else 400
        return httpx.Response(status, json=OUTCOME)

    async def work(c: FhirClient) -> list[Exception]:
        errors: list[Exception] = []
        for method in ("POST", "PUT"):
            try:
                await c.request(method, "Patient/a" if method == "PUT" else "Patient", json={})
            except Exception as exc:
                errors.append(exc)
        return errors

    (rejected, conflict), client = call(handler, work)
    assert isinstance(rejected, RemoteRejected) and "bad gender code" in str(rejected)
    assert isinstance(conflict, RemoteConflict) and conflict.remote_status == 412
    assert client.retries == 0


def test_retry_after_http_date() -> None:
    now = time.time()
    header = email.utils.formatdate(now + 120, usegmt=True)
    assert 100 <= (parse_retry_after(header, now) or 0) <= 120
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("soon") is None


def test_bearer_token_is_sent() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != "Bearer s3cret":
            return httpx.Response(401, json=OUTCOME)
        return httpx.Response(200, json={"resourceType": "Patient", "id": "a"})

    body, _ = call(handler, lambda c: c.get("Patient/a"), auth=BearerToken("s3cret"))
    assert body["id"] == "a"


class TokenEndpoint:
    """A tiny SMART token endpoint and a FHIR endpoint that accepts only its live tokens."""

    def __init__(self, public_key: Any, expires_in: int) -> None:
        self.public_key = public_key
        self.expires_in = expires_in
        self.issued: list[str] = []
        self.assertions: list[dict[str, Any]] = []
        self.revoked: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            form = dict(httpx.QueryParams(request.content.decode()))
            assert form["grant_type"] == "client_credentials"
            assert form["client_assertion_type"].endswith("jwt-bearer")
            token = jwt.decode(
                form["client_assertion"], self.public_key, algorithms=["RS384", "ES384"]
            )
            assert token.claims["aud"] == "http://auth.test/token"
            assert token.claims["iss"] == token.claims["sub"] == "sync-client"
            assert token.claims["exp"] > time.time()
            self.assertions.append(token.claims)
            access = f"token-{len(self.issued)}"
            self.issued.append(access)
            return httpx.Response(
                200,
                json={
                    "access_token": access,
                    "token_type": "bearer",
                    "expires_in": self.expires_in,
                },
            )
        value = request.headers.get("authorization", "")
        live = value.removeprefix("Bearer ")
        if live not in self.issued or live in self.revoked:
            return httpx.Response(401, json=OUTCOME)
        return httpx.Response(200, json={"resourceType": "Patient", "id": "a"})


def keypair(kind: str) -> tuple[bytes, Any]:
    if kind == "RS384":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return pem, RSAKey.import_key(pem)
    private_ec = ec.generate_private_key(ec.SECP384R1())
    pem = private_ec.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return pem, ECKey.import_key(pem)


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_smart_backend_services_token_reused_until_near_expiry(alg: str) -> None:
    pem, key = keypair(alg)
    endpoint = TokenEndpoint(key, expires_in=3600)
    auth = SmartBackendAuth("http://auth.test/token", "sync-client", pem)

    async def work(c: FhirClient) -> None:
        for _ in range(3):
            await c.get("Patient/a")

    call(endpoint, work, auth=auth)
    assert endpoint.issued == ["token-0"]
    assert len({a["jti"] for a in endpoint.assertions}) == 1


def test_smart_token_refreshed_before_expiry_and_after_401() -> None:
    pem, key = keypair("RS384")
    endpoint = TokenEndpoint(key, expires_in=20)  # inside the 30 s refresh margin
    auth = SmartBackendAuth("http://auth.test/token", "sync-client", pem)

    async def work(c: FhirClient) -> None:
        await c.get("Patient/a")
        await c.get("Patient/a")

    call(endpoint, work, auth=auth)
    assert endpoint.issued == ["token-0", "token-1"]

    endpoint.expires_in = 3600
    revoking = SmartBackendAuth("http://auth.test/token", "sync-client", pem)

    async def revoked(c: FhirClient) -> None:
        await c.get("Patient/a")
        endpoint.revoked.add(endpoint.issued[-1])
        await c.get("Patient/a")

    call(endpoint, revoked, auth=revoking)
    assert len(endpoint.issued) == 4
    assert len({a["jti"] for a in endpoint.assertions}) == 4


def test_token_endpoint_refusal_is_an_auth_error() -> None:
    pem, _ = keypair("RS384")
    other, wrong_key = keypair("RS384")
    endpoint = TokenEndpoint(wrong_key, expires_in=3600)

    def handler(request: httpx.Request) -> httpx.Response:
        try:
            return endpoint(request)
        except Exception:
            return httpx.Response(400, json={"error": "invalid_client"})

    async def work(c: FhirClient) -> Exception:
        with pytest.raises(RemoteAuthError) as raised:
            await c.get("Patient/a")
        return raised.value

    error, _ = call(
        handler, work, auth=SmartBackendAuth("http://auth.test/token", "sync-client", pem)
    )
    assert "invalid_client" in str(error)
    assert other != pem
