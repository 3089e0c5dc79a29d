"""Transaction and batch Bundle helpers (https://hl7.org/fhir/R4/http.html#transaction).

Pure functions: entry processing order, request URL parsing, response entries,
and the loader's identifier conditions. No storage here.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from fhir_service.errors import InvalidRequest

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
METHODS = frozenset(_ORDER)


def processing_order(entries: list[dict[str, Any]]) -> list[int]:
    """Entry indexes in the order a transaction processes them: DELETE, POST, PUT/PATCH, GET.

    Entries with the same method keep their Bundle order
    (https://hl7.org/fhir/R4/http.html#trules).
    """
    return sorted(range(len(entries)), key=lambda i: _ORDER[entry_method(entries[i], i)])


def entry_method(entry: dict[str, Any], index: int) -> str:
    """``entry.request.method`` upper-cased; InvalidRequest when missing or unknown."""
    request = entry.get("request")
    if not isinstance(request, dict):
        raise InvalidRequest(
            f"Bundle.entry[{index}] has no request", expression=f"Bundle.entry[{index}].request"
        )
    method = request.get("method")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise InvalidRequest(
            f"Bundle.entry[{index}].request.method '{method}' is not one of {sorted(METHODS)}",
            expression=f"Bundle.entry[{index}].request.method",
        )
    return method.upper()


@dataclass(frozen=True, slots=True)
class RequestTarget:
    """What ``entry.request.url`` addresses: ``Type``, ``Type/id``, ``Type/id/_history/v``,
    ``Type?query`` or ``Type/id/$op`` (relative to the server base)."""

    resource_type: str
    id: str | None = None
    version: str | None = None
    query: str | None = None
    operation: str | None = None


def parse_request_url(url: str, *, index: int | None = None) -> RequestTarget:
    """Parse ``entry.request.url``; an absolute URL keeps only its path after the type."""
    where = f"Bundle.entry[{index}].request.url" if index is not None else "url"
    if not isinstance(url, str) or not url.strip():
        raise InvalidRequest(f"{where} is empty", expression=where)
    text = url.strip()
    if "://" in text:
        parts = urlsplit(text)
        text = parts.path + (f"?{parts.query}" if parts.query else "")
    path, _, query = text.partition("?")
    segments = [s for s in path.split("/") if s]
    start = next((i for i, s in enumerate(segments) if s[:1].isupper()), None)
    if start is None:
        raise InvalidRequest(f"{where} '{url}' names no resource type", expression=where)
    segments = segments[start:]
    target = RequestTarget(segments[0], query=query or None)
    rest = segments[1:]
    if not rest:
        return target
    if rest[0].startswith("$"):
        return RequestTarget(segments[0], operation=rest[0], query=query or None)
    if len(rest) == 1:
        return RequestTarget(segments[0], rest[0], query=query or None)
    if len(rest) == 2 and rest[1].startswith("$"):
        return RequestTarget(segments[0], rest[0], operation=rest[1], query=query or None)
    if len(rest) == 3 and rest[1] == "_history":
        return RequestTarget(segments[0], rest[0], rest[2], query=query or None)
    raise InvalidRequest(f"{where} '{url}' is not a supported request URL", expression=where)


def response_entry(
    status: str,
    *,
    location: str | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
    resource: dict[str, Any] | None = None,
    outcome: dict[str, Any] | None = None,
    full_url: str | None = None,
) -> dict[str, Any]:
    """One ``Bundle.entry`` of a transaction-response or batch-response."""
    response: dict[str, Any] = {"status": status}
    if location is not None:
        response["location"] = location
    if etag is not None:
        response["etag"] = etag
    if last_modified is not None:
        response["lastModified"] = last_modified
    if outcome is not None:
        response["outcome"] = outcome
    entry: dict[str, Any] = {}
    if full_url is not None:
        entry["fullUrl"] = full_url
    if resource is not None:
        entry["resource"] = resource
    entry["response"] = response
    return entry


def response_bundle(bundle_type: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """A ``transaction-response`` or ``batch-response`` Bundle."""
    return {"resourceType": "Bundle", "type": bundle_type, "entry": entries}


def add_identifier_conditions(
    bundle: dict[str, Any], resource_types: frozenset[str]
) -> dict[str, Any]:
    """A copy of ``bundle`` where POST entries of ``resource_types`` without ``ifNoneExist``
    get ``ifNoneExist: identifier=system|value`` from their first identifier.

    A loader uses it so shared resources (organizations, practitioners) repeated in
    many Bundles are created once (https://hl7.org/fhir/R4/http.html#ccreate).
    """
    entries = []
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        request = entry.get("request") if isinstance(entry, dict) else None
        if (
            isinstance(resource, dict)
            and isinstance(request, dict)
            and resource.get("resourceType") in resource_types
            and str(request.get("method", "")).upper() == "POST"
            and not request.get("ifNoneExist")
        ):
            condition = identifier_condition(resource)
            if condition is not None:
                entry = {**entry, "request": {**request, "ifNoneExist": condition}}
        entries.append(entry)
    return {**bundle, "entry": entries}


def identifier_condition(resource: dict[str, Any]) -> str | None:
    """``identifier=system|value`` from the first identifier that has both, else ``None``."""
    for identifier in resource.get("identifier") or []:
        if isinstance(identifier, dict):
            system, value = identifier.get("system"), identifier.get("value")
            if isinstance(system, str) and isinstance(value, str) and system and value:
                return f"identifier={quote(system, safe=':/')}|{quote(value, safe=':/')}"
    return None


JSON_PATCH_TYPES = frozenset({"application/json-patch+json", "application/json"})


def patch_operations(binary: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON Patch operations a Bundle PATCH entry carries in a Binary resource
    (https://hl7.org/fhir/R4/http.html#patch): base64 ``data`` of a JSON array."""
    content_type = str(binary.get("contentType", "")).split(";")[0].strip()
    if content_type not in JSON_PATCH_TYPES:
        raise InvalidRequest(
            f"PATCH Binary contentType '{content_type}' is not application/json-patch+json",
            expression="Binary.contentType",
        )
    try:
        operations = json.loads(base64.b64decode(str(binary.get("data", "")), validate=True))
    except (ValueError, binascii.Error) as exc:
        raise InvalidRequest(
            f"PATCH Binary data is not base64 JSON: {exc}", expression="Binary.data"
        ) from None
    if not isinstance(operations, list) or not all(isinstance(o, dict) for o in operations):
        raise InvalidRequest("A JSON Patch must be an array of objects", expression="Binary.data")
    return operations
