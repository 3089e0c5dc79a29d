"""References inside FHIR JSON (https://hl7.org/fhir/R4/references.html).

Pure helpers: find every ``Reference.reference`` in a resource (contained
resources and extensions included), split a reference into its parts, and
rewrite references through a mapping, as transactions need
(https://hl7.org/fhir/R4/bundle.html#references).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

_RELATIVE = re.compile(
    r"^(?:(?P<base>https?://.+)/)?(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})"
    r"(?:/_history/(?P<version>[A-Za-z0-9\-.]{1,64}))?$"
)
_CONDITIONAL = re.compile(r"^(?P<type>[A-Z][A-Za-z]+)\?(?P<query>.+)$")


@dataclass(frozen=True, slots=True)
class ParsedReference:
    """A literal reference: ``[base/]Type/id[/_history/version]``."""

    resource_type: str
    id: str
    version: str | None = None
    base: str | None = None

    @property
    def relative(self) -> str:
        """``Type/id`` without base or version."""
        return f"{self.resource_type}/{self.id}"


def parse_reference(reference: str) -> ParsedReference | None:
    """Split a literal reference, or ``None`` for urn:uuid, contained (#) and conditional ones."""
    match = _RELATIVE.match(reference)
    if match is None:
        return None
    return ParsedReference(match["type"], match["id"], match["version"], match["base"])


def parse_conditional_reference(reference: str) -> tuple[str, str] | None:
    """``(type, query)`` of a conditional reference such as ``Patient?identifier=sys|1``."""
    match = _CONDITIONAL.match(reference)
    if match is None:
        return None
    return match["type"], match["query"]


def is_urn(reference: str) -> bool:
    """True for ``urn:uuid:`` and ``urn:oid:`` references (Bundle-local identities)."""
    return reference.startswith(("urn:uuid:", "urn:oid:"))


def iter_references(value: Any) -> Iterator[str]:
    """Every ``reference`` string anywhere in a JSON value, in document order."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                yield item
            else:
                yield from iter_references(item)
    elif isinstance(value, list):
        for item in value:
            yield from iter_references(item)


def rewrite_references(value: Any, mapping: Callable[[str], str | None]) -> Any:
    """A copy of ``value`` where each reference ``r`` with ``mapping(r)`` not None is replaced.

    Containers are copied only where something changes; unchanged parts are shared.
    """
    if isinstance(value, dict):
        changed: dict[str, Any] | None = None
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                new = mapping(item)
                if new is not None and new != item:
                    changed = changed if changed is not None else dict(value)
                    changed[key] = new
                continue
            if isinstance(item, dict | list):
                new_item = rewrite_references(item, mapping)
                if new_item is not item:
                    changed = changed if changed is not None else dict(value)
                    changed[key] = new_item
        return changed if changed is not None else value
    if isinstance(value, list):
        items = [rewrite_references(item, mapping) for item in value]
        if any(new is not old for new, old in zip(items, value, strict=True)):
            return items
        return value
    return value
