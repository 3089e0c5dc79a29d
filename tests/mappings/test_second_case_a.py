"""The synthetic second case maps through the same functions without code changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fhir_service.fhir.models import parse_resource
from mappings.adverse_event import map_adverse_events
from mappings.body_structure import map_body_structures
from mappings.case.loader import load_case
from mappings.condition import map_conditions
from mappings.diagnostic_report import map_diagnostic_reports
from mappings.observation import map_observations
from mappings.patient import map_patient
from mappings.specimen import map_specimens

from .mapped import by_key, run

SECOND = Path(__file__).resolve().parents[2] / "examples/synthetic-sigmoid-colon-cancer/case.yaml"
MAPPERS = [
    map_patient,
    map_conditions,
    map_body_structures,
    map_observations,
    map_specimens,
    map_diagnostic_reports,
    map_adverse_events,
]


@pytest.fixture(scope="module")
def second() -> Any:
    return load_case(SECOND)


@pytest.mark.parametrize("mapper", MAPPERS, ids=lambda m: m.__name__)
def test_second_case_resources_parse(second: Any, mapper: Any) -> None:
    resources = run(second, mapper)
    for r in resources:
        parse_resource(r)


def test_second_case_facts(second: Any) -> None:
    [patient] = run(second, map_patient)
    assert patient["gender"] == "male"
    observations = run(second, map_observations)
    cea = by_key(second, observations, "Observation", "cea-preop")
    assert cea["valueQuantity"]["value"] == 7.9
    assert cea["effectiveDateTime"] == "2022-02-09"  # day -20 of 2022-03-01
