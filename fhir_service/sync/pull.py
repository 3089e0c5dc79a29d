"""Pull remote resources into local storage (https://hl7.org/fhir/R4/search.html).

Per resource type: ``GET Type?_lastUpdated=ge<checkpoint>&_sort=_lastUpdated``,
following ``next`` links, or ``_offset`` when the remote pages without links.
Each page is written in one database transaction together with its id-map rows
and the new checkpoint, so a crash loses nothing and repeats nothing: a resource
whose remote version is already mapped is skipped. A resource changed locally
since it was last synchronized is reported as a conflict, not overwritten.

When the remote declares system history (``history-system``) and no type filter is
given, the pull reads ``GET _history?_since=<checkpoint>`` instead
(https://hl7.org/fhir/R4/http.html#history): one request when nothing changed, and
deletes arrive as entries; the pages are applied oldest first, newest version of
each resource only, the checkpoint moving with each committed chunk.

Which types: those named (``types``; a type this server does not serve is an error),
else those the remote's CapabilityStatement lists that this server serves, else, when it
lists none (``rest.resource`` is 0..*, e.g. the Medplum router of the tests with
``--capabilities bare``), every type this server serves; then a 4xx on a type's first
search means the remote does not hold that type (counted as ``types_unavailable``). A
pull whose every type search was refused fails (``RemoteUnsupported``): it never
reports success having pulled nothing it was asked for.

Validation on write: ``checks()`` gives each unit of work the same check as the REST API
(``FHIR_SERVICE_VALIDATE_ON_WRITE``); a resource it refuses is not written and is reported
in the run's errors (``failed``, with the validation message), the rest of the page is
written and the checkpoint moves on: the remote's next version of it is pulled again.

One patient: ``patient=<id>`` pulls ``Patient/<id>/$everything`` (with ``_since``
the patient's checkpoint), page by page.

Deletes without history: with ``deletes=True`` the mapped ids of each type are
looked up on the remote (``_id=a,b,...``); ids the remote no longer has are
deleted locally (the Medplum peer of the tests keeps no history of deletes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir_service.errors import FhirServiceError, UnknownResourceType
from fhir_service.fhir.references import iter_references, parse_reference, rewrite_references
from fhir_service.storage import SqlRepository, SqlStore
from fhir_service.storage.repository import BeforeWrite
from fhir_service.storage.sync_local import Current
from fhir_service.sync import state
from fhir_service.sync.capabilities import Capabilities, served_types
from fhir_service.sync.client import FhirClient
from fhir_service.sync.entries import same_content, strip_server_meta
from fhir_service.sync.errors import RemoteNotFound, RemoteRejected, RemoteUnsupported
from fhir_service.sync.push import Progress, RunReport, strip_markers
from fhir_service.sync.state import MapRow, SyncState


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class _Change:
    """One history entry: the resource's (type, id), when, and its body (None: deleted)."""

    key: tuple[str, str]
    when: str | None
    resource: dict[str, Any] | None

    @classmethod
    def of(cls, entry: dict[str, Any]) -> _Change | None:
        resource = entry.get("resource")
        request = entry.get("request") or {}
        response = entry.get("response") or {}
        if isinstance(resource, dict) and request.get("method") != "DELETE":
            meta = resource.get("meta") or {}
            key = (str(resource.get("resourceType")), str(resource.get("id")))
            return cls(key, meta.get("lastUpdated") or response.get("lastModified"), resource)
        parsed = parse_reference(str(request.get("url") or entry.get("fullUrl") or ""))
        if request.get("method") != "DELETE" or parsed is None:
            return None
        return cls((parsed.resource_type, parsed.id), response.get("lastModified"), None)


class Puller:
    """One pull run against one remote."""

    def __init__(
        self,
        store: SqlStore,
        client: FhirClient,
        *,
        types: list[str] | None = None,
        page_size: int = 200,
        deletes: bool = False,
        history: bool = True,
        patient: str | None = None,
        progress: Progress | None = None,
        checks: Callable[[], BeforeWrite | None] = lambda: None,
    ) -> None:
        self.store = store
        self.checks = checks
        self.client = client
        self.remote = state.remote_key(client.base_url)
        self.types = types
        self.page_size = page_size
        self.deletes = deletes
        self.history = history
        self.patient = patient
        self.progress = progress

    async def run(self, run: state.RunRef | None = None) -> RunReport:
        if run is None:
            scope = f"everything:{self.patient}" if self.patient else "changed"
            run = state.start_run(self.store, self.remote, "pull", scope)
        report = RunReport(run)
        try:
            caps = await self.client.capabilities()
            if self.patient is not None:
                await self._pull_everything(self.patient, report)
                types: list[str] = []
            elif self.history and caps.history_system and not self.types:
                await self._pull_history(report)
                types = []
            else:
                types = self._types(caps)
            # A type neither named with ``types`` nor listed by the remote may be unknown
            # there: its search failing with a 4xx means "not held there", not an error.
            optional = not self.types and not caps.types
            for index, rtype in enumerate(types):
                if await self._pull_type(rtype, report, optional=optional):
                    report.counts["types"] += 1
                    if self.deletes:
                        await self._find_deletes(rtype, report)
                else:
                    report.counts["types_unavailable"] += 1
                if self.progress:
                    self.progress(index + 1, len(types))
            if types and not report.counts["types"]:
                raise RemoteUnsupported(
                    f"the remote answered none of the {len(types)} type searches of this pull"
                )
        except asyncio.CancelledError:
            raise  # stopped by its runner: the run stays as it is (given back, cancelled)
        except BaseException as exc:
            report.errors.append({"error": type(exc).__name__, "message": str(exc)})
            state.finish_run(self.store, report.run, "failed", dict(report.counts), report.errors)
            raise
        state.finish_run(self.store, report.run, report.status, dict(report.counts), report.errors)
        return report

    def _types(self, caps: Capabilities) -> list[str]:
        """The types to search: those named, else those the remote lists that this server
        serves, else (a statement listing none, ``rest.resource`` being 0..*) every type this
        server serves (https://hl7.org/fhir/R4/capabilitystatement.html)."""
        served = served_types()
        if self.types:
            unknown = sorted(set(self.types) - set(served))
            if unknown:
                raise UnknownResourceType(
                    f"not a resource type this server serves: {', '.join(unknown)}"
                )
            return list(dict.fromkeys(self.types))
        if caps.types:
            common = sorted(caps.types & set(served))
            if not common:
                raise RemoteUnsupported(
                    "the remote's CapabilityStatement lists no resource type this server serves"
                )
            return common
        return list(served)

    async def _pull_type(self, rtype: str, report: RunReport, *, optional: bool = False) -> bool:
        """Search one type page by page; False when ``optional`` and the remote refuses the
        first search (a 4xx: the type is not held there)."""
        with state.reading(self.store) as tx:
            checkpoint = tx.checkpoint(self.remote, f"pull:{rtype}")
        base: list[tuple[str, Any]] = [("_count", self.page_size), ("_sort", "_lastUpdated")]
        if checkpoint:
            base.append(("_lastUpdated", f"ge{checkpoint}"))
        url, offset = rtype, 0
        params: list[tuple[str, Any]] | None = list(base)
        first = True
        while True:
            try:
                bundle = await self.client.get(url, params)
            except (RemoteNotFound, RemoteRejected):
                if not (first and optional):
                    raise
                report.counts["requests"] += 1
                return False
            first = False
            report.counts["requests"] += 1
            entries = bundle.get("entry") or [] if isinstance(bundle, dict) else []
            resources = [
                e["resource"]
                for e in entries
                if e.get("resource") and (e.get("search") or {}).get("mode", "match") == "match"
            ]
            if resources:
                self._apply(rtype, resources, report)
            link = next(
                (lk for lk in bundle.get("link") or [] if lk.get("relation") == "next"), None
            )
            total = bundle.get("total")
            if link and resources:
                url, params = link["url"], None
            elif isinstance(total, int) and resources and offset + len(resources) < total:
                offset += len(resources)
                url, params = rtype, [*base, ("_offset", offset)]
            else:
                return True

    async def _pull_everything(self, patient: str, report: RunReport) -> None:
        """``GET Patient/<id>/$everything``, following next links; each page one transaction.

        https://hl7.org/fhir/R4/patient-operation-everything.html; ``_since`` is the
        checkpoint of earlier runs for this patient.
        """
        name = f"pull:everything:{patient}"
        with state.reading(self.store) as tx:
            checkpoint = tx.checkpoint(self.remote, name)
        url = f"Patient/{patient}/$everything"
        params: list[tuple[str, Any]] | None = [("_count", self.page_size)]
        if checkpoint:
            params = [*(params or []), ("_since", checkpoint)]
        while True:
            try:
                bundle = await self.client.get(url, params)
            except (RemoteNotFound, RemoteRejected) as exc:
                raise RemoteRejected(
                    f"the remote does not answer $everything for Patient/{patient}: {exc}"
                ) from exc
            report.counts["requests"] += 1
            resources = [
                e["resource"]
                for e in (bundle.get("entry") or [] if isinstance(bundle, dict) else [])
                if isinstance(e.get("resource"), dict)
            ]
            by_type: dict[str, list[dict[str, Any]]] = {}
            for resource in resources:
                by_type.setdefault(str(resource.get("resourceType")), []).append(resource)
            with state.unit(self.store, self.checks()) as (tx, repo):
                stamps = [
                    s
                    for rtype, group in sorted(by_type.items())
                    if (s := self._apply_in(tx, repo, rtype, group, report))
                ]
                newest = max(stamps, key=_instant, default=None)
                previous = tx.checkpoint(self.remote, name)
                if newest and (previous is None or _instant(newest) > _instant(previous)):
                    tx.set_checkpoint(self.remote, name, newest)
                tx.record_progress(report.run, dict(report.counts), report.errors)
            link = next(
                (lk for lk in bundle.get("link") or [] if lk.get("relation") == "next"), None
            )
            if not link or not resources:
                return
            url, params = link["url"], None

    async def _pull_history(self, report: RunReport) -> None:
        """Read ``_history?_since=<checkpoint>`` (all pages), then apply it oldest first."""
        name = "pull:_history"
        with state.reading(self.store) as tx:
            checkpoint = tx.checkpoint(self.remote, name)
        url = "_history"
        params: list[tuple[str, Any]] | None = [("_count", self.page_size)]
        if checkpoint:
            params = [*(params or []), ("_since", checkpoint)]
        entries: list[dict[str, Any]] = []
        while True:
            bundle = await self.client.get(url, params)
            report.counts["requests"] += 1
            entries += bundle.get("entry") or [] if isinstance(bundle, dict) else []
            link = next(
                (lk for lk in bundle.get("link") or [] if lk.get("relation") == "next"), None
            )
            if not link:
                break
            url, params = link["url"], None
        latest: dict[tuple[str, str], _Change] = {}
        for entry in reversed(entries):  # history is newest first
            change = _Change.of(entry)
            if change is not None:
                latest.pop(change.key, None)
                latest[change.key] = change
        changes = list(latest.values())
        for start in range(0, len(changes), self.page_size):
            chunk = changes[start : start + self.page_size]
            with state.unit(self.store, self.checks()) as (tx, repo):
                by_type: dict[str, list[dict[str, Any]]] = {}
                for change in chunk:
                    if change.resource is not None:
                        by_type.setdefault(change.key[0], []).append(change.resource)
                for rtype, resources in by_type.items():
                    self._apply_in(tx, repo, rtype, resources, report)
                removed = [c.key for c in chunk if c.resource is None]
                rows = tx.map_by_remote(self.remote, removed)
                gone = [r for r in rows.values() if not r.deleted]
                self._delete_in(tx, repo, gone, report)
                newest = max((c.when for c in chunk if c.when), key=_instant, default=None)
                previous = tx.checkpoint(self.remote, name)
                if newest and (previous is None or _instant(newest) > _instant(previous)):
                    tx.set_checkpoint(self.remote, name, newest)
                tx.record_progress(report.run, dict(report.counts), report.errors)

    def _apply(self, rtype: str, resources: list[dict[str, Any]], report: RunReport) -> None:
        """Write one search page, its id-map rows and the type's checkpoint in one transaction."""
        with state.unit(self.store, self.checks()) as (tx, repo):
            newest = self._apply_in(tx, repo, rtype, resources, report)
            if newest:
                name = f"pull:{rtype}"
                previous = tx.checkpoint(self.remote, name)
                if previous is None or _instant(newest) > _instant(previous):
                    tx.set_checkpoint(self.remote, name, newest)
            tx.record_progress(report.run, dict(report.counts), report.errors)

    def _apply_in(
        self,
        tx: SyncState,
        repo: SqlRepository,
        rtype: str,
        resources: list[dict[str, Any]],
        report: RunReport,
    ) -> str | None:
        """Write remote resources of one type locally; returns the newest lastUpdated seen."""
        mapped = tx.map_by_remote(self.remote, [(rtype, r["id"]) for r in resources])
        refs: set[tuple[str, str]] = set()
        for resource in resources:
            for ref in iter_references(resource):
                parsed = parse_reference(ref)
                if parsed is not None and parsed.base is None:
                    refs.add((parsed.resource_type, parsed.id))
        ref_map = tx.map_by_remote(self.remote, refs)

        def local_ref(reference: str) -> str | None:
            parsed = parse_reference(reference)
            if parsed is None or parsed.base is not None:
                return None
            row = ref_map.get((parsed.resource_type, parsed.id))
            return f"{parsed.resource_type}/{row.local_id}" if row else None

        local_ids = {
            r["id"]: (mapped[(rtype, r["id"])].local_id if (rtype, r["id"]) in mapped else r["id"])
            for r in resources
        }
        currents = {c.id: c for c in tx.local.current_of({(rtype, i) for i in local_ids.values()})}
        rows: list[MapRow] = []
        fresh: list[tuple[str, str, dict[str, Any], datetime]] = []
        fresh_versions: list[str] = []
        now = repo.now()
        newest: str | None = None
        for resource in resources:
            meta = resource.get("meta") or {}
            updated = meta.get("lastUpdated")
            if updated and (newest is None or _instant(updated) > _instant(newest)):
                newest = updated
            remote_version = str(meta.get("versionId") or "")
            row = mapped.get((rtype, resource["id"]))
            if row is not None and row.remote_version == remote_version and not row.deleted:
                report.counts["unchanged"] += 1
                continue
            local_id = local_ids[resource["id"]]
            current = currents.get(local_id)
            body = strip_markers(strip_server_meta(rewrite_references(resource, local_ref)))
            body["id"] = local_id
            if current and self._conflicting(repo, current, row, body):
                report.errors.append(
                    {
                        "kind": "conflict",
                        "resource": f"{rtype}/{local_id}",
                        "remote": f"{rtype}/{resource['id']}",
                        "message": "changed locally since the last sync; not overwritten",
                    }
                )
                report.counts["conflict"] += 1
                continue
            try:
                if current is None:
                    # New here: validated now, written below in one multi-row insert.
                    fresh.append(
                        (
                            rtype,
                            local_id,
                            repo.versioned_body(rtype, local_id, body, 1, now, action="c"),
                            now,
                        )
                    )
                    fresh_versions.append(remote_version)
                    continue
                result = repo.update(rtype, local_id, body)
            except FhirServiceError as exc:
                report.errors.append(
                    {"kind": "failed", "resource": f"{rtype}/{local_id}", "message": str(exc)}
                )
                report.counts["failed"] += 1
                continue
            report.counts[result.outcome] += 1
            rows.append(
                MapRow(rtype, local_id, resource["id"], result.stored.version_id, remote_version)
            )
        by_local = {v: k for k, v in local_ids.items()}
        for stored, remote_version in zip(repo.insert_new(fresh), fresh_versions, strict=True):
            rows.append(
                MapRow(rtype, stored.id, by_local[stored.id], stored.version_id, remote_version)
            )
            report.counts["created"] += 1
        tx.save_map(self.remote, rows)
        return newest

    @staticmethod
    def _conflicting(repo: Any, current: Current, row: MapRow | None, body: dict[str, Any]) -> bool:
        if row is not None:
            return current.version != row.local_version
        if current.deleted:
            return False
        existing = repo.read(current.type, current.id).resource
        return existing is not None and not same_content(existing, body)

    async def _find_deletes(self, rtype: str, report: RunReport) -> None:
        with state.reading(self.store) as tx:
            known = tx.mapped(self.remote, rtype)
        for start in range(0, len(known), 50):
            chunk = known[start : start + 50]
            params: list[tuple[str, Any]] = [
                ("_id", ",".join(r.remote_id for r in chunk)),
                ("_count", len(chunk)),
            ]
            bundle = await self.client.get(rtype, params)
            report.counts["requests"] += 1
            present = {
                (e.get("resource") or {}).get("id")
                for e in (bundle.get("entry") or [] if isinstance(bundle, dict) else [])
            }
            gone = [r for r in chunk if r.remote_id not in present]
            if not gone:
                continue
            with state.unit(self.store, self.checks()) as (tx, repo):
                self._delete_in(tx, repo, gone, report)
                tx.record_progress(report.run, dict(report.counts), report.errors)

    def _delete_in(
        self, tx: SyncState, repo: SqlRepository, gone: list[MapRow], report: RunReport
    ) -> None:
        """Delete locally what the remote deleted, unless it changed here since the last sync."""
        deleted: list[MapRow] = []
        for row in gone:
            rtype = row.type
            current = tx.local.current_of({(rtype, row.local_id)})
            if current and current[0].version != row.local_version:
                report.errors.append(
                    {
                        "kind": "conflict",
                        "resource": f"{rtype}/{row.local_id}",
                        "remote": f"{rtype}/{row.remote_id}",
                        "message": "deleted on the remote but changed locally; kept",
                    }
                )
                report.counts["conflict"] += 1
                continue
            marker = repo.delete(rtype, row.local_id)
            version = marker.version_id if marker else row.local_version
            deleted.append(MapRow(rtype, row.local_id, row.remote_id, version, None, deleted=True))
            report.counts["deleted"] += 1
        tx.save_map(self.remote, deleted)


async def pull(
    store: SqlStore,
    client: FhirClient,
    *,
    types: list[str] | None = None,
    page_size: int = 200,
    deletes: bool = False,
    history: bool = True,
    patient: str | None = None,
    progress: Progress | None = None,
    run: state.RunRef | None = None,
    checks: Callable[[], BeforeWrite | None] = lambda: None,
) -> RunReport:
    """Pull what changed on the remote since the last pull; see the module doc.

    ``run`` carries out a run a worker claimed (``jobs.SyncJobs.claim``); without it a
    new run is recorded with ``state.start_run``.
    """
    puller = Puller(
        store,
        client,
        types=types,
        page_size=page_size,
        deletes=deletes,
        history=history,
        patient=patient,
        progress=progress,
        checks=checks,
    )
    return await puller.run(run)
