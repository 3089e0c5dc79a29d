"""Realistic views over generated (Synthea) patients from ../shared/data: patients with
demographics, observations with codes and values (and blood-pressure components),
conditions per patient. The expected tables are computed here from the stored JSON with
plain Python, not through the view runner, and compared with the runner's rows read
through the storage layer."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from fhir_service.cli.load import load_bundle, providers_first
from fhir_service.storage import SqlStore, upgrade
from fhir_service.storage.access import AccessScope
from fhir_service.storage.view_scan import scan_resources
from fhir_service.views import parse_view, run_view

pytestmark = pytest.mark.shared_data

ARCHIVE = "synthea-r4-300-patients.tar.xz"
PATIENTS = 4
RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
FULL = AccessScope.full()


@pytest.fixture(scope="module")
def loaded(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlStore]:
    """A SQLite database holding the providers and the first PATIENTS patients."""
    url = f"sqlite:///{tmp_path_factory.mktemp('synthea') / 'fhir.sqlite3'}"
    upgrade(url)
    store = load_patients(url, shared_data, PATIENTS)
    yield store
    store.close()


def load_patients(url: str, shared_data: Path, count: int) -> SqlStore:
    """A store on ``url`` holding the providers and the first ``count`` patients."""
    store = SqlStore.open(url)
    patients = 0
    for name, bundle in providers_first([shared_data / ARCHIVE], anchor_date=date(2022, 3, 1)):
        if "Information" not in name:
            if patients == count:
                break
            patients += 1
        load_bundle(store, bundle)
    return store


def _stored(store: SqlStore, resource_type: str) -> list[dict[str, Any]]:
    with store.begin(FULL, readonly=True) as repo:
        return [s.resource for s in repo.search(resource_type, []) if s.resource]


def _rows(store: SqlStore, view: dict[str, Any]) -> list[dict[str, Any]]:
    """The view's rows; also checks that the direct walkers and fhirpathpy agree."""
    compiled = parse_view(view)
    general = parse_view(view, fast=False)
    with store.begin(FULL, readonly=True) as repo:
        rows = list(run_view(compiled, scan_resources(repo, compiled.resource)))
        reference = list(run_view(general, scan_resources(repo, compiled.resource)))
    assert rows == reference
    return rows


def _key(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(repr(sorted(row.items())) for row in rows)


def _ref_id(reference: dict[str, Any] | None) -> str | None:
    text = (reference or {}).get("reference")
    return text.rsplit("/", 1)[-1] if isinstance(text, str) and "/" in text else None


PATIENT_VIEW = {
    "resourceType": "ViewDefinition",
    "resource": "Patient",
    "select": [
        {
            "column": [
                {"name": "id", "path": "getResourceKey()"},
                {"name": "gender", "path": "gender"},
                {"name": "birth_date", "path": "birthDate", "type": "date"},
                {"name": "family", "path": "name.where(use = 'official').family.first()"},
                {"name": "given", "path": "name.where(use = 'official').given.join(' ')"},
                {"name": "city", "path": "address.city.first()"},
                {
                    "name": "race",
                    "path": f"extension('{RACE}').extension('text').value.ofType(string).first()",
                },
                {"name": "deceased", "path": "deceased.ofType(dateTime).exists()"},
            ]
        }
    ],
}


def test_patients_with_demographics(loaded: SqlStore) -> None:
    expected = []
    for p in _stored(loaded, "Patient"):
        official = [n for n in p.get("name", []) if n.get("use") == "official"]
        race = [e for e in p.get("extension", []) if e["url"] == RACE]
        race_text = [x["valueString"] for e in race for x in e["extension"] if x["url"] == "text"]
        expected.append(
            {
                "id": p["id"],
                "gender": p.get("gender"),
                "birth_date": p.get("birthDate"),
                "family": official[0].get("family") if official else None,
                "given": " ".join(g for n in official for g in n.get("given", [])),
                "city": p["address"][0].get("city") if p.get("address") else None,
                "race": race_text[0] if race_text else None,
                "deceased": "deceasedDateTime" in p,
            }
        )
    assert len(expected) == PATIENTS
    assert all(row["family"] and row["race"] for row in expected)
    assert _key(_rows(loaded, PATIENT_VIEW)) == _key(expected)


OBSERVATION_VIEW = {
    "resourceType": "ViewDefinition",
    "resource": "Observation",
    "where": [{"path": "value.ofType(Quantity).exists()"}],
    "select": [
        {
            "column": [
                {"name": "id", "path": "getResourceKey()"},
                {"name": "patient", "path": "subject.getReferenceKey(Patient)"},
                {"name": "encounter", "path": "encounter.getReferenceKey(Encounter)"},
                {"name": "status", "path": "status"},
                {"name": "effective", "path": "effective.ofType(dateTime)", "type": "dateTime"},
                {"name": "value", "path": "value.ofType(Quantity).value", "type": "decimal"},
                {"name": "unit", "path": "value.ofType(Quantity).unit"},
            ]
        },
        {
            "forEach": "code.coding",
            "column": [
                {"name": "system", "path": "system"},
                {"name": "code", "path": "code"},
                {"name": "display", "path": "display"},
            ],
        },
    ],
}


def test_observations_with_codes_and_values(loaded: SqlStore) -> None:
    expected = []
    for o in _stored(loaded, "Observation"):
        quantity = o.get("valueQuantity")
        if quantity is None:
            continue
        for coding in o["code"]["coding"]:
            expected.append(
                {
                    "id": o["id"],
                    "patient": _ref_id(o.get("subject")),
                    "encounter": _ref_id(o.get("encounter")),
                    "status": o["status"],
                    "effective": o.get("effectiveDateTime"),
                    "value": quantity.get("value"),
                    "unit": quantity.get("unit"),
                    "system": coding.get("system"),
                    "code": coding.get("code"),
                    "display": coding.get("display"),
                }
            )
    assert len(expected) > 100
    rows = _rows(loaded, OBSERVATION_VIEW)
    # Numbers compare by value (a JSON 5 and a decimal 5.0 are the same measurement).
    for row in (*rows, *expected):
        row["value"] = float(row["value"])
    assert _key(rows) == _key(expected)


def test_blood_pressure_components(loaded: SqlStore) -> None:
    view = {
        "resource": "Observation",
        "where": [{"path": "component.exists()"}],
        "select": [
            {"column": [{"name": "id", "path": "getResourceKey()"}]},
            {
                "forEach": "component",
                "column": [
                    {"name": "code", "path": "code.coding.code.first()"},
                    {"name": "value", "path": "value.ofType(Quantity).value"},
                ],
            },
        ],
    }
    expected = [
        {
            "id": o["id"],
            "code": c["code"]["coding"][0]["code"],
            "value": float(c["valueQuantity"]["value"]),
        }
        for o in _stored(loaded, "Observation")
        for c in o.get("component", [])
    ]
    assert expected, "the sample has blood-pressure observations"
    rows = [{**r, "value": float(r["value"])} for r in _rows(loaded, view)]
    assert _key(rows) == _key(expected)


CONDITION_VIEW = {
    "resourceType": "ViewDefinition",
    "resource": "Condition",
    "select": [
        {
            "column": [
                {"name": "id", "path": "getResourceKey()"},
                {"name": "patient", "path": "subject.getReferenceKey(Patient)"},
                {"name": "code", "path": "code.coding.first().code"},
                {"name": "onset", "path": "onset.ofType(dateTime)"},
                {"name": "abated", "path": "abatement.exists()"},
                {"name": "clinical_status", "path": "clinicalStatus.coding.code.first()"},
            ]
        }
    ],
}


def test_conditions_per_patient(loaded: SqlStore) -> None:
    conditions = _stored(loaded, "Condition")
    expected = [
        {
            "id": c["id"],
            "patient": _ref_id(c["subject"]),
            "code": c["code"]["coding"][0]["code"],
            "onset": c.get("onsetDateTime"),
            "abated": any(k.startswith("abatement") for k in c),
            "clinical_status": c["clinicalStatus"]["coding"][0]["code"],
        }
        for c in conditions
    ]
    rows = _rows(loaded, CONDITION_VIEW)
    assert _key(rows) == _key(expected)
    per_patient = Counter(row["patient"] for row in rows)
    patients = {p["id"] for p in _stored(loaded, "Patient")}
    assert set(per_patient) <= patients
    assert per_patient == Counter(_ref_id(c["subject"]) for c in conditions)
    assert sum(per_patient.values()) == len(conditions) > PATIENTS
