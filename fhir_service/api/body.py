"""Reading request bodies: size limit while reading, JSON parsing, hostile-input guards.

The limit (``Settings.max_body_bytes``) is enforced from ``Content-Length`` before
anything is read and again while the body streams in, so a large body is never
held in memory (https://hl7.org/fhir/R4/http.html#general). Parsed JSON is walked
once to refuse nesting deeper than any FHIR resource needs and NUL characters,
which no FHIR string may hold (https://hl7.org/fhir/R4/datatypes.html#string).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.requests import Request

from fhir_service.errors import InvalidRequest, PayloadTooLarge, RequestTimeout

BODY_READ_TIMEOUT = 30.0
"""Seconds between two chunks of a body, unless ``Settings.body_read_timeout`` says otherwise."""
MAX_DEPTH = 64
"""Deepest JSON nesting accepted; FHIR resources with contained resources stay far below."""


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body; PayloadTooLarge as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.strip().isdigit()):
            raise InvalidRequest(f"Content-Length '{declared}' is not a number")
        if int(declared) > limit:
            raise PayloadTooLarge(f"The body of {int(declared)} bytes exceeds the {limit} limit")
    settings = getattr(request.app.state, "settings", None)
    timeout = getattr(settings, "body_read_timeout", BODY_READ_TIMEOUT)
    chunks: list[bytes] = []
    size = 0
    stream = request.stream()
    while True:
        try:
            async with asyncio.timeout(timeout):
                chunk = await anext(stream)
        except StopAsyncIteration:
            break
        except TimeoutError:
            raise RequestTimeout(
                f"The request body did not arrive: no data for {timeout:g} s"
            ) from None
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    """The JSON value of a body; InvalidRequest naming the problem when it is not JSON."""
    if not raw.strip():
        raise InvalidRequest("The request body is empty; a JSON document is required")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The body is not valid JSON: {exc}") from None
    check_json(value)
    return value


def check_json(value: Any) -> None:
    """InvalidRequest for nesting deeper than MAX_DEPTH or a NUL character in any string."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > MAX_DEPTH:
                raise InvalidRequest(f"The JSON is nested deeper than {MAX_DEPTH} levels")
            for key, child in item.items():
                if "\x00" in key:
                    raise InvalidRequest("A JSON property name contains a NUL character")
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth > MAX_DEPTH:
                raise InvalidRequest(f"The JSON is nested deeper than {MAX_DEPTH} levels")
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str) and "\x00" in item:
            raise InvalidRequest("A JSON string contains a NUL character, which FHIR forbids")


def json_object(value: Any, what: str = "resource") -> dict[str, Any]:
    """``value`` when it is a JSON object, else InvalidRequest."""
    if not isinstance(value, dict):
        raise InvalidRequest(f"The body must be a JSON object (a FHIR {what})")
    return value
