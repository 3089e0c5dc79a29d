"""Conditional request headers (https://hl7.org/fhir/R4/http.html#concurrency,
https://hl7.org/fhir/R4/http.html#cread).

``If-Match: W/"n"`` guards writes (412 on mismatch, done by the repository);
``If-None-Match`` and ``If-Modified-Since`` let a read answer 304 Not Modified.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime

from fhir_service.errors import InvalidRequest
from fhir_service.storage import Stored
from fhir_service.storage.ids import version_number


def parse_etag(value: str, header: str) -> int:
    """The version number of an ETag ``W/"3"`` (``"3"`` and ``3`` are accepted)."""
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    number = version_number(text.strip('"'))
    if number is None:
        raise InvalidRequest(f"{header} '{value}' is not an ETag like W/\"1\"", expression=header)
    return number


def if_match_version(value: str | None) -> int | None:
    """The version an ``If-Match`` header requires, or None without the header."""
    if value is None or not value.strip():
        return None
    return parse_etag(value, "If-Match")


def _http_date(value: str) -> datetime | None:
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo is not None else None


def not_modified(stored: Stored, if_none_match: str | None, if_modified_since: str | None) -> bool:
    """True when the read may answer 304 (RFC 9110 section 13.2.2 precedence)."""
    if if_none_match is not None and if_none_match.strip():
        if if_none_match.strip() == "*":
            return True
        for tag in if_none_match.split(","):
            text = tag.strip()
            if text.startswith("W/"):
                text = text[2:]
            if text.strip('"') == str(stored.version_id):
                return True
        return False
    if if_modified_since is not None:
        since = _http_date(if_modified_since)
        if since is not None:
            return stored.last_updated.replace(microsecond=0) <= since
    return False
