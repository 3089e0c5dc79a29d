"""Access control around the Repository: SMART scopes and the patient compartment
(https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html,
https://hl7.org/fhir/R4/compartmentdefinition-patient.html).

Every route reaches data through ``store.begin()``; the application hands routes a
``GuardedStore`` (see ``fhir_service.api.auth.install``) whose repositories check each
interaction against the request's ``AccessContext``:

- a missing scope for the interaction's type and action raises Forbidden (403);
- with only ``patient/`` scopes, reads and searches return nothing outside the token
  patient's compartment (a direct read of such a resource is 404, as if it did not
  exist); writes whose old or new content lies outside it raise Forbidden, and since the
  check runs inside the unit of work, the write is rolled back;
- transaction and batch entries are checked one by one, GET entries and their search
  results included; history pages and search results are filtered version by version;
- repository methods added later are passed through when their names say they read
  (``read…``, ``search…``, ``get…``, ...), their results filtered: every ``Stored``,
  resource or Bundle they return is checked like a read; any other unknown method
  needs ``system/*.cruds`` (fail closed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from typing import Any, TypeVar, cast

import sqlalchemy as sa

from fhir_service.api.auth.context import AccessContext
from fhir_service.api.auth.scopes import Reach
from fhir_service.errors import FhirServiceError, Forbidden, Gone, InvalidRequest, NotFound
from fhir_service.fhir.bundle import RequestTarget, entry_method, parse_request_url, response_entry
from fhir_service.fhir.outcome import operation_outcome
from fhir_service.search.compartment import patient_compartment
from fhir_service.search.query import SearchRequest
from fhir_service.search.registry import get_registry
from fhir_service.storage.criteria import parse_criteria
from fhir_service.storage.repository import (
    JSON,
    BeforeWrite,
    HistoryPage,
    Outcome,
    Repository,
    SearchParams,
    Store,
    Stored,
    StoredResult,
    iter_pages,
)
from fhir_service.storage.search_sql import SearchPage, compartment_filter
from fhir_service.storage.tables import resource

T = TypeVar("T")

_READ_PREFIXES = ("read", "search", "get", "count", "list", "find", "iter", "everything", "page")
"""Repository methods not known here whose names start so are treated as reads (their
results are filtered); any other unknown method needs unrestricted access."""


def _outside(what: str) -> Forbidden:
    return Forbidden(f"{what} is outside the patient compartment of the access token")


def _refs(items: list[Stored]) -> list[str]:
    return [f"{s.resource_type}/{s.id}" for s in items]


_ENTRY_ACTIONS = {"POST": "c", "PUT": "u", "PATCH": "u", "DELETE": "d"}


@dataclass
class _Entry:
    index: int
    method: str
    target: RequestTarget

    @property
    def action(self) -> str:
        if self.method in _ENTRY_ACTIONS:
            return _ENTRY_ACTIONS[self.method]
        return "s" if self.target.id is None else "r"


def _parse_entries(bundle: Any) -> list[_Entry | None]:
    """Method and target of each entry; ``None`` where the entry is malformed (the
    repository rejects it with its own error)."""
    raw = bundle.get("entry") if isinstance(bundle, dict) else None
    if not isinstance(raw, list):
        return []
    parsed: list[_Entry | None] = []
    for index, entry in enumerate(raw):
        try:
            if not isinstance(entry, dict):
                raise InvalidRequest("entry")
            method = entry_method(entry, index)
            target = parse_request_url(entry["request"].get("url"), index=index)
        except InvalidRequest:
            parsed.append(None)
            continue
        parsed.append(_Entry(index, method, target))
    return parsed


def _in_entry(exc: FhirServiceError, index: int) -> FhirServiceError:
    where = f"Bundle.entry[{index}]"
    return type(exc)(f"{where}: {exc.diagnostics}", expression=where)


def _error_entry(exc: FhirServiceError) -> JSON:
    phrase = HTTPStatus(exc.status).phrase
    return response_entry(f"{exc.status} {phrase}", outcome=operation_outcome(exc.issues))


def _location(entry: JSON) -> tuple[str, str, int] | None:
    response = entry.get("response") if isinstance(entry, dict) else None
    location = response.get("location") if isinstance(response, dict) else None
    if not isinstance(location, str):
        return None
    parts = location.split("/")
    if len(parts) >= 4 and parts[-2] == "_history" and parts[-1].isdigit():
        return parts[-4], parts[-3], int(parts[-1])
    return None


class GuardedRepository:
    """A Repository that enforces an AccessContext on every interaction."""

    def __init__(self, inner: Repository, context: AccessContext) -> None:
        self._inner = inner
        self._ctx = context

    # ----------------------------------------------------------------- helpers

    def _prior_visible(self, resource_type: str, id: str, version_id: int) -> bool:
        """Whether the last content before version ``version_id`` (if any) may be seen."""
        prior = self._last_content(resource_type, id, version_id)
        return prior is None or self._ctx.in_compartment(prior)

    def _version_visible(self, stored: Stored, actions: str = "rs") -> bool:
        """A version may be seen; a delete marker when the content it deleted may."""
        if stored.resource is not None:
            return self._ctx.may_see(stored.resource, actions)
        reaches = {self._ctx.reach(stored.resource_type, a) for a in actions}
        if "all" in reaches:
            return True
        if "compartment" not in reaches:
            return False
        prior = self._last_content(stored.resource_type, stored.id, stored.version_id)
        return self._ctx.in_compartment(prior)

    def _last_content(self, resource_type: str, id: str, before: int | None) -> JSON | None:
        """The newest content of the resource older than version ``before`` (any when
        ``None``), walking its history; ``None`` when it never had any."""
        try:
            for stored in iter_pages(self._inner, resource_type, id):
                if (before is None or stored.version_id < before) and stored.resource:
                    return stored.resource
        except NotFound:
            return None
        return None

    def _check_write(self, result: StoredResult, reach: Reach, what: str) -> None:
        """After a write: a create-on-update needs ``c``; in compartment reach the new and
        the replaced content must both lie in the compartment (else Forbidden, rollback)."""
        stored = result.stored
        if result.outcome == "created":
            reach = self._ctx.require(stored.resource_type, "c")
        if reach != "compartment":
            return
        if not self._ctx.in_compartment(stored.resource):
            raise _outside(what)
        if result.outcome == "updated" and not self._prior_visible(
            stored.resource_type, stored.id, stored.version_id
        ):
            raise _outside(what)

    def _hidden(self, resource_type: str, id: str) -> NotFound:
        return NotFound(f"Resource {resource_type}/{id} is not known")

    # ------------------------------------------------------------- interactions

    def create(self, resource: JSON, *, if_none_exist: str | None = None) -> StoredResult:
        rtype = str(resource.get("resourceType", ""))
        reach = self._ctx.require(rtype, "c")
        if reach == "compartment" and not self._ctx.in_compartment(resource):
            raise _outside(f"The new {rtype}")
        result = self._inner.create(resource, if_none_exist=if_none_exist)
        if result.outcome == "existing" and not self._ctx.may_see(result.stored.resource):
            raise _outside(f"The {rtype} matching If-None-Exist")
        self._ctx.note.record("create", _refs([result.stored]))
        return result

    def read(self, resource_type: str, id: str) -> Stored:
        reach = self._ctx.require(resource_type, "r")
        try:
            stored = self._inner.read(resource_type, id)
        except Gone:
            if reach == "compartment":
                last = self._last_content(resource_type, id, None)
                if not self._ctx.in_compartment(last):
                    raise self._hidden(resource_type, id) from None
            raise
        if not self._ctx.may_see(stored.resource, "r"):
            raise self._hidden(resource_type, id)
        self._ctx.note.record("read", _refs([stored]))
        return stored

    def vread(self, resource_type: str, id: str, version_id: int) -> Stored:
        reach = self._ctx.require(resource_type, "r")
        try:
            stored = self._inner.vread(resource_type, id, version_id)
        except Gone:
            if reach == "compartment":
                last = self._last_content(resource_type, id, version_id)
                if not self._ctx.in_compartment(last):
                    raise self._hidden(resource_type, id) from None
            raise
        if not self._ctx.may_see(stored.resource, "r"):
            raise self._hidden(resource_type, id)
        self._ctx.note.record("vread", _refs([stored]))
        return stored

    def update(
        self, resource_type: str, id: str, resource: JSON, *, if_match: int | None = None
    ) -> StoredResult:
        reach = self._ctx.require(resource_type, "u")
        if reach == "compartment" and not self._ctx.in_compartment(resource):
            raise _outside(f"The new content of {resource_type}/{id}")
        result = self._inner.update(resource_type, id, resource, if_match=if_match)
        self._check_write(result, reach, f"{resource_type}/{id}")
        self._ctx.note.record("update", _refs([result.stored]))
        return result

    def conditional_update(
        self, resource_type: str, criteria: str, resource: JSON, *, if_match: int | None = None
    ) -> StoredResult:
        reach = self._ctx.require(resource_type, "u")
        if reach == "compartment" and not self._ctx.in_compartment(resource):
            raise _outside(f"The new {resource_type}")
        result = self._inner.conditional_update(
            resource_type, criteria, resource, if_match=if_match
        )
        self._check_write(result, reach, f"The {resource_type} matching the criteria")
        self._ctx.note.record("update", _refs([result.stored]))
        return result

    def patch(
        self,
        resource_type: str,
        id: str,
        operations: list[JSON] | JSON,
        *,
        if_match: int | None = None,
    ) -> StoredResult:
        reach = self._ctx.require(resource_type, "u")
        if reach == "compartment":
            current = self._inner.read(resource_type, id)
            if not self._ctx.in_compartment(current.resource):
                raise self._hidden(resource_type, id)
        result = self._inner.patch(resource_type, id, operations, if_match=if_match)
        self._check_write(result, reach, f"{resource_type}/{id}")
        self._ctx.note.record("patch", _refs([result.stored]))
        return result

    def delete(self, resource_type: str, id: str, *, if_match: int | None = None) -> Stored | None:
        reach = self._ctx.require(resource_type, "d")
        if reach == "compartment":
            try:
                current = self._inner.read(resource_type, id)
            except (NotFound, Gone):
                current = None
            if current is not None and not self._ctx.in_compartment(current.resource):
                raise _outside(f"{resource_type}/{id}")
        marker = self._inner.delete(resource_type, id, if_match=if_match)
        self._ctx.note.record("delete", _refs([marker]) if marker else [])
        return marker

    def conditional_patch(
        self,
        resource_type: str,
        criteria: str,
        operations: list[JSON] | JSON,
        *,
        if_match: int | None = None,
    ) -> StoredResult:
        reach = self._ctx.require(resource_type, "u")
        result = self._inner.conditional_patch(
            resource_type, criteria, operations, if_match=if_match
        )
        self._check_write(result, reach, f"The {resource_type} matching the criteria")
        self._ctx.note.record("patch", _refs([result.stored]))
        return result

    def conditional_delete(self, resource_type: str, criteria: str) -> list[Stored]:
        reach = self._ctx.require(resource_type, "d")
        markers = self._inner.conditional_delete(resource_type, criteria)
        if reach == "compartment":
            for marker in markers:
                if not self._prior_visible(resource_type, marker.id, marker.version_id):
                    raise _outside(f"{resource_type}/{marker.id}")
        self._ctx.note.record("delete", _refs(markers))
        return markers

    def history(
        self,
        resource_type: str | None = None,
        id: str | None = None,
        *,
        since: datetime | None = None,
        count: int = 50,
        cursor: str | None = None,
    ) -> HistoryPage:
        if resource_type is not None:
            self._ctx.require(resource_type, "r")
        page = self._inner.history(resource_type, id, since=since, count=count, cursor=cursor)
        kept = [s for s in page.entries if self._version_visible(s, "r")]
        level = "instance" if id is not None else ("type" if resource_type else "system")
        self._ctx.note.record(f"history-{level}", _refs(kept))
        if len(kept) == len(page.entries):
            return page
        if id is not None and resource_type is not None and not kept:
            raise self._hidden(resource_type, id)
        return HistoryPage(kept, page.next_cursor, len(kept))

    def search(
        self, resource_type: str, params: SearchParams, *, limit: int | None = None
    ) -> list[Stored]:
        self._ctx.require(resource_type, "s")
        found = self._inner.search(resource_type, params, limit=limit)
        kept = [s for s in found if self._version_visible(s)]
        self._ctx.note.record("search-type", _refs(kept))
        return kept

    def search_page(self, request: SearchRequest, extra: list[Any] | None = None) -> SearchPage:
        """A parsed search (``fhir_service.search``): types without a search scope are
        refused (one type) or dropped (several); types reached only through the patient
        compartment are narrowed to it in SQL, so paging and totals stay exact; every
        match and _include/_revinclude is checked again before it is returned."""
        reaches = {t: self._ctx.reach(t, "s") for t in request.types}
        allowed = [t for t, reach in reaches.items() if reach is not None]
        if not allowed:
            self._ctx.require(request.types[0] if request.types else "Resource", "s")
        narrowed = [t for t in allowed if reaches[t] == "compartment"]
        where = list(extra or [])
        if narrowed:
            everywhere = [t for t in allowed if reaches[t] == "all"]
            inside = compartment_filter(
                patient_compartment(get_registry()), narrowed, str(self._ctx.patient)
            )
            where.append(sa.or_(resource.c.type.in_(everywhere), inside) if everywhere else inside)
        if allowed != request.types:
            request = dataclasses.replace(request, types=allowed)
        inner = cast(Any, self._inner)
        page: SearchPage = inner.search_page(request, where)
        matches = [s for s in page.matches if self._version_visible(s)]
        included = [s for s in page.included if self._version_visible(s)]
        self._ctx.note.record("search-type", _refs(matches + included))
        total = page.total if len(matches) == len(page.matches) else None
        return dataclasses.replace(page, matches=matches, included=included, total=total)

    def counts(self) -> dict[str, int]:
        """Resources per type, for the types a search scope covers; types reached only
        through the compartment show 1 (presence), never the count of all patients'."""
        inner = cast(Any, self._inner)
        counts: dict[str, int] = inner.counts()
        reaches = {t: self._ctx.reach(t, "s") for t in counts}
        return {
            t: (n if reaches[t] == "all" else min(n, 1))
            for t, n in counts.items()
            if reaches[t] is not None
        }

    # ---------------------------------------------------------- bundles

    def _denial(self, entry: _Entry) -> FhirServiceError | None:
        """Why an entry may not run (missing scope, delete outside the compartment)."""
        rtype = entry.target.resource_type
        try:
            reach = self._ctx.require(rtype, entry.action)
        except Forbidden as exc:
            return exc
        if entry.method != "DELETE" or reach != "compartment":
            return None
        try:
            if entry.target.id is not None:
                current = [self._inner.read(rtype, entry.target.id)]
            else:
                current = self._inner.search(rtype, parse_criteria(entry.target.query or "", rtype))
        except FhirServiceError:
            return None
        for stored in current:
            if not self._ctx.in_compartment(stored.resource):
                return _outside(f"{rtype}/{stored.id}")
        return None

    def _check_response(
        self, entry: _Entry, response: JSON
    ) -> tuple[JSON, FhirServiceError | None]:
        """The response entry as the client may see it, or the error the entry must fail with."""
        status = str((response.get("response") or {}).get("status", ""))
        if not status.startswith("2"):
            return response, None
        rtype = entry.target.resource_type
        if entry.method in ("GET", "HEAD"):
            resource = response.get("resource")
            if isinstance(resource, dict) and resource.get("resourceType") == "Bundle":
                return {**response, "resource": self._filter_bundle(resource)}, None
            if isinstance(resource, dict) and not self._ctx.may_see(resource, "r"):
                return response, self._hidden(rtype, str(entry.target.id))
            return response, None
        where = _location(response)
        if where is None:
            return response, None
        stored = self._inner.vread(*where)
        reach = self._ctx.require(rtype, entry.action)
        outcome: Outcome = "created" if status.startswith("201") else "updated"
        if entry.method == "POST" and outcome == "updated":
            if not self._ctx.may_see(stored.resource):
                return response, _outside(f"The {rtype} matching ifNoneExist")
            return response, None
        try:
            self._check_write(StoredResult(stored, outcome), reach, f"{where[0]}/{where[1]}")
        except Forbidden as exc:
            return response, exc
        return response, None

    def transaction(self, bundle: JSON) -> JSON:
        entries = _parse_entries(bundle)
        for entry in entries:
            if entry is not None and (denial := self._denial(entry)) is not None:
                raise _in_entry(denial, entry.index)
        result = self._inner.transaction(bundle)
        responses = list(result.get("entry") or [])
        for i, (entry, response) in enumerate(zip(entries, responses, strict=False)):
            if entry is None:
                continue
            responses[i], error = self._check_response(entry, response)
            if error is not None:
                raise _in_entry(error, entry.index)
        self._ctx.note.record("transaction", [])
        return {**result, "entry": responses}

    def batch(self, bundle: JSON) -> JSON:
        entries = _parse_entries(bundle)
        denied: dict[int, FhirServiceError] = {}
        for entry in entries:
            if entry is not None and (denial := self._denial(entry)) is not None:
                denied[entry.index] = denial
        raw = list(bundle.get("entry") or []) if isinstance(bundle, dict) else []
        allowed = [i for i in range(len(raw)) if i not in denied]
        result = self._inner.batch({**bundle, "entry": [raw[i] for i in allowed]})
        answered = list(result.get("entry") or [])
        merged: dict[int, JSON] = {i: _error_entry(exc) for i, exc in denied.items()}
        for i, response in zip(allowed, answered, strict=False):
            entry = entries[i] if i < len(entries) else None
            if entry is None:
                merged[i] = response
                continue
            checked, error = self._check_response(entry, response)
            if error is not None and entry.method not in ("GET", "HEAD"):
                raise _in_entry(error, i)
            merged[i] = _error_entry(error) if error is not None else checked
        responses = [merged[i] for i in sorted(merged)]
        self._ctx.note.record("batch", [])
        return {**result, "entry": responses}

    # ------------------------------------------------------ anything else

    def _filter_bundle(self, bundle: JSON) -> JSON:
        entries = bundle.get("entry") or []
        kept = [
            e
            for e in entries
            if not isinstance(e, dict)
            or not isinstance(e.get("resource"), dict)
            or self._ctx.may_see(e["resource"])
        ]
        if len(kept) == len(entries):
            return bundle
        filtered = {**bundle, "entry": kept}
        if "total" in filtered:
            filtered["total"] = len(kept)
        return filtered

    def _filter(self, value: Any) -> Any:
        """``value`` without what the context may not see (see the module docstring)."""
        if isinstance(value, Stored):
            if not self._version_visible(value):
                raise self._hidden(value.resource_type, value.id)
            self._ctx.note.record("operation", _refs([value]))
            return value
        if isinstance(value, StoredResult):
            self._filter(value.stored)
            return value
        if isinstance(value, list | tuple):
            kept = []
            for item in value:
                if isinstance(item, Stored) and not self._version_visible(item):
                    continue
                if (
                    isinstance(item, dict)
                    and item.get("resourceType", "Bundle") != "Bundle"
                    and not self._ctx.may_see(item)
                ):
                    continue
                kept.append(self._filter(item))
            return type(value)(kept) if isinstance(value, tuple) else kept
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            return self._filter_bundle(value)
        if isinstance(value, dict) and "resourceType" in value:
            if not self._ctx.may_see(value):
                raise self._hidden(str(value["resourceType"]), str(value.get("id")))
            return value
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes = {
                f.name: self._filter(getattr(value, f.name))
                for f in dataclasses.fields(value)
                if isinstance(getattr(value, f.name), list | tuple | dict | Stored)
            }
            return dataclasses.replace(value, **changes)
        return value

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute
        reads = name.startswith(_READ_PREFIXES)

        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not reads and not self._ctx.unrestricted():
                raise Forbidden(
                    f"Repository method '{name}' is not covered by scope checks; "
                    "it needs system/*.cruds"
                )
            return self._filter(attribute(*args, **kwargs))

        return guarded


class GuardedStore:
    """A Store whose units of work hand out GuardedRepository objects."""

    def __init__(self, inner: Store, context: AccessContext) -> None:
        self._inner = inner
        self.context = context

    @contextmanager
    def begin(
        self, *, readonly: bool = False, before_write: BeforeWrite | None = None
    ) -> Iterator[GuardedRepository]:
        with self._inner.begin(readonly=readonly, before_write=before_write) as repo:
            yield GuardedRepository(repo, self.context)

    async def run_read(self, work: Callable[[Repository], T]) -> T:
        return await self._inner.run_read(lambda repo: work(GuardedRepository(repo, self.context)))

    def close(self) -> None:
        """The application owns the real store; closing a guard does nothing."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def guard(store: Store, context: AccessContext) -> GuardedStore:
    """``store`` seen through ``context``."""
    return GuardedStore(store, context)
