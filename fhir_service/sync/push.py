"""Push local resources to the remote (https://hl7.org/fhir/R4/http.html#transaction).

Scope: everything changed since the last push (local write order ``seq``), or one
patient's compartment. Each chunk goes as a transaction when the remote's
CapabilityStatement declares one, else as a batch, else as single requests.
Known resources are updated under ``If-Match`` with the remote version last seen
(https://hl7.org/fhir/R4/http.html#concurrency): a 412 whose remote content is not
what we sent is reported as a conflict and left alone. A 412 whose remote content
equals ours is a push that reached the remote before a crash: it is recorded, not
repeated. Resources the remote lets clients name (``updateCreate``) keep their
local id; others are created with POST in a transaction and the assigned id kept
in the id map; references are rewritten to remote ids.

Creates with remote-assigned ids are idempotent across crashes
(https://hl7.org/fhir/R4/http.html#transaction, #ccreate): a POST is not, and a push
killed after the remote committed a chunk but before the push stored the ids it got
would create the chunk again. So each POSTed resource carries a marker tag
(``meta.tag``: system ``MARKER_SYSTEM``, code = the entry's ``urn:uuid``, derived from
remote, type and local id), and before a chunk with POSTs is sent its intent (type,
local id, version, marker of each) is committed locally (checkpoint ``push:intent``);
the chunk's id-map rows clear it. A run that finds an intent left over looks the
markers up on the remote (``GET Type?_tag=system|code,...``, R4 search.html#all, every
page) and records what it finds before pushing anything, so only what the remote does
not hold is created again. Matches are checked on the returned resources' tags, so a
remote that ignores ``_tag`` costs a scan of the type, never a wrong match. No
conditional create (``ifNoneExist``) is used: a remote that does not support the
criteria's parameter either ignores it (and matches every resource of the type) or,
like the Medplum router, matches none; both make ``ifNoneExist`` unsafe.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from fhir_service.fhir.references import iter_references, parse_reference, rewrite_references
from fhir_service.storage import SqlStore
from fhir_service.storage.sync_local import Current
from fhir_service.sync import state
from fhir_service.sync.capabilities import Capabilities
from fhir_service.sync.client import FhirClient
from fhir_service.sync.entries import (
    entry_id,
    entry_status,
    entry_version,
    etag_of,
    same_content,
    strip_server_meta,
    version_from_etag,
)
from fhir_service.sync.errors import RemoteConflict, RemoteError, RemoteNotFound, RemoteRejected
from fhir_service.sync.state import MapRow

Progress = Callable[[int, int], None]
"""Called with (done, total) after each chunk."""

URN_NAMESPACE = uuid.UUID("2f3f3c64-3a8e-4bb0-9a57-5d3a3f7d5c11")
MARKER_SYSTEM = f"urn:uuid:{URN_NAMESPACE}"
"""System of the marker tag on resources this push creates with POST (code: the entry's uuid)."""
INTENT = "push:intent"
"""Checkpoint holding the creates of the chunk being sent (JSON), cleared with its id map."""
LOOKUP_CHUNK = 20
"""Markers per recovery search (``_tag=a,b,...``), keeping the URL short."""


@dataclass
class RunReport:
    """What one run did: the run, counts by outcome and the errors (conflicts included)."""

    run: state.RunRef
    counts: Counter[str] = field(default_factory=Counter)
    errors: list[dict[str, str]] = field(default_factory=list)
    modes: Counter[str] = field(default_factory=Counter)

    @property
    def run_id(self) -> str:
        return self.run.id

    @property
    def status(self) -> str:
        return "succeeded" if not self.errors else "partial"


@dataclass
class _Item:
    """One resource to push, the request built for it, and its result."""

    current: Current
    mapped: MapRow | None
    method: str = "PUT"
    url: str = ""
    remote_id: str = ""
    full_url: str | None = None
    body: dict[str, Any] | None = None
    if_match: str | None = None
    outcome: str = ""
    remote_version: str | None = None
    message: str = ""


def _needs_push(current: Current, mapped: MapRow | None) -> bool:
    if mapped is None:
        return not current.deleted
    if current.deleted:
        return not mapped.deleted
    return mapped.local_version != current.version


class Pusher:
    """One push run against one remote."""

    def __init__(
        self,
        store: SqlStore,
        client: FhirClient,
        *,
        chunk_size: int = 50,
        progress: Progress | None = None,
        modes: tuple[str, ...] = ("transaction", "batch", "single"),
        client_ids: bool = True,
    ) -> None:
        self.store = store
        self.client_ids = client_ids
        self.client = client
        self.remote = state.remote_key(client.base_url)
        self.chunk_size = chunk_size
        self.progress = progress
        self.allowed_modes = modes

    async def run(
        self, *, patient: str | None = None, run: state.RunRef | None = None
    ) -> RunReport:
        scope = f"patient:{patient}" if patient else "changed"
        if run is None:
            run = state.start_run(self.store, self.remote, "push", scope)
        report = RunReport(run)
        try:
            caps = await self.client.capabilities()
            await self._recover(report)
            with state.reading(self.store) as tx:
                checkpoint = int(tx.checkpoint(self.remote, "push") or 0)
                if patient:
                    candidates = tx.local.compartment(patient)
                else:
                    candidates = tx.local.changed_since(checkpoint)
                mapped = tx.map_by_local(self.remote, [(c.type, c.id) for c in candidates])
            todo = [c for c in candidates if _needs_push(c, mapped.get((c.type, c.id)))]
            report.counts["skipped"] = len(candidates) - len(todo)
            done = 0
            for start in range(0, len(todo), self.chunk_size):
                chunk = todo[start : start + self.chunk_size]
                items = self._prepare(chunk, caps)
                self._intend(items)
                await self._send(items, caps, report)
                self._commit(items, report, None if patient else chunk[-1].seq)
                done += len(chunk)
                if self.progress:
                    self.progress(done, len(todo))
            if not patient and candidates and not report.errors:
                with state.unit(self.store) as (tx, _):
                    last = max(c.seq for c in candidates)
                    if last > checkpoint:
                        tx.set_checkpoint(self.remote, "push", str(last))
        except asyncio.CancelledError:
            raise  # stopped by its runner: the run stays as it is (given back, cancelled)
        except BaseException as exc:
            report.errors.append({"error": type(exc).__name__, "message": str(exc)})
            state.finish_run(self.store, report.run, "failed", dict(report.counts), report.errors)
            raise
        state.finish_run(self.store, report.run, report.status, dict(report.counts), report.errors)
        return report

    # ------------------------------------------------------------ requests

    def _prepare(self, chunk: list[Current], caps: Capabilities) -> list[_Item]:
        with state.reading(self.store) as tx:
            mapped = tx.map_by_local(self.remote, [(c.type, c.id) for c in chunk])
            texts = tx.local.bodies([c.seq for c in chunk if not c.deleted])
            refs: set[tuple[str, str]] = set()
            for body in texts.values():
                refs |= _local_refs(body)
            ref_map = tx.map_by_local(self.remote, refs)
        items: list[_Item] = []
        urns: dict[str, str] = {}
        for current in chunk:
            item = _Item(current, mapped.get((current.type, current.id)))
            if item.mapped is not None:
                item.remote_id = item.mapped.remote_id
                item.if_match = (
                    etag_of(item.mapped.remote_version) if item.mapped.remote_version else None
                )
            elif self.client_ids and current.type in caps.update_create:
                item.remote_id = current.id
            else:
                item.method = "POST"
                name = f"{self.remote}/{current.type}/{current.id}"
                item.full_url = f"urn:uuid:{uuid.uuid5(URN_NAMESPACE, name)}"
                urns[f"{current.type}/{current.id}"] = item.full_url
            if current.deleted:
                item.method = "DELETE"
            items.append(item)

        def remote_ref(reference: str) -> str | None:
            parsed = parse_reference(reference)
            if parsed is None or parsed.base is not None:
                return None
            if parsed.relative in urns:
                return urns[parsed.relative]
            row = ref_map.get((parsed.resource_type, parsed.id))
            return f"{parsed.resource_type}/{row.remote_id}" if row else None

        for item in items:
            c = item.current
            if item.method == "POST":
                item.url = c.type
            else:
                item.url = f"{c.type}/{item.remote_id}"
            if item.method != "DELETE":
                body = strip_server_meta(rewrite_references(texts[c.seq], remote_ref))
                if item.method == "PUT":
                    body["id"] = item.remote_id
                else:
                    body.pop("id", None)
                    body = with_marker(body, _marker(item))
                item.body = body
        return items

    async def _send(self, items: list[_Item], caps: Capabilities, report: RunReport) -> None:
        posts = any(i.method == "POST" for i in items)
        if caps.transaction and "transaction" in self.allowed_modes:
            try:
                response = await self.client.bundle(_bundle("transaction", items))
            except (RemoteConflict, RemoteRejected):
                if posts:
                    raise
            else:
                report.modes["transaction"] += 1
                self._read_bundle(items, response)
                await self._settle_conflicts(items)
                return
        if caps.batch and "batch" in self.allowed_modes and not posts:
            response = await self.client.bundle(_bundle("batch", items))
            report.modes["batch"] += 1
            self._read_bundle(items, response)
        else:
            report.modes["single"] += 1
            for item in items:
                await self._send_one(item)
        await self._settle_conflicts(items)

    def _read_bundle(self, items: list[_Item], response: dict[str, Any]) -> None:
        entries = response.get("entry") or []
        for item, entry in zip(items, entries, strict=False):
            status = entry_status(entry)
            if 200 <= status < 300:
                item.outcome = _success(item)
                item.remote_version = entry_version(entry)
                if item.method == "POST":
                    item.remote_id = entry_id(entry) or ""
            elif status in (409, 412):
                item.outcome = "conflict"
            elif item.method == "DELETE" and status in (404, 410):
                item.outcome = "deleted"
            else:
                item.outcome = "failed"
                item.message = f"{status} {entry.get('response', {}).get('outcome', '')}"
        for item in items[len(entries) :]:
            item.outcome, item.message = "failed", "missing from the response Bundle"

    async def _send_one(self, item: _Item) -> None:
        headers = {"if-match": item.if_match} if item.if_match else None
        try:
            response = await self.client.request(
                item.method, item.url, json=item.body, headers=headers
            )
        except RemoteConflict:
            item.outcome = "conflict"
            return
        except RemoteNotFound:
            if item.method == "DELETE":
                item.outcome = "deleted"
                return
            item.outcome, item.message = "failed", "not found"
            return
        except RemoteError as exc:
            if exc.remote_status and exc.remote_status < 500:
                item.outcome, item.message = "failed", str(exc)
                return
            raise
        item.outcome = _success(item)
        body = response.body if isinstance(response.body, dict) else {}
        item.remote_version = version_from_etag(response.etag) or (body.get("meta") or {}).get(
            "versionId"
        )
        if item.method == "POST":
            item.remote_id = str(body.get("id") or "")

    async def _settle_conflicts(self, items: list[_Item]) -> None:
        """A 412 on content the remote already holds (a push cut short) is not a conflict."""
        for item in items:
            if item.outcome != "conflict":
                continue
            try:
                remote = await self.client.get(item.url)
            except RemoteNotFound:
                if item.method == "DELETE":
                    item.outcome = "deleted"
                else:
                    item.message = "deleted on the remote since the last sync"
                continue
            if (
                item.body is not None
                and isinstance(remote, dict)
                and same_content(remote, item.body)
            ):
                item.outcome = "updated"
                item.remote_version = str((remote.get("meta") or {}).get("versionId") or "")
            else:
                version = (
                    (remote.get("meta") or {}).get("versionId")
                    if isinstance(remote, dict)
                    else None
                )
                item.message = (
                    f"remote version {version} differs from the version last synchronized "
                    f"({item.mapped.remote_version if item.mapped else 'none'}); not overwritten"
                )

    # ------------------------------------------------------------ crash safety of creates

    def _intend(self, items: list[_Item]) -> None:
        """Commit the creates of a chunk before it is sent (``push:intent``)."""
        posts = [
            [i.current.type, i.current.id, i.current.version, _marker(i)]
            for i in items
            if i.method == "POST"
        ]
        if not posts:
            return
        with state.unit(self.store) as (tx, _):
            tx.set_checkpoint(self.remote, INTENT, json.dumps(posts))

    async def _recover(self, report: RunReport) -> None:
        """Record the creates of a chunk cut short that the remote committed anyway.

        Each marker of the intent left over is looked up on the remote by ``_tag``; what is
        found is written to the id map (so it is not created again), and the intent cleared.
        """
        with state.reading(self.store) as tx:
            text = tx.checkpoint(self.remote, INTENT)
        if not text:
            return
        intended: dict[str, tuple[str, str, int]] = {
            code: (rtype, local_id, version) for rtype, local_id, version, code in json.loads(text)
        }
        found: dict[str, list[dict[str, Any]]] = {}
        by_type: dict[str, list[str]] = {}
        for code, (rtype, _, _) in intended.items():
            by_type.setdefault(rtype, []).append(code)
        for rtype, codes in sorted(by_type.items()):
            for start in range(0, len(codes), LOOKUP_CHUNK):
                wanted = set(codes[start : start + LOOKUP_CHUNK])
                value = ",".join(f"{MARKER_SYSTEM}|{c}" for c in sorted(wanted))
                async for resource in self._search(rtype, [("_tag", value)], report):
                    for code in markers_of(resource) & wanted:
                        found.setdefault(code, []).append(resource)
        rows: list[MapRow] = []
        for code, resources in found.items():
            rtype, local_id, version = intended[code]
            resources.sort(key=lambda r: str((r.get("meta") or {}).get("lastUpdated") or ""))
            first = resources[0]
            remote_version = (first.get("meta") or {}).get("versionId")
            rows.append(
                MapRow(
                    rtype,
                    local_id,
                    str(first["id"]),
                    version,
                    remote_version and str(remote_version),
                )
            )
            report.counts["recovered"] += 1
            for extra in resources[1:]:
                report.errors.append(
                    {
                        "kind": "duplicate",
                        "resource": f"{rtype}/{local_id}",
                        "remote": f"{rtype}/{extra['id']}",
                        "message": f"also created on the remote as {rtype}/{first['id']}",
                    }
                )
        with state.unit(self.store) as (tx, _):
            tx.save_map(self.remote, rows)
            tx.delete_checkpoint(self.remote, INTENT)
            tx.record_progress(report.run, dict(report.counts), report.errors)

    async def _search(
        self, rtype: str, params: list[tuple[str, Any]], report: RunReport
    ) -> AsyncIterator[dict[str, Any]]:
        """Every match of a search, following ``next`` links, or ``_offset`` with ``total``."""
        base: list[tuple[str, Any]] = [*params, ("_count", 100)]
        url, offset = rtype, 0
        query: list[tuple[str, Any]] | None = list(base)
        while True:
            bundle = await self.client.get(url, query)
            report.counts["requests"] += 1
            entries = bundle.get("entry") or [] if isinstance(bundle, dict) else []
            resources = [
                e["resource"]
                for e in entries
                if isinstance(e.get("resource"), dict)
                and (e.get("search") or {}).get("mode", "match") == "match"
            ]
            for resource in resources:
                yield resource
            link = next(
                (lk for lk in bundle.get("link") or [] if lk.get("relation") == "next"), None
            )
            total = bundle.get("total")
            if link and resources:
                url, query = link["url"], None
            elif isinstance(total, int) and resources and offset + len(resources) < total:
                offset += len(resources)
                url, query = rtype, [*base, ("_offset", offset)]
            else:
                return

    # ------------------------------------------------------------ local state

    def _commit(self, items: list[_Item], report: RunReport, checkpoint: int | None) -> None:
        rows: list[MapRow] = []
        for item in items:
            c = item.current
            report.counts[item.outcome] += 1
            if item.outcome in ("created", "updated", "deleted"):
                rows.append(
                    MapRow(
                        c.type,
                        c.id,
                        item.remote_id,
                        c.version,
                        item.remote_version,
                        deleted=item.outcome == "deleted",
                    )
                )
            else:
                report.errors.append(
                    {
                        "kind": item.outcome,
                        "resource": f"{c.type}/{c.id}",
                        "remote": item.url,
                        "message": item.message,
                    }
                )
        with state.unit(self.store) as (tx, _):
            tx.save_map(self.remote, rows)
            if any(item.method == "POST" for item in items):
                tx.delete_checkpoint(self.remote, INTENT)
            # Conflicts and failures hold the checkpoint back, so the next push reports
            # (or retries) them again until they are resolved.
            if checkpoint is not None and not report.errors:
                previous = int(tx.checkpoint(self.remote, "push") or 0)
                if checkpoint > previous:
                    tx.set_checkpoint(self.remote, "push", str(checkpoint))
            tx.record_progress(report.run, dict(report.counts), report.errors)


def _marker(item: _Item) -> str:
    """The marker code of a create: the uuid of its entry's ``urn:uuid`` full URL."""
    return (item.full_url or "").removeprefix("urn:uuid:")


def with_marker(body: dict[str, Any], code: str) -> dict[str, Any]:
    """A copy of ``body`` whose ``meta.tag`` carries the marker ``code`` (and no other)."""
    out = strip_markers(body)
    meta = dict(out.get("meta") or {})
    meta["tag"] = [*(meta.get("tag") or []), {"system": MARKER_SYSTEM, "code": code}]
    out["meta"] = meta
    return out


def strip_markers(body: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``body`` without marker tags (what a pull writes locally)."""
    meta = body.get("meta")
    if not isinstance(meta, dict) or not any(
        isinstance(t, dict) and t.get("system") == MARKER_SYSTEM for t in meta.get("tag") or []
    ):
        return body
    tags = [
        t
        for t in meta.get("tag") or []
        if not (isinstance(t, dict) and t.get("system") == MARKER_SYSTEM)
    ]
    out = dict(body)
    new_meta = {k: v for k, v in meta.items() if k != "tag"}
    if tags:
        new_meta["tag"] = tags
    if new_meta:
        out["meta"] = new_meta
    else:
        out.pop("meta", None)
    return out


def markers_of(resource: dict[str, Any]) -> set[str]:
    """The marker codes on a resource's ``meta.tag``."""
    return {
        str(t.get("code"))
        for t in (resource.get("meta") or {}).get("tag") or []
        if isinstance(t, dict) and t.get("system") == MARKER_SYSTEM
    }


def _success(item: _Item) -> str:
    """Outcome of an accepted write: new to the remote (no mapping yet), updated or deleted."""
    if item.method == "DELETE":
        return "deleted"
    return "created" if item.mapped is None or item.mapped.deleted else "updated"


def _local_refs(body: dict[str, Any]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for ref in iter_references(body):
        parsed = parse_reference(ref)
        if parsed is not None and parsed.base is None:
            out.add((parsed.resource_type, parsed.id))
    return out


def _bundle(kind: str, items: list[_Item]) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    for item in items:
        request: dict[str, Any] = {"method": item.method, "url": item.url}
        if item.if_match:
            request["ifMatch"] = item.if_match
        entry: dict[str, Any] = {"request": request}
        if item.full_url:
            entry["fullUrl"] = item.full_url
        if item.body is not None:
            entry["resource"] = item.body
        entries.append(entry)
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


async def push(
    store: SqlStore,
    client: FhirClient,
    *,
    patient: str | None = None,
    chunk_size: int = 50,
    progress: Progress | None = None,
    modes: tuple[str, ...] = ("transaction", "batch", "single"),
    run: state.RunRef | None = None,
    client_ids: bool = True,
) -> RunReport:
    """Push what changed since the last push (or one patient's compartment); see the module doc.

    ``run`` carries out a run a worker claimed (``jobs.SyncJobs.claim``); without it a
    new run is recorded with ``state.start_run``. With
    ``client_ids=False`` new resources are always POSTed and get remote-assigned ids
    (for servers that declare updateCreate but should not receive our ids).
    """
    pusher = Pusher(
        store, client, chunk_size=chunk_size, progress=progress, modes=modes, client_ids=client_ids
    )
    return await pusher.run(patient=patient, run=run)
