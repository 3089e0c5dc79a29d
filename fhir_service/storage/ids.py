"""Ids, versions and instants the server assigns (https://hl7.org/fhir/R4/resource.html#id)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import uuid6

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
    """A server-assigned logical id: a UUID version 7 (RFC 9562 section 5.7).

    Its first 48 bits are the creation time in milliseconds, the rest random, so ids
    created one after another sort together. Every index keyed by id (the resource
    and version tables, the search index, reference targets) then grows at its end
    instead of at random pages, which keeps ingest time linear in the size of the
    database; random (version 4) ids made each commit touch ever more pages.
    """
    return str(uuid6.uuid7())


def check_id(id: str, *, expression: str = "id") -> None:
    """InvalidRequest unless ``id`` is a valid FHIR id."""
    if not isinstance(id, str) or not ID_PATTERN.match(id):
        raise InvalidRequest(f"'{id}' is not a valid FHIR id", expression=expression)


MAX_VERSION = 2_147_483_647
"""The largest version number a database column holds (32-bit INTEGER)."""


def version_number(text: str) -> int | None:
    """``text`` as a version number (ASCII digits, at most MAX_VERSION), else None."""
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        return None
    number = int(text)
    return number if number <= MAX_VERSION else None


def parse_etag(value: str, *, expression: str = "If-Match") -> int:
    """The version number in an ETag ``W/"3"`` (or ``"3"``, ``3``); InvalidRequest otherwise."""
    text = str(value).strip()
    if text.startswith("W/"):
        text = text[2:]
    number = version_number(text.strip('"'))
    if number is None:
        raise InvalidRequest(f"'{value}' is not an ETag like W/\"1\"", expression=expression)
    return number
