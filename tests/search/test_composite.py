"""Composite parameters of three components, core and custom, and other component types
(https://hl7.org/fhir/R4/search.html#composite)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.search.helpers import VITAL_SIGNS, ids, search

Post = Callable[[dict[str, Any]], dict[str, Any]]
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
CHROMOSOME = "http://terminology.hl7.org/CodeSystem/chromosome-human"


def _sequence(post: Post, chromosome: str, variants: list[tuple[int, int]]) -> str:
    return post(
        {
            "resourceType": "MolecularSequence",
            "coordinateSystem": 0,
            "referenceSeq": {
                "chromosome": {"coding": [{"system": CHROMOSOME, "code": chromosome}]},
                "genomeBuild": "GRCh38",  # msq-5: with the chromosome
                "windowStart": 100,
                "windowEnd": 500,
            },
            "variant": [{"start": s, "end": e} for s, e in variants],
        }
    )["id"]


def test_core_three_component_composite(client: TestClient, post: Post) -> None:
    """The spec's example form ``chromosome-variant-coordinate=1$lt345$gt123``; the
    chromosome component is taken from ``%resource``, start and end from each variant."""
    one = _sequence(post, "1", [(120, 121), (150, 152)])
    two = _sequence(post, "2", [(130, 140)])
    url = "/fhir/MolecularSequence?chromosome-variant-coordinate="
    assert ids(search(client, url + "1$lt345$gt123")) == {one}
    assert ids(search(client, url + f"{CHROMOSOME}|2$ge130$le140")) == {two}
    assert ids(search(client, url + "1$120$121,2$130$140")) == {one, two}
    # 150 starts the second variant, 121 ends the first: no single variant has both.
    assert ids(search(client, url + "1$ge150$le121")) == set()
    assert ids(search(client, url + "1$ge150$le152")) == {one}
    window = "/fhir/MolecularSequence?chromosome-window-coordinate="
    assert ids(search(client, window + "2$100$500")) == {two}
    missing = "/fhir/MolecularSequence?chromosome-variant-coordinate:missing=false"
    assert ids(search(client, missing)) == {one, two}
    for bad in ("1$120", "1$120$121$5", "1$$121", "1$abc$121"):
        response = client.get(url + bad)
        assert response.status_code == 400, bad
        assert response.json()["resourceType"] == "OperationOutcome"


def _interpretation_parameters(post: Post) -> None:
    post(
        {
            "resourceType": "SearchParameter",
            "url": "http://example.org/fhir/SearchParameter/component-interpretation",
            "name": "ComponentInterpretation",
            "status": "active",
            "description": "Interpretation of an Observation component",
            "code": "component-interpretation",
            "base": ["Observation"],
            "type": "token",
            "expression": "Observation.component.interpretation",
        }
    )
    post(
        {
            "resourceType": "SearchParameter",
            "url": "http://example.org/fhir/SearchParameter/component-code-value-interpretation",
            "name": "ComponentCodeValueInterpretation",
            "status": "active",
            "description": "Component code, quantity and interpretation, of one component",
            "code": "component-code-value-interpretation",
            "base": ["Observation"],
            "type": "composite",
            "expression": "Observation.component",
            "component": [
                {
                    "definition": "http://hl7.org/fhir/SearchParameter/Observation-component-code",
                    "expression": "code",
                },
                {
                    "definition": (
                        "http://hl7.org/fhir/SearchParameter/Observation-component-value-quantity"
                    ),
                    "expression": "value.as(Quantity)",
                },
                {
                    "definition": (
                        "http://example.org/fhir/SearchParameter/component-interpretation"
                    ),
                    "expression": "interpretation",
                },
            ],
        }
    )


def _pressure(post: Post, systolic: tuple[int, str], diastolic: tuple[int, str]) -> str:
    def component(code: str, value: tuple[int, str]) -> dict[str, Any]:
        return {
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "valueQuantity": {
                "value": value[0],
                "unit": "mmHg",
                "system": UCUM,
                "code": "mm[Hg]",
            },
            "interpretation": [{"coding": [{"system": INTERPRETATION, "code": value[1]}]}],
        }

    return post(
        {
            "resourceType": "Observation",
            "status": "final",
            **VITAL_SIGNS,
            "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
            "component": [component("8480-6", systolic), component("8462-4", diastolic)],
        }
    )["id"]


def test_custom_three_component_composite(client: TestClient, post: Post) -> None:
    _interpretation_parameters(post)
    high = _pressure(post, (150, "H"), (85, "N"))
    low_diastolic = _pressure(post, (120, "N"), (55, "L"))
    url = "/fhir/Observation?component-code-value-interpretation="
    assert ids(search(client, url + f"{LOINC}|8480-6$gt140$H")) == {high}
    assert ids(search(client, url + f"8480-6$gt100${INTERPRETATION}|N")) == {low_diastolic}
    assert ids(search(client, url + "8462-4$lt60$L")) == {low_diastolic}
    # Each part must come from the same component: the H is systolic, 85 diastolic.
    assert ids(search(client, url + "8462-4$85$H")) == set()
    assert ids(search(client, url + "8480-6$150|http://unitsofmeasure.org|mm[Hg]$H")) == {high}
    assert client.get(url + "8480-6$gt140").status_code == 400
