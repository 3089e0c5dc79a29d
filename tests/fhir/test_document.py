"""fhir_service.fhir.document: the entries of a document, gathered through references
(https://hl7.org/fhir/R4/documents.html#content)."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_service.fhir.document import (
    DocumentTooLarge,
    Entry,
    document_bundle,
    document_entries,
)


def _store(*resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{r['resourceType']}/{r['id']}": r for r in resources}


def _resolver(store: dict[str, dict[str, Any]]) -> Any:
    def resolve(reference: str, _referrer: str) -> Entry | None:
        found = store.get(reference)
        return (f"http://s/{reference}", found) if found else None

    return resolve


COMPOSITION = {
    "resourceType": "Composition",
    "id": "c",
    "subject": {"reference": "Patient/p"},
    "contained": [{"resourceType": "Organization", "id": "o"}],
    "custodian": {"reference": "#o"},
    "section": [{"entry": [{"reference": "Observation/a"}, {"reference": "Observation/x"}]}],
}
STORE = _store(
    {"resourceType": "Patient", "id": "p"},
    {"resourceType": "Observation", "id": "a", "derivedFrom": [{"reference": "Observation/b"}]},
    {"resourceType": "Observation", "id": "b", "derivedFrom": [{"reference": "Observation/a"}]},
)


def test_references_are_followed_transitively_once_each() -> None:
    entries = document_entries(("http://s/Composition/c", COMPOSITION), _resolver(STORE))
    assert [url for url, _ in entries] == [
        "http://s/Composition/c",
        "http://s/Patient/p",
        "http://s/Observation/a",
        "http://s/Observation/b",
    ]


def test_the_limit_refuses_a_larger_document() -> None:
    with pytest.raises(DocumentTooLarge):
        document_entries(("http://s/Composition/c", COMPOSITION), _resolver(STORE), limit=3)
    assert len(document_entries(("u", COMPOSITION), _resolver(STORE), limit=4)) == 4


def test_a_document_starts_with_its_composition() -> None:
    patient: Entry = ("http://s/Patient/p", STORE["Patient/p"])
    with pytest.raises(ValueError):
        document_bundle([patient], {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:1"}, "t")
    bundle = document_bundle(
        [("http://s/Composition/c", COMPOSITION), patient],
        {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:1"},
        "2024-01-01T00:00:00Z",
    )
    assert bundle["type"] == "document"
    assert [e["fullUrl"] for e in bundle["entry"]] == [
        "http://s/Composition/c",
        "http://s/Patient/p",
    ]
