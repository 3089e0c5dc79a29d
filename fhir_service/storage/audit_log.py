"""The audit trail in the ``audit_event`` table: one row per audited request, served as
AuditEvent (https://hl7.org/fhir/R4/auditevent.html, https://hl7.org/fhir/R4/security.html#audit).

``AuditRecord`` is what a request leaves (who, what, when, outcome; never a body nor a
query string); ``AuditTrail`` stores records in batches and reads them back, newest
first, as ``AuditEntry`` rows. Queueing and the writer thread are the api's
(``fhir_service.api.auth.audit.AuditLog``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from fhir_service.storage.bulk_insert import insert_many
from fhir_service.storage.security_tables import audit_event
from fhir_service.storage.store import SqlStore

_ACTIONS = {
    "create": "C",
    "read": "R",
    "vread": "R",
    "search-type": "R",
    "search-system": "R",
    "history-instance": "R",
    "history-type": "R",
    "history-system": "R",
    "update": "U",
    "patch": "U",
    "delete": "D",
}
_METHOD_ACTIONS = {"GET": "R", "HEAD": "R", "POST": "E", "PUT": "U", "PATCH": "U", "DELETE": "D"}


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audited request."""

    recorded: datetime
    client_id: str
    patient: str | None
    source: str | None
    subtype: str
    method: str
    path: str
    status: int
    entities: list[str]

    @property
    def action(self) -> str:
        """AuditEvent.action: C, R, U, D or E (https://hl7.org/fhir/R4/valueset-audit-event-action.html)."""
        return _ACTIONS.get(self.subtype, _METHOD_ACTIONS.get(self.method, "E"))

    @property
    def outcome(self) -> str:
        """AuditEvent.outcome: 0 success, 4 client failure, 8 server failure."""
        if self.status < 400:
            return "0"
        return "4" if self.status < 500 else "8"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One stored record; ``seq`` is its AuditEvent id."""

    seq: int
    recorded: datetime
    client_id: str
    patient: str | None
    source: str | None
    action: str
    subtype: str
    method: str
    path: str
    status: int
    outcome: str
    entities: list[str]


_COLUMNS = (
    "recorded",
    "client_id",
    "patient",
    "source",
    "action",
    "subtype",
    "method",
    "path",
    "status",
    "outcome",
    "entities",
)


_CONTROLS = dict.fromkeys([*range(0x20), 0x7F], "\ufffd")
"""C0 control characters and DEL, which a percent-encoded path may carry: PostgreSQL's
text refuses NUL (and with it the whole batch), and a trail is read on screens."""


def _printable(text: str) -> str:
    return text if text.isprintable() else text.translate(_CONTROLS)


def _row(record: AuditRecord) -> tuple[Any, ...]:
    """The ``audit_event`` row of one record, in ``_COLUMNS`` order (control characters in
    the path, client and source replaced by U+FFFD)."""
    return (
        record.recorded,
        _printable(record.client_id[:128]),
        record.patient,
        _printable(record.source or "")[:100] or None,
        record.action,
        record.subtype[:40],
        record.method[:10],
        _printable(record.path),
        record.status,
        record.outcome,
        orjson.dumps(record.entities).decode(),
    )


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        seq=row.seq,
        recorded=row.recorded,
        client_id=row.client_id,
        patient=row.patient,
        source=row.source,
        action=row.action,
        subtype=row.subtype,
        method=row.method,
        path=row.path,
        status=row.status,
        outcome=row.outcome,
        entities=json.loads(row.entities or "[]"),
    )


class AuditTrail:
    """The ``audit_event`` table of one database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @classmethod
    def of(cls, store: SqlStore) -> AuditTrail:
        """The trail on the store's database."""
        return cls(store.engine)

    def append(self, records: Sequence[AuditRecord]) -> None:
        """Store ``records`` in one transaction (``DatabaseError`` when it fails).

        The rows go through the driver (``bulk_insert``): SQLAlchemy's per-row parameter
        work cost more than the insert, on a busy server once per request."""
        with self._engine.begin() as conn:
            insert_many(conn, audit_event, _COLUMNS, [_row(record) for record in records])

    def search(
        self,
        *,
        count: int,
        patient: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        before: int | None = None,
    ) -> list[AuditEntry]:
        """Up to ``count`` entries, newest first, with ``seq`` below ``before``."""
        query = sa.select(audit_event).order_by(audit_event.c.seq.desc()).limit(count)
        if patient is not None:
            query = query.where(audit_event.c.patient == patient)
        if action is not None:
            query = query.where(audit_event.c.action == action)
        if outcome is not None:
            query = query.where(audit_event.c.outcome == outcome)
        if before is not None:
            query = query.where(audit_event.c.seq < before)
        with self._engine.connect() as conn:
            return [_entry(row) for row in conn.execute(query)]

    def get(self, seq: int) -> AuditEntry | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(audit_event).where(audit_event.c.seq == seq)).first()
        return _entry(row) if row is not None else None
