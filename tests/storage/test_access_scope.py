"""The access scope inside storage (docs/security.md, "Where it is enforced: inside
storage"): no unit of work without a scope, compartment rows for every version, and the
rows of versions stored before migration 0012 filled in by the upgrade
(https://hl7.org/fhir/R4/compartmentdefinition-patient.html)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from fhir_service.errors import Forbidden, NotFound
from fhir_service.search.query import SearchRequest
from fhir_service.storage import AccessScope, Grant, SqlStore
from fhir_service.storage.migrate import downgrade_engine, upgrade_engine
from fhir_service.storage.tables import version_patient

FULL = AccessScope.full()


def _patient_scope(patient: str, actions: str = "cruds") -> AccessScope:
    return AccessScope.of([Grant("*", frozenset(actions), "compartment")], patient)


def _observation(subject: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "heart rate"},
        "subject": {"reference": f"Patient/{subject}"},
        **extra,
    }


def _rows(store: SqlStore) -> set[tuple[str, str, int]]:
    """(patient, type/id, version) of every version_patient row."""
    query = sa.text(
        "SELECT vp.patient_id, v.type || '/' || v.id, v.version FROM version_patient vp"
        " JOIN resource_version v ON v.seq = vp.seq"
    )
    with store.engine.connect() as conn:
        return {(p, ref, int(n)) for p, ref, n in conn.execute(query)}


@pytest.fixture
def store(database_url: str) -> Any:
    opened = SqlStore.open(database_url)
    yield opened
    opened.close()


def test_no_unit_of_work_without_a_scope(store: SqlStore) -> None:
    with pytest.raises(TypeError):
        store.begin()  # type: ignore[call-arg]
    with pytest.raises(TypeError), store.begin(None):  # type: ignore[arg-type]
        pass


def test_a_scope_without_grants_reaches_nothing(store: SqlStore) -> None:
    with store.begin(FULL) as repo:
        repo.update("Patient", "p1", {"resourceType": "Patient", "id": "p1"})
    nothing = AccessScope.of([])
    with store.begin(nothing) as repo:
        with pytest.raises(Forbidden):
            repo.read("Patient", "p1")
        with pytest.raises(Forbidden):
            repo.create({"resourceType": "Patient"})
        assert repo.counts() == {}


def test_every_version_gets_its_patients_and_a_delete_keeps_them(store: SqlStore) -> None:
    with store.begin(FULL) as repo:
        for pid in ("a", "b"):
            repo.update("Patient", pid, {"resourceType": "Patient", "id": pid})
        repo.update("Observation", "o1", _observation("a", id="o1"))
        repo.update(
            "Observation", "o1", _observation("a", id="o1", performer=[{"reference": "Patient/b"}])
        )
        repo.delete("Observation", "o1")
    assert _rows(store) == {
        ("a", "Patient/a", 1),
        ("b", "Patient/b", 1),
        ("a", "Observation/o1", 1),
        ("a", "Observation/o1", 2),
        ("b", "Observation/o1", 2),
        ("a", "Observation/o1", 3),
        ("b", "Observation/o1", 3),
    }


def test_transaction_posts_get_their_rows(store: SqlStore) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:1c1e4f7a-0000-4000-8000-000000000001",
                "resource": {"resourceType": "Patient"},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": _observation("x")
                | {"subject": {"reference": "urn:uuid:1c1e4f7a-0000-4000-8000-000000000001"}},
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    with store.begin(FULL) as repo:
        answer = repo.transaction(bundle)
    patient_id = answer["entry"][0]["response"]["location"].split("/")[1]
    assert {patient for patient, _, _ in _rows(store)} == {patient_id}
    assert len(_rows(store)) == 2


def test_a_patient_scope_sees_its_compartment_only(store: SqlStore) -> None:
    with store.begin(FULL) as repo:
        for pid in ("a", "b"):
            repo.update("Patient", pid, {"resourceType": "Patient", "id": pid})
        repo.update("Observation", "oa", _observation("a", id="oa"))
        repo.update("Observation", "ob", _observation("b", id="ob"))
    with store.begin(_patient_scope("a"), readonly=True) as repo:
        assert repo.read("Observation", "oa").id == "oa"
        with pytest.raises(NotFound, match="Observation/ob is not known"):
            repo.read("Observation", "ob")
        page = repo.search_page(SearchRequest(types=["Observation", "Patient"]))
        assert {(s.resource_type, s.id) for s in page.matches} == {
            ("Observation", "oa"),
            ("Patient", "a"),
        }
        assert page.total == 2
        assert repo.counts() == {"Observation": 1, "Patient": 1}
        assert repo.history().total == 2


def test_upgrade_fills_the_rows_of_versions_stored_before(store: SqlStore) -> None:
    with store.begin(FULL) as repo:
        repo.update("Patient", "p", {"resourceType": "Patient", "id": "p"})
        repo.update("Observation", "o", _observation("p", id="o"))
        repo.delete("Observation", "o")
    before = _rows(store)
    assert len(before) == 3
    downgrade_engine(store.engine, "0011_reference_url_partial")
    upgrade_engine(store.engine)
    assert _rows(store) == before
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(version_patient)).scalar() == 3
