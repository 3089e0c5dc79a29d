"""Registering clients of the token endpoint: what a registration may hold
(https://hl7.org/fhir/smart-app-launch/backend-services.html#registering-a-client-communicating-public-keys).

The clients and the assertions they used are stored by ``fhir_service.storage.clients``.
"""

from __future__ import annotations

import secrets
from typing import Any

from fhir_service.api.auth.keys import key_set
from fhir_service.fhir.smart_scopes import ScopeSet
from fhir_service.storage.clients import Client, ClientRows

__all__ = ["Client", "register_client"]


def register_client(
    clients: ClientRows,
    *,
    name: str,
    scope: str,
    jwks: dict[str, Any] | None = None,
    jwks_url: str | None = None,
    patient: str | None = None,
    client_id: str | None = None,
) -> Client:
    """Store a new client (its JWKS is checked to hold usable public keys); return it."""
    if (jwks is None) == (jwks_url is None):
        raise ValueError("give exactly one of a JWKS document or a JWKS URL")
    if jwks is not None:
        key_set(jwks)
        jwks = {"keys": [{k: v for k, v in key.items() if k != "d"} for key in jwks["keys"]]}
    unknown = [s for s in scope.split() if not ScopeSet.parse(s).scopes]
    if unknown or not scope.split():
        raise ValueError(f"not SMART clinical scopes: {' '.join(unknown) or '(none)'}")
    client = Client(
        client_id=client_id or secrets.token_hex(16),  # never starts with "-" (CLI option)
        name=name,
        jwks=jwks,
        jwks_url=jwks_url,
        scope=" ".join(scope.split()),
        patient=patient,
        active=True,
    )
    clients.add(client)
    return client
