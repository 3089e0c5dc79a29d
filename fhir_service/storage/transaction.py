"""Transaction and batch Bundles (https://hl7.org/fhir/R4/http.html#transaction).

A transaction runs inside the caller's database transaction: entries are
processed DELETE, POST, PUT/PATCH, GET; ids are assigned to every POST and PUT
first, then ``urn:uuid`` fullUrls and conditional references
(``Patient?identifier=sys|1``) are rewritten wherever references occur
(https://hl7.org/fhir/R4/bundle.html#references). Any failing entry raises, so
the caller rolls the whole Bundle back. A batch runs each entry in its own
savepoint and reports each entry's status.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from fhir_service.errors import (
    FhirServiceError,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
)
from fhir_service.fhir.bundle import (
    RequestTarget,
    entry_method,
    parse_request_url,
    patch_operations,
    processing_order,
    response_bundle,
    response_entry,
)
from fhir_service.fhir.fhirpath_patch import is_fhirpath_patch
from fhir_service.fhir.models import model_class
from fhir_service.fhir.outcome import operation_outcome
from fhir_service.fhir.references import (
    is_urn,
    parse_conditional_reference,
    parse_reference,
    rewrite_references,
)
from fhir_service.storage.criteria import criteria_hash, parse_criteria
from fhir_service.storage.deferred_validation import DeferredValidation
from fhir_service.storage.ids import (
    check_id,
    format_instant,
    new_id,
    parse_etag,
    version_number,
)
from fhir_service.storage.repository import JSON, SearchParams, Stored, StoredResult

if TYPE_CHECKING:
    from fhir_service.storage.sql_repository import SqlRepository

_STATUS = {
    "created": "201 Created",
    "updated": "200 OK",
    "unchanged": "200 OK",
    "existing": "200 OK",
    "deleted": "204 No Content",
}


def _where(index: int) -> str:
    return f"Bundle.entry[{index}]"


def _placed(expressions: list[str], prefix: str) -> list[str]:
    """FHIRPath expressions of an entry's resource, placed under ``prefix``."""
    placed = []
    for expr in expressions or [""]:
        head, dot, rest = expr.partition(".")
        if head[:1].isupper() and head.isalpha():
            placed.append(f"{prefix}.resource{dot}{rest}")
        elif expr:
            placed.append(f"{prefix}.{expr}" if not expr.startswith("Bundle") else expr)
        else:
            placed.append(prefix)
    return placed


def _in_entry(exc: FhirServiceError, index: int) -> FhirServiceError:
    """The same error, its diagnostics and FHIRPath expressions (those of the issues it
    carries too) placed inside entry ``index``."""
    prefix = _where(index)
    diagnostics = exc.diagnostics
    if not diagnostics.startswith("Bundle.entry["):
        diagnostics = f"{prefix}: {diagnostics}"
    extra = [replace(i, expression=_placed(i.expression, prefix)) for i in exc.extra_issues]
    return type(exc)(diagnostics, expression=_placed(exc.expression, prefix), issues=extra)


def _check_bundle(bundle: Any, expected: str) -> list[JSON]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise InvalidRequest("The body must be a Bundle", expression="Bundle")
    if bundle.get("type") != expected:
        raise InvalidRequest(
            f"Bundle.type must be '{expected}', not '{bundle.get('type')}'",
            expression="Bundle.type",
        )
    entries = bundle.get("entry") or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InvalidRequest("Bundle.entry must be a list of objects", expression="Bundle.entry")
    return entries


_ACTIONS = {"POST": "c", "PUT": "u", "PATCH": "u", "DELETE": "d"}
"""The scope action each entry method needs (GET: read by id, else search)."""


@dataclass
class _Entry:
    index: int
    method: str
    target: RequestTarget
    request: JSON
    full_url: str | None
    resource: JSON | None
    id: str | None = None
    existing: Stored | None = None
    same_as: int | None = None


@dataclass
class _Transaction:
    repo: SqlRepository
    validation: DeferredValidation = field(init=False)
    references: dict[str, str] = field(default_factory=dict)
    conditional: dict[str, str] = field(default_factory=dict)
    claims: dict[str, _Entry] = field(default_factory=dict)
    claimed: dict[str, tuple[str, Stored | None]] = field(default_factory=dict)
    claim_keys: dict[int, str] = field(default_factory=dict)
    written: dict[int, Stored] = field(default_factory=dict)
    pending: list[tuple[int, tuple[str, str, JSON, datetime]]] = field(default_factory=list)
    running: int = 0
    """The position of the entry being processed."""

    def __post_init__(self) -> None:
        self.validation = DeferredValidation(self.repo.validation_pool, self.repo.worker_check)

    def validate_later(self, body: JSON) -> None:
        """Validate the running entry's stored ``body`` before ``check_validation`` returns."""
        self.validation.defer(self.running, body)

    # -------------------------------------------------------------- parsing

    def parse(self, index: int, raw: JSON) -> _Entry:
        method = entry_method(raw, index)
        request = raw["request"]
        target = parse_request_url(request.get("url"), index=index)
        self.repo_type(target.resource_type, index)
        action = _ACTIONS.get(method) or ("s" if target.id is None else "r")
        try:
            self.repo.require(target.resource_type, action)
        except FhirServiceError as exc:
            raise _in_entry(exc, index) from None
        body = raw.get("resource")
        full_url = raw.get("fullUrl")
        if full_url is not None and not isinstance(full_url, str):
            raise InvalidRequest(
                f"{_where(index)}.fullUrl must be a string", expression=f"{_where(index)}.fullUrl"
            )
        if method in ("POST", "PUT"):
            if not isinstance(body, dict):
                raise InvalidRequest(
                    f"{_where(index)} ({method}) has no resource",
                    expression=f"{_where(index)}.resource",
                )
            if body.get("resourceType") != target.resource_type:
                raise InvalidRequest(
                    f"{_where(index)}: resourceType '{body.get('resourceType')}' does not "
                    f"match request.url type '{target.resource_type}'",
                    expression=f"{_where(index)}.resource.resourceType",
                )
        if method == "PATCH" and not (
            isinstance(body, dict) and body.get("resourceType") in ("Binary", "Parameters")
        ):
            raise InvalidRequest(
                f"{_where(index)}: PATCH in a Bundle needs a Parameters resource (FHIRPath "
                "Patch) or a Binary resource holding a JSON Patch",
                expression=f"{_where(index)}.resource",
            )
        if method in ("PUT", "PATCH", "DELETE") and target.id is None and target.query is None:
            raise InvalidRequest(
                f"{_where(index)}: {method} needs Type/id or Type?criteria in request.url",
                expression=f"{_where(index)}.request.url",
            )
        return _Entry(index, method, target, request, full_url, body)

    def repo_type(self, resource_type: str, index: int) -> None:
        try:
            model_class(resource_type)
        except FhirServiceError as exc:
            raise _in_entry(exc, index) from None

    # ------------------------------------------------------------ id phase

    def claim_ahead(self, entries: list[_Entry]) -> None:
        """Resolve the If-None-Exist of the POST entries together (``SqlRepository.claim_many``);
        ``assign_post`` takes the answers and claims the rest one by one."""
        items: dict[str, tuple[str, SearchParams, str, str]] = {}
        for entry in entries:
            condition = entry.request.get("ifNoneExist")
            if entry.method != "POST" or not condition:
                continue
            rtype = entry.target.resource_type
            try:
                params = parse_criteria(condition, rtype)
            except FhirServiceError:
                continue  # raised in its place by assign_post
            key = criteria_hash(rtype, params)
            self.claim_keys[entry.index] = key
            items.setdefault(key, (rtype, params, key, new_id()))
        if len(items) > 1:
            self.claimed = self.repo.claim_many(list(items.values()))

    def assign_post(self, entry: _Entry) -> None:
        rtype = entry.target.resource_type
        condition = entry.request.get("ifNoneExist")
        entry.id = new_id()
        if condition:
            key = self.claim_keys.get(entry.index) or criteria_hash(
                rtype, parse_criteria(condition, rtype)
            )
            first = self.claims.get(key)
            if first is not None:
                entry.id = first.id
                entry.existing = first.existing
                entry.same_as = first.index
            else:
                if key in self.claimed:
                    entry.id, entry.existing = self.claimed[key]
                else:
                    entry.existing = self.repo.claim_conditional(rtype, condition, entry.id)
                    if entry.existing is not None:
                        entry.id = entry.existing.id
                self.claims[key] = entry
        self.remember(entry)

    def assign_put(self, entry: _Entry) -> None:
        rtype = entry.target.resource_type
        if entry.target.id is not None:
            check_id(entry.target.id, expression=f"{_where(entry.index)}.request.url")
            entry.id = entry.target.id
        else:
            query = entry.target.query or ""
            ids = self.repo.match_ids(rtype, parse_criteria(query, rtype), limit=2)
            if len(ids) > 1:
                raise PreconditionFailed(f"Criteria '{query}' match more than one {rtype}")
            if ids:
                entry.id = ids[0]
            elif entry.resource is not None and entry.resource.get("id"):
                entry.id = entry.resource["id"]
            else:
                entry.id = new_id()
                claimed = self.repo.claim_conditional(rtype, query, entry.id)
                if claimed is not None:
                    entry.id = claimed.id
        self.remember(entry)

    def remember(self, entry: _Entry) -> None:
        target = f"{entry.target.resource_type}/{entry.id}"
        if entry.full_url:
            if entry.full_url in self.references:
                raise InvalidRequest(
                    f"fullUrl '{entry.full_url}' occurs more than once",
                    expression=f"{_where(entry.index)}.fullUrl",
                )
            self.references[entry.full_url] = target

    # ---------------------------------------------------------- references

    def resolve(self, reference: str) -> str | None:
        known = self.references.get(reference)
        if known is not None:
            return known
        if reference.startswith("#"):
            return None
        conditional = parse_conditional_reference(reference)
        if conditional is not None:
            return self.resolve_conditional(reference, *conditional)
        if is_urn(reference):
            raise InvalidRequest(f"Reference '{reference}' names no entry of this Bundle")
        parsed = parse_reference(reference)
        if parsed is not None and parsed.base is not None:
            local = self.references.get(f"{parsed.base}/{parsed.relative}")
            if local is not None:
                return local
        return None

    def resolve_conditional(self, reference: str, resource_type: str, query: str) -> str:
        cached = self.conditional.get(reference)
        if cached is not None:
            return cached
        self.flush()
        ids = self.repo.match_ids(resource_type, parse_criteria(query, resource_type), limit=2)
        if not ids:
            raise NotFound(f"Conditional reference '{reference}' matches no resource")
        if len(ids) > 1:
            raise PreconditionFailed(
                f"Conditional reference '{reference}' matches more than one resource"
            )
        resolved = f"{resource_type}/{ids[0]}"
        self.conditional[reference] = resolved
        return resolved

    def rewrite(self, body: JSON) -> JSON:
        rewritten: JSON = rewrite_references(body, self.resolve)
        return rewritten

    # ---------------------------------------------------------- write phase

    def run_delete(self, entry: _Entry) -> JSON:
        rtype = entry.target.resource_type
        if entry.target.id is not None:
            self.repo.delete(rtype, entry.target.id)
        else:
            self.repo.conditional_delete(rtype, entry.target.query or "")
        return response_entry("204 No Content")

    def queue_post(self, entry: _Entry) -> None:
        """Validate a new resource (now, or in a worker process before the transaction
        ends: ``check_validation``); write it with the others at the next flush."""
        assert entry.resource is not None and entry.id is not None
        rtype = entry.target.resource_type
        body = self.rewrite(entry.resource)
        now = self.repo.now()
        stored_body = self.repo.versioned_body(rtype, entry.id, body, 1, now, action="c")
        self.pending.append((entry.index, (rtype, entry.id, stored_body, now)))

    def check_validation(self) -> None:
        """Raise the error of the first invalid resource whose validation was deferred."""
        failure = self.validation.first_failure()
        if failure is not None:
            index, exc = failure
            raise _in_entry(exc, index) from None

    def flush(self) -> None:
        """Write every queued POST (before anything may need to see them)."""
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        stored = self.repo.insert_new([item for _, item in pending])
        for (index, _), version in zip(pending, stored, strict=True):
            self.written[index] = version

    def run_post(self, entry: _Entry) -> JSON:
        assert entry.resource is not None and entry.id is not None
        if entry.existing is not None:
            return self.response(StoredResult(entry.existing, "existing"))
        if entry.same_as is not None:
            return self.response(StoredResult(self.written[entry.same_as], "existing"))
        body = self.rewrite(entry.resource)
        stored = self.repo.create_with_id(entry.target.resource_type, entry.id, body)
        self.written[entry.index] = stored
        return self.response(StoredResult(stored, "created"))

    def run_put(self, entry: _Entry) -> JSON:
        assert entry.resource is not None and entry.id is not None
        body = {**self.rewrite(entry.resource), "id": entry.id}
        result = self.repo.update(
            entry.target.resource_type, entry.id, body, if_match=_if_match(entry)
        )
        return self.response(result)

    def run_patch(self, entry: _Entry) -> JSON:
        assert entry.resource is not None
        rtype = entry.target.resource_type
        id = entry.target.id
        if id is None:
            query = entry.target.query or ""
            ids = self.repo.match_ids(rtype, parse_criteria(query, rtype), limit=2)
            if len(ids) != 1:
                raise PreconditionFailed(
                    f"Conditional patch '{query}' matches {len(ids)} resources, expected one"
                )
            id = ids[0]
        patch = (
            self.rewrite(entry.resource)
            if is_fhirpath_patch(entry.resource)
            else patch_operations(entry.resource)
        )
        result = self.repo.patch(rtype, id, patch, if_match=_if_match(entry))
        return self.response(result)

    def run_get(self, entry: _Entry) -> JSON:
        target = entry.target
        if target.operation is not None:
            raise InvalidRequest(
                f"Operation {target.operation} is not supported inside a Bundle",
                expression=f"{_where(entry.index)}.request.url",
            )
        if target.id is None:
            params = parse_criteria(target.query, target.resource_type) if target.query else []
            found = self.repo.search(target.resource_type, params)
            searchset = {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": len(found),
                "entry": [
                    {
                        "fullUrl": f"{s.resource_type}/{s.id}",
                        "resource": s.resource,
                        "search": {"mode": "match"},
                    }
                    for s in found
                ],
            }
            return response_entry("200 OK", resource=searchset)
        if target.version is not None:
            version = version_number(target.version)
            if version is None:
                raise NotFound(f"Version '{target.version[:20]}' is not known")
            stored = self.repo.vread(target.resource_type, target.id, version)
        else:
            stored = self.repo.read(target.resource_type, target.id)
        return response_entry(
            "200 OK",
            resource=stored.resource,
            etag=stored.etag,
            last_modified=_instant(stored),
        )

    @staticmethod
    def response(result: StoredResult) -> JSON:
        stored = result.stored
        return response_entry(
            _STATUS[result.outcome],
            location=stored.location,
            etag=stored.etag,
            last_modified=_instant(stored),
        )


def _instant(stored: Stored) -> str:
    return format_instant(stored.last_updated)


def _if_match(entry: _Entry) -> int | None:
    value = entry.request.get("ifMatch")
    if value is None:
        return None
    return parse_etag(value, expression=f"{_where(entry.index)}.request.ifMatch")


def _run_entry(tx: _Transaction, entry: _Entry) -> JSON:
    if entry.method == "DELETE":
        return tx.run_delete(entry)
    if entry.method == "POST":
        return tx.run_post(entry)
    if entry.method == "PUT":
        return tx.run_put(entry)
    if entry.method == "PATCH":
        return tx.run_patch(entry)
    return tx.run_get(entry)


def run_transaction(repo: SqlRepository, bundle: JSON) -> JSON:
    """Process a transaction Bundle; raises on the first failing entry (caller rolls back)."""
    raw_entries = _check_bundle(bundle, "transaction")
    order = processing_order(raw_entries)
    tx = _Transaction(repo)
    entries = [tx.parse(i, raw) for i, raw in enumerate(raw_entries)]
    tx.claim_ahead([entries[i] for i in order])
    if tx.validation.enabled:
        repo.validate_later = tx.validate_later
    try:
        responses = _write_entries(tx, entries, order)
    except Exception:
        # An invalid resource written before the failing entry is the Bundle's error, as
        # it would have been had it been validated when it was written.
        tx.check_validation()
        raise
    finally:
        repo.validate_later = None
    tx.check_validation()
    return response_bundle("transaction-response", [r for r in responses if r is not None])


def _write_entries(tx: _Transaction, entries: list[_Entry], order: list[int]) -> list[JSON | None]:
    """Assign ids, then run the entries in processing order; the responses in entry order."""
    responses: list[JSON | None] = [None] * len(entries)
    for i in order:
        entry = entries[i]
        try:
            if entry.method == "POST":
                tx.assign_post(entry)
            elif entry.method == "PUT":
                tx.assign_put(entry)
            elif entry.full_url and entry.target.id is not None:
                target = f"{entry.target.resource_type}/{entry.target.id}"
                tx.references.setdefault(entry.full_url, target)
        except FhirServiceError as exc:
            raise _in_entry(exc, i) from None
    for i in order:
        entry = entries[i]
        tx.running = i
        try:
            if entry.method == "POST" and entry.existing is None and entry.same_as is None:
                tx.queue_post(entry)
            else:
                tx.flush()
                responses[i] = _run_entry(tx, entry)
        except FhirServiceError as exc:
            raise _in_entry(exc, i) from None
    tx.flush()
    for i, stored in tx.written.items():
        if responses[i] is None:
            responses[i] = tx.response(StoredResult(stored, "created"))
    return responses


def run_batch(repo: SqlRepository, bundle: JSON) -> JSON:
    """Process a batch Bundle: each entry independent, in its own savepoint, with its status."""
    raw_entries = _check_bundle(bundle, "batch")
    responses: list[JSON] = []
    for i, raw in enumerate(raw_entries):
        tx = _Transaction(repo)
        try:
            with repo.savepoint():
                entry = tx.parse(i, raw)
                if entry.method == "POST":
                    tx.assign_post(entry)
                elif entry.method == "PUT":
                    tx.assign_put(entry)
                responses.append(_run_entry(tx, entry))
        except FhirServiceError as exc:
            error = _in_entry(exc, i)
            responses.append(
                response_entry(
                    f"{error.status} {HTTPStatus(error.status).phrase}",
                    outcome=operation_outcome(error.issues),
                )
            )
    return response_bundle("batch-response", responses)
