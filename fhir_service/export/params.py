"""What a Bulk Data kick-off asked for: an export job's parameters, stored with the job
(https://build.fhir.org/ig/HL7/bulk-data/export.html#bulk-data-kick-off-request)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from fhir_service.fhir.smart_scopes import ScopeSet
from fhir_service.storage.access import AccessScope, access_scope

Level = Literal["system", "patient", "group"]


@dataclass(frozen=True)
class ExportParams:
    """What a kick-off asked for (the parameters of the Bulk Data IG)."""

    level: Level = "system"
    types: list[str] | None = None
    since: datetime | None = None
    patients: list[str] | None = None
    group: str | None = None
    deidentify: bool = False
    type_filters: dict[str, list[str]] | None = None
    """``_typeFilter``: resource type -> search queries (a resource matching any is kept)."""
    elements: list[str] | None = None
    """``_elements``: ``Type.element`` or ``element`` names."""
    scopes: list[str] | None = None
    """The scopes the job was started with (None: unrestricted, as in open mode)."""
    owner_patient: str | None = None
    """The patient in the context of the token that started the job (its ``patient/``
    scopes reach that patient's compartment)."""

    deid_rules: dict[str, Any] | None = None
    """``_deidRules``: de-identification rules replacing the default ones."""

    def access_scope(self) -> AccessScope:
        """The storage scope the job's scans run with: its owner's, from the recorded
        scopes and patient (``AccessScope.full()`` when no scopes were recorded)."""
        scopes = ScopeSet.parse(self.scopes) if self.scopes is not None else None
        return access_scope(scopes, self.owner_patient)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "types": self.types,
            "since": self.since.isoformat() if self.since else None,
            "patients": self.patients,
            "group": self.group,
            "deidentify": self.deidentify,
            "type_filters": self.type_filters,
            "elements": self.elements,
            "scopes": self.scopes,
            "owner_patient": self.owner_patient,
            "deid_rules": self.deid_rules,
        }

    @classmethod
    def from_json(cls, text: str) -> ExportParams:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExportParams:
        since = datetime.fromisoformat(data["since"]) if data.get("since") else None
        return cls(
            level=data["level"],
            types=data.get("types"),
            since=since,
            patients=data.get("patients"),
            group=data.get("group"),
            deidentify=bool(data.get("deidentify")),
            type_filters=data.get("type_filters"),
            elements=data.get("elements"),
            scopes=data.get("scopes"),
            owner_patient=data.get("owner_patient"),
            deid_rules=data.get("deid_rules"),
        )
