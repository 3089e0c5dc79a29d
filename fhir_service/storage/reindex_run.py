"""Reindex jobs: their step and progress on the one job table (``storage.jobs``), and
making jobs for changed SearchParameters (https://hl7.org/fhir/R4/searchparameter.html).

A reindex job (kind ``reindex``) has ``params`` ``{"types", "reason"}`` (``types``
``null``: every stored type, fixed when the job starts) and ``progress`` ``{"types",
"total", "done", "cursor_type", "cursor_id"}``. ``run_job`` rewrites the index rows of
every resource of the job's types, in id order, one short transaction per batch; the
batch and its checkpoint (``jobs.report_in``, fenced by the attempt) commit together,
so a resumed job neither skips nor repeats a batch. Each batch reads the
SearchParameters stored at that moment, so the newest definitions win; hence a job
starting completes the queued jobs it covers (several SearchParameters stored at once
cost one pass).

``watch`` compares the stored SearchParameter versions with the jobs' triggers (their
``unique_key``, ``SearchParameter/x/_history/2``): each version (a create, update or
delete marker) without a job gets one, for the union of the ``base`` types of all its
versions (a changed or removed base needs its old rows removed); ``Resource`` or
``DomainResource`` means every stored type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from fhir_service.search.registry import Registry
from fhir_service.storage.job_runner import JobContext, JobKind
from fhir_service.storage.jobs import Job, Jobs, report_in
from fhir_service.storage.search_index import analyze, registry_for, reindex_batch
from fhir_service.storage.tables import resource, resource_version

KIND = "reindex"
OnBatch = Callable[[str, int], None]
"""Called after each committed batch with the resource type and the batch size."""
ALL_TYPES = frozenset({"Resource", "DomainResource"})


@dataclass(frozen=True)
class ReindexJob:
    """A reindex job as its routes and the command show it."""

    id: str
    status: str
    reason: str
    trigger: str | None
    types: list[str] | None
    created: datetime
    finished: datetime | None
    total: int
    done: int
    cursor_type: str | None
    cursor_id: str | None
    error: str | None
    job: Job

    @classmethod
    def of(cls, job: Job) -> ReindexJob:
        progress = job.progress
        types = progress.get("types", job.params.get("types"))
        return cls(
            id=job.id,
            status=job.state,
            reason=_reason(job),
            trigger=job.unique_key,
            types=types,
            created=job.created,
            finished=job.finished,
            total=int(progress.get("total", 0)),
            done=int(progress.get("done", 0)),
            cursor_type=progress.get("cursor_type"),
            cursor_id=progress.get("cursor_id"),
            error=job.error,
            job=job,
        )

    @property
    def message(self) -> str:
        """The job's progress in words."""
        if self.status == "queued" and not self.done:
            return "queued"
        share = f" ({100 * self.done // self.total}%)" if self.total else ""
        return f"{self.done} of {self.total} resources{share}"


def _reason(job: Job) -> str:
    reason = str(job.params.get("reason", ""))
    if job.message.startswith("covered by job"):
        return f"{reason} ({job.message})"
    return reason


class Stopped(Exception):
    """The job was cancelled, or another runner holds it now."""


def create(
    jobs: Jobs,
    types: list[str] | None,
    reason: str,
    trigger: str | None = None,
    *,
    started: bool = False,
) -> Job | None:
    """A queued reindex job (``started``: running in the calling process already); None
    when a job for ``trigger`` exists already."""
    params = {"types": sorted(set(types)) if types is not None else None, "reason": reason[:300]}
    progress = {"total": 0, "done": 0}
    return jobs.create(KIND, params, unique_key=trigger, progress=progress, started=started)


def active(jobs: Jobs) -> list[ReindexJob]:
    """Queued and running reindex jobs, oldest first."""
    return [ReindexJob.of(j) for j in jobs.active(KIND)]


def stored_registry(jobs: Jobs, core: Registry) -> Registry:
    """``core`` plus the active SearchParameters stored in this database."""
    with jobs.read() as conn:
        return registry_for(conn, core)


def stored_types(conn: Connection) -> list[str]:
    """Every resource type with a stored resource (current or deleted)."""
    rows = conn.execute(sa.select(resource.c.type).distinct())
    return sorted(r.type for r in rows)


def _count(conn: Connection, types: list[str]) -> int:
    if not types:
        return 0
    query = sa.select(sa.func.count()).select_from(resource).where(resource.c.type.in_(types))
    return int(conn.execute(query).scalar_one())


def _absorb(jobs: Jobs, job: Job, types: list[str]) -> list[str]:
    """Complete the queued jobs whose types ``job``, starting now, covers (a job of
    every type covers every job); returns their ids."""
    covered = set(types)
    absorbed = []
    for other in jobs.active(KIND):
        if other.state != "queued" or other.id == job.id:
            continue
        wanted = other.params.get("types")
        if wanted is None and job.params.get("types") is not None:
            continue  # every type: covered only by a job of every type
        if wanted is not None and not set(wanted) <= covered:
            continue
        if jobs.settle(other.id, f"covered by job {job.id}"):
            absorbed.append(other.id)
    return absorbed


def _start(jobs: Jobs, job: Job) -> tuple[list[str], dict[str, Any]]:
    """The job's types and progress, fixed with the total on its first start."""
    progress = dict(job.progress)
    if progress.get("types") is not None:
        return list(progress["types"]), progress
    with jobs.read() as conn:
        known = stored_types(conn)
        wanted = job.params.get("types")
        types = known if wanted is None else [t for t in wanted if t in known]
        total = _count(conn, types)
    progress = {"types": types, "total": total, "done": 0, "cursor_type": None, "cursor_id": None}
    if not jobs.report(job.ref, ReindexJob.of(_with(job, progress)).message, progress):
        raise Stopped
    _absorb(jobs, job, types)
    return types, progress


def _with(job: Job, progress: dict[str, Any]) -> Job:
    return replace(job, progress=progress, state="running")


def run_job(
    jobs: Jobs,
    job: Job,
    *,
    batch: int = 500,
    on_batch: OnBatch | None = None,
    stopped: Callable[[], bool] = lambda: False,
) -> str:
    """Run a claimed job to its end; returns ``completed`` or ``stopped`` (cancelled,
    taken over, or ``stopped()``). Other errors propagate; the caller fails the job."""
    try:
        types, progress = _start(jobs, job)
        after: tuple[str | None, str | None] = (progress["cursor_type"], progress["cursor_id"])
        for resource_type in sorted(types):
            if after[0] is not None and resource_type < after[0]:
                continue
            last_id = (after[1] or "") if resource_type == after[0] else ""
            while True:
                if stopped():
                    raise Stopped
                with jobs.write() as conn, conn.begin():
                    ids = reindex_batch(conn, resource_type, last_id, batch)
                    if not ids:
                        break
                    progress = {
                        **progress,
                        "cursor_type": resource_type,
                        "cursor_id": ids[-1],
                        "done": progress["done"] + len(ids),
                    }
                    message = ReindexJob.of(_with(job, progress)).message
                    if not report_in(conn, job.ref, message, progress):
                        raise Stopped
                after, last_id = (resource_type, ids[-1]), ids[-1]
                if on_batch is not None:
                    on_batch(resource_type, len(ids))
        with jobs.write() as conn, conn.begin():
            analyze(conn)
    except Stopped:
        return "stopped"
    return "completed" if jobs.complete(job.ref, progress=progress) else "stopped"


def _bases(conn: Connection, id: str) -> list[str] | None:
    """Union of the ``base`` of every version of SearchParameter ``id``; None: every type."""
    bodies = conn.execute(
        sa.select(resource_version.c.body).where(
            resource_version.c.type == "SearchParameter", resource_version.c.id == id
        )
    ).scalars()
    bases: set[str] = set()
    for body in bodies:
        if isinstance(body, dict) and isinstance(body.get("base"), list):
            bases.update(b for b in body["base"] if isinstance(b, str))
    if bases & ALL_TYPES:
        return None
    return sorted(bases)


def watch(jobs: Jobs) -> list[Job]:
    """Create the jobs for SearchParameter versions that have none; returns them."""
    with jobs.read() as conn:
        current = {
            f"SearchParameter/{r.id}/_history/{r.version}": r
            for r in conn.execute(
                sa.select(resource.c.id, resource.c.version, resource.c.deleted).where(
                    resource.c.type == "SearchParameter"
                )
            )
        }
    known = jobs.known_keys(list(current))
    created = []
    for trigger in (t for t in current if t not in known):
        row = current[trigger]
        with jobs.read() as conn:
            bases = _bases(conn, row.id)
        change = "deleted" if row.deleted else "created" if row.version == 1 else "updated"
        made = create(jobs, bases, f"SearchParameter/{row.id} {change}", trigger)
        if made is not None:
            created.append(made)
    return created


def reindex_kind(jobs: Jobs, *, batch: int = 500) -> JobKind:
    """Reindexing as a kind of job: its step, and ``watch`` at every poll."""

    def run(job: Job, context: JobContext) -> None:
        run_job(jobs, job, batch=batch, stopped=lambda: context.stopped)

    return JobKind(KIND, run, limit=1, maintain=lambda: watch(jobs))
