"""The mapping functions, in the order their resources appear in the Bundle.

Each is a pure function ``(case, ctx) -> list[Resource]`` (fhir.resources R4B models).
"""

from __future__ import annotations

from mappings.adverse_event import map_adverse_events
from mappings.body_structure import map_body_structures
from mappings.care_plan import map_care_plans
from mappings.condition import map_conditions
from mappings.device import map_devices
from mappings.diagnostic_report import map_diagnostic_reports
from mappings.encounter import map_encounters
from mappings.medication_administration import map_medication_administrations
from mappings.medication_request import map_medication_requests
from mappings.negation import map_negations
from mappings.observation import map_observations
from mappings.patient import map_patient
from mappings.procedure import map_procedures
from mappings.provenance import map_provenance
from mappings.specimen import map_specimens
from mappings.substance import map_substances

MAPPERS = [
    map_patient,
    map_encounters,
    map_conditions,
    map_body_structures,
    map_observations,
    map_specimens,
    map_diagnostic_reports,
    map_devices,
    map_substances,
    map_procedures,
    map_negations,
    map_care_plans,
    map_medication_requests,
    map_medication_administrations,
    map_adverse_events,
]

__all__ = ["MAPPERS", "map_provenance"]
