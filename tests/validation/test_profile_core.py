"""check_profile against the core R4 definitions, on official resources of the packages."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from fhir_service.fhir.package_cache import Definitions
from fhir_service.validation.profile import check_profile, definitions_from_cache

CORE = "http://hl7.org/fhir/StructureDefinition/"
CORE_DIR = "hl7.fhir.r4.core#4.0.1/package"
MCODE_EXAMPLES = "hl7.fhir.us.mcode#4.0.0/package/example"


@pytest.fixture(scope="module")
def defs(package_root: Path) -> Definitions:
    return definitions_from_cache(package_root)


def _errors(
    resource: dict[str, Any], profile: str, defs: Definitions
) -> list[tuple[str, list[str]]]:
    return [
        (i.diagnostics, i.expression)
        for i in check_profile(resource, profile, defs)
        if i.severity in ("error", "fatal")
    ]


@pytest.mark.parametrize(
    "filename",
    [
        "CodeSystem-example.json",
        "CodeSystem-observation-status.json",
        "ValueSet-observation-status.json",
        "SearchParameter-example.json",
        "NamingSystem-example.json",
        "CapabilityStatement-example.json",
        "OperationDefinition-example.json",
        "StructureDefinition-bp.json",
        "StructureMap-example.json",
    ],
)
def test_official_core_resources_have_no_errors(
    package_root: Path, defs: Definitions, filename: str
) -> None:
    resource = json.loads((package_root / CORE_DIR / filename).read_text())
    assert _errors(resource, CORE + resource["resourceType"], defs) == []


def test_official_search_parameter_without_base_is_caught(
    package_root: Path, defs: Definitions
) -> None:
    # This published R4 SearchParameter lacks `base`, which SearchParameter requires (1..*).
    path = package_root / CORE_DIR / "SearchParameter-codesystem-extensions-CodeSystem-author.json"
    resource = json.loads(path.read_text())
    assert "base" not in resource
    [(text, where)] = _errors(resource, CORE + "SearchParameter", defs)
    assert where == ["SearchParameter"]
    assert text.startswith("SearchParameter.base: minimum required = 1, but only found 0")


def _mcode_example_observations(root: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted((root / MCODE_EXAMPLES).glob("*.json")):
        resource = json.loads(path.read_text())
        entries = (
            [e["resource"] for e in resource.get("entry", [])]
            if resource["resourceType"] == "Bundle"
            else [resource]
        )
        found.extend(r for r in entries if r["resourceType"] == "Observation")
    return found


def test_official_mcode_observations_against_core_observation(
    package_root: Path, defs: Definitions
) -> None:
    observations = _mcode_example_observations(package_root)
    assert len(observations) > 20
    for observation in observations:
        assert _errors(observation, CORE + "Observation", defs) == [], observation["id"]


def test_official_mcode_examples_against_their_mcode_profiles(
    package_root: Path, defs: Definitions
) -> None:
    checked = 0
    for path in sorted((package_root / MCODE_EXAMPLES).glob("*.json")):
        resource = json.loads(path.read_text())
        for profile in resource.get("meta", {}).get("profile", []):
            if "/us/mcode/" in profile:
                checked += 1
                assert _errors(resource, profile, defs) == [], path.name
    assert checked > 30


BLOOD_PRESSURE: dict[str, Any] = {
    "resourceType": "Observation",
    "status": "final",
    "category": [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "vital-signs",
                }
            ]
        }
    ],
    "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2022-03-01",
    "component": [
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
            "valueQuantity": {
                "value": 120,
                "unit": "mmHg",
                "system": "http://unitsofmeasure.org",
                "code": "mm[Hg]",
            },
        },
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
            "valueQuantity": {
                "value": 80,
                "unit": "mmHg",
                "system": "http://unitsofmeasure.org",
                "code": "mm[Hg]",
            },
        },
    ],
}


def test_blood_pressure_slices(defs: Definitions) -> None:
    assert _errors(BLOOD_PRESSURE, CORE + "bp", defs) == []
    missing = copy.deepcopy(BLOOD_PRESSURE)
    del missing["component"][1]
    found = _errors(missing, CORE + "bp", defs)
    assert [
        w
        for t, w in found
        if t.startswith("Observation.component:DiastolicBP: minimum required = 1")
    ] == [["Observation"]]


def test_blood_pressure_unit_is_fixed(defs: Definitions) -> None:
    wrong = copy.deepcopy(BLOOD_PRESSURE)
    wrong["component"][1]["valueQuantity"]["code"] = "kPa"
    where = {w[0] for _, w in _errors(wrong, CORE + "bp", defs)}
    assert "Observation.component[1].valueQuantity.code" in where
