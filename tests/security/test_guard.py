"""The repository guard on its own, over the real store: unknown repository methods fail
closed, results of read-like ones are filtered (fhir_service/api/auth/access.py)."""

from __future__ import annotations

import pytest

from fhir_service.api.auth.access import guard
from fhir_service.api.auth.compartment import PatientCompartment
from fhir_service.api.auth.context import AccessContext
from fhir_service.api.auth.scopes import ScopeSet
from fhir_service.errors import Forbidden, NotFound
from fhir_service.settings import Settings
from fhir_service.storage import SqlStore


@pytest.fixture
def store(database_url: str) -> SqlStore:
    opened = SqlStore.open(database_url)
    with opened.begin() as repo:
        repo.update("Patient", "pa", {"resourceType": "Patient", "id": "pa"})
        repo.update("Patient", "pb", {"resourceType": "Patient", "id": "pb"})
    return opened


def _context(scope: str, patient: str | None = None) -> AccessContext:
    return AccessContext(
        client_id="c",
        scopes=ScopeSet.parse(scope),
        patient=patient,
        compartment=PatientCompartment.load(Settings().package_cache),
    )


def test_unknown_methods_fail_closed(store: SqlStore) -> None:
    try:
        patient = guard(store, _context("patient/*.cruds", "pa"))
        with patient.begin() as repo, pytest.raises(Forbidden, match="match_ids"):
            repo.match_ids("Patient", [("_id", "pb")], limit=2)
        admin = guard(store, _context("system/*.cruds"))
        with admin.begin(readonly=True) as repo:
            assert repo.match_ids("Patient", [("_id", "pb")], limit=2) == ["pb"]
    finally:
        store.close()


def test_read_like_methods_are_filtered(store: SqlStore) -> None:
    try:
        patient = guard(store, _context("patient/*.rs", "pa"))
        with patient.begin(readonly=True) as repo:
            assert repo.counts() == {"Patient": 1}
            assert [s.id for s in repo.search("Patient", [])] == ["pa"]
            with pytest.raises(NotFound):
                repo.read("Patient", "pb")
        narrow = guard(store, _context("system/Observation.rs"))
        with narrow.begin(readonly=True) as repo:
            assert repo.counts() == {}
        wide = guard(store, _context("system/Patient.s"))
        with wide.begin(readonly=True) as repo:
            assert repo.counts() == {"Patient": 2}
    finally:
        store.close()
