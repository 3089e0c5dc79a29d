"""The security configuration of one application, built once from the Settings.

It knows the auth mode, the trusted keys (local key set file, JWKS URL, the service's
own signing key), the expected issuer and audience, the patient compartment, the audit
log and the rate limiter, and turns a request's bearer token into what it grants (a
``Grant``, remembered in ``verified``; the middleware builds the request's
``AccessContext`` from it)
(https://hl7.org/fhir/smart-app-launch/backend-services.html#step-4-fhir-api-access).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from threading import Lock
from urllib.parse import urlsplit

import httpx
from joserfc.jwk import ECKey, KeySet, RSAKey
from starlette.requests import Request

from fhir_service.api.auth.audit import AuditLog
from fhir_service.api.auth.hardening import RateLimiter
from fhir_service.api.auth.keys import KeyFileError, key_set, load_signing_key, read_key_set
from fhir_service.api.auth.tokens import InvalidToken, TokenValidator
from fhir_service.api.auth.verified_tokens import Grant, VerifiedTokens
from fhir_service.api.deps import BASE_PATH
from fhir_service.fhir.smart_scopes import ScopeSet
from fhir_service.settings import Settings
from fhir_service.storage import SqlStore
from fhir_service.storage.audit_log import AuditTrail
from fhir_service.storage.clients import ClientRegistry

log = logging.getLogger("fhir_service.security")

JWKS_CACHE_SECONDS = 300
AUTH_PATH = "/auth"
TOKEN_PATH = f"{AUTH_PATH}/token"
JWKS_PATH = f"{AUTH_PATH}/jwks"


class RemoteKeySet:
    """A JWKS URL fetched on first use and again after JWKS_CACHE_SECONDS."""

    def __init__(self, url: str, client: Callable[[str], dict[str, object]] | None = None) -> None:
        self.url = url
        self._fetch = client or _fetch_json
        self._keys: KeySet | None = None
        self._fetched = 0.0
        self._lock = Lock()

    def get(self) -> KeySet:
        with self._lock:
            if self._keys is None or time.monotonic() - self._fetched > JWKS_CACHE_SECONDS:
                try:
                    self._keys = key_set(self._fetch(self.url))
                except (httpx.HTTPError, ValueError) as exc:
                    if self._keys is None:
                        raise InvalidToken(
                            f"The issuer's key set cannot be fetched ({type(exc).__name__})"
                        ) from None
                    log.warning("JWKS refresh failed: %s", type(exc).__name__)
                self._fetched = time.monotonic()
            return self._keys


def _fetch_json(url: str) -> dict[str, object]:
    response = httpx.get(url, timeout=10.0, follow_redirects=False)
    response.raise_for_status()
    data = response.json()
    if not isinstance(data, dict):
        raise ValueError("a JWKS must be a JSON object")
    return data


class SmartConfigError(ValueError):
    """Smart mode without a configured base URL, audience or issuer."""


class Security:
    """Everything the security layer needs at request time."""

    def __init__(self, settings: Settings, store: Callable[[], SqlStore]) -> None:
        self.settings = settings
        self.mode = settings.auth_mode
        self._store = store
        self.signing_key: RSAKey | ECKey | None = None
        self._local: KeySet | None = None
        self._remote = RemoteKeySet(settings.auth_jwks_url) if settings.auth_jwks_url else None
        self.limiter = RateLimiter(settings.rate_limit_per_minute)
        self.verified = VerifiedTokens()
        self.client_jwks: dict[str, RemoteKeySet] = {}
        problem = settings.smart_problem()
        if problem is not None:
            raise SmartConfigError(problem)
        self._load_keys(settings.auth_signing_key_path, settings.auth_jwks_path)
        if self.mode == "smart" and (
            self.signing_key is None and self._local is None and self._remote is None
        ):
            raise KeyFileError(
                "FHIR_SERVICE_AUTH_MODE=smart needs trusted keys: run `fhir-service auth "
                "generate-key`, or set FHIR_SERVICE_AUTH_JWKS_PATH or _JWKS_URL"
            )

    def _load_keys(self, signing: Path, jwks: Path | None) -> None:
        if signing.is_file():
            self.signing_key = load_signing_key(signing)
        if jwks is not None:
            self._local = read_key_set(jwks)

    # ------------------------------------------------------------------ places
    # In smart mode every place comes from the settings (``smart_problem`` guarantees
    # them): a request's Host header never decides which tokens or assertions are valid.
    # Open mode, which checks no token, still follows the request when nothing is set.

    def origin(self, request: Request) -> str:
        """``scheme://host[:port]`` of the service (``base_url`` wins over the request)."""
        if self.settings.base_url:
            parts = urlsplit(str(self.settings.base_url))
            return f"{parts.scheme}://{parts.netloc}"
        if self.mode == "smart":
            return self.auth_root(request).removesuffix(AUTH_PATH)
        return str(request.base_url).rstrip("/")

    def fhir_base(self, request: Request) -> str:
        if self.settings.base_url:
            return str(self.settings.base_url).rstrip("/")
        if self.mode == "smart":
            return str(self.settings.auth_audience)
        return self.origin(request) + BASE_PATH

    def auth_root(self, request: Request) -> str:
        """Where ``/token`` and ``/jwks`` are: ``<origin>/auth`` of the base URL; in smart
        mode without one, the configured issuer."""
        if self.settings.base_url or self.mode != "smart":
            return self.origin(request) + AUTH_PATH
        return str(self.settings.auth_issuer).rstrip("/")

    def issuer(self, request: Request) -> str:
        return self.settings.auth_issuer or self.origin(request) + AUTH_PATH

    def audience(self, request: Request) -> str:
        return self.settings.auth_audience or self.fhir_base(request)

    def token_url(self, request: Request) -> str:
        """The token endpoint's URL: the ``aud`` a client assertion must carry
        (https://www.rfc-editor.org/rfc/rfc7523#section-3)."""
        return self.auth_root(request) + TOKEN_PATH.removeprefix(AUTH_PATH)

    # -------------------------------------------------------------- database

    @cached_property
    def clients(self) -> ClientRegistry:
        """The registered clients, on the store's database."""
        return ClientRegistry.of(self._store())

    @cached_property
    def audit(self) -> AuditLog | None:
        return AuditLog(AuditTrail.of(self._store())) if self.settings.audit_enabled else None

    def close(self) -> None:
        """Store the audit records still queued (application shutdown)."""
        audit: AuditLog | None = self.__dict__.get("audit")
        if audit is not None:
            audit.close()

    # ----------------------------------------------------------------- tokens

    def trusted_keys(self) -> KeySet:
        keys = []
        if self.signing_key is not None:
            keys.append(self.signing_key.as_dict(private=False))
        if self._local is not None:
            keys.extend(key.as_dict(private=False) for key in self._local)
        if self._remote is not None:
            keys.extend(key.as_dict(private=False) for key in self._remote.get())
        return KeySet.import_key_set({"keys": keys})

    def verify(self, request: Request, token: str) -> Grant:
        """What a bearer token grants; InvalidToken when it is not acceptable (the
        middleware asks ``verified`` first)."""
        validator = TokenValidator(
            self.trusted_keys, issuer=self.issuer(request), audience=self.audience(request)
        )
        claims = validator.validate(token)
        return Grant(
            client_id=claims.client_id,
            scopes=ScopeSet.parse(claims.scope),
            patient=claims.patient,
            expires=claims.expires,
        )
