"""The audit trail: one record per FHIR request, served as AuditEvent resources
(https://hl7.org/fhir/R4/auditevent.html, https://hl7.org/fhir/R4/security.html#audit).

Each record holds who (client id, patient context, network address), what (the RESTful
interaction, the path, the resources touched as ``Type/id`` references), when and the
outcome (HTTP status; AuditEvent outcome 0 success, 4 client failure, 8 server failure).
Never a request or response body, never the query string (which may carry patient data).

``GET /fhir/AuditEvent`` (``_count``, ``patient``, ``action``, ``outcome``, ``_cursor``)
and ``GET /fhir/AuditEvent/{id}`` read the trail; they need an AuditEvent read/search
scope, and a patient-scoped token sees only the events of its patient.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from fhir_service.api.auth.context import AccessContext
from fhir_service.api.deps import BASE_PATH, BaseDep, FormatDep
from fhir_service.api.openapi import documented
from fhir_service.api.responses import fhir_response
from fhir_service.api.routes.history import parse_count
from fhir_service.errors import InvalidRequest, NotFound
from fhir_service.storage import format_instant
from fhir_service.storage.audit_log import AuditEntry, AuditRecord, AuditTrail
from fhir_service.storage.errors import DatabaseError

log = logging.getLogger("fhir_service.audit")

_SEARCH_PARAMS = {"_count", "patient", "action", "outcome", "_cursor", "_format", "_pretty"}


def record_for(
    context: AccessContext, method: str, path: str, status: int, source: str | None
) -> AuditRecord:
    """The record of a finished request from what its repository calls noted."""
    note = context.note
    subtype = note.subtype or ("operation" if "$" in path else _default_subtype(method, path))
    return AuditRecord(
        recorded=datetime.now(UTC),
        client_id=context.client_id,
        patient=context.patient,
        source=source,
        subtype=subtype,
        method=method,
        path=path[:2000],
        status=status,
        entities=list(note.entities),
    )


def _default_subtype(method: str, path: str) -> str:
    segments = [s for s in path.split("/") if s][1:]
    if method in ("GET", "HEAD"):
        if "_history" in segments:
            return "vread" if segments[-1] != "_history" else "history-instance"
        return "read" if len(segments) == 2 else "search-type"
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
        method, "operation"
    )


class AuditLog:
    """Queues the audit records of requests for the ``AuditTrail`` and reads it back.

    ``write`` only queues the record: one writer thread stores what is queued every
    ``FLUSH_SECONDS`` (or as soon as ``BATCH`` records wait) in one transaction, so
    requests neither wait for nor contend on a database write of their own. Reading the
    trail (``search``, ``get``) flushes first, and ``close`` (application shutdown)
    stores what is left; a process killed outright loses at most the last
    ``FLUSH_SECONDS`` of records.
    """

    FLUSH_SECONDS = 0.05
    BATCH = 500
    MAX_PENDING = 100_000

    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail
        self._pending: deque[AuditRecord] = deque()
        self._wake = threading.Event()
        self._flush_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def write(self, record: AuditRecord) -> None:
        """Queue one record for the writer thread (records beyond ``MAX_PENDING`` are
        dropped and logged: the database has been failing for a long time)."""
        if len(self._pending) >= self.MAX_PENDING:
            log.error("audit record dropped: %d records wait to be stored", len(self._pending))
            return
        self._pending.append(record)
        if self._thread is None and not self._closed:
            self._start()
        if len(self._pending) >= self.BATCH:
            self._wake.set()

    def flush(self) -> None:
        """Store the records queued when it is called, in one transaction per ``BATCH``; a
        failure is logged (without the records) and not raised. Records queued meanwhile
        wait for the next flush: chasing them turned a busy server's flushes into one
        transaction per few records, each costing more than the request it recorded."""
        with self._flush_lock:
            left = len(self._pending)
            while left > 0:
                size = min(self.BATCH, left)
                left -= size
                batch = [self._pending.popleft() for _ in range(size)]
                try:
                    self.trail.append(batch)
                except DatabaseError as exc:
                    log.error("%d audit records not stored: %s", len(batch), type(exc).__name__)

    def close(self) -> None:
        """Stop the writer thread and store what is queued."""
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.FLUSH_SECONDS)
            self._wake.clear()
            self.flush()

    def search(
        self,
        *,
        count: int,
        patient: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        before: int | None = None,
    ) -> list[AuditEntry]:
        """Up to ``count + 1`` entries, newest first (the extra one tells a next page)."""
        self.flush()
        return self.trail.search(
            count=count + 1, patient=patient, action=action, outcome=outcome, before=before
        )

    def get(self, seq: int) -> AuditEntry | None:
        self.flush()
        return self.trail.get(seq)


_EVENT_TYPE = {
    "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
    "code": "rest",
    "display": "RESTful Operation",
}
_CLIENT_SYSTEM = "urn:fhir-service:client-id"


def audit_event_resource(row: AuditEntry) -> dict[str, Any]:
    """The AuditEvent of one stored record."""
    recorded = row.recorded if row.recorded.tzinfo else row.recorded.replace(tzinfo=UTC)
    agent: dict[str, Any] = {
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type",
                    "code": "datacollector",
                    "display": "datacollector",
                }
            ]
        },
        "who": {"identifier": {"system": _CLIENT_SYSTEM, "value": row.client_id}},
        "requestor": True,
    }
    if row.source:
        agent["network"] = {"address": row.source, "type": "2"}
    entities: list[dict[str, Any]] = [{"what": {"reference": ref}} for ref in row.entities]
    if row.patient:
        entities.append(
            {
                "what": {"reference": f"Patient/{row.patient}"},
                "role": {
                    "system": "http://terminology.hl7.org/CodeSystem/object-role",
                    "code": "1",
                    "display": "Patient",
                },
            }
        )
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(row.seq),
        "type": _EVENT_TYPE,
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": row.subtype}],
        "action": row.action,
        "recorded": format_instant(recorded),
        "outcome": row.outcome,
        "outcomeDesc": f"HTTP {row.status} {row.method} {row.path}",
        "agent": [agent],
        "source": {"observer": {"display": "fhir-service"}},
    }
    if entities:
        event["entity"] = entities
    return event


router = APIRouter(prefix=BASE_PATH, tags=["FHIR"])


def _audit_access(request: Request, action: str) -> tuple[AuditLog, str | None]:
    """The audit log and the patient the caller is limited to (Forbidden without scope)."""
    context: AccessContext = request.state.access
    reach = context.require("AuditEvent", action)
    log_: AuditLog | None = request.app.state.security.audit
    if log_ is None:
        raise NotFound("The audit trail is disabled (FHIR_SERVICE_AUDIT_ENABLED=false)")
    return log_, (context.patient if reach == "compartment" else None)


@router.get("/AuditEvent", openapi_extra=documented(answers={200: "Bundle"}))
def search_audit_events(request: Request, fmt: FormatDep, base: BaseDep) -> Response:
    """Search the audit trail, newest first."""
    query = request.query_params
    unknown = sorted(set(query) - _SEARCH_PARAMS)
    if unknown:
        raise InvalidRequest(f"Unsupported AuditEvent search parameter(s): {', '.join(unknown)}")
    trail, limited_to = _audit_access(request, "s")
    count = parse_count(query.get("_count"))
    cursor = query.get("_cursor")
    if cursor is not None and not (cursor.isascii() and cursor.isdigit() and len(cursor) < 19):
        raise InvalidRequest("_cursor is not valid", expression="_cursor")
    patient = query.get("patient")
    if patient is not None:
        patient = patient.removeprefix("Patient/")
        if limited_to is not None and patient != limited_to:
            patient = "\x00none"
    rows = trail.search(
        count=count,
        patient=limited_to if patient is None else patient,
        action=query.get("action"),
        outcome=query.get("outcome"),
        before=int(cursor) if cursor else None,
    )
    page, more = rows[:count], len(rows) > count
    self_query = request.url.query
    links = [
        {"relation": "self", "url": f"{base}/AuditEvent" + (f"?{self_query}" if self_query else "")}
    ]
    if more:
        pairs = [(k, v) for k, v in query.multi_items() if k != "_cursor"]
        next_query = urlencode([*pairs, ("_cursor", str(page[-1].seq))])
        links.append({"relation": "next", "url": f"{base}/AuditEvent?{next_query}"})
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [
            {
                "fullUrl": f"{base}/AuditEvent/{row.seq}",
                "resource": audit_event_resource(row),
                "search": {"mode": "match"},
            }
            for row in page
        ],
    }
    context: AccessContext = request.state.access
    context.note.record("search-type", [f"AuditEvent/{row.seq}" for row in page])
    return fhir_response(bundle, 200, fmt)


@router.get("/AuditEvent/{id}", openapi_extra=documented(answers={200: "AuditEvent"}))
def read_audit_event(id: str, request: Request, fmt: FormatDep) -> Response:
    """Read one AuditEvent."""
    trail, limited_to = _audit_access(request, "r")
    row = trail.get(int(id)) if id.isascii() and id.isdigit() and len(id) < 18 else None
    if row is None or (limited_to is not None and row.patient != limited_to):
        raise NotFound(f"Resource AuditEvent/{id[:64]} is not known")
    context: AccessContext = request.state.access
    context.note.record("read", [f"AuditEvent/{row.seq}"])
    return fhir_response(audit_event_resource(row), 200, fmt)
