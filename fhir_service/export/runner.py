"""The background worker that runs export jobs inside the service
(https://build.fhir.org/ig/HL7/bulk-data/export.html#bulk-data-status-request).

``ExportRunner.serve()`` is an asyncio task: every 30 s it queues again the jobs whose
worker stopped beating (a process that died); it claims queued jobs one at a time, runs
each in a worker thread, and deletes jobs and files past their expiry. State lives in
the database, so a restart resumes queued jobs and starts interrupted ones over.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fhir_service.errors import FhirServiceError
from fhir_service.export.deid_rules import load_rules, parse_rules
from fhir_service.export.deidentify import Deidentifier
from fhir_service.export.jobs import Job, JobStore
from fhir_service.export.ndjson import DEFAULT_MAX_BYTES, OutputFile
from fhir_service.export.run import Cancelled, Compartment, run_export
from fhir_service.storage import SqlStore
from fhir_service.storage.jobs import RECOVER_EVERY, poll_forever

log = logging.getLogger(__name__)


class ExportRunner:
    """Runs the jobs of one store's database, writing files below ``export_dir/<job id>/``;
    each job reads inside the scope of its owner (``ExportParams.access_scope``)."""

    def __init__(
        self,
        store: SqlStore,
        export_dir: Path,
        *,
        compartment: Callable[[], Compartment],
        deid_secret: str | None = None,
        poll_interval: float = 1.0,
        lifetime: timedelta = timedelta(hours=24),
        stale_after: timedelta = timedelta(minutes=2),
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.jobs = JobStore(store)
        self.store = store
        self.export_dir = export_dir
        self._compartment = compartment
        self.deid_secret = deid_secret
        self.poll_interval = poll_interval
        self.lifetime = lifetime
        self.stale_after = stale_after
        self.max_bytes = max_bytes
        self._wake = asyncio.Event()

    def directory(self, job_id: str) -> Path:
        return self.export_dir / job_id

    def wake(self) -> None:
        """Look for queued jobs now rather than at the next poll."""
        self._wake.set()

    def run_job(self, job: Job) -> None:
        """Run one claimed job to completion, failure or cancellation."""
        params = job.params
        directory = self.directory(job.id)
        shutil.rmtree(directory, ignore_errors=True)
        expires = datetime.now(UTC) + self.lifetime
        try:
            deidentifier = None
            if params.deidentify:
                if not self.deid_secret:
                    raise FhirServiceError("De-identified export needs a configured deid_secret")
                rules = (
                    parse_rules(params.deid_rules, "_deidRules")
                    if params.deid_rules is not None
                    else load_rules()
                )
                deidentifier = Deidentifier(
                    self.deid_secret,
                    self._compartment().patients,
                    reference_year=job.transaction_time.year,
                    rules=rules,
                )
            result = run_export(
                self.store,
                params,
                directory,
                compartment=_Lazy(self._compartment),
                deidentifier=deidentifier,
                max_bytes=self.max_bytes,
                on_progress=lambda n, t: self.jobs.beat(job.id, f"{n} resources ({t})"),
            )
        except Cancelled:
            shutil.rmtree(directory, ignore_errors=True)
            return
        except Exception as exc:
            log.warning("export %s failed: %s", job.id, type(exc).__name__)
            text = exc.diagnostics if isinstance(exc, FhirServiceError) else type(exc).__name__
            self.jobs.fail(job.id, text, expires)
            return
        output: dict[str, Any] = {
            "output": [_file(f) for f in result.output],
            "deleted": [_file(f) for f in result.deleted],
        }
        if deidentifier is not None:
            output["extension"] = {"deidentification": deidentifier.report()}
        if not self.jobs.complete(job.id, output, expires):
            shutil.rmtree(directory, ignore_errors=True)

    def run_pending(self) -> int:
        """Run queued jobs until none is left; how many ran."""
        ran = 0
        while (job := self.jobs.claim()) is not None:
            self.run_job(job)
            ran += 1
        return ran

    def sweep(self) -> int:
        """Delete expired and cancelled jobs with their files; how many."""
        expired = self.jobs.expired()
        for job_id in expired:
            shutil.rmtree(self.directory(job_id), ignore_errors=True)
            self.jobs.delete(job_id)
        return len(expired)

    async def serve(self) -> None:
        """Run, recover and sweep jobs until the task is cancelled."""
        await poll_forever(
            "export",
            recover=lambda: self.jobs.recover(self.stale_after),
            steps=[self.run_pending, self.sweep],
            wake=self._wake,
            poll_interval=self.poll_interval,
            recover_every=min(RECOVER_EVERY, self.stale_after.total_seconds() / 2),
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
