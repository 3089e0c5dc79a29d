"""Extraction skips the parameters whose first element a resource lacks
(``SearchParam.starts``, ``fhirpath.first_elements``): the rows must be exactly those of
evaluating every parameter (https://hl7.org/fhir/R4/search.html)."""

from __future__ import annotations

import dataclasses
import tarfile
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhir_service.search.extract import extract
from fhir_service.search.fhirpath import first_elements
from fhir_service.search.registry import Registry, SearchParam, get_registry
from mappings.bundle import build_bundle
from mappings.case.loader import load_case

CASE = Path(__file__).resolve().parents[2] / "examples" / "ivc-leiomyosarcoma" / "case.yaml"


class EvaluatingEverything(Registry):
    """The core registry with no parameter skipped."""

    def __init__(self, core: Registry) -> None:
        self.core = core

    def indexed(self, resource_type: str) -> list[SearchParam]:
        return [dataclasses.replace(p, starts=None) for p in self.core.indexed(resource_type)]


def resources_of(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if isinstance(e.get("resource"), dict)]


def assert_same_rows(resources: list[dict[str, Any]]) -> int:
    core = get_registry()
    everything = EvaluatingEverything(core)
    rows = 0
    for resource in resources:
        expected = extract(everything, resource)
        assert extract(core, resource) == expected, resource.get("resourceType")
        rows += sum(map(len, expected.values()))
    return rows


def test_first_elements_of_walked_and_other_expressions() -> None:
    assert first_elements("Observation.value.as(Quantity)", "Observation") == {"value"}
    union = "Observation.subject | Patient.link.other | Condition.subject"
    assert first_elements(union, "Observation") == {"subject"}
    assert first_elements("(Observation.value as Quantity)", "Observation") is None
    # fhirpathpy evaluates this one, and it is false (a token row) on a Patient without it.
    deceased = "Patient.deceased.exists() and Patient.deceased != false"
    assert first_elements(deceased, "Patient") is None


def test_every_resource_type_without_elements_gets_the_rows_of_every_parameter() -> None:
    types = sorted({base for sp in get_registry().parameters for base in sp.get("base", [])})
    types = [t for t in types if t not in ("Resource", "DomainResource")]
    assert len(types) > 120
    assert_same_rows([{"resourceType": t, "id": "x"} for t in types])
    # The empty Patient gets deceased=false from the fhirpathpy expression above.
    rows = extract(get_registry(), {"resourceType": "Patient", "id": "x"})
    assert ("deceased", None, "false", None) in rows["token"]


def test_the_case_gets_the_rows_of_every_parameter() -> None:
    bundle = build_bundle(load_case(CASE), date(2022, 3, 1), "transaction")
    assert assert_same_rows(resources_of(bundle)) > 800


@pytest.mark.shared_data
def test_synthea_patients_get_the_rows_of_every_parameter(shared_data: Path) -> None:
    archive = shared_data / "synthea-bulk-10-patients-transactions.tar.xz"
    resources: list[dict[str, Any]] = []
    with tarfile.open(archive) as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".json"):
                data = tar.extractfile(member)
                assert data is not None
                resources += resources_of(orjson.loads(data.read()))
    assert len(resources) > 7000
    assert assert_same_rows(resources) > 50_000
