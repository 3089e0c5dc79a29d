"""The SQL implementation of the Repository protocol (SQLite and PostgreSQL).

One instance works inside one database transaction opened by ``SqlStore.begin``;
it never commits. Versions follow https://hl7.org/fhir/R4/http.html#versioning:
integer versionIds 1, 2, 3..., deletes kept as marker versions.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import jsonpatch
import jsonpointer
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from fhir_service.errors import (
    Conflict,
    Forbidden,
    Gone,
    InvalidRequest,
    InvalidResource,
    NotFound,
    PreconditionFailed,
    Unprocessable,
)
from fhir_service.fhir.fhirpath_patch import apply_fhirpath_patch, is_fhirpath_patch
from fhir_service.fhir.models import model_class, parse_resource
from fhir_service.fhir.packages import PackageError
from fhir_service.fhir.validation_pool import ValidationPool
from fhir_service.search.compartment import patient_compartment
from fhir_service.search.query import SearchRequest, parse_search
from fhir_service.search.registry import Registry, get_registry
from fhir_service.storage.access import AccessScope
from fhir_service.storage.compartment_rows import copy_rows, insert_rows, patients_of
from fhir_service.storage.conditional import (
    CLAIM_HOLDER,
    CLAIM_TAKEOVER,
    IdentifierClaim,
    claim_identifiers,
    claim_insert,
    identifier_criteria,
    match_identifier,
)
from fhir_service.storage.criteria import criteria_hash, parse_criteria
from fhir_service.storage.engine import driver_execute
from fhir_service.storage.ids import check_id, format_instant, new_id, utc_now
from fhir_service.storage.repository import (
    JSON,
    BeforeWrite,
    HistoryPage,
    Journal,
    Method,
    SearchPage,
    SearchParams,
    Stored,
    StoredResult,
    WorkerCheck,
)
from fhir_service.storage.search_index import drop_index, index_resources, registry_for
from fhir_service.storage.search_sql import compartment_filter, match_query, since_filter
from fhir_service.storage.search_sql import run as run_search
from fhir_service.storage.tables import (
    as_utc,
    resource,
    resource_version,
    version_patient,
)
from fhir_service.storage.transaction import run_batch, run_transaction
from fhir_service.storage.visibility import visible, visible_resources

_CLAIM_ATTEMPTS = 5
_CONTROL_PARAMS = frozenset({"_format", "_pretty"})
# Built once: a statement built per call cost a read by id more than running it.
_READ_DRIVER = (
    "SELECT v.type, v.id, v.version, v.last_updated, v.deleted, v.method, v.body, v.seq"
    " FROM resource AS r JOIN resource_version AS v ON v.seq = r.seq"
    " WHERE r.type = {marker} AND r.id = {marker}"
)
"""A read by id (the current version of type and id) as the database's own statement,
run on the driver connection: SQLAlchemy's
execution machinery cost a read by id three times what SQLite spends on it, and on
PostgreSQL half the CPU of the read (177 against 94 µs)."""
_READ_BY_DIALECT = {
    "sqlite": _READ_DRIVER.format(marker="?"),
    "postgresql": _READ_DRIVER.format(marker="%s"),
}
_MEMBER = sa.select(version_patient.c.seq).where(
    version_patient.c.patient_id == sa.bindparam("patient"),
    version_patient.c.seq == sa.bindparam("seq"),
)
_VREAD = sa.select(resource_version).where(
    resource_version.c.type == sa.bindparam("type"),
    resource_version.c.id == sa.bindparam("id"),
    resource_version.c.version == sa.bindparam("version"),
)


def _content(body: JSON) -> JSON:
    """The resource without the server-managed meta.versionId and meta.lastUpdated."""
    out = dict(body)
    meta = dict(out.get("meta") or {})
    meta.pop("versionId", None)
    meta.pop("lastUpdated", None)
    if meta:
        out["meta"] = meta
    else:
        out.pop("meta", None)
    return out


def split_token(value: str) -> tuple[str | None, str | None]:
    """``system|code`` -> (system, code); ``|code`` -> ("", code); ``code`` -> (None, code)."""
    if "|" not in value:
        return None, value
    system, _, code = value.partition("|")
    return system, code or None


class _Row(NamedTuple):
    """A ``resource_version`` row as ``_stored`` reads it."""

    type: str
    id: str
    version: int
    last_updated: datetime
    deleted: bool
    method: str
    body: JSON | None
    seq: int


@dataclass(frozen=True, slots=True)
class _Current:
    """The current-version pointer of one resource."""

    version: int
    deleted: bool
    seq: int


def _unknown(resource_type: str, id: str) -> NotFound:
    """The answer for a resource that does not exist, or lies outside the scope (the same)."""
    return NotFound(f"{resource_type}/{id} is not known")


def _refs(items: list[Stored]) -> list[str]:
    return [f"{s.resource_type}/{s.id}" for s in items]


class SqlRepository:
    """Repository on one SQLAlchemy connection inside an open transaction, seeing and
    changing only what its ``AccessScope`` reaches: every statement it runs carries the
    scope (``visibility``); what lies outside it does not exist for this repository."""

    def __init__(
        self,
        conn: Connection,
        *,
        scope: AccessScope,
        journal: Journal | None = None,
        clock: Callable[[], datetime] = utc_now,
        before_write: BeforeWrite | None = None,
        validation_pool: ValidationPool | None = None,
    ) -> None:
        self._conn = conn
        self.scope = scope
        self.journal = journal
        self._clock = clock
        self._before_write = before_write
        self.validation_pool = validation_pool
        """Worker processes that validate a transaction's resources beside its SQL."""
        self.validate_later: Callable[[JSON], None] | None = None
        """Where ``versioned_body`` hands each body to be validated before the unit commits
        (set by a transaction with a ``validation_pool``); None: validate at once."""
        self.worker_check: WorkerCheck | None = (
            before_write if hasattr(before_write, "receive") else None  # type: ignore[assignment]
        )
        """``before_write`` when a transaction may run it in its validation workers."""
        self._lock_rows = conn.dialect.name == "postgresql"
        self._sqlite = conn.dialect.name == "sqlite"
        self._registry: Registry | None = None

    @property
    def connection(self) -> Connection:
        """The unit's connection (for storage modules that stream their own statements)."""
        return self._conn

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return str(self._conn.dialect.name)

    # ------------------------------------------------------------------ scope

    def require(self, resource_type: str, action: str) -> None:
        """Forbidden unless the scope grants ``action`` on the type (type level only)."""
        self.scope.require(resource_type, action)

    def _member(self, seq: int) -> bool:
        """Whether version ``seq`` lies in the scope patient's compartment."""
        found = self._conn.execute(_MEMBER, {"patient": self.scope.patient, "seq": seq})
        return found.first() is not None

    def _sees(self, resource_type: str, seq: int, action: str) -> bool:
        """Whether the scope reaches version ``seq`` of a ``resource_type`` for ``action``."""
        reach = self.scope.reach(resource_type, action)
        if reach == "all":
            return True
        return reach == "compartment" and self._member(seq)

    def _check_placement(self, resource_type: str, body: JSON, action: str) -> None:
        """Content written under a compartment reach must lie in the scope patient's
        compartment and in no other patient's (Forbidden; the message names no one)."""
        if self.scope.require(resource_type, action) != "compartment":
            return
        if patients_of(self._index_registry(), body) != {self.scope.patient}:
            raise Forbidden(
                f"The {resource_type} would lie outside the patient compartment of the "
                "access token: it must reference that patient, and no other, through the "
                "compartment's parameters"
            )

    def _note(self, subtype: str, items: list[Stored]) -> None:
        if self.journal is not None:
            self.journal.record(subtype, _refs(items))

    # ------------------------------------------------------------------ reads

    def _stored(self, row: Any) -> Stored:
        body = row.body
        if body is not None:
            # JSONB does not keep key order; FHIR JSON reads best with these first.
            body = {
                "resourceType": body["resourceType"],
                "id": body["id"],
                "meta": body.get("meta"),
                **body,
            }
        return Stored(
            resource_type=row.type,
            id=row.id,
            version_id=row.version,
            last_updated=row.last_updated,
            deleted=bool(row.deleted),
            method=row.method,
            resource=body,
        )

    def _current_row(self, resource_type: str, id: str, *, lock: bool = False) -> _Current | None:
        query = sa.select(resource.c.version, resource.c.deleted, resource.c.seq).where(
            resource.c.type == resource_type, resource.c.id == id
        )
        if lock and self._lock_rows:
            query = query.with_for_update()
        row = self._conn.execute(query).first()
        return None if row is None else _Current(row.version, bool(row.deleted), row.seq)

    def _version_by_seq(self, seq: int) -> Stored:
        row = self._conn.execute(
            sa.select(resource_version).where(resource_version.c.seq == seq)
        ).one()
        return self._stored(row)

    def read(self, resource_type: str, id: str) -> Stored:
        model_class(resource_type)
        reach = self.scope.require(resource_type, "r")
        row = self._driver_read(resource_type, id)
        if row is None or (reach == "compartment" and not self._member(row.seq)):
            raise _unknown(resource_type, id)
        if row.deleted:
            raise Gone(f"{resource_type}/{id} was deleted (version {row.version})")
        stored = self._stored(row)
        self._note("read", [stored])
        return stored

    def _driver_read(self, resource_type: str, id: str) -> _Row | None:
        """``_READ_DRIVER`` on the driver connection, its columns converted as the table's types
        would (SQLite: JSON text, naive UTC timestamp text, 0/1); a driver error is raised
        as SQLAlchemy's own, as from any other statement."""
        sql = _READ_BY_DIALECT[self._conn.dialect.name]
        found = driver_execute(self._conn, sql, (resource_type, id), prepare=True)
        if not found:
            return None
        type_, id_, version, last_updated, deleted, method, body, seq = found[0]
        return _Row(
            type_,
            id_,
            version,
            as_utc(last_updated),
            bool(deleted),
            method,
            orjson.loads(body) if isinstance(body, str) else body,
            seq,
        )

    def vread(self, resource_type: str, id: str, version_id: int) -> Stored:
        model_class(resource_type)
        reach = self.scope.require(resource_type, "r")
        row = self._conn.execute(
            _VREAD, {"type": resource_type, "id": id, "version": version_id}
        ).first()
        if row is None or (reach == "compartment" and not self._member(row.seq)):
            raise NotFound(f"{resource_type}/{id}/_history/{version_id} is not known")
        if row.deleted:
            raise Gone(f"{resource_type}/{id}/_history/{version_id} is a delete")
        stored = self._stored(row)
        self._note("vread", [stored])
        return stored

    # ----------------------------------------------------------------- writes

    def _prepare(self, body: Any, resource_type: str | None = None) -> JSON:
        if not isinstance(body, dict):
            raise InvalidResource("A FHIR resource must be a JSON object")
        actual = body.get("resourceType")
        if not isinstance(actual, str) or not actual:
            raise InvalidResource("The resource has no resourceType", expression="resourceType")
        model_class(actual)
        if resource_type is not None and actual != resource_type:
            raise InvalidRequest(
                f"resourceType '{actual}' does not match the request type '{resource_type}'",
                expression="resourceType",
            )
        return body

    def _write(
        self,
        resource_type: str,
        id: str,
        body: JSON | None,
        method: Method,
        current: _Current | None,
    ) -> Stored:
        """Validate and store the next version (or a delete marker when ``body`` is None)."""
        now = self._clock()
        version = (current.version if current is not None else 0) + 1
        stored_body: JSON | None = None
        if body is not None:
            action = "c" if current is None or current.deleted else "u"
            stored_body = self.versioned_body(resource_type, id, body, version, now, action=action)
        seq = self._conn.execute(
            sa.insert(resource_version)
            .values(
                type=resource_type,
                id=id,
                version=version,
                last_updated=now,
                deleted=body is None,
                method=method,
                body=stored_body,
            )
            .returning(resource_version.c.seq)
        ).scalar_one()
        if current is None:
            self._conn.execute(
                sa.insert(resource).values(
                    type=resource_type, id=id, version=version, deleted=body is None, seq=seq
                )
            )
        else:
            self._conn.execute(
                sa.update(resource)
                .where(resource.c.type == resource_type, resource.c.id == id)
                .values(version=version, deleted=body is None, seq=seq)
            )
            if not current.deleted:
                drop_index(self._conn, resource_type, id)
        if resource_type == "SearchParameter":
            self._registry = None
        if stored_body is not None:
            registry = self._index_registry()
            index_resources(self._conn, [(resource_type, id, stored_body)], registry)
            insert_rows(self._conn, ((p, seq) for p in patients_of(registry, stored_body)))
        elif current is not None:
            copy_rows(self._conn, current.seq, seq)
        return Stored(resource_type, id, version, now, body is None, method, stored_body)

    def versioned_body(
        self,
        resource_type: str,
        id: str,
        body: JSON,
        version: int,
        now: datetime,
        *,
        action: str,
    ) -> JSON:
        """``body`` with id, meta.versionId and meta.lastUpdated set, checked against the
        scope (``action`` ``c`` or ``u``: a compartment reach must place it in the scope's
        patient compartment), passed to the unit of work's ``before_write`` and validated
        (R4B models): at once, or by ``validate_later`` before the unit commits (then a
        ``before_write`` that is a ``WorkerCheck`` is deferred with it)."""
        meta = dict(body.get("meta") or {})
        meta["versionId"] = str(version)
        meta["lastUpdated"] = format_instant(now)
        rest = {k: v for k, v in body.items() if k not in ("resourceType", "id", "meta")}
        stored_body = {"resourceType": resource_type, "id": id, "meta": meta, **rest}
        self._check_placement(resource_type, stored_body, action)
        if self._before_write is not None and not (
            self.validate_later is not None and self.worker_check is not None
        ):
            self._before_write(stored_body)
        if self.validate_later is not None:
            self.validate_later(stored_body)
        else:
            parse_resource(stored_body)
        return stored_body

    def now(self) -> datetime:
        """The clock of this unit of work."""
        return self._clock()

    def insert_new(self, items: list[tuple[str, str, JSON, datetime]]) -> list[Stored]:
        """Write version 1 of many new resources in three statements (transaction POSTs).

        ``items`` are (type, id, body from ``versioned_body``, lastUpdated); the ids
        must be fresh server ids. A collision raises Conflict.
        """
        if not items:
            return []
        rows = [
            {
                "type": rtype,
                "id": id,
                "version": 1,
                "last_updated": now,
                "deleted": False,
                "method": "POST",
                "body": body,
            }
            for rtype, id, body, now in items
        ]
        try:
            with self._conn.begin_nested():
                # Each seq is matched to its row by (type, id), not by position: a
                # RETURNING in parameter order is one statement per row on SQLite.
                inserted = self._conn.execute(
                    sa.insert(resource_version).returning(
                        resource_version.c.type, resource_version.c.id, resource_version.c.seq
                    ),
                    rows,
                ).all()
                self._conn.execute(
                    sa.insert(resource),
                    [
                        {"type": rtype, "id": id, "version": 1, "deleted": False, "seq": seq}
                        for rtype, id, seq in inserted
                    ],
                )
                if any(rtype == "SearchParameter" for rtype, _, _, _ in items):
                    self._registry = None
                registry = self._index_registry()
                index_resources(
                    self._conn, [(rtype, id, body) for rtype, id, body, _ in items], registry
                )
                seqs = {(rtype, id): seq for rtype, id, seq in inserted}
                insert_rows(
                    self._conn,
                    (
                        (patient, seqs[(rtype, id)])
                        for rtype, id, body, _ in items
                        for patient in patients_of(registry, body)
                    ),
                )
        except IntegrityError:
            raise Conflict("A resource id was created concurrently; retry the request") from None
        return [Stored(rtype, id, 1, now, False, "POST", body) for rtype, id, body, now in items]

    def _write_new(self, resource_type: str, id: str, body: JSON, method: Method) -> Stored:
        """Write version 1 of a resource no one else may create concurrently."""
        try:
            with self._conn.begin_nested():
                return self._write(resource_type, id, body, method, None)
        except IntegrityError:
            raise Conflict(
                f"{resource_type}/{id} was created concurrently; retry the request"
            ) from None

    def create_with_id(
        self, resource_type: str, id: str, body: JSON, method: Method = "POST"
    ) -> Stored:
        """Create version 1 under a known, unused id (transactions assign ids ahead)."""
        return self._write_new(resource_type, id, body, method)

    def create(self, resource: JSON, *, if_none_exist: str | None = None) -> StoredResult:
        body = self._prepare(resource)
        resource_type = body["resourceType"]
        self.require(resource_type, "c")
        id = new_id()
        if if_none_exist:
            existing = self.claim_conditional(resource_type, if_none_exist, id)
            if existing is not None:
                return StoredResult(existing, "existing")
        stored = self._write(resource_type, id, body, "POST", None)
        self._note("create", [stored])
        return StoredResult(stored, "created")

    def _claim_key(self, resource_type: str, params: SearchParams) -> str:
        """The claim key of conditional-create criteria: a patient scope claims apart,
        since its criteria match only inside its compartment."""
        if self.scope.patient is not None:
            params = [*params, ("_compartment", f"Patient/{self.scope.patient}")]
        return criteria_hash(resource_type, params)

    def claim_conditional(self, resource_type: str, criteria: str, id: str) -> Stored | None:
        """Resolve an If-None-Exist: the one existing match, or ``None`` after claiming the
        criteria for ``id`` (the caller then creates it in this transaction).

        The claim row's primary key (type, criteria hash) lets only one transaction
        create for given criteria; a loser re-reads after the winner commits.
        """
        params = parse_criteria(criteria, resource_type)
        key = self._claim_key(resource_type, params)
        for _ in range(_CLAIM_ATTEMPTS):
            # Read the claim before matching: a holder that committed before this read
            # has its resource visible to the match below, so a holder without a
            # match is stale (its resource was deleted or changed) and may be taken over.
            claim = {"claim_type": resource_type, "claim_hash": key, "claim_id": id}
            holder = self._conn.execute(CLAIM_HOLDER, claim).scalar_one_or_none()
            match = self._single_match(resource_type, params, criteria)
            if match is not None:
                return self.read(resource_type, match)
            if holder is None:
                claimed = self._conn.execute(claim_insert(self._conn), claim)
                if claimed.scalar_one_or_none() is not None:
                    return None
                continue
            taken = self._conn.execute(CLAIM_TAKEOVER, {**claim, "holder": holder})
            if taken.rowcount == 1:
                return None
        raise Conflict(f"Conditional create '{criteria}' is contended; retry the request")

    def claim_many(
        self, items: list[tuple[str, SearchParams, str, str]]
    ) -> dict[str, tuple[str, Stored | None]]:
        """``claim_conditional`` for many (type, parsed criteria, ``criteria_hash``, new id)
        at once, by claim key: (the new id, None) when claimed for it, (id, the existing
        resource) when one matches. Only ``identifier=system|value`` criteria are resolved
        here, in a few statements per type, and only for a scope that reaches every
        resource; keys missing from the answer need ``claim_conditional``."""
        if visible_resources(self.scope, "s") is not None:
            return {}
        registry = self.search_registry()
        claims = []
        for resource_type, params, key, id in items:
            identifier = identifier_criteria(registry, resource_type, params)
            if identifier is not None:
                claims.append(IdentifierClaim(resource_type, *identifier, key, id))
        outcomes = claim_identifiers(self._conn, claims)
        answer: dict[str, tuple[str, Stored | None]] = {}
        for claim in claims:
            outcome = outcomes.get(claim.key)
            if outcome is None:
                continue
            if outcome.match is None:
                answer[claim.key] = (claim.id, None)
            else:
                answer[claim.key] = (outcome.match, self.read(claim.resource_type, outcome.match))
        return answer

    def _single_match(self, resource_type: str, params: SearchParams, criteria: str) -> str | None:
        ids = self.match_ids(resource_type, params, limit=2)
        if len(ids) > 1:
            raise PreconditionFailed(
                f"Criteria '{criteria}' match more than one {resource_type}",
            )
        return ids[0] if ids else None

    def update(
        self, resource_type: str, id: str, resource: JSON, *, if_match: int | None = None
    ) -> StoredResult:
        body = self._prepare(resource, resource_type)
        self.require(resource_type, "u")
        check_id(id)
        if body.get("id") != id:
            raise InvalidRequest(
                f"The resource id '{body.get('id')}' does not match the URL id '{id}'",
                expression="id",
            )
        return self._update(resource_type, id, body, if_match=if_match, method="PUT")

    def _update(
        self,
        resource_type: str,
        id: str,
        body: JSON,
        *,
        if_match: int | None,
        method: Method,
        current: _Current | None = None,
    ) -> StoredResult:
        if current is None:
            current = self._current_row(resource_type, id, lock=True)
        if current is not None and not self._sees(resource_type, current.seq, "u"):
            raise _unknown(resource_type, id)
        self._check_if_match(resource_type, id, current, if_match)
        subtype = "patch" if method == "PATCH" else "update"
        if current is None:
            stored = self._write_new(resource_type, id, body, method)
            self._note(subtype, [stored])
            return StoredResult(stored, "created")
        if current.deleted:
            stored = self._write(resource_type, id, body, method, current)
            self._note(subtype, [stored])
            return StoredResult(stored, "created")
        previous = self._version_by_seq(current.seq)
        if previous.resource is not None and _content(previous.resource) == _content(
            {**body, "resourceType": resource_type, "id": id}
        ):
            self._check_placement(resource_type, previous.resource, "u")
            self._note(subtype, [previous])
            return StoredResult(previous, "unchanged")
        stored = self._write(resource_type, id, body, method, current)
        self._note(subtype, [stored])
        return StoredResult(stored, "updated")

    @staticmethod
    def _check_if_match(
        resource_type: str, id: str, current: _Current | None, if_match: int | None
    ) -> None:
        if if_match is None:
            return
        if current is None or current.deleted:
            raise PreconditionFailed(
                f"If-Match version {if_match} given but {resource_type}/{id} does not exist"
            )
        if current.version != if_match:
            raise PreconditionFailed(
                f"If-Match version {if_match} does not match the current version "
                f"{current.version} of {resource_type}/{id}"
            )

    def conditional_update(
        self, resource_type: str, criteria: str, resource: JSON, *, if_match: int | None = None
    ) -> StoredResult:
        body = self._prepare(resource, resource_type)
        self.require(resource_type, "u")
        params = parse_criteria(criteria, resource_type)
        match = self._single_match(resource_type, params, criteria)
        if match is None:
            given = body.get("id")
            if given is not None:
                check_id(given)
                return self._update(resource_type, given, body, if_match=if_match, method="PUT")
            id = new_id()
            existing = self.claim_conditional(resource_type, criteria, id)
            if existing is None:
                return StoredResult(self._write_new(resource_type, id, body, "PUT"), "created")
            match = existing.id
        if body.get("id") not in (None, match):
            raise InvalidRequest(
                f"The resource id '{body['id']}' differs from the matched {resource_type}/{match}",
                expression="id",
            )
        return self._update(
            resource_type, match, {**body, "id": match}, if_match=if_match, method="PUT"
        )

    def patch(
        self,
        resource_type: str,
        id: str,
        operations: list[JSON] | JSON,
        *,
        if_match: int | None = None,
    ) -> StoredResult:
        model_class(resource_type)
        self.require(resource_type, "u")
        fhirpath = is_fhirpath_patch(operations)
        if not fhirpath and (
            not isinstance(operations, list) or not all(isinstance(o, dict) for o in operations)
        ):
            raise InvalidRequest("A JSON Patch document must be an array of operation objects")
        current = self._current_row(resource_type, id, lock=True)
        if current is None or not self._sees(resource_type, current.seq, "u"):
            raise _unknown(resource_type, id)
        if current.deleted:
            raise Gone(f"{resource_type}/{id} was deleted (version {current.version})")
        self._check_if_match(resource_type, id, current, if_match)
        previous = self._version_by_seq(current.seq)
        if isinstance(operations, dict):
            patched = apply_fhirpath_patch(previous.resource or {}, operations)
        else:
            try:
                patched = jsonpatch.apply_patch(copy.deepcopy(previous.resource), operations)
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
                raise Unprocessable(f"The JSON Patch cannot be applied: {exc}") from None
            except (TypeError, ValueError, KeyError) as exc:
                raise InvalidRequest(f"Malformed JSON Patch: {exc}") from None
        if not isinstance(patched, dict):
            raise Unprocessable("The JSON Patch does not yield a resource")
        if patched.get("resourceType") != resource_type or patched.get("id") != id:
            raise Unprocessable("A patch may not change resourceType or id")
        return self._update(
            resource_type, id, patched, if_match=None, method="PATCH", current=current
        )

    def delete(self, resource_type: str, id: str, *, if_match: int | None = None) -> Stored | None:
        model_class(resource_type)
        self.require(resource_type, "d")
        current = self._current_row(resource_type, id, lock=True)
        if current is not None and not self._sees(resource_type, current.seq, "d"):
            current = None  # outside the scope: as if there were nothing to delete
        self._check_if_match(resource_type, id, current, if_match)
        if current is None or current.deleted:
            self._note("delete", [])
            return None
        marker = self._write(resource_type, id, None, "DELETE", current)
        self._note("delete", [marker])
        return marker

    def conditional_patch(
        self,
        resource_type: str,
        criteria: str,
        operations: list[JSON] | JSON,
        *,
        if_match: int | None = None,
    ) -> StoredResult:
        model_class(resource_type)
        self.require(resource_type, "u")
        params = parse_criteria(criteria, resource_type)
        match = self._single_match(resource_type, params, criteria)
        if match is None:
            raise NotFound(f"No {resource_type} matches '{criteria}'")
        return self.patch(resource_type, match, operations, if_match=if_match)

    def conditional_delete(self, resource_type: str, criteria: str) -> list[Stored]:
        model_class(resource_type)
        self.require(resource_type, "d")
        params = parse_criteria(criteria, resource_type)
        match = self._single_match(resource_type, params, criteria)
        if match is None:
            return []
        marker = self.delete(resource_type, match)
        return [marker] if marker is not None else []

    # ---------------------------------------------------------------- history

    def history(
        self,
        resource_type: str | None = None,
        id: str | None = None,
        *,
        since: datetime | None = None,
        count: int = 50,
        cursor: str | None = None,
    ) -> HistoryPage:
        if count < 1:
            raise InvalidRequest("_count must be at least 1", expression="_count")
        filters: list[sa.ColumnElement[bool]] = []
        if resource_type is not None:
            model_class(resource_type)
            self.require(resource_type, "r")
            filters.append(resource_version.c.type == resource_type)
        inside = visible(self.scope, resource_version.c.type, resource_version.c.seq, "r")
        if inside is not None:
            filters.append(inside)
        if id is not None:
            if resource_type is None:
                raise InvalidRequest("Instance history needs a resource type")
            if self._current_row(resource_type, id) is None:
                raise _unknown(resource_type, id)
            filters.append(resource_version.c.id == id)
            if (
                inside is not None
                and not self._conn.execute(
                    sa.select(resource_version.c.seq).where(*filters).limit(1)
                ).first()
            ):
                raise _unknown(resource_type, id)
        if since is not None:
            if since.tzinfo is None:
                raise InvalidRequest("_since needs a timezone", expression="_since")
            filters.append(resource_version.c.last_updated >= since)
        total = self._conn.execute(
            sa.select(sa.func.count()).select_from(resource_version).where(*filters)
        ).scalar_one()
        page_filters = list(filters)
        if cursor is not None:
            if not cursor.isdigit():
                raise InvalidRequest(f"Invalid history cursor '{cursor}'")
            page_filters.append(resource_version.c.seq < int(cursor))
        rows = self._conn.execute(
            sa.select(resource_version)
            .where(*page_filters)
            .order_by(resource_version.c.seq.desc())
            .limit(count + 1)
        ).all()
        more = len(rows) > count
        rows = rows[:count]
        next_cursor = str(rows[-1].seq) if more and rows else None
        entries = [self._stored(r) for r in rows]
        level = "instance" if id is not None else ("type" if resource_type else "system")
        self._note(f"history-{level}", entries)
        return HistoryPage(entries, next_cursor, total)

    # ----------------------------------------------------------------- search

    def search_query(
        self, resource_type: str, params: SearchParams, *, few: bool = False
    ) -> sa.Select[Any]:
        """SELECT ``resource.id, resource.seq`` of the current resources matching ``params``
        (parsed strictly: an unknown parameter is InvalidRequest); ``few`` when the caller
        expects few matches (conditional interactions)."""
        model_class(resource_type)
        pairs = [(n, v) for n, v in params if n not in _CONTROL_PARAMS]
        registry = self.search_registry()
        request = parse_search(registry, [resource_type], pairs, strict=True)
        lookup = self._conn if few else None
        return match_query(registry, request, self.scope, self._conn.dialect.name, lookup=lookup)

    def check_criteria(self, resource_type: str, params: SearchParams) -> None:
        """Build the query of ``params`` as ``search_query`` does, running nothing
        (``_typeFilter`` at an export kick-off); InvalidRequest when it cannot be built."""
        self.search_query(resource_type, params)

    def search_registry(self) -> Registry:
        """The SearchParameters in force: the core ones plus those stored here, read once
        per unit of work (and again after it writes a SearchParameter)."""
        if self._registry is None:
            self._registry = registry_for(self._conn, get_registry())
        return self._registry

    def _index_registry(self) -> Registry | None:
        """``search_registry``, or None when the core package is missing (the index writer
        then logs that it writes no rows)."""
        try:
            return self.search_registry()
        except PackageError:
            return None

    def search_page(
        self,
        request: SearchRequest,
        *,
        compartment: str | None = None,
        since: datetime | None = None,
    ) -> SearchPage:
        """One page of a parsed search, with includes (https://hl7.org/fhir/R4/search.html),
        inside the scope: types the scope may not search are dropped (Forbidden when none
        is left). ``compartment`` keeps the Patient/<id> compartment
        (https://hl7.org/fhir/R4/compartmentdefinition.html), ``since`` what changed at or
        after it (``$everything``'s ``_since``)."""
        allowed = [t for t in request.types if self.scope.reach(t, "s") is not None]
        if not allowed:
            self.require(request.types[0] if request.types else "Resource", "s")
        if allowed != request.types:
            request = dataclasses.replace(request, types=allowed)
        registry = self.search_registry()
        extra = []
        if compartment is not None:
            extra.append(
                compartment_filter(patient_compartment(registry), request.types, compartment)
            )
        if since is not None:
            extra.append(since_filter(request.types, since))
        page = run_search(self._conn, registry, request, self.scope, extra)
        result = SearchPage(
            [self._stored(r) for r in page.rows],
            [self._stored(r) for r in page.included],
            page.total,
            page.next_cursor,
            page.previous_cursor,
        )
        self._note("search-type", result.matches + result.included)
        return result

    def match_ids(
        self, resource_type: str, params: SearchParams, *, limit: int | None = None
    ) -> list[str]:
        """Ids of current resources matching ``params`` (see ``search``), sorted; few
        matches expected (conditional interactions)."""
        identifier = identifier_criteria(self.search_registry(), resource_type, params)
        if identifier is not None and visible_resources(self.scope, "s") is None:
            found = match_identifier(self._conn, resource_type, *identifier, limit)
            if found is not None:
                return found
        query = self.search_query(resource_type, params, few=True).order_by(resource.c.id)
        if limit is not None:
            query = query.limit(limit)
        return list(self._conn.execute(query).scalars())

    def search(
        self, resource_type: str, params: SearchParams, *, limit: int | None = None
    ) -> list[Stored]:
        self.require(resource_type, "s")
        matched = self.search_query(resource_type, params).subquery()
        query = (
            sa.select(resource_version)
            .join(matched, matched.c.seq == resource_version.c.seq)
            .order_by(resource_version.c.id)
        )
        if limit is not None:
            query = query.limit(limit)
        found = [self._stored(row) for row in self._conn.execute(query)]
        self._note("search-type", found)
        return found

    def counts(self) -> dict[str, int]:
        """Number of current (not deleted) resources per type, of those the scope may search."""
        inside = visible_resources(self.scope, "s")
        rows = self._conn.execute(
            sa.select(resource.c.type, sa.func.count())
            .where(resource.c.deleted.is_(False), *([inside] if inside is not None else []))
            .group_by(resource.c.type)
        )
        return {rtype: int(n) for rtype, n in rows}

    # ----------------------------------------------------------- transactions

    def transaction(self, bundle: JSON) -> JSON:
        return run_transaction(self, bundle)

    def batch(self, bundle: JSON) -> JSON:
        return run_batch(self, bundle)

    def savepoint(self) -> Any:
        """A nested transaction (SAVEPOINT) for one batch entry."""
        return self._conn.begin_nested()
