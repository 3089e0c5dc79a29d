"""Conditional interactions by identifier on both databases: the lookup built once for
``identifier=system|value`` answers as the general search does, stale claims are taken
over, and more than a thousand matching index rows still give the right answer
(https://hl7.org/fhir/R4/http.html#ccreate)."""

from __future__ import annotations

import pytest

from fhir_service.errors import PreconditionFailed
from fhir_service.storage import SqlStore
from fhir_service.storage.conditional import LOOKUP_MAX
from fhir_service.storage.criteria import parse_criteria

MRN = "http://hospital.example/mrn"


def patient(value: str, system: str = MRN, **extra: object) -> dict[str, object]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": system, "value": value}],
        **extra,
    }


def test_create_after_delete_takes_the_stale_claim_over(store: SqlStore) -> None:
    criteria = f"identifier={MRN}|A-1"
    with store.begin() as repo:
        first = repo.create(patient("A-1"), if_none_exist=criteria)
    with store.begin() as repo:
        repo.delete("Patient", first.stored.id)
    with store.begin() as repo:
        second = repo.create(patient("A-1"), if_none_exist=criteria)
    with store.begin() as repo:
        third = repo.create(patient("A-1"), if_none_exist=criteria)
    assert second.outcome == "created" and second.stored.id != first.stored.id
    assert third.outcome == "existing" and third.stored.id == second.stored.id


def test_create_after_the_identifier_changed_creates_again(store: SqlStore) -> None:
    criteria = f"identifier={MRN}|B-1"
    with store.begin() as repo:
        first = repo.create(patient("B-1"), if_none_exist=criteria)
    changed = patient("B-2", id=first.stored.id)
    with store.begin() as repo:
        repo.update("Patient", first.stored.id, changed)
    with store.begin() as repo:
        again = repo.create(patient("B-1"), if_none_exist=criteria)
    assert again.outcome == "created" and again.stored.id != first.stored.id


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        (f"identifier={MRN}|C-1", {"c1"}),
        (f"identifier={MRN}|C-2", {"c2", "c2-again"}),
        ("identifier=http://other.example/ids|C-1", {"other"}),
        (f"identifier={MRN}|c-1", set()),  # identifiers are case-sensitive
        (f"identifier={MRN}|C-9", set()),
        ("identifier=|C-1", set()),  # general search: no system
        ("identifier=C-1", {"c1", "other"}),  # general search: any system
        (f"identifier={MRN}|C-1,{MRN}|C-3", {"c1"}),  # general search: either value
        (f"identifier={MRN}|", {"c1", "c2", "c2-again"}),  # general search: any value
        (f"identifier={MRN}|C-3", set()),  # only a deleted resource has it
    ],
)
def test_identifier_matches_agree_with_the_general_search(
    store: SqlStore, criteria: str, expected: set[str]
) -> None:
    with store.begin() as repo:
        repo.update("Patient", "c1", patient("C-1", id="c1"))
        repo.update("Patient", "c2", patient("C-2", id="c2"))
        repo.update("Patient", "c2-again", patient("C-2", id="c2-again"))
        repo.update("Patient", "other", patient("C-1", "http://other.example/ids", id="other"))
        repo.update("Patient", "gone", patient("C-3", id="gone"))
        repo.update(
            "Group",
            "g",
            {
                "resourceType": "Group",
                "id": "g",
                "type": "person",
                "actual": True,
                "identifier": [{"system": MRN, "value": "C-1"}],
            },
        )
    with store.begin() as repo:
        repo.delete("Patient", "gone")
    params = parse_criteria(criteria, "Patient")
    with store.begin(readonly=True) as repo:
        matched = repo.match_ids("Patient", params)
        searched = {s.id for s in repo.search("Patient", params)}
    assert set(matched) == expected == searched
    assert matched == sorted(matched)


def test_more_index_rows_than_the_lookup_takes(store: SqlStore) -> None:
    count = LOOKUP_MAX + 5
    with store.begin() as repo:
        for i in range(count):
            repo.update("Patient", f"many-{i}", patient("SHARED", id=f"many-{i}"))
    criteria = f"identifier={MRN}|SHARED"
    with store.begin(readonly=True) as repo:
        matched = repo.match_ids("Patient", parse_criteria(criteria, "Patient"))
    assert len(matched) == count
    with pytest.raises(PreconditionFailed), store.begin() as repo:
        repo.create(patient("SHARED"), if_none_exist=criteria)
