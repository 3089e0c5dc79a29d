"""Views over stored Synthea patients in the real PostgreSQL: the compiled query
(``stored_rows`` on PostgreSQL) gives the Python runner's rows in the same order, for
the realistic views of test_synthea, and a patient scope keeps only its compartment's
rows inside the query."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope, Grant
from fhir_service.storage.view_scan import scan_resources
from fhir_service.views import parse_view, run_view
from fhir_service.views.sql_plan import plan_view, stored_rows
from tests.views.test_synthea import (
    CONDITION_VIEW,
    OBSERVATION_VIEW,
    PATIENT_VIEW,
    load_patients,
)

pytestmark = [pytest.mark.shared_data, pytest.mark.postgres]

PATIENTS = 3
FULL = AccessScope.full()
VIEWS = {"patient": PATIENT_VIEW, "observation": OBSERVATION_VIEW, "condition": CONDITION_VIEW}


def _both(
    store: SqlStore, raw: dict[str, Any], scope: AccessScope
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    view = parse_view(raw)
    with store.begin(scope, readonly=True) as repo:
        in_sql = list(stored_rows(repo, raw, view))
        in_python = list(run_view(view, scan_resources(repo, view.resource)))
    return in_sql, in_python


def test_compiled_views_give_the_runners_rows(fresh_postgres_url: str, shared_data: Path) -> None:
    store = load_patients(fresh_postgres_url, shared_data, PATIENTS)
    try:
        for name, raw in VIEWS.items():
            plan_view(raw)  # these views compile: the SQL path is the one under test
            in_sql, in_python = _both(store, raw, FULL)
            assert in_python, f"{name}: no rows to compare"
            assert in_sql == in_python, name

        patient_ids = [row["id"] for row in _both(store, PATIENT_VIEW, FULL)[0]]
        assert len(patient_ids) == PATIENTS
        own = patient_ids[0]
        scope = AccessScope.of([Grant("*", frozenset("rs"), "compartment")], patient=own)
        rows, reference = _both(store, OBSERVATION_VIEW, scope)
        assert rows == reference
        assert rows, "the patient has observations"
        assert {row["patient"] for row in rows} == {own}
    finally:
        store.close()
