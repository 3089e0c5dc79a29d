"""Credit the source publication on every resource of the case.

One Provenance (https://hl7.org/fhir/R4/provenance.html) targets every resource;
its entity (role ``source``) is a DocumentReference describing the publication,
and its agent (type ``assembler``) is a Device standing for this mapping software.
``recorded`` is the date of the case's last dated fact, so the output stays deterministic.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any

from fhir.resources.R4B.device import Device
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.provenance import Provenance
from fhir.resources.R4B.resource import Resource
from pydantic import BaseModel

from mappings.case.model import Case
from mappings.case.timing import RelativeTime
from mappings.context import MappingContext

PUBLICATION_KEY = "source-publication"
SOFTWARE_KEY = "mapping-software"
PROVENANCE_KEY = "provenance"
# https://hl7.org/fhir/R4/codesystem-provenance-participant-type.html
PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"


def _times(node: Any) -> Iterator[RelativeTime]:
    """Every RelativeTime anywhere in the case model."""
    if isinstance(node, RelativeTime):
        yield node
    elif isinstance(node, BaseModel):
        for name in type(node).model_fields:
            yield from _times(getattr(node, name))
    elif isinstance(node, list):
        for item in node:
            yield from _times(item)


def last_fact_date(case: Case, anchor: date) -> date:
    """The latest calendar date any fact of the case resolves to (day 0 when none does)."""
    dates = [d for t in _times(case) if (d := t.resolve(anchor)) is not None]
    return max(dates, default=anchor)


def _publication(case: Case, ctx: MappingContext) -> DocumentReference:
    source = case.source
    attachment: dict[str, Any] = {"title": source.title or source.citation}
    if source.url:
        attachment["url"] = source.url
    description = source.citation
    if source.doi:
        description += f" doi:{source.doi}"
    return DocumentReference.model_validate(
        {
            "resourceType": "DocumentReference",
            "id": ctx.resource_id("DocumentReference", PUBLICATION_KEY),
            "identifier": [ctx.identifier("DocumentReference", PUBLICATION_KEY)],
            "status": "current",
            "type": {"text": "Published case report"},
            "subject": ctx.reference("Patient", case.patient.key),
            "description": description,
            "content": [{"attachment": attachment}],
        }
    )


def _software(ctx: MappingContext) -> Device:
    return Device.model_validate(
        {
            "resourceType": "Device",
            "id": ctx.resource_id("Device", SOFTWARE_KEY),
            "identifier": [ctx.identifier("Device", SOFTWARE_KEY)],
            "deviceName": [{"name": "fhir-service case mapping", "type": "user-friendly-name"}],
            "type": {"text": "Software that mapped the case report to FHIR"},
        }
    )


def map_provenance(
    case: Case, ctx: MappingContext, resources: Sequence[Resource]
) -> list[Resource]:
    """The publication, the software, and one Provenance targeting every resource."""
    publication = _publication(case, ctx)
    software = _software(ctx)
    targets = [*resources, publication, software]
    recorded = last_fact_date(case, ctx.anchor_date)
    provenance = Provenance.model_validate(
        {
            "resourceType": "Provenance",
            "id": ctx.resource_id("Provenance", PROVENANCE_KEY),
            "target": [{"reference": f"urn:uuid:{r.id}"} for r in targets],
            "recorded": f"{recorded.isoformat()}T00:00:00Z",
            "agent": [
                {
                    "type": {
                        "coding": [
                            {
                                "system": PARTICIPANT_TYPE,
                                "code": "assembler",
                                "display": "Assembler",
                            }
                        ]
                    },
                    "who": ctx.reference("Device", SOFTWARE_KEY),
                }
            ],
            "entity": [
                {
                    "role": "source",
                    "what": ctx.reference(
                        "DocumentReference", PUBLICATION_KEY, "Source publication"
                    ),
                }
            ],
        }
    )
    return [publication, software, provenance]
