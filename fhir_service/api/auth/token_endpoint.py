"""The token endpoint for registered clients: OAuth 2.0 client credentials with a
``private_key_jwt`` client assertion (https://hl7.org/fhir/smart-app-launch/backend-services.html,
https://www.rfc-editor.org/rfc/rfc7523#section-2.2).

``POST /auth/token`` (form encoded): ``grant_type=client_credentials``, ``scope``,
``client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`` and
``client_assertion``: a JWT signed by the client's registered key with ``iss`` = ``sub``
= client id, ``aud`` = this endpoint's configured URL (``<origin of FHIR_SERVICE_BASE_URL>
/auth/token``, else ``<FHIR_SERVICE_AUTH_ISSUER>/token``; never the request's Host),
``exp`` at most five minutes ahead and a ``jti`` never used before. The answer is a
signed access token with the requested scopes that the client's registration allows
(patient scopes only for a client registered with a patient). Errors are OAuth errors
(RFC 6749 section 5.2), not OperationOutcomes.
``GET /auth/jwks`` publishes the public key the access tokens are signed with.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from fhir_service.api.auth.clients import Client
from fhir_service.api.auth.config import JWKS_PATH, TOKEN_PATH, RemoteKeySet, Security
from fhir_service.api.auth.hardening import TOKEN_BODY_LIMIT
from fhir_service.api.auth.keys import KeyFileError, key_set, public_jwks
from fhir_service.api.auth.tokens import InvalidToken, issue_token, verify_jwt
from fhir_service.api.body import read_body
from fhir_service.errors import FhirServiceError
from fhir_service.fhir.smart_scopes import ScopeSet

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 300
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

router = APIRouter(tags=["Security"])


class OAuthError(Exception):
    """An OAuth error response (RFC 6749 section 5.2)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def response(self) -> Response:
        headers = dict(NO_STORE)
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="fhir-service"'
        body = {"error": self.error, "error_description": self.description}
        return JSONResponse(body, status_code=self.status, headers=headers)


def _unverified_claims(assertion: str) -> dict[str, Any]:
    parts = assertion.split(".")
    if len(parts) != 3:
        raise OAuthError("invalid_client", "client_assertion is not a signed JWT", 401)
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        raise OAuthError("invalid_client", "client_assertion is not a JWT", 401) from None
    if not isinstance(claims, dict):
        raise OAuthError("invalid_client", "client_assertion claims are not an object", 401)
    return claims


def _client_keys(client: Client, remote: dict[str, RemoteKeySet]) -> Any:
    if client.jwks is not None:
        return key_set(client.jwks)
    assert client.jwks_url is not None
    cached = remote.setdefault(client.jwks_url, RemoteKeySet(client.jwks_url))
    return cached.get()


def exchange(
    security: Security, form: dict[str, str], *, token_url: str, issuer: str, audience: str
) -> dict[str, Any]:
    """The token response for a client-credentials request; OAuthError otherwise."""
    if form.get("grant_type") != "client_credentials":
        raise OAuthError("unsupported_grant_type", "grant_type must be client_credentials")
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise OAuthError("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}")
    assertion = form.get("client_assertion", "")
    requested = ScopeSet.parse(form.get("scope", ""))
    if not form.get("scope", "").strip():
        raise OAuthError("invalid_scope", "scope is required")
    if security.signing_key is None:
        raise OAuthError("server_error", "the token endpoint has no signing key", 503)
    client_id = _unverified_claims(assertion).get("iss")
    with security.clients.begin() as clients:
        client = clients.get(client_id) if isinstance(client_id, str) else None
        if client is None or not client.active:
            raise OAuthError("invalid_client", "unknown or disabled client", 401)
        try:
            keys = _client_keys(client, security.client_jwks)
            claims = verify_jwt(assertion, keys, issuer=client.client_id, audience=token_url)
        except (InvalidToken, KeyFileError) as exc:
            text = exc.diagnostics if isinstance(exc, FhirServiceError) else str(exc)
            raise OAuthError("invalid_client", text, 401) from None
        if claims.get("sub") != client.client_id:
            raise OAuthError("invalid_client", "the assertion's sub must be the client id", 401)
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise OAuthError("invalid_client", "the assertion needs a jti", 401)
        expires = int(claims["exp"])
        if expires > int(time.time()) + MAX_ASSERTION_LIFETIME + 30:
            raise OAuthError("invalid_client", "the assertion expires too far ahead", 401)
        if not clients.remember_assertion(
            client.client_id, jti[:255], datetime.fromtimestamp(expires, UTC)
        ):
            raise OAuthError("invalid_client", "this assertion was already used", 401)
    granted = requested.within(ScopeSet.parse(client.scope))
    if client.patient is None:
        granted = ScopeSet(tuple(s for s in granted.scopes if s.context != "patient"))
    if not granted.scopes:
        raise OAuthError("invalid_scope", "none of the requested scopes is allowed to this client")
    scope = " ".join(granted.texts())
    patient = client.patient if any(s.context == "patient" for s in granted.scopes) else None
    lifetime = security.settings.auth_token_lifetime
    token, expires_in = issue_token(
        security.signing_key,
        issuer=issuer,
        audience=audience,
        client_id=client.client_id,
        scope=scope,
        patient=patient,
        lifetime=lifetime,
    )
    body: dict[str, Any] = {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": expires_in,
        "scope": scope,
    }
    if patient is not None:
        body["patient"] = patient
    return body


_OAUTH_ERROR = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {"type": "string"},
                    "error_description": {"type": "string"},
                },
            }
        }
    }
}
_TOKEN_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "grant_type": {"enum": ["client_credentials"]},
                        "client_assertion_type": {"type": "string"},
                        "client_assertion": {"type": "string"},
                        "scope": {"type": "string"},
                    },
                }
            }
        },
    },
    "responses": {
        "200": {
            "description": "An access token",
            "content": {
                "application/json": {
                    "schema": {"type": "object", "required": ["access_token", "token_type"]}
                }
            },
        },
        "400": {"description": "An OAuth error (RFC 6749 section 5.2)", **_OAUTH_ERROR},
        "401": {"description": "The client could not be authenticated", **_OAUTH_ERROR},
    },
}
"""The token request is a form (SMART Backend Services); errors are OAuth's, not
OperationOutcomes."""


@router.post(TOKEN_PATH, openapi_extra=_TOKEN_OPENAPI)
async def token(request: Request) -> Response:
    """Exchange a client assertion for an access token."""
    security: Security = request.app.state.security
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return OAuthError(
            "invalid_request", "the body must be application/x-www-form-urlencoded"
        ).response()
    try:
        raw = await read_body(request, TOKEN_BODY_LIMIT)
        form = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    except (FhirServiceError, UnicodeDecodeError):
        return OAuthError("invalid_request", "the form body cannot be read").response()
    try:
        body = await run_in_threadpool(
            lambda: exchange(
                security,
                form,
                token_url=security.token_url(request),
                issuer=security.issuer(request),
                audience=security.audience(request),
            )
        )
    except OAuthError as exc:
        return exc.response()
    return JSONResponse(body, headers=NO_STORE)


@router.get(JWKS_PATH)
def jwks(request: Request) -> Response:
    """The public key set of the access tokens this service signs."""
    security: Security = request.app.state.security
    keys = [security.signing_key] if security.signing_key is not None else []
    return JSONResponse(public_jwks(keys))
