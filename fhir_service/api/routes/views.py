"""$viewdefinition-run (https://sql-on-fhir.org/ig/latest/OperationDefinition-ViewDefinitionRun.html):
run a SQL on FHIR v2 ViewDefinition synchronously and answer with its rows.

``POST /fhir/$viewdefinition-run``, ``POST /fhir/ViewDefinition/$viewdefinition-run`` and
``GET|POST /fhir/ViewDefinition/{id}/$viewdefinition-run``. Parameters (a Parameters body,
some also in the query): ``viewResource`` (inline) or ``viewReference``, ``_format``
(json, ndjson, csv, parquet; else the Accept header; default json), ``header`` (CSV
header line, default true), ``patient`` (only that patient's compartment), ``resource``
(resources to run over instead of the server's), ``_limit`` (most rows), ``_since``
(resources changed after that instant), and the service's ``_deidentify`` (``true``: each
resource goes through the export's de-identification, ``fhir_service.export.deidentify``,
before the view sees it, so such a run never compiles into SQL) with ``_deidRules``
(rules replacing the default ones, as on ``$export``). ``group`` and ``source`` are not
supported: 400.

R4 has no ViewDefinition resource type, so stored views are Binary resources holding the
ViewDefinition JSON (contentType application/json): ``ViewDefinition/{id}`` and a
``viewReference`` to ``ViewDefinition/{id}`` or ``Binary/{id}`` name the Binary ``{id}``.

Resources are read through the request's store, which is scoped to the caller: a
patient-scoped token sees only rows of its compartment's resources. The rows are written
as resources are read into a spooled file (in memory up to ``SPOOL_BYTES``, then on
disk), so a view that fails on some resource is a 400 OperationOutcome, never a
truncated answer, and memory stays flat; the file is then streamed out.
"""

from __future__ import annotations

import base64
import functools
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from itertools import islice
from typing import IO, Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from fhir_service.api.deps import BASE_PATH, IdDep, StoreDep
from fhir_service.api.parameters import parameter_value, parameters_of
from fhir_service.api.routes import operation
from fhir_service.errors import InvalidRequest
from fhir_service.export.deid_rules import Rules, rules_from_text
from fhir_service.export.deidentify import Deidentifier
from fhir_service.fhir.references import parse_reference
from fhir_service.search.compartment import compartment_paths
from fhir_service.search.registry import get_registry
from fhir_service.storage.repository import Repository, Store
from fhir_service.storage.view_scan import scan_resources
from fhir_service.views import View, parse_view, run_view
from fhir_service.views.sql_plan import stored_rows
from fhir_service.views.writers import MEDIA_TYPES, format_of, write_chunks

router = APIRouter(prefix=BASE_PATH, tags=["FHIR"])

DEFINITION = "http://sql-on-fhir.org/OperationDefinition/$viewdefinition-run"
SPOOL_BYTES = 8 * 1024 * 1024
_READ_CHUNK = 256 * 1024
_UNSUPPORTED = ("group", "source")
_IN_QUERY = ("_format", "header", "patient", "_limit", "_since", "_deidentify", "_deidRules")


class _Asked:
    """The operation's parameters, from the Parameters body and the query."""

    def __init__(self) -> None:
        self.view: dict[str, Any] | None = None
        self.reference: str | None = None
        self.format: str | None = None
        self.header = True
        self.patient: str | None = None
        self.resources: list[dict[str, Any]] | None = None
        self.limit: int | None = None
        self.since: datetime | None = None
        self.deidentify = False
        self.deid_rules: Rules | None = None

    def set(self, name: str, value: Any, resource: Any = None) -> None:
        if name in _UNSUPPORTED:
            raise InvalidRequest(f"The {name} parameter is not supported", expression=name)
        if name == "viewResource":
            if not isinstance(resource, dict):
                raise InvalidRequest("viewResource must hold a ViewDefinition resource")
            self.view = resource
        elif name == "viewReference":
            ref = value.get("reference") if isinstance(value, dict) else value
            if not isinstance(ref, str):
                raise InvalidRequest("viewReference must be a Reference", expression=name)
            self.reference = ref
        elif name == "_format":
            self.format = str(value)
        elif name == "header":
            self.header = value is True or str(value).lower() == "true"
        elif name == "patient":
            self.patient = patient_id(value)
        elif name == "resource":
            if not isinstance(resource, dict):
                raise InvalidRequest("resource must hold a resource")
            self.resources = [*(self.resources or []), resource]
        elif name == "_limit":
            self.limit = _limit(value)
        elif name == "_since":
            self.since = since_instant(value)
        elif name == "_deidentify":
            self.deidentify = value is True or str(value).lower() == "true"
        elif name == "_deidRules":
            text = value if isinstance(value, str) else orjson.dumps(value).decode()
            self.deid_rules = rules_from_text(text, "_deidRules")


def patient_id(value: Any) -> str:
    ref = value.get("reference") if isinstance(value, dict) else value
    if not isinstance(ref, str) or not ref:
        raise InvalidRequest("patient must be a Reference to a Patient", expression="patient")
    if "/" not in ref:
        return ref
    parsed = parse_reference(ref)
    if parsed is None or parsed.resource_type != "Patient":
        raise InvalidRequest(f"patient {ref!r} is not a Patient reference", expression="patient")
    return parsed.id


def _limit(value: Any) -> int:
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise InvalidRequest(f"_limit {value!r} is not an integer", expression="_limit") from None
    if limit < 1:
        raise InvalidRequest("_limit must be a positive integer", expression="_limit")
    return limit


def since_instant(value: Any) -> datetime:
    try:
        found = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(f"_since {value!r} is not an instant", expression="_since") from None
    if found.tzinfo is None:
        raise InvalidRequest("_since needs a time zone", expression="_since")
    return found


async def _asked(request: Request) -> _Asked:
    asked = _Asked()
    if request.method == "POST":
        for param in await parameters_of(request) or []:
            asked.set(param["name"], parameter_value(param), param.get("resource"))
    for name, value in request.query_params.multi_items():
        if name in (*_IN_QUERY, *_UNSUPPORTED):
            asked.set(name, value)
    if asked.deid_rules is not None and not asked.deidentify:
        raise InvalidRequest("_deidRules needs _deidentify=true", expression="_deidRules")
    if asked.format is None:
        accept = (request.headers.get("accept") or "").split(",")[0].strip()
        asked.format = accept if accept and accept != "*/*" else "json"
    return asked


def stored_view(repo: Repository, reference: str) -> dict[str, Any]:
    """The ViewDefinition a reference names: the JSON of the Binary with that id."""
    parsed = parse_reference(reference)
    if parsed is None or parsed.resource_type not in ("ViewDefinition", "Binary"):
        raise InvalidRequest(
            f"viewReference {reference!r} must name ViewDefinition/{{id}} or Binary/{{id}}",
            expression="viewReference",
        )
    binary = repo.read("Binary", parsed.id).resource or {}
    try:
        view = orjson.loads(base64.b64decode(binary.get("data") or ""))
    except (ValueError, orjson.JSONDecodeError):
        raise InvalidRequest(f"Binary/{parsed.id} does not hold a ViewDefinition") from None
    if not isinstance(view, dict):
        raise InvalidRequest(f"Binary/{parsed.id} does not hold a ViewDefinition")
    return view


def _csv_without_header(chunks: Iterator[bytes]) -> Iterator[bytes]:
    first = next(chunks, b"")
    yield first.split(b"\n", 1)[1] if b"\n" in first else b""
    yield from chunks


@functools.cache
def _patients_of() -> Any:
    """Patient compartment membership of a resource, for the de-identifier's date offsets."""
    return compartment_paths(get_registry()).patients


def _deidentified(
    resources: Iterable[dict[str, Any]], deidentifier: Deidentifier
) -> Iterator[dict[str, Any]]:
    """Each resource as the de-identified export would write it (docs/export.md)."""
    for resource in resources:
        yield deidentifier.apply(resource)


def _run(
    store: Store, asked: _Asked, instance: str | None, fmt: str, secret: str | None
) -> tuple[View, IO[bytes]]:
    """Parse the view and write its rows to a spooled file (rewound); with ``_deidentify``
    the view runs over the de-identified resources."""
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
    try:
        with store.begin(readonly=True) as repo:
            raw = asked.view
            if instance is not None:
                raw = stored_view(repo, f"Binary/{instance}")
            elif asked.reference is not None:
                raw = stored_view(repo, asked.reference)
            if raw is None:
                raise InvalidRequest("Give the view as viewResource or viewReference")
            view = parse_view(raw)
            rows: Iterable[dict[str, Any]]
            deidentifier = None
            if asked.deidentify:
                assert secret is not None
                year = datetime.now(UTC).year
                deidentifier = Deidentifier(
                    secret, _patients_of(), reference_year=year, rules=asked.deid_rules
                )
            if asked.resources is not None:
                resources: Iterable[dict[str, Any]] = asked.resources
                if deidentifier is not None:
                    resources = _deidentified(resources, deidentifier)
                rows = run_view(view, resources)
            elif deidentifier is not None:  # each resource de-identified here: not in SQL
                resources = scan_resources(
                    repo, view.resource, patient=asked.patient, since=asked.since
                )
                rows = run_view(view, _deidentified(resources, deidentifier))
            else:
                rows = stored_rows(repo, raw, view, patient=asked.patient, since=asked.since)
            if asked.limit is not None:
                rows = islice(rows, asked.limit)
            chunks = write_chunks(view, rows, fmt)
            if fmt == "csv" and not asked.header:
                chunks = _csv_without_header(chunks)
            for chunk in chunks:
                spool.write(chunk)
        spool.seek(0)
        return view, spool
    except BaseException:
        spool.close()
        raise


def _stream(spool: IO[bytes]) -> Iterator[bytes]:
    try:
        while chunk := spool.read(_READ_CHUNK):
            yield chunk
    finally:
        spool.close()


async def _answer(request: Request, store: Store, instance: str | None = None) -> Response:
    asked = await _asked(request)
    fmt = format_of(asked.format)
    secret = request.app.state.settings.deid_secret
    if asked.deidentify and not secret:
        raise InvalidRequest("De-identified views are not configured (deid_secret)")
    view, spool = await run_in_threadpool(_run, store, asked, instance, fmt, secret)
    headers = {}
    if view.name:
        suffix = {"ndjson": "ndjson", "csv": "csv", "parquet": "parquet"}.get(fmt, "json")
        headers["Content-Disposition"] = f'inline; filename="{view.name}.{suffix}"'
    return StreamingResponse(_stream(spool), media_type=MEDIA_TYPES[fmt], headers=headers)


_OPERATION = operation("viewdefinition-run", DEFINITION)


@router.post("/$viewdefinition-run", openapi_extra=_OPERATION)
async def run_system(request: Request, store: StoreDep) -> Response:
    """Run the ViewDefinition of the Parameters (R4: the system-level form)."""
    return await _answer(request, store)


@router.post("/ViewDefinition/$viewdefinition-run", openapi_extra=_OPERATION)
async def run_type(request: Request, store: StoreDep) -> Response:
    """Run the ViewDefinition of the Parameters (viewResource or viewReference)."""
    return await _answer(request, store)


@router.post("/ViewDefinition/{id}/$viewdefinition-run", openapi_extra=_OPERATION)
async def run_instance(id: IdDep, request: Request, store: StoreDep) -> Response:
    """Run the stored ViewDefinition ``id`` (the Binary of that id)."""
    return await _answer(request, store, id)


@router.get("/ViewDefinition/{id}/$viewdefinition-run", openapi_extra=_OPERATION)
async def run_instance_get(id: IdDep, request: Request, store: StoreDep) -> Response:
    """Run the stored ViewDefinition ``id`` with the parameters in the query."""
    return await _answer(request, store, id)
