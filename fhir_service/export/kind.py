"""Bulk Data export as a kind of job on the one job table: its kick-off record, its step
and its expiry (https://build.fhir.org/ig/HL7/bulk-data/export.html#bulk-data-status-request).

An export job (kind ``export``) has ``params`` ``{"export", "request",
"transaction_time"}`` (``ExportParams``, the kick-off URL and its transactionTime),
``owner`` the client that started it and ``active_key`` that client, so each client has
at most one queued or running export. Its step writes files below
``export_dir/<job id>/``, reading inside the scope of its owner
(``ExportParams.access_scope``), reports ``N resources (Type)`` every batch and ends
with the manifest's ``output`` and ``deleted`` lists (its ``result``); a job taken over
after its process died starts over. ``sweep`` deletes ended jobs past their expiry and
cancelled ones, with their files.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fhir_service.errors import FhirServiceError
from fhir_service.export.deid_rules import load_rules, parse_rules
from fhir_service.export.deidentify import Deidentifier
from fhir_service.export.ndjson import DEFAULT_MAX_BYTES, OutputFile
from fhir_service.export.params import ExportParams
from fhir_service.export.run import Cancelled, Compartment, run_export
from fhir_service.storage import SqlStore
from fhir_service.storage.job_runner import JobContext, JobKind, error_text
from fhir_service.storage.jobs import Job, Jobs

KIND = "export"


@dataclass
class ExportJob:
    """An export job as the Bulk Data status and file requests read it."""

    id: str
    client_id: str
    status: str
    request: str
    params: ExportParams
    transaction_time: datetime
    created: datetime
    progress: str
    output: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    expires: datetime | None = None

    @classmethod
    def of(cls, job: Job) -> ExportJob:
        return cls(
            id=job.id,
            client_id=job.owner or "",
            status=job.state,
            request=job.params["request"],
            params=ExportParams.from_dict(job.params["export"]),
            transaction_time=datetime.fromisoformat(job.params["transaction_time"]),
            created=job.created,
            progress=job.message,
            output=job.result or {},
            error=job.error,
            expires=job.expires,
        )


def create(jobs: Jobs, client_id: str, request: str, params: ExportParams) -> ExportJob | None:
    """A queued export whose transactionTime is now; None when the client already has
    a queued or running one."""
    recorded = {
        "export": params.to_dict(),
        "request": request,
        "transaction_time": datetime.now(UTC).isoformat(),
    }
    job = jobs.create(KIND, recorded, owner=client_id, active_key=f"{KIND}:{client_id}")
    return ExportJob.of(job) if job is not None else None


def get(jobs: Jobs, job_id: str) -> ExportJob | None:
    job = jobs.get(job_id, KIND)
    return ExportJob.of(job) if job is not None else None


class Exports:
    """The export step and sweep of one store, writing below ``export_dir``."""

    def __init__(
        self,
        store: SqlStore,
        export_dir: Path,
        *,
        compartment: Callable[[], Compartment],
        deid_secret: str | None = None,
        lifetime: timedelta = timedelta(hours=24),
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.store = store
        self.jobs = Jobs.of(store)
        self.export_dir = export_dir
        self._compartment = compartment
        self.deid_secret = deid_secret
        self.lifetime = lifetime
        self.max_bytes = max_bytes

    def directory(self, job_id: str) -> Path:
        return self.export_dir / job_id

    def kind(self, limit: int = 1) -> JobKind:
        """Export as a kind of job for the process's runner."""
        return JobKind(KIND, self.run, limit=limit, maintain=self.sweep)

    def _deidentifier(self, job: ExportJob) -> Deidentifier | None:
        params = job.params
        if not params.deidentify:
            return None
        if not self.deid_secret:
            raise FhirServiceError("De-identified export needs a configured deid_secret")
        rules = (
            parse_rules(params.deid_rules, "_deidRules")
            if params.deid_rules is not None
            else load_rules()
        )
        return Deidentifier(
            self.deid_secret,
            self._compartment().patients,
            reference_year=job.transaction_time.year,
            rules=rules,
        )

    def run(self, claimed: Job, context: JobContext) -> None:
        """Run one claimed job to completion, failure or its stop (cancelled, taken over)."""
        job = ExportJob.of(claimed)
        directory = self.directory(job.id)
        shutil.rmtree(directory, ignore_errors=True)
        expires = datetime.now(UTC) + self.lifetime
        try:
            deidentifier = self._deidentifier(job)
            result = run_export(
                self.store,
                job.params,
                directory,
                compartment=_Lazy(self._compartment),
                deidentifier=deidentifier,
                max_bytes=self.max_bytes,
                on_progress=lambda n, t: context.report(f"{n} resources ({t})", {"count": n}),
            )
        except Cancelled:
            shutil.rmtree(directory, ignore_errors=True)
            return
        except Exception as exc:
            context.fail(error_text(exc), expires=expires)
            return
        output: dict[str, Any] = {
            "output": [_file(f) for f in result.output],
            "deleted": [_file(f) for f in result.deleted],
        }
        if deidentifier is not None:
            output["extension"] = {"deidentification": deidentifier.report()}
        if not context.complete(output, expires=expires):
            shutil.rmtree(directory, ignore_errors=True)

    def sweep(self) -> int:
        """Delete expired and cancelled jobs with their files; how many."""
        return self.jobs.sweep(
            KIND, lambda job_id: shutil.rmtree(self.directory(job_id), ignore_errors=True)
        )


class _Lazy:
    """Loads the compartment only when a Patient or Group export needs it."""

    def __init__(self, load: Callable[[], Compartment]) -> None:
        self._load = load
        self._value: Compartment | None = None

    def _get(self) -> Compartment:
        if self._value is None:
            self._value = self._load()
        return self._value

    def covers(self, resource_type: str) -> bool:
        return self._get().covers(resource_type)

    def patients(self, resource: dict[str, Any]) -> set[str]:
        return self._get().patients(resource)


def _file(item: OutputFile) -> dict[str, Any]:
    return {"type": item.type, "name": item.name, "count": item.count}
