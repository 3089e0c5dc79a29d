"""Content negotiation (https://hl7.org/fhir/R4/http.html#mime-type).

The service speaks FHIR JSON only. Responses are ``application/fhir+json`` unless
the client asks for ``application/json`` (by ``_format`` or ``Accept``);
``_format`` overrides ``Accept``. Request bodies must be FHIR JSON (or JSON
Patch for PATCH). Anything else is refused with 415 and an OperationOutcome.
``_pretty=true`` indents the output.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from fhir_service.errors import InvalidRequest, UnsupportedMediaType

FHIR_JSON = "application/fhir+json"
JSON = "application/json"
JSON_PATCH = "application/json-patch+json"

_FORMATS = {
    "json": FHIR_JSON,
    FHIR_JSON: FHIR_JSON,
    JSON: JSON,
    "application/json+fhir": FHIR_JSON,
    "text/json": JSON,
}
"""``_format`` values (https://hl7.org/fhir/R4/http.html#parameters) and the type each gives."""

_ACCEPTABLE = {
    FHIR_JSON: FHIR_JSON,
    "application/json+fhir": FHIR_JSON,
    JSON: JSON,
    "text/json": JSON,
    "application/*": FHIR_JSON,
    "*/*": FHIR_JSON,
}
RESOURCE_BODY_TYPES = frozenset({FHIR_JSON, JSON, "application/json+fhir"})


@dataclass(frozen=True, slots=True)
class Format:
    """How to write a response: media type and indentation."""

    media_type: str = FHIR_JSON
    pretty: bool = False


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def _quality(part: str) -> float:
    for param in part.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 0.0
    return 1.0


def negotiate(format_param: str | None, accept: str | None) -> str:
    """The response media type for ``_format`` and ``Accept``; 415 when none is JSON."""
    if format_param:
        chosen = _FORMATS.get(_media_type(format_param))
        if chosen is None:
            raise UnsupportedMediaType(
                f"_format '{format_param}' is not supported; this server speaks "
                f"{FHIR_JSON} and {JSON}",
                expression="_format",
            )
        return chosen
    if not accept or not accept.strip():
        return FHIR_JSON
    return _accepted(accept)


@lru_cache(maxsize=256)
def _accepted(accept: str) -> str:
    """The media type an ``Accept`` header ranks first among ours (clients send a few
    header values over and over: each is ranked once)."""
    ranked = sorted(
        ((_quality(part), -i, _media_type(part)) for i, part in enumerate(accept.split(","))),
        reverse=True,
    )
    for quality, _, media_type in ranked:
        if quality > 0 and media_type in _ACCEPTABLE:
            return _ACCEPTABLE[media_type]
    raise UnsupportedMediaType(
        f"Accept '{accept}' names no supported type; this server speaks {FHIR_JSON} and {JSON}",
        expression="Accept",
    )


def parse_pretty(value: str | None) -> bool:
    """``_pretty=true|false`` (https://hl7.org/fhir/R4/http.html#parameters)."""
    if value is None or value == "false":
        return False
    if value == "true":
        return True
    raise InvalidRequest(f"_pretty must be true or false, not '{value}'", expression="_pretty")


def response_format(query: dict[str, str], accept: str | None) -> Format:
    """The Format a request asks for through ``_format``, ``Accept`` and ``_pretty``."""
    return Format(negotiate(query.get("_format"), accept), parse_pretty(query.get("_pretty")))


def check_content_type(content_type: str | None, allowed: frozenset[str]) -> None:
    """415 unless the body's Content-Type is one of ``allowed`` (missing counts as JSON)."""
    if not content_type:
        return
    media_type = _media_type(content_type)
    if media_type not in allowed:
        raise UnsupportedMediaType(
            f"Content-Type '{media_type}' is not supported here; send "
            + " or ".join(sorted(allowed)),
            expression="Content-Type",
        )
