"""Observations with a vital-sign code meet the R4 vital signs profile of that code
(https://hl7.org/fhir/R4/observation-vitalsigns.html), as the HL7 validator checks them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fhir_service.errors import Issue
from fhir_service.fhir.package_cache import Definitions, load_definitions
from fhir_service.validation.engine import validate_resource
from fhir_service.validation.options import Options
from fhir_service.validation.vital_signs import required_profile

BODYTEMP = "http://hl7.org/fhir/StructureDefinition/bodytemp"
LOINC = "http://loinc.org"
SNOMED_CT = "http://snomed.info/sct"


@pytest.fixture(scope="module")
def defs(package_root: Path) -> Definitions:
    return load_definitions(package_root)


def temperature(*codings: dict[str, str]) -> dict[str, Any]:
    """A body temperature Observation as the bodytemp profile describes it."""
    return {
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
        "code": {"coding": list(codings)},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2020-06-30T09:50:55Z",
        "valueQuantity": {
            "value": 36.6,
            "unit": "Cel",
            "system": "http://unitsofmeasure.org",
            "code": "Cel",
        },
    }


def run(resource: dict[str, Any], defs: Definitions, **options: Any) -> list[Issue]:
    return validate_resource(resource, definitions=defs, options=Options(**options))


def errors_at(issues: list[Issue]) -> list[str]:
    return [i.expression[0] for i in issues if i.severity in ("error", "fatal")]


def test_a_conforming_loinc_temperature_passes_and_says_which_profile(defs: Definitions) -> None:
    issues = run(temperature({"system": LOINC, "code": "8310-5"}), defs)
    assert errors_at(issues) == []
    signposts = [i for i in issues if i.severity == "information" and BODYTEMP in i.diagnostics]
    assert [i.expression for i in signposts] == [["Observation"]]


def test_a_snomed_temperature_lacks_the_loinc_code_bodytemp_requires(defs: Definitions) -> None:
    # bodytemp slices Observation.code.coding and requires the LOINC 8310-5 coding (1..1).
    issues = run(temperature({"system": SNOMED_CT, "code": "276885007"}), defs)
    assert errors_at(issues) == ["Observation.code"]
    assert any(BODYTEMP in i.diagnostics for i in issues if i.severity == "error")


def test_the_rule_can_be_switched_off(defs: Definitions) -> None:
    observation = temperature({"system": SNOMED_CT, "code": "276885007"})
    assert errors_at(run(observation, defs, vital_signs=False)) == []


def test_other_codes_imply_no_profile(defs: Definitions) -> None:
    # LOINC 2339-0 (glucose) is a laboratory code, not a vital sign.
    observation = temperature({"system": LOINC, "code": "2339-0"})
    assert required_profile(observation) is None
    assert not any("profile" in i.diagnostics for i in run(observation, defs))


def test_loinc_decides_before_snomed_ct(defs: Definitions) -> None:
    observation = temperature(
        {"system": SNOMED_CT, "code": "276885007"}, {"system": LOINC, "code": "8867-4"}
    )
    found = required_profile(observation)
    assert found is not None
    assert found.profile.endswith("/heartrate")
    assert (found.system_name, found.code) == ("LOINC", "8867-4")


def test_inside_a_bundle_the_location_is_the_entry(defs: Definitions) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "fullUrl": "urn:uuid:7e4c3c8e-6f53-4c5e-9a51-3c1f0e2b9a10",
                "resource": {
                    **temperature({"system": SNOMED_CT, "code": "276885007"}),
                    "id": "t1",
                },
            }
        ],
    }
    # The HL7 validator's style: the entry's resource, then a comment naming it.
    assert errors_at(run(bundle, defs)) == ["Bundle.entry[0].resource/*Observation/t1*/.code"]


def test_component_units_outside_the_vital_sign_units_are_a_warning(defs: Definitions) -> None:
    # R4 binds Observation.component.value[x] of the vital signs profiles to the vital-sign
    # UCUM units as required; the HL7 validator loads that binding as extensible.
    observation = temperature({"system": LOINC, "code": "8310-5"})
    observation["component"] = [
        {
            "code": {"coding": [{"system": LOINC, "code": "3151-8"}]},
            "valueQuantity": {
                "value": 2,
                "unit": "L/min",
                "system": "http://unitsofmeasure.org",
                "code": "L/min",
            },
        }
    ]
    issues = run(observation, defs)
    assert errors_at(issues) == []
    units = [i for i in issues if "ucum-vitals-common" in i.diagnostics]
    assert [(i.severity, i.expression) for i in units] == [
        ("warning", ["Observation.component[0].valueQuantity"])
    ]
