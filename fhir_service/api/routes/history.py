"""History at instance, type and system level (https://hl7.org/fhir/R4/http.html#history):
a ``history`` Bundle, newest first, with ``_since``, ``_count`` and stable paging links.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from fhir_service.api.deps import BASE_PATH, BaseDep, FormatDep, IdDep, StoreDep, TypeDep
from fhir_service.api.negotiation import Format
from fhir_service.api.responses import fhir_response
from fhir_service.api.routes import interaction
from fhir_service.errors import InvalidRequest
from fhir_service.storage import HistoryPage, Store, Stored, format_instant

router = APIRouter(prefix=BASE_PATH, tags=["FHIR"])

DEFAULT_COUNT = 50
MAX_COUNT = 1000
CURSOR = "_cursor"


def parse_since(value: str | None) -> datetime | None:
    """``_since`` as an instant; a bare date means its start in UTC."""
    if value is None:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(
            f"_since '{value[:60]}' is not a FHIR instant", expression="_since"
        ) from None
    if moment.tzinfo is None:
        raise InvalidRequest("_since needs a timezone (Z or +hh:mm)", expression="_since")
    return moment


def parse_count(value: str | None) -> int:
    """``_count`` between 1 and MAX_COUNT (larger values are capped)."""
    if value is None:
        return DEFAULT_COUNT
    if not (value.isascii() and value.strip().isdigit()) or int(value) < 1:
        raise InvalidRequest(
            f"_count must be a positive integer, not '{value[:20]}'", expression="_count"
        )
    return min(int(value), MAX_COUNT)


def _entry(stored: Stored, base: str) -> dict[str, Any]:
    url = f"{stored.resource_type}/{stored.id}"
    entry: dict[str, Any] = {"fullUrl": f"{base}/{url}"}
    if stored.resource is not None:
        entry["resource"] = stored.resource
    status = (
        "410 Gone" if stored.deleted else ("201 Created" if stored.version_id == 1 else "200 OK")
    )
    entry["request"] = {
        "method": stored.method,
        "url": stored.resource_type if stored.method == "POST" else url,
    }
    entry["response"] = {
        "status": status,
        "etag": stored.etag,
        "lastModified": format_instant(stored.last_updated),
    }
    return entry


def _bundle(page: HistoryPage, request: Request, base: str, path: str) -> dict[str, Any]:
    query = [(k, v) for k, v in request.query_params.multi_items() if k != CURSOR]
    self_query = request.url.query
    links = [
        {"relation": "self", "url": f"{base}{path}" + (f"?{self_query}" if self_query else "")}
    ]
    if page.next_cursor is not None:
        next_query = urlencode([*query, (CURSOR, page.next_cursor)])
        links.append({"relation": "next", "url": f"{base}{path}?{next_query}"})
    return {
        "resourceType": "Bundle",
        "type": "history",
        "total": page.total,
        "link": links,
        "entry": [_entry(s, base) for s in page.entries],
    }


def parse_cursor(value: str | None) -> str | None:
    """The ``_cursor`` of a history page link: ASCII digits that fit a 64-bit integer (a
    ``str.isdigit`` that accepts '¹' or '٣' is not enough: ``int`` refuses those)."""
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise InvalidRequest(f"Invalid history cursor '{value[:40]}'", expression=CURSOR)
    return value


def _history(
    store: Store,
    request: Request,
    fmt: Format,
    base: str,
    path: str,
    resource_type: str | None = None,
    id: str | None = None,
) -> Response:
    query = request.query_params
    since = parse_since(query.get("_since"))
    count = parse_count(query.get("_count"))
    with store.begin(readonly=True) as repo:
        page = repo.history(
            resource_type, id, since=since, count=count, cursor=parse_cursor(query.get(CURSOR))
        )
    return fhir_response(_bundle(page, request, base, path), 200, fmt)


@router.get("/_history", openapi_extra=interaction("history-system"))
def history_system(store: StoreDep, request: Request, fmt: FormatDep, base: BaseDep) -> Response:
    """System history: every version of every resource."""
    return _history(store, request, fmt, base, "/_history")


@router.get("/{type}/_history", openapi_extra=interaction("history-type"))
def history_type(
    type: TypeDep, store: StoreDep, request: Request, fmt: FormatDep, base: BaseDep
) -> Response:
    """Type history: every version of every resource of one type."""
    return _history(store, request, fmt, base, f"/{type}/_history", type)


@router.get("/{type}/{id}/_history", openapi_extra=interaction("history-instance"))
def history_instance(
    type: TypeDep, id: IdDep, store: StoreDep, request: Request, fmt: FormatDep, base: BaseDep
) -> Response:
    """Instance history: every version of one resource, deletes included."""
    return _history(store, request, fmt, base, f"/{type}/{id}/_history", type, id)
