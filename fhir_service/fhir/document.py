"""A FHIR document Bundle around a Composition (https://hl7.org/fhir/R4/documents.html).

The document holds the Composition first (bdl-11), then every resource it references
and, transitively, every resource those reference, so that each reference resolves
inside the Bundle (https://hl7.org/fhir/R4/documents.html#content,
https://hl7.org/fhir/R4/bundle.html#references). A reference the resolver cannot
answer (outside the caller's reach, on another server) is left as it is. The Bundle
carries an identifier with system and value (bdl-9) and a timestamp (bdl-10).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from fhir_service.fhir.references import iter_references

JSON = dict[str, Any]
Entry = tuple[str, JSON]
"""(fullUrl, resource) of one document entry."""
Resolver = Callable[[str, str], Entry | None]
"""``resolve(reference, fullUrl of the referring resource)``: the entry it points to, or
None when it points to nothing the document may hold."""


class DocumentTooLarge(Exception):
    """The references reach more resources than the limit allows."""


def document_entries(
    composition: Entry, resolve: Resolver, limit: int | None = None
) -> list[Entry]:
    """The Composition, then what it references, breadth first, each resource once.

    Contained references (``#id``) stay inside their resource and are not followed.
    ``limit`` bounds the number of entries (DocumentTooLarge beyond it).
    """
    entries = [composition]
    seen = {composition[0]}
    queue = deque(entries)
    while queue:
        full_url, resource = queue.popleft()
        for reference in iter_references(resource):
            if reference.startswith("#"):
                continue
            found = resolve(reference, full_url)
            if found is None or found[0] in seen:
                continue
            if limit is not None and len(entries) >= limit:
                raise DocumentTooLarge(f"the document would hold more than {limit} resources")
            seen.add(found[0])
            entries.append(found)
            queue.append(found)
    return entries


def document_bundle(
    entries: list[Entry], identifier: dict[str, str], timestamp: str, bundle_id: str | None = None
) -> JSON:
    """The ``document`` Bundle of ``entries`` (the Composition first)."""
    if not entries or entries[0][1].get("resourceType") != "Composition":
        raise ValueError("a document starts with its Composition")
    bundle: JSON = {"resourceType": "Bundle"}
    if bundle_id is not None:
        bundle["id"] = bundle_id
    bundle.update(
        {
            "identifier": identifier,
            "type": "document",
            "timestamp": timestamp,
            "entry": [{"fullUrl": url, "resource": resource} for url, resource in entries],
        }
    )
    return bundle
