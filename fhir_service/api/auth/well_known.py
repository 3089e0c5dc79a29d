"""``GET /fhir/.well-known/smart-configuration`` and the CapabilityStatement security
section (https://hl7.org/fhir/smart-app-launch/conformance.html,
https://hl7.org/fhir/R4/capabilitystatement-definitions.html#CapabilityStatement.rest.security).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import JSONResponse, Response

from fhir_service.api.auth.config import JWKS_PATH, Security
from fhir_service.api.deps import BASE_PATH

SIGNING_ALGORITHMS = ["RS384", "ES384", "RS256", "ES256"]
SCOPES_SUPPORTED = [
    "system/*.read",
    "system/*.rs",
    "system/*.cruds",
    "system/*.write",
    "patient/*.read",
    "patient/*.rs",
    "patient/*.cruds",
    "patient/*.write",
]
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"

router = APIRouter(prefix=BASE_PATH, tags=["Security"])


def smart_configuration(security: Security, request: Request) -> dict[str, Any]:
    """The SMART configuration document of this service."""
    config: dict[str, Any] = {
        "issuer": security.issuer(request),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": SIGNING_ALGORITHMS,
        "scopes_supported": SCOPES_SUPPORTED,
        "response_types_supported": ["token"],
        "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
    }
    if security.signing_key is not None:
        config["token_endpoint"] = security.token_url(request)
        config["jwks_uri"] = security.origin(request) + JWKS_PATH
    return config


@router.get("/.well-known/smart-configuration")
def well_known(request: Request) -> Response:
    """The SMART configuration; public in every auth mode."""
    return JSONResponse(smart_configuration(request.app.state.security, request))


def capability_security(app: FastAPI, base: str) -> dict[str, Any]:
    """``CapabilityStatement.rest.security`` for ``app`` served at ``base``."""
    security: Security = app.state.security
    cors = bool(security.settings.cors_origins)
    if security.mode == "open":
        return {
            "cors": cors,
            "description": "Open mode (demo): no authentication, every client may do everything.",
        }
    origin = base.rsplit("/fhir", 1)[0]
    section: dict[str, Any] = {
        "cors": cors,
        "service": [
            {
                "coding": [{"system": SECURITY_SERVICE, "code": "SMART-on-FHIR"}],
                "text": "OAuth2 bearer tokens per SMART Backend Services",
            }
        ],
        "description": (
            "Every interaction but /metadata and /.well-known/smart-configuration needs a "
            "bearer token; SMART v1 and v2 system/ and patient/ scopes are enforced."
        ),
    }
    if security.signing_key is not None:
        section["extension"] = [
            {
                "url": OAUTH_URIS,
                "extension": [{"url": "token", "valueUri": f"{origin}/auth/token"}],
            }
        ]
    return section
