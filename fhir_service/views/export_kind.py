"""``$viewdefinition-export`` as a kind of job: one or more ViewDefinitions run over the
stored resources into files, asynchronously
(https://sql-on-fhir.org/ig/latest/OperationDefinition-ViewDefinitionExport.html).

A job (kind ``view-export``) records, as ``params``, the views (each with its output
name and ViewDefinition JSON), the format, ``patient`` and ``_since``, the client's
tracking id, and the caller's SMART scopes and patient: its step reads inside that
scope, as the request would have (``storage.access.access_scope``). It writes one file
per view below ``export_dir/views/<job id>/`` (``<name>.<format>``), rows as resources are
read (views PostgreSQL can express run there: ``views.sql_plan.stored_rows``), reports
the rows written, and ends with ``{"output": [{"name", "file", "rows"}], "started",
"ended"}``. A job taken over after its process died starts over; a cancelled one
stops at its next report and leaves no files. ``sweep`` deletes ended jobs past their
expiry (24 hours) and cancelled ones, with their files.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fhir_service.fhir.smart_scopes import ScopeSet
from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope, access_scope
from fhir_service.storage.job_runner import JobContext, JobKind, error_text
from fhir_service.storage.jobs import Job, Jobs
from fhir_service.views.definition import parse_view
from fhir_service.views.sql_plan import stored_rows
from fhir_service.views.writers import write_chunks

KIND = "view-export"
REPORT_EVERY = 10_000
"""Rows between progress reports (each also a look at whether the job was cancelled)."""


class _Stopped(Exception):
    """The job was cancelled or taken over while its rows were written."""


@dataclass(frozen=True)
class ViewExportRequest:
    """What a kick-off asked for, as the job records it."""

    views: list[dict[str, Any]]
    """``{"name": output name, "view": ViewDefinition JSON}`` per view, in order."""
    format: str
    patient: str | None = None
    since: datetime | None = None
    client_tracking_id: str | None = None
    scopes: list[str] | None = None
    """The caller's SMART scopes (None: open mode, everything)."""
    owner_patient: str | None = None
    """The patient of the caller's token (patient scopes reach its compartment only)."""

    def access_scope(self) -> AccessScope:
        """The storage scope the job reads with: its owner's."""
        scopes = ScopeSet.parse(self.scopes) if self.scopes is not None else None
        return access_scope(scopes, self.owner_patient)

    def to_dict(self) -> dict[str, Any]:
        return {
            "views": self.views,
            "format": self.format,
            "patient": self.patient,
            "since": self.since.isoformat() if self.since else None,
            "client_tracking_id": self.client_tracking_id,
            "scopes": self.scopes,
            "owner_patient": self.owner_patient,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ViewExportRequest:
        since = data.get("since")
        return cls(
            views=data["views"],
            format=data["format"],
            patient=data.get("patient"),
            since=datetime.fromisoformat(since) if since else None,
            client_tracking_id=data.get("client_tracking_id"),
            scopes=data.get("scopes"),
            owner_patient=data.get("owner_patient"),
        )


def create(jobs: Jobs, client_id: str, request: ViewExportRequest) -> Job:
    """A queued view export of ``client_id``."""
    job = jobs.create(KIND, request.to_dict(), owner=client_id)
    if job is None:  # no unique or active key: a new job is always created
        raise RuntimeError("the view export job was not created")
    return job


class ViewExports:
    """The view export step and sweep of one store, writing below ``export_dir/views``."""

    def __init__(
        self, store: SqlStore, export_dir: Path, *, lifetime: timedelta = timedelta(hours=24)
    ) -> None:
        self.store = store
        self.jobs = Jobs.of(store)
        self.folder = export_dir / "views"
        self.lifetime = lifetime

    def directory(self, job_id: str) -> Path:
        return self.folder / job_id

    def kind(self, limit: int = 1) -> JobKind:
        """View export as a kind of job for the process's runner."""
        return JobKind(KIND, self.run, limit=limit, maintain=self.sweep)

    def run(self, job: Job, context: JobContext) -> None:
        """Write every view's file, then complete; fail with the reason, or end quietly
        (no files left) when stopped."""
        request = ViewExportRequest.from_dict(job.params)
        directory = self.directory(job.id)
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        started = datetime.now(UTC)
        expires = started + self.lifetime
        output = []
        written = 0
        try:
            for item in request.views:
                name = item["name"]
                path = directory / f"{name}.{request.format}"
                rows = self._write(request, item["view"], path, context, written)
                written += rows
                output.append({"name": name, "file": path.name, "rows": rows})
        except _Stopped:
            shutil.rmtree(directory, ignore_errors=True)
            return
        except Exception as exc:
            shutil.rmtree(directory, ignore_errors=True)
            context.fail(error_text(exc), expires=expires)
            return
        result = {
            "output": output,
            "started": started.isoformat(),
            "ended": datetime.now(UTC).isoformat(),
        }
        if not context.complete(result, message=f"{written} rows", expires=expires):
            shutil.rmtree(directory, ignore_errors=True)

    def _write(
        self,
        request: ViewExportRequest,
        raw: dict[str, Any],
        path: Path,
        context: JobContext,
        before: int,
    ) -> int:
        view = parse_view(raw)
        count = 0

        def counted(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
            nonlocal count
            for row in rows:
                count += 1
                if count % REPORT_EVERY == 0 and not context.report(
                    f"{before + count} rows", {"rows": before + count}
                ):
                    raise _Stopped
                yield row

        with (
            self.store.begin(request.access_scope(), readonly=True) as repo,
            path.open("wb") as out,
        ):
            rows = stored_rows(repo, raw, view, patient=request.patient, since=request.since)
            for chunk in write_chunks(view, counted(rows), request.format):
                out.write(chunk)
        if context.stopped:
            raise _Stopped
        return count

    def sweep(self) -> int:
        """Delete expired and cancelled jobs with their files; how many."""
        return self.jobs.sweep(
            KIND, lambda job_id: shutil.rmtree(self.directory(job_id), ignore_errors=True)
        )
