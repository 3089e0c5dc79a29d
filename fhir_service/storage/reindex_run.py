"""Running a reindex job, and making jobs for changed SearchParameters
(https://hl7.org/fhir/R4/searchparameter.html).

``run_job`` rewrites the index rows of every resource of the job's types, in id order,
one short transaction per batch; the batch and its checkpoint commit together, so a
resumed job neither skips nor repeats a batch. Each batch reads the SearchParameters
stored at that moment, so the newest definitions win; hence a job starting completes
the queued jobs it covers (several SearchParameters stored at once cost one pass).

``watch`` compares the stored SearchParameter versions with the jobs' triggers: each
version (a create, update or delete marker) without a job gets one, for the union of
the ``base`` types of all its versions (a changed or removed base needs its old rows
removed); ``Resource`` or ``DomainResource`` means every stored type.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from fhir_service.storage.reindex_jobs import ReindexJob, ReindexJobs
from fhir_service.storage.search_index import analyze, reindex_batch
from fhir_service.storage.tables import resource, resource_version

OnBatch = Callable[[str, int], None]
"""Called after each committed batch with the resource type and the batch size."""
ALL_TYPES = frozenset({"Resource", "DomainResource"})


class Stopped(Exception):
    """The job was cancelled, or another worker holds it now."""


def stored_types(conn: Connection) -> list[str]:
    """Every resource type with a stored resource (current or deleted)."""
    rows = conn.execute(sa.select(resource.c.type).distinct())
    return sorted(r.type for r in rows)


def _count(conn: Connection, types: list[str]) -> int:
    if not types:
        return 0
    query = sa.select(sa.func.count()).select_from(resource).where(resource.c.type.in_(types))
    return int(conn.execute(query).scalar_one())


def _start(jobs: ReindexJobs, job: ReindexJob) -> list[str]:
    """The job's types, fixed with the total on its first start."""
    if job.cursor_type is not None and job.types is not None:
        return job.types
    with jobs.read() as conn:
        known = stored_types(conn)
        types = known if job.types is None else [t for t in job.types if t in known]
        total = _count(conn, types)
    if not jobs.start(job.id, types, total):
        raise Stopped
    jobs.absorb(job, types)
    return types


def run_job(
    jobs: ReindexJobs, job: ReindexJob, *, batch: int = 500, on_batch: OnBatch | None = None
) -> str:
    """Run a claimed job to its end; returns ``completed`` or ``stopped`` (cancelled or
    taken over). Other errors propagate; the caller marks the job failed."""
    try:
        types = _start(jobs, job)
        after: tuple[str | None, str | None] = (job.cursor_type, job.cursor_id)
        for resource_type in sorted(types):
            if after[0] is not None and resource_type < after[0]:
                continue
            last_id = (after[1] or "") if resource_type == after[0] else ""
            while True:
                with jobs.write() as conn, conn.begin():
                    ids = reindex_batch(conn, resource_type, last_id, batch)
                    if not ids:
                        break
                    reached = (resource_type, ids[-1])
                    if not jobs.checkpoint(conn, job, after, reached, len(ids)):
                        raise Stopped
                after, last_id = reached, ids[-1]
                if on_batch is not None:
                    on_batch(resource_type, len(ids))
        with jobs.write() as conn, conn.begin():
            analyze(conn)
    except Stopped:
        return "stopped"
    return "completed" if jobs.complete(job.id) else "stopped"


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


def watch(jobs: ReindexJobs) -> list[ReindexJob]:
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
    known = jobs.known_triggers(list(current))
    missing = [t for t in current if t not in known]
    created = []
    for trigger in missing:
        row = current[trigger]
        with jobs.read() as conn:
            bases = _bases(conn, row.id)
        change = "deleted" if row.deleted else "created" if row.version == 1 else "updated"
        job = jobs.create(bases, f"SearchParameter/{row.id} {change}", trigger)
        if job is not None:
            created.append(job)
    return created
