"""Bundle assembly: parseable, deterministic, every reference resolves, idempotent transactions."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fhir_service.fhir.models import parse_resource
from mappings.bundle import build_bundle

from .conftest import ANCHOR, walk_references


def test_every_resource_parses_with_the_r4b_models(resources: list[dict[str, Any]]) -> None:
    for resource in resources:
        parse_resource(resource)


def test_both_bundles_parse_as_bundles(
    transaction_bundle: dict[str, Any], collection_bundle: dict[str, Any]
) -> None:
    assert parse_resource(transaction_bundle).type == "transaction"
    assert parse_resource(collection_bundle).type == "collection"


def test_mapping_twice_gives_the_same_bundle(ivc_case: Any, transaction_bundle: dict) -> None:
    assert build_bundle(ivc_case, ANCHOR, "transaction") == transaction_bundle


def test_full_urls_are_unique_uuids(transaction_bundle: dict[str, Any]) -> None:
    urls = [e["fullUrl"] for e in transaction_bundle["entry"]]
    assert all(u.startswith("urn:uuid:") for u in urls)
    assert [u for u, n in Counter(urls).items() if n > 1] == []


def test_every_reference_resolves_inside_the_bundle(
    transaction_bundle: dict[str, Any], collection_bundle: dict[str, Any]
) -> None:
    for bundle in (transaction_bundle, collection_bundle):
        urls = {e["fullUrl"] for e in bundle["entry"]}
        dangling = [
            (e["resource"]["resourceType"], where, ref)
            for e in bundle["entry"]
            for where, ref in walk_references(e["resource"])
            if ref not in urls
        ]
        assert dangling == []


def test_transaction_entries_are_conditional_or_idempotent(
    transaction_bundle: dict[str, Any],
) -> None:
    for entry in transaction_bundle["entry"]:
        request = entry["request"]
        resource = entry["resource"]
        if request["method"] == "POST":
            assert request["url"] == resource["resourceType"]
            system, _, value = request["ifNoneExist"].removeprefix("identifier=").partition("|")
            identifiers = resource["identifier"]
            if isinstance(identifiers, dict):
                identifiers = [identifiers]
            assert {"system": system, "value": value} in identifiers
            assert value == entry["fullUrl"]
        else:
            assert request["method"] == "PUT"
            assert request["url"] == f"{resource['resourceType']}/{resource['id']}"


def test_collection_is_an_mcode_patient_bundle_with_one_patient(
    collection_bundle: dict[str, Any],
) -> None:
    patients = [e for e in collection_bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert len(patients) == 1
    assert collection_bundle["meta"]["profile"] == [
        "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-patient-bundle"
    ]


def test_the_publication_is_credited_on_every_resource(resources: list[dict[str, Any]]) -> None:
    provenances = [r for r in resources if r["resourceType"] == "Provenance"]
    targets = {t["reference"] for p in provenances for t in p["target"]}
    credited = {f"urn:uuid:{r['id']}" for r in resources if r["resourceType"] != "Provenance"}
    assert credited <= targets
    sources = [
        e["what"]["reference"]
        for p in provenances
        for e in p.get("entity", [])
        if e["role"] == "source"
    ]
    assert sources, "the Provenance names the publication as its source"
