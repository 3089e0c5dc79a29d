"""Ids, versions and instants the server assigns (https://hl7.org/fhir/R4/resource.html#id)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from fhir_service.errors import InvalidRequest

ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
"""https://hl7.org/fhir/R4/datatypes.html#id"""


def utc_now() -> datetime:
    """The current time in UTC at millisecond precision (what meta.lastUpdated keeps)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def format_instant(moment: datetime) -> str:
    """An R4 ``instant`` (https://hl7.org/fhir/R4/datatypes.html#instant), UTC with milliseconds."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    """A server-assigned logical id."""
    return str(uuid.uuid4())


def check_id(id: str, *, expression: str = "id") -> None:
    """InvalidRequest unless ``id`` is a valid FHIR id."""
    if not isinstance(id, str) or not ID_PATTERN.match(id):
        raise InvalidRequest(f"'{id}' is not a valid FHIR id", expression=expression)


def parse_etag(value: str, *, expression: str = "If-Match") -> int:
    """The version number in an ETag ``W/"3"`` (or ``"3"``, ``3``); InvalidRequest otherwise."""
    text = str(value).strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not text.isdigit():
        raise InvalidRequest(f"'{value}' is not an ETag like W/\"1\"", expression=expression)
    return int(text)
