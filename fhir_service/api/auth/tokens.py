"""Bearer access tokens: JWT validation and issuance
(https://hl7.org/fhir/smart-app-launch/backend-services.html, https://www.rfc-editor.org/rfc/rfc7519).

A token is accepted only when its signature verifies with a trusted key under RS256,
RS384, ES256 or ES384 (``alg: none`` and HMAC algorithms are refused, so a public key can
never serve as an HMAC secret), its ``exp`` lies ahead and ``nbf`` behind (30 s leeway),
and its ``iss`` and ``aud`` are the configured ones. Claims used: ``sub`` or
``client_id`` (the client), ``scope`` (space-delimited), ``patient`` (launch context).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey

from fhir_service.api.auth.keys import ALGORITHMS
from fhir_service.errors import Unauthorized

LEEWAY_SECONDS = 30


class InvalidToken(Unauthorized):
    """401 for a missing, malformed, unverifiable or expired bearer token."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a valid access token says."""

    client_id: str
    scope: str
    patient: str | None
    token_id: str | None
    expires: int


def _header_algorithm(token: str) -> str | None:
    head = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except ValueError:
        return None
    alg = header.get("alg") if isinstance(header, dict) else None
    return alg if isinstance(alg, str) else None


def verify_jwt(
    token: str,
    keys: KeySet,
    *,
    issuer: str | None,
    audience: str,
    now: Callable[[], int] | None = None,
) -> dict[str, Any]:
    """The claims of a verified JWT; InvalidToken naming what is wrong (never the token)."""
    if token.count(".") != 2:
        raise InvalidToken("The bearer token is not a JWT")
    alg = _header_algorithm(token)
    if alg not in ALGORITHMS:
        raise InvalidToken(f"Token algorithm '{str(alg)[:20]}' is not accepted")
    try:
        decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise InvalidToken(f"The token signature does not verify ({type(exc).__name__})") from None
    options: dict[str, Any] = {
        "exp": {"essential": True},
        "aud": {"essential": True, "value": audience},
    }
    if issuer is not None:
        options["iss"] = {"essential": True, "value": issuer}
    registry = jwt.JWTClaimsRegistry(now=now, leeway=LEEWAY_SECONDS, **options)
    try:
        registry.validate(decoded.claims)
    except JoseError as exc:
        raise InvalidToken(f"The token is not valid here: {exc.description}") from None
    return dict(decoded.claims)


def access_claims(claims: dict[str, Any]) -> AccessClaims:
    """The access-relevant claims of a verified access token."""
    client = claims.get("client_id") or claims.get("sub")
    if not isinstance(client, str) or not client:
        raise InvalidToken("The token names no client (sub or client_id)")
    scope = claims.get("scope", "")
    if isinstance(scope, list):
        scope = " ".join(str(s) for s in scope)
    patient = claims.get("patient")
    return AccessClaims(
        client_id=client,
        scope=str(scope),
        patient=patient if isinstance(patient, str) and patient else None,
        token_id=claims.get("jti") if isinstance(claims.get("jti"), str) else None,
        expires=int(claims.get("exp", 0)),
    )


class TokenValidator:
    """Validates bearer tokens against the trusted keys, issuer and audience."""

    def __init__(self, keys: Callable[[], KeySet], *, issuer: str | None, audience: str) -> None:
        self._keys = keys
        self.issuer = issuer
        self.audience = audience

    def validate(self, token: str) -> AccessClaims:
        keys = self._keys()
        return access_claims(verify_jwt(token, keys, issuer=self.issuer, audience=self.audience))


def issue_token(
    key: RSAKey | ECKey,
    *,
    issuer: str,
    audience: str,
    client_id: str,
    scope: str,
    patient: str | None,
    lifetime: int,
) -> tuple[str, int]:
    """A signed access token and its lifetime in seconds."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": client_id,
        "client_id": client_id,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
        "scope": scope,
    }
    if patient is not None:
        claims["patient"] = patient
    alg = str(key.get("alg") or ("RS256" if isinstance(key, RSAKey) else "ES384"))
    header = {"alg": alg, "kid": key.kid, "typ": "JWT"}
    return jwt.encode(header, claims, key, algorithms=ALGORITHMS), lifetime
