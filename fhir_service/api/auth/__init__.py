"""Security of the API: SMART Backend Services tokens, scopes, patient compartments, audit
(https://hl7.org/fhir/R4/security.html, https://hl7.org/fhir/smart-app-launch/backend-services.html).

``install(app, settings)`` wires it all in one place:

- ``AuthMiddleware`` authenticates bearer tokens (``smart`` mode), checks ``$export``,
  rate-limits per client and writes one audit record per FHIR request;
- every route's store is the application's store seen through the request's access
  scope (``AccessContext.scope``): storage applies it inside every statement it runs;
- routes: ``POST /auth/token``, ``GET /auth/jwks``, ``GET /fhir/.well-known/smart-configuration``,
  ``GET /fhir/AuditEvent[/{id}]``; security headers; CORS for the configured origins.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request

from fhir_service.api.auth import audit, token_endpoint, well_known
from fhir_service.api.auth.config import Security
from fhir_service.api.auth.context import AccessContext, request_access
from fhir_service.api.auth.hardening import SecurityHeaders, install_cors
from fhir_service.api.auth.middleware import AuthMiddleware
from fhir_service.api.routing import add_routes
from fhir_service.settings import Settings
from fhir_service.storage import Store

log = logging.getLogger("fhir_service.security")

OPEN_MODE_BANNER = """
************************************************************************
*  FHIR_SERVICE_AUTH_MODE=open: NO AUTHENTICATION, NO ACCESS CONTROL.  *
*  Every client may read and write every resource. Demo use only;      *
*  set FHIR_SERVICE_AUTH_MODE=smart to require SMART bearer tokens.    *
************************************************************************"""

__all__ = ["AccessContext", "Security", "install", "request_access"]


def scoped_store(request: Request) -> Store:
    """The application's store seen through the request's access scope."""
    context = request_access(request)
    store: Store = request.app.state.store.scoped(context.scope, context.note)
    return store


def install(app: FastAPI, settings: Settings) -> None:
    """Add the security layer to ``app`` (call before the FHIR routers are included)."""
    security = Security(settings, lambda: app.state.store)
    app.state.security = security
    if security.mode == "open":
        log.warning("%s", OPEN_MODE_BANNER)
    else:
        log.info("auth mode smart: bearer tokens required on /fhir")
    app.state.store_view = scoped_store
    for router in (token_endpoint.router, well_known.router, audit.router):
        add_routes(app, router)
    app.add_middleware(AuthMiddleware, security=security)
    app.add_middleware(SecurityHeaders)
    install_cors(app, settings.cors_origins)
