"""Assemble the case's resources into a transaction, collection or document Bundle.

- transaction (https://hl7.org/fhir/R4/http.html#transaction): every entry has a
  ``urn:uuid`` fullUrl; resources with an identifier are POSTed with
  ``ifNoneExist`` on that identifier (conditional create), the others (and types
  without an ``identifier`` search parameter) are PUT to their deterministic id, so
  posting the Bundle twice never duplicates anything.
- collection: the mCODE patient bundle
  (http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-patient-bundle).
- document (https://hl7.org/fhir/R4/documents.html): the case's Composition first, then
  every resource it references, transitively (fhir_service.fhir.document); the
  Provenance and the publication it cites are referenced by nothing in it and stay out.

Every type holds the Composition (mappings.composition), so a case stored from its
transaction Bundle can be served as a document (``Composition/{id}/$document``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Any, Literal

from fhir.resources.R4B.resource import Resource

from fhir_service.fhir.document import Entry, document_bundle, document_entries
from fhir_service.fhir.models import dump_resource
from mappings.case.model import Case
from mappings.composition import map_composition
from mappings.context import MappingContext
from mappings.registry import MAPPERS, map_provenance

BundleType = Literal["transaction", "collection", "document"]
BUNDLE_TYPES: tuple[BundleType, ...] = ("transaction", "collection", "document")
MCODE_PATIENT_BUNDLE = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-patient-bundle"

Mapper = Callable[[Case, MappingContext], Sequence[Resource]]

# Types with an identifier element but no `identifier` search parameter in R4, so no
# server can evaluate ifNoneExist on it (https://hl7.org/fhir/R4/adverseevent.html#search):
# they are PUT to their deterministic id instead.
_NO_IDENTIFIER_SEARCH = frozenset({"AdverseEvent"})
# The Composition lists the case's resources: it is PUT to its id, so that posting the
# transaction of a case mapped again updates its sections (a conditional create would
# keep the first one).
_PUT_ALWAYS = frozenset({"Composition"})


def map_case(case: Case, anchor_date: date) -> list[Resource]:
    """Every resource of the case, in a stable order: the mapped facts, the Composition
    listing them, then the publication, the software and the Provenance."""
    ctx = MappingContext(case.case.id, anchor_date, case.anchor.event)
    resources: list[Resource] = []
    for mapper in MAPPERS:
        resources.extend(mapper(case, ctx))
    resources.append(map_composition(case, ctx, [dump_resource(r) for r in resources]))
    resources.extend(map_provenance(case, ctx, resources))
    return resources


def _identifier_query(resource: dict[str, Any]) -> str | None:
    if resource["resourceType"] in _NO_IDENTIFIER_SEARCH | _PUT_ALWAYS:
        return None
    identifiers = resource.get("identifier")
    if isinstance(identifiers, dict):
        identifiers = [identifiers]
    for ident in identifiers or []:
        if ident.get("system") and ident.get("value"):
            return f"identifier={ident['system']}|{ident['value']}"
    return None


def _transaction_entry(resource: dict[str, Any]) -> dict[str, Any]:
    rtype, rid = resource["resourceType"], resource["id"]
    entry: dict[str, Any] = {"fullUrl": f"urn:uuid:{rid}"}
    query = _identifier_query(resource)
    if query is None:
        entry["resource"] = resource
        entry["request"] = {"method": "PUT", "url": f"{rtype}/{rid}"}
    else:
        entry["resource"] = {k: v for k, v in resource.items() if k != "id"}
        entry["request"] = {"method": "POST", "url": rtype, "ifNoneExist": query}
    return entry


def build_bundle(
    case: Case, anchor_date: date, bundle_type: BundleType = "transaction"
) -> dict[str, Any]:
    """The case as a Bundle (JSON dict) of the given type."""
    resources = [dump_resource(r) for r in map_case(case, anchor_date)]
    ctx = MappingContext(case_id=case.case.id, anchor_date=anchor_date)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": ctx.resource_id("Bundle", bundle_type),
        "type": bundle_type,
    }
    if bundle_type == "document":
        return _document(resources, ctx)
    if bundle_type == "transaction":
        bundle["entry"] = [_transaction_entry(r) for r in resources]
    else:
        bundle["meta"] = {"profile": [MCODE_PATIENT_BUNDLE]}
        bundle["identifier"] = ctx.identifier("Bundle", "collection")
        bundle["timestamp"] = _timestamp(resources)
        bundle["entry"] = [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources]
    return bundle


def _document(resources: list[dict[str, Any]], ctx: MappingContext) -> dict[str, Any]:
    """The document Bundle: the Composition, then what it reaches, in the mapping's order."""
    by_url = {f"urn:uuid:{r['id']}": r for r in resources}
    order = {url: i for i, url in enumerate(by_url)}
    composition = next(r for r in resources if r["resourceType"] == "Composition")

    def resolve(reference: str, _referrer: str) -> Entry | None:
        found = by_url.get(reference)
        return (reference, found) if found is not None else None

    entries = document_entries((f"urn:uuid:{composition['id']}", composition), resolve)
    head, rest = entries[0], sorted(entries[1:], key=lambda e: order[e[0]])
    return document_bundle(
        [head, *rest],
        identifier=ctx.identifier("Bundle", "document"),
        timestamp=_timestamp(resources),
        bundle_id=ctx.resource_id("Bundle", "document"),
    )


def _timestamp(resources: list[dict[str, Any]]) -> str:
    """The Provenance's recorded instant: the Bundle is as of the case's last recorded fact."""
    for r in resources:
        if r["resourceType"] == "Provenance":
            return str(r["recorded"])
    raise ValueError("the case produced no Provenance")
