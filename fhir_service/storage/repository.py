"""The Repository protocol: FHIR storage interactions on plain R4 JSON dicts.

It is independent of any web framework and of the database behind it; the REST
layer maps its results and errors to HTTP (https://hl7.org/fhir/R4/http.html).

A repository lives inside one unit of work (one database transaction) opened by
a ``Store`` bound to one ``AccessScope`` (``fhir_service.storage.access``)::

    store = sql_store.scoped(scope)      # no unit of work without a scope
    with store.begin() as repo:          # commit on success, rollback on any error
        result = repo.create({"resourceType": "Patient", ...})

Every operation applies the scope inside its SQL: what lies outside it does not exist
(NotFound, no match, not counted, never named); a type the scope grants nothing on for
the interaction raises Forbidden; a write under a compartment reach must place the
resource in the scope patient's compartment and no other (Forbidden).

Errors raised (fhir_service.errors): ``NotFound`` (404), ``Gone`` (410, read of
a deleted resource), ``PreconditionFailed`` (412, If-Match mismatch or a
conditional interaction matching several), ``Conflict`` (409),
``InvalidRequest`` / ``InvalidResource`` / ``UnknownResourceType`` (400).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

if TYPE_CHECKING:
    from fhir_service.search.query import SearchRequest
    from fhir_service.search.registry import Registry

T = TypeVar("T")

JSON = dict[str, Any]
"""A FHIR R4 JSON object (resource or Bundle)."""

SearchParams = Sequence[tuple[str, str]]
"""Query parameters as (name, value) pairs, in request order, values not URL-encoded."""

BeforeWrite = Callable[[dict[str, Any]], None]
"""Called with each resource version about to be stored (``id`` and ``meta`` set), in
every write path (create, update, patch, transaction and batch entries); raising
refuses the write. The REST layer uses it for validation on write."""


class WorkerCheck(Protocol):
    """A ``BeforeWrite`` that a transaction may run in its validation workers: ``spec`` is
    what a worker needs to validate (``deferred_validation.checked_batch``); ``receive``
    takes the issues found there, body by body in processing order, and raises as the
    call itself would have."""

    spec: Any

    def __call__(self, body: dict[str, Any]) -> None: ...

    def receive(self, body: dict[str, Any], issues: list[Any]) -> None: ...


class Journal(Protocol):
    """Where a repository records what it touched, for the audit trail (references only)."""

    def record(self, subtype: str, refs: list[str]) -> None: ...


Method = Literal["POST", "PUT", "PATCH", "DELETE"]
"""The interaction that wrote a version (kept in history for Bundle.entry.request)."""

Outcome = Literal["created", "updated", "unchanged", "existing", "deleted"]
"""What a write did.

- ``created``: a new resource (201).
- ``updated``: a new version of an existing resource (200).
- ``unchanged``: an update whose content equals the current version; no new version (200).
- ``existing``: a conditional create (If-None-Exist) matched one resource; nothing written (200).
- ``deleted``: a delete marker was written.
"""


@dataclass(frozen=True, slots=True)
class Stored:
    """One version of a resource as stored (https://hl7.org/fhir/R4/resource.html#Meta).

    ``resource`` carries ``id``, ``meta.versionId`` and ``meta.lastUpdated`` as set by
    the server; it is ``None`` for a delete marker (``deleted`` is then True).
    """

    resource_type: str
    id: str
    version_id: int
    last_updated: datetime  # timezone-aware, UTC
    deleted: bool
    method: Method
    resource: JSON | None

    @property
    def etag(self) -> str:
        """The weak ETag of this version: ``W/"<versionId>"``."""
        return f'W/"{self.version_id}"'

    @property
    def location(self) -> str:
        """Relative version-specific URL: ``Type/id/_history/n``."""
        return f"{self.resource_type}/{self.id}/_history/{self.version_id}"


@dataclass(frozen=True, slots=True)
class StoredResult:
    """The result of a write: the version now current and what the write did."""

    stored: Stored
    outcome: Outcome

    @property
    def created(self) -> bool:
        """True when the write created a resource (HTTP 201)."""
        return self.outcome == "created"


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of a history (https://hl7.org/fhir/R4/http.html#history), newest first.

    ``next_cursor`` is an opaque string to pass back as ``cursor`` for the next
    page, ``None`` on the last page. Paging is stable: versions written after the
    first page do not shift later pages.
    """

    entries: list[Stored]
    next_cursor: str | None
    total: int


@dataclass
class SearchPage:
    """A page of search results as stored versions (https://hl7.org/fhir/R4/search.html)."""

    matches: list[Stored]
    included: list[Stored]
    total: int | None
    next_cursor: str | None
    previous_cursor: str | None


class Repository(Protocol):
    """FHIR storage interactions inside one unit of work.

    Every written resource is validated with the R4B models; ``id``,
    ``meta.versionId`` (integers 1, 2, 3...) and ``meta.lastUpdated`` are set here.
    ``criteria`` arguments are a search query string such as
    ``identifier=http://sys|123`` (a leading ``Type?`` or ``?`` is accepted).
    """

    def create(self, resource: JSON, *, if_none_exist: str | None = None) -> StoredResult:
        """Create with a server-assigned id (https://hl7.org/fhir/R4/http.html#create).

        With ``if_none_exist`` (https://hl7.org/fhir/R4/http.html#ccreate): one match
        returns it with outcome ``existing``; several raise PreconditionFailed.
        Concurrent conditional creates with equal criteria create one resource.
        """
        ...

    def read(self, resource_type: str, id: str) -> Stored:
        """Current version (https://hl7.org/fhir/R4/http.html#read); NotFound or Gone."""
        ...

    def vread(self, resource_type: str, id: str, version_id: int) -> Stored:
        """One version (https://hl7.org/fhir/R4/http.html#vread).

        NotFound for an unknown version, Gone for a delete marker.
        """
        ...

    def update(
        self, resource_type: str, id: str, resource: JSON, *, if_match: int | None = None
    ) -> StoredResult:
        """Update or create-on-update with the client's id (https://hl7.org/fhir/R4/http.html#update).

        ``resource['id']`` must equal ``id`` (InvalidRequest otherwise). ``if_match``
        is the expected current version: a mismatch raises PreconditionFailed and
        writes nothing. Content equal to the current version gives ``unchanged``.
        """
        ...

    def conditional_update(
        self, resource_type: str, criteria: str, resource: JSON, *, if_match: int | None = None
    ) -> StoredResult:
        """Conditional update (https://hl7.org/fhir/R4/http.html#cond-update).

        No match: create (server id, or the resource's id if given); one match:
        update it; several: PreconditionFailed.
        """
        ...

    def patch(
        self,
        resource_type: str,
        id: str,
        operations: list[JSON] | JSON,
        *,
        if_match: int | None = None,
    ) -> StoredResult:
        """Apply a patch (https://hl7.org/fhir/R4/http.html#patch): a JSON Patch (RFC 6902)
        given as a list of operations, or a FHIRPath Patch given as a Parameters resource
        (https://hl7.org/fhir/R4/fhirpatch.html).

        A patch that cannot apply raises Unprocessable; one that yields an invalid
        resource raises InvalidResource.
        """
        ...

    def delete(self, resource_type: str, id: str, *, if_match: int | None = None) -> Stored | None:
        """Delete (https://hl7.org/fhir/R4/http.html#delete): writes a delete marker version.

        Returns the marker, or ``None`` when there was nothing to delete (unknown
        or already deleted; the REST layer answers 200/204 either way).
        """
        ...

    def conditional_patch(
        self,
        resource_type: str,
        criteria: str,
        operations: list[JSON] | JSON,
        *,
        if_match: int | None = None,
    ) -> StoredResult:
        """Conditional patch (https://hl7.org/fhir/R4/http.html#patch): patch the one match of
        ``criteria``; none raises NotFound, several raise PreconditionFailed."""
        ...

    def conditional_delete(self, resource_type: str, criteria: str) -> list[Stored]:
        """Conditional delete, single mode (https://hl7.org/fhir/R4/http.html#3.1.0.7.1).

        Deletes the one match (returns its marker), nothing if none; several raise
        PreconditionFailed.
        """
        ...

    def history(
        self,
        resource_type: str | None = None,
        id: str | None = None,
        *,
        since: datetime | None = None,
        count: int = 50,
        cursor: str | None = None,
    ) -> HistoryPage:
        """Instance (type and id), type (type only) or system (neither) history, newest first.

        ``since`` keeps versions with lastUpdated >= since. Instance history of an
        unknown resource raises NotFound. A bad ``cursor`` raises InvalidRequest.
        """
        ...

    def search(
        self, resource_type: str, params: SearchParams, *, limit: int | None = None
    ) -> list[Stored]:
        """Minimal search over current, non-deleted resources (all parameters ANDed).

        Supported for now: ``_id``, ``identifier`` (``system|value``, ``|value``,
        ``system|``, ``value``) and token/string equality on top-level elements
        (``gender=female``, ``name=...``, ``status=final``). Unsupported parameters
        raise InvalidRequest naming them.
        """
        ...

    def search_page(
        self,
        request: SearchRequest,
        *,
        compartment: str | None = None,
        since: datetime | None = None,
    ) -> SearchPage:
        """One page of a parsed search with its includes (https://hl7.org/fhir/R4/search.html),
        inside the scope (types it may not search are dropped; Forbidden when none is left).
        ``compartment``: only Patient/<id>'s compartment; ``since``: changed at or after."""
        ...

    def check_criteria(self, resource_type: str, params: SearchParams) -> None:
        """Build the query of search criteria ``params`` as a search would, running nothing:
        InvalidRequest for unknown parameters, modifiers or malformed values."""
        ...

    def search_registry(self) -> Registry:
        """The SearchParameters in force: the core ones and the active stored ones."""
        ...

    def counts(self) -> dict[str, int]:
        """Current resources per type, of those the scope may search."""
        ...

    def require(self, resource_type: str, action: str) -> None:
        """Forbidden unless the scope grants ``action`` (c, r, u, d, s) on the type."""
        ...

    def transaction(self, bundle: JSON) -> JSON:
        """Process a transaction Bundle atomically (https://hl7.org/fhir/R4/http.html#transaction).

        Entries run in the order DELETE, POST, PUT/PATCH, GET; urn:uuid fullUrls and
        conditional references are resolved and rewritten. Returns the
        transaction-response Bundle. Any failing entry raises its error (its
        ``expression`` names ``Bundle.entry[i]``) and the unit of work must roll back.
        """
        ...

    def batch(self, bundle: JSON) -> JSON:
        """Process a batch Bundle (https://hl7.org/fhir/R4/http.html#transaction).

        Entries are independent, each in its own savepoint; a failing entry gets
        its status and an OperationOutcome in ``response.outcome``. Returns the
        batch-response Bundle.
        """
        ...


class Store(Protocol):
    """Opens units of work on one database, all with one access scope (``SqlStore.scoped``)."""

    def begin(
        self, *, readonly: bool = False, before_write: BeforeWrite | None = None
    ) -> AbstractContextManager[Repository]:
        """One database transaction: commits when the block ends, rolls back on any exception.

        ``before_write`` sees every resource version this unit of work stores."""
        ...

    async def run_read(self, work: Callable[[Repository], T]) -> T:
        """``work`` on a readonly unit, for async routes: short reads (by id), run where
        they cost least without holding the event loop while they wait for a database."""
        ...

    def close(self) -> None:
        """Release the connection pool."""
        ...


def iter_pages(
    repo: Repository,
    resource_type: str | None = None,
    id: str | None = None,
    *,
    count: int = 100,
) -> Iterator[Stored]:
    """Every version in a history, newest first, following cursors."""
    cursor: str | None = None
    while True:
        page = repo.history(resource_type, id, count=count, cursor=cursor)
        yield from page.entries
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
