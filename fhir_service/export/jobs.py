"""Export jobs: what a kick-off asked for and the jobs that run it
(https://build.fhir.org/ig/HL7/bulk-data/export.html#bulk-data-kick-off-request).

``ExportParams`` is the job's parameters, stored as JSON; ``JobStore`` is storage's
``export_job`` table (``fhir_service.storage.export_jobs``: claiming, heartbeats,
recovery, cancel and expiry) with the parameters decoded. Job states: ``queued`` ->
``running`` -> ``completed`` | ``failed``; ``cancelled`` at any time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from fhir_service.fhir.smart_scopes import ScopeSet
from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope, access_scope
from fhir_service.storage.export_jobs import ExportJobRow, ExportJobs

Level = Literal["system", "patient", "group"]


@dataclass(frozen=True)
class ExportParams:
    """What a kick-off asked for (the parameters of the Bulk Data IG)."""

    level: Level = "system"
    types: list[str] | None = None
    since: datetime | None = None
    patients: list[str] | None = None
    group: str | None = None
    deidentify: bool = False
    type_filters: dict[str, list[str]] | None = None
    """``_typeFilter``: resource type -> search queries (a resource matching any is kept)."""
    elements: list[str] | None = None
    """``_elements``: ``Type.element`` or ``element`` names."""
    scopes: list[str] | None = None
    """The scopes the job was started with (None: unrestricted, as in open mode)."""
    owner_patient: str | None = None
    """The patient in the context of the token that started the job (its ``patient/``
    scopes reach that patient's compartment)."""

    deid_rules: dict[str, Any] | None = None
    """``_deidRules``: de-identification rules replacing the default ones."""

    def access_scope(self) -> AccessScope:
        """The storage scope the job's scans run with: its owner's, from the recorded
        scopes and patient (``AccessScope.full()`` when no scopes were recorded)."""
        scopes = ScopeSet.parse(self.scopes) if self.scopes is not None else None
        return access_scope(scopes, self.owner_patient)

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "level": self.level,
            "types": self.types,
            "since": self.since.isoformat() if self.since else None,
            "patients": self.patients,
            "group": self.group,
            "deidentify": self.deidentify,
            "type_filters": self.type_filters,
            "elements": self.elements,
            "scopes": self.scopes,
            "owner_patient": self.owner_patient,
            "deid_rules": self.deid_rules,
        }
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> ExportParams:
        data = json.loads(text)
        since = datetime.fromisoformat(data["since"]) if data.get("since") else None
        return cls(
            level=data["level"],
            types=data.get("types"),
            since=since,
            patients=data.get("patients"),
            group=data.get("group"),
            deidentify=bool(data.get("deidentify")),
            type_filters=data.get("type_filters"),
            elements=data.get("elements"),
            scopes=data.get("scopes"),
            owner_patient=data.get("owner_patient"),
            deid_rules=data.get("deid_rules"),
        )


@dataclass
class Job:
    """One row of ``export_job``."""

    id: str
    client_id: str
    status: str
    request: str
    params: ExportParams
    transaction_time: datetime
    created: datetime
    heartbeat: datetime
    progress: str
    output: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    expires: datetime | None = None


def _job(row: ExportJobRow) -> Job:
    return Job(
        id=row.id,
        client_id=row.client_id,
        status=row.status,
        request=row.request,
        params=ExportParams.from_json(row.params),
        transaction_time=row.transaction_time,
        created=row.created,
        heartbeat=row.heartbeat,
        progress=row.progress,
        output=row.output,
        error=row.error,
        expires=row.expires,
    )


def _maybe(row: ExportJobRow | None) -> Job | None:
    return _job(row) if row is not None else None


class JobStore:
    """The export jobs of one store's database, with their parameters decoded."""

    def __init__(self, store: SqlStore) -> None:
        self._rows = ExportJobs.of(store)

    def create(self, client_id: str, request: str, params: ExportParams) -> Job | None:
        """A queued job whose transactionTime is now; None when the client already has a
        queued or running job."""
        return _maybe(self._rows.create(client_id, request, params.to_json()))

    def get(self, job_id: str) -> Job | None:
        return _maybe(self._rows.get(job_id))

    def claim(self) -> Job | None:
        """Mark the oldest queued job running and return it (None when there is none)."""
        return _maybe(self._rows.claim())

    def beat(self, job_id: str, progress: str) -> bool:
        """Record progress; False when the job is no longer running (cancelled)."""
        return self._rows.beat(job_id, progress)

    def complete(self, job_id: str, output: dict[str, Any], expires: datetime) -> bool:
        return self._rows.complete(job_id, output, expires)

    def fail(self, job_id: str, error: str, expires: datetime) -> bool:
        return self._rows.fail(job_id, error, expires)

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued, running or finished job (its files go with the next sweep)."""
        return self._rows.cancel(job_id)

    def recover(self, stale_after: timedelta) -> int:
        """Queue again the running jobs whose worker stopped beating; how many."""
        return self._rows.recover(stale_after)

    def expired(self) -> list[str]:
        """Ids of finished or cancelled jobs past their expiry."""
        return self._rows.expired()

    def delete(self, job_id: str) -> None:
        self._rows.delete(job_id)
