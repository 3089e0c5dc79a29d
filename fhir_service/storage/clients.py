"""Registered clients of the token endpoint and the client assertions they used, in the
``auth_client`` and ``auth_assertion`` tables
(https://hl7.org/fhir/smart-app-launch/backend-services.html#registering-a-client-communicating-public-keys).

``ClientRegistry`` opens units of work on one database; each hands out ``ClientRows``,
the queries bound to that unit's connection. What a registration may hold (usable keys,
SMART scopes) is checked above storage (``fhir_service.api.auth.clients``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from fhir_service.storage.engine import create_engine
from fhir_service.storage.security_tables import auth_assertion, auth_client
from fhir_service.storage.store import SqlStore


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


class ClientRows:
    """The client tables as one unit of work (one connection) sees them."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, client: Client) -> None:
        """Store a new client, created now (a taken client id raises ``DatabaseError``)."""
        self._conn.execute(
            auth_client.insert().values(
                client_id=client.client_id,
                name=client.name,
                jwks=json.dumps(client.jwks) if client.jwks is not None else None,
                jwks_url=client.jwks_url,
                scope=client.scope,
                patient=client.patient,
                active=client.active,
                created=datetime.now(UTC),
            )
        )

    def get(self, client_id: str) -> Client | None:
        row = self._conn.execute(
            sa.select(auth_client).where(auth_client.c.client_id == client_id)
        ).first()
        return _row_client(row) if row is not None else None

    def all(self) -> list[Client]:
        """Every registered client, by client id."""
        rows = self._conn.execute(sa.select(auth_client).order_by(auth_client.c.client_id))
        return [_row_client(row) for row in rows]

    def set_active(self, client_id: str, active: bool) -> bool:
        """Enable or disable a client; False when it is not registered."""
        result = self._conn.execute(
            auth_client.update().where(auth_client.c.client_id == client_id).values(active=active)
        )
        return bool(result.rowcount)

    def remember_assertion(self, client_id: str, jti: str, expires: datetime) -> bool:
        """Record an assertion's ``jti``; False when the client already used it (a replay,
        https://hl7.org/fhir/smart-app-launch/backend-services.html#authenticating-to-the-token-endpoint).
        Assertions that expired are forgotten first."""
        now = datetime.now(UTC)
        self._conn.execute(auth_assertion.delete().where(auth_assertion.c.expires < now))
        try:
            with self._conn.begin_nested():
                self._conn.execute(
                    auth_assertion.insert().values(client_id=client_id, jti=jti, expires=expires)
                )
        except IntegrityError:
            return False
        return True


class ClientRegistry:
    """The registered clients of one database: the store's (``ClientRegistry.of(store)``)
    or one on an engine of its own (``ClientRegistry.open(url)``, disposed by ``close``)."""

    def __init__(self, engine: Engine, *, owned: bool = False) -> None:
        self._engine = engine
        self._owned = owned

    @classmethod
    def of(cls, store: SqlStore) -> ClientRegistry:
        """The registry on the store's database."""
        return cls(store.engine)

    @classmethod
    def open(cls, url: str) -> ClientRegistry:
        """The registry of the database at ``url``, on an engine of its own."""
        return cls(create_engine(url), owned=True)

    @contextmanager
    def begin(self) -> Iterator[ClientRows]:
        """One transaction: committed when the block ends, rolled back on an exception."""
        with self._engine.begin() as conn:
            yield ClientRows(conn)

    @contextmanager
    def read(self) -> Iterator[ClientRows]:
        """A connection for reading."""
        with self._engine.connect() as conn:
            yield ClientRows(conn)

    def close(self) -> None:
        """Dispose of the engine this registry opened (the store's stays open)."""
        if self._owned:
            self._engine.dispose()
