"""Registered clients of the token endpoint and replay protection of their assertions
(https://hl7.org/fhir/smart-app-launch/backend-services.html#registering-a-client-communicating-public-keys).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from fhir_service.api.auth.keys import key_set
from fhir_service.api.auth.scopes import ScopeSet
from fhir_service.api.auth.tables import auth_assertion, auth_client


@dataclass(frozen=True, slots=True)
class Client:
    """A registered client: its keys (JWKS document or URL), allowed scopes, patient."""

    client_id: str
    name: str
    jwks: dict[str, Any] | None
    jwks_url: str | None
    scope: str
    patient: str | None
    active: bool

    @property
    def scopes(self) -> ScopeSet:
        return ScopeSet.parse(self.scope)


def _row_client(row: Any) -> Client:
    return Client(
        client_id=row.client_id,
        name=row.name,
        jwks=json.loads(row.jwks) if row.jwks else None,
        jwks_url=row.jwks_url,
        scope=row.scope,
        patient=row.patient,
        active=bool(row.active),
    )


def register_client(
    conn: Connection,
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
    conn.execute(
        auth_client.insert().values(
            client_id=client.client_id,
            name=name,
            jwks=json.dumps(jwks) if jwks is not None else None,
            jwks_url=jwks_url,
            scope=client.scope,
            patient=patient,
            active=True,
            created=datetime.now(UTC),
        )
    )
    return client


def get_client(conn: Connection, client_id: str) -> Client | None:
    row = conn.execute(sa.select(auth_client).where(auth_client.c.client_id == client_id)).first()
    return _row_client(row) if row is not None else None


def list_clients(conn: Connection) -> list[Client]:
    rows = conn.execute(sa.select(auth_client).order_by(auth_client.c.client_id))
    return [_row_client(row) for row in rows]


def set_active(conn: Connection, client_id: str, active: bool) -> bool:
    """Enable or disable a client; False when it is not registered."""
    result = conn.execute(
        auth_client.update().where(auth_client.c.client_id == client_id).values(active=active)
    )
    return bool(result.rowcount)


def remember_assertion(conn: Connection, client_id: str, jti: str, expires: datetime) -> bool:
    """Record an assertion's ``jti``; False when the client already used it (a replay)."""
    now = datetime.now(UTC)
    conn.execute(auth_assertion.delete().where(auth_assertion.c.expires < now))
    try:
        with conn.begin_nested():
            conn.execute(
                auth_assertion.insert().values(client_id=client_id, jti=jti, expires=expires)
            )
    except IntegrityError:
        return False
    return True
