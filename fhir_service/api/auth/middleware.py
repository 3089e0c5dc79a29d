"""Authentication, operation checks, rate limiting and audit for every FHIR request
(https://hl7.org/fhir/smart-app-launch/backend-services.html#step-4-fhir-api-access,
https://www.rfc-editor.org/rfc/rfc6750#section-3).

In ``smart`` mode every request under ``/fhir`` and ``/sync`` but the public ones (``/metadata`` and
``/.well-known/smart-configuration``) needs ``Authorization: Bearer <token>``: without
a valid token the answer is 401 with an OperationOutcome and ``WWW-Authenticate``. The
request's ``AccessContext`` is put on ``request.state.access`` for the repository guard;
in ``open`` mode it grants everything. Tokens are checked against the configured issuer
and audience, never against the request's Host. Sync runs (which push or pull every
resource) need ``system/*.cruds``. Bulk Data ``$export`` is checked by its routes, on the
parameters they parse (``fhir_service.api.auth.export_scopes``).
Every FHIR request then leaves one audit record.
"""

from __future__ import annotations

import logging

import anyio
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fhir_service.api.auth.audit import record_for
from fhir_service.api.auth.config import Security
from fhir_service.api.auth.context import AccessContext
from fhir_service.api.auth.hardening import retry_after
from fhir_service.api.deps import BASE_PATH
from fhir_service.api.responses import outcome_response
from fhir_service.errors import FhirServiceError, Forbidden, TooManyRequests, Unauthorized

log = logging.getLogger("fhir_service.security")

PROTECTED_PREFIXES = (BASE_PATH, "/sync", "/jobs")
"""Paths that need a token in smart mode: the FHIR API, the sync runs and the jobs."""
ADMIN_PREFIXES = ("/sync", "/jobs")
"""Paths that act on the whole database: they need ``system/*.cruds``."""
PUBLIC_PATHS = frozenset({f"{BASE_PATH}/metadata", f"{BASE_PATH}/.well-known/smart-configuration"})
REALM = "fhir-service"


class RateLimited(TooManyRequests):
    """429 with the seconds to wait for ``Retry-After``."""

    def __init__(self, diagnostics: str, retry_after: str) -> None:
        super().__init__(diagnostics)
        self.retry_after = retry_after


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("The Authorization header must be 'Bearer <access token>'")
    return token.strip()


def _challenge(error: FhirServiceError | None) -> str:
    if error is None:
        return f'Bearer realm="{REALM}"'
    description = error.diagnostics.replace('"', "'").replace("\\", "")[:200]
    return f'Bearer realm="{REALM}", error="invalid_token", error_description="{description}"'


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def check_admin(context: AccessContext, path: str) -> None:
    """Sync runs push and pull every resource: only an unrestricted client may start them."""
    if any(_under(path, p) for p in ADMIN_PREFIXES) and not context.unrestricted():
        raise Forbidden(f"{path} needs the scope system/*.cruds")


class AuthMiddleware:
    """The ASGI middleware described in the module docstring."""

    def __init__(self, app: ASGIApp, security: Security) -> None:
        self.app = app
        self.security = security

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "") if scope["type"] == "http" else ""
        if scope["type"] != "http" or not any(_under(path, p) for p in PROTECTED_PREFIXES):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        public = path in PUBLIC_PATHS
        context = AccessContext.open()
        if self.security.mode == "smart" and not public:
            context = AccessContext(client_id="unauthenticated")
            try:
                context = await self._authenticate(request)
                check_admin(context, path)
            except FhirServiceError as exc:
                await self._refuse(scope, receive, send, request, context, exc)
                return
        scope.setdefault("state", {})["access"] = context
        status = [500]

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            if not public:
                await self._audit(request, context, status[0])

    async def _authenticate(self, request: Request) -> AccessContext:
        token = bearer_token(request)
        if token is None:
            raise Unauthorized("This FHIR endpoint needs an access token (Authorization: Bearer)")
        grant = self.security.verified.get(token)
        if grant is None:
            grant = await anyio.to_thread.run_sync(self.security.verify, request, token)
            self.security.verified.put(token, grant)
        context = AccessContext(
            client_id=grant.client_id, scopes=grant.scopes, patient=grant.patient
        )
        wait = self.security.limiter.acquire(context.client_id)
        if wait is not None:
            raise RateLimited(
                f"Client {context.client_id} exceeded {self.security.limiter.per_minute} "
                f"requests per minute; retry after {retry_after(wait)} s",
                retry_after(wait),
            )
        return context

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request: Request,
        context: AccessContext,
        exc: FhirServiceError,
    ) -> None:
        headers: dict[str, str] = {}
        if isinstance(exc, Unauthorized):
            presented = request.headers.get("authorization") is not None
            headers["WWW-Authenticate"] = _challenge(exc if presented else None)
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = exc.retry_after
        response = outcome_response(exc.issues, exc.status, headers=headers)
        await response(scope, receive, send)
        await self._audit(request, context, exc.status)

    async def _audit(self, request: Request, context: AccessContext, status: int) -> None:
        audit = self.security.audit
        if audit is None:
            return
        host = request.client.host if request.client else None
        # The path as the server routed it (``request.url`` would build and parse a whole
        # URL per request, a tenth of a read by id).
        path: str = request.scope["path"]
        record = record_for(context, request.method, path, status, host)
        audit.write(record)
