"""Create, read, vread, update, patch, delete on both databases
(https://hl7.org/fhir/R4/http.html)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from fhir_service.errors import (
    Gone,
    InvalidRequest,
    InvalidResource,
    NotFound,
    PreconditionFailed,
    UnknownResourceType,
    Unprocessable,
)
from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope

FULL_ACCESS = AccessScope.full()


def patient(**extra: object) -> dict[str, object]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.3", "value": "A-1"}],
        "name": [{"family": "Rossi", "given": ["Maria"]}],
        **extra,
    }


def test_create_assigns_id_version_and_last_updated(store: SqlStore) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    with store.begin(FULL_ACCESS) as repo:
        result = repo.create(patient(id="client-id"))
    stored = result.stored
    assert result.created and result.outcome == "created"
    assert stored.id != "client-id"
    assert stored.version_id == 1
    assert stored.last_updated.tzinfo is not None and stored.last_updated >= before
    assert stored.resource is not None
    assert stored.resource["meta"]["versionId"] == "1"
    assert stored.resource["meta"]["lastUpdated"].endswith("Z")
    assert stored.etag == 'W/"1"'
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        read = repo.read("Patient", stored.id)
    assert read.resource == stored.resource
    assert read.last_updated == stored.last_updated


def test_invalid_and_unknown_resources_are_rejected(store: SqlStore) -> None:
    with store.begin(FULL_ACCESS) as repo, pytest.raises(InvalidResource) as info:
        repo.create({"resourceType": "Patient", "gender": 12, "birthDate": "not-a-date"})
    assert info.value.status == 400
    assert any(e.startswith("Patient.") for e in info.value.expression)
    with store.begin(FULL_ACCESS) as repo, pytest.raises(UnknownResourceType):
        repo.create({"resourceType": "Patientt"})
    with store.begin(FULL_ACCESS) as repo, pytest.raises(UnknownResourceType):
        repo.read("Nope", "1")
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        assert repo.history().total == 0


def test_update_versions_and_vread(store: SqlStore) -> None:
    with store.begin(FULL_ACCESS) as repo:
        id = repo.create(patient()).stored.id
    for gender in ("female", "male"):
        with store.begin(FULL_ACCESS) as repo:
            result = repo.update("Patient", id, patient(id=id, gender=gender))
            assert result.outcome == "updated"
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        current = repo.read("Patient", id)
        first = repo.vread("Patient", id, 1)
        second = repo.vread("Patient", id, 2)
        with pytest.raises(NotFound):
            repo.vread("Patient", id, 4)
    assert current.version_id == 3
    assert current.resource is not None and current.resource["gender"] == "male"
    assert first.resource is not None and "gender" not in first.resource
    assert second.resource is not None and second.resource["gender"] == "female"
    assert second.resource["meta"]["versionId"] == "2"


def test_update_with_equal_content_writes_no_version(store: SqlStore) -> None:
    with store.begin(FULL_ACCESS) as repo:
        id = repo.create(patient()).stored.id
    with store.begin(FULL_ACCESS) as repo:
        result = repo.update("Patient", id, patient(id=id))
    assert result.outcome == "unchanged"
    assert result.stored.version_id == 1


def test_create_on_update_with_client_id(store: SqlStore) -> None:
    with store.begin(FULL_ACCESS) as repo:
        result = repo.update("Patient", "ivc-lms-1", patient(id="ivc-lms-1"))
    assert result.created
    assert result.stored.id == "ivc-lms-1" and result.stored.version_id == 1
    assert result.stored.method == "PUT"


def test_update_checks_type_and_id(store: SqlStore) -> None:
    with store.begin(FULL_ACCESS) as repo, pytest.raises(InvalidRequest, match="does not match"):
        repo.update("Patient", "a", patient(id="b"))
    with store.begin(FULL_ACCESS) as repo, pytest.raises(InvalidRequest, match="resourceType"):
        repo.update("Observation", "a", patient(id="a"))
    with (
        store.begin(FULL_ACCESS) as repo,
        pytest.raises(InvalidRequest, match="not a valid FHIR id"),
    ):
        repo.update("Patient", "bad id!", patient(id="bad id!"))


def test_stale_if_match_fails_and_changes_nothing(store: SqlStore) -> None:
    with store.begin(FULL_ACCESS) as repo:
        id = repo.create(patient()).stored.id
    with store.begin(FULL_ACCESS) as repo:
        repo.update("Patient", id, patient(id=id, gender="female"), if_match=1)
    with store.begin(FULL_ACCESS) as repo, pytest.raises(PreconditionFailed) as info:
        repo.update("Patient", id, patient(id=id, gender="male"), if_match=1)
    assert info.value.status == 412
    with store.begin(FULL_ACCESS) as repo, pytest.raises(PreconditionFailed):
        repo.patch("Patient", id, [{"op": "remove", "path": "/gender"}], if_match=1)
    with store.begin(FULL_ACCESS) as repo, pytest.raises(PreconditionFailed):
        repo.delete("Patient", id, if_match=1)
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        current = repo.read("Patient", id)
        history = repo.history("Patient", id)
    assert current.version_id == 2
    assert current.resource is not None and current.resource["gender"] == "female"
    assert history.total == 2


def test_delete_keeps_history_and_read_is_gone(store: SqlStore) -> None:
    with store.begin(FULL_ACCESS) as repo:
        id = repo.create(patient()).stored.id
    with store.begin(FULL_ACCESS) as repo:
        marker = repo.delete("Patient", id)
    assert marker is not None and marker.deleted and marker.version_id == 2
    assert marker.resource is None
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        with pytest.raises(Gone) as info:
            repo.read("Patient", id)
        assert info.value.status == 410
        with pytest.raises(Gone):
            repo.vread("Patient", id, 2)
        assert repo.vread("Patient", id, 1).resource is not None
        history = repo.history("Patient", id)
        assert repo.search("Patient", [("identifier", "urn:oid:1.2.3|A-1")]) == []
    assert [(s.version_id, s.method, s.deleted) for s in history.entries] == [
        (2, "DELETE", True),
        (1, "POST", False),
    ]
    with store.begin(FULL_ACCESS) as repo:
        assert repo.delete("Patient", id) is None
        assert repo.delete("Patient", "never-existed") is None
        again = repo.update("Patient", id, patient(id=id))
    assert again.created and again.stored.version_id == 3


def test_read_unknown_is_not_found(store: SqlStore) -> None:
    with store.begin(FULL_ACCESS, readonly=True) as repo, pytest.raises(NotFound) as info:
        repo.read("Patient", "nobody")
    assert info.value.status == 404


def test_json_patch(store: SqlStore) -> None:
    with store.begin(FULL_ACCESS) as repo:
        id = repo.create(patient()).stored.id
    ops = [
        {"op": "add", "path": "/gender", "value": "female"},
        {"op": "replace", "path": "/name/0/family", "value": "Bianchi"},
    ]
    with store.begin(FULL_ACCESS) as repo:
        result = repo.patch("Patient", id, ops, if_match=1)
    assert result.outcome == "updated" and result.stored.method == "PATCH"
    body = result.stored.resource
    assert body is not None
    assert body["gender"] == "female" and body["name"][0]["family"] == "Bianchi"
    failing = [{"op": "test", "path": "/gender", "value": "male"}]
    with store.begin(FULL_ACCESS) as repo, pytest.raises(Unprocessable):
        repo.patch("Patient", id, failing)
    with store.begin(FULL_ACCESS) as repo, pytest.raises(InvalidResource):
        repo.patch("Patient", id, [{"op": "replace", "path": "/gender", "value": 5}])
    with store.begin(FULL_ACCESS) as repo, pytest.raises(Unprocessable):
        repo.patch("Patient", id, [{"op": "replace", "path": "/id", "value": "other"}])
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        assert repo.read("Patient", id).version_id == 2


def test_conditional_update(store: SqlStore) -> None:
    criteria = "identifier=urn:oid:1.2.3|A-1"
    with store.begin(FULL_ACCESS) as repo:
        created = repo.conditional_update("Patient", criteria, patient())
    assert created.created
    with store.begin(FULL_ACCESS) as repo:
        updated = repo.conditional_update("Patient", criteria, patient(gender="other"))
    assert updated.outcome == "updated"
    assert updated.stored.id == created.stored.id and updated.stored.version_id == 2
    with store.begin(FULL_ACCESS) as repo:
        repo.create(patient())
    with store.begin(FULL_ACCESS) as repo, pytest.raises(PreconditionFailed):
        repo.conditional_update("Patient", criteria, patient(gender="male"))


def test_conditional_delete(store: SqlStore) -> None:
    with store.begin(FULL_ACCESS) as repo:
        one = repo.create(patient(identifier=[{"system": "s", "value": "1"}])).stored.id
        repo.create(patient(identifier=[{"system": "s", "value": "2"}]))
        repo.create(patient(identifier=[{"system": "s", "value": "2"}]))
    with store.begin(FULL_ACCESS) as repo:
        deleted = repo.conditional_delete("Patient", "identifier=s|1")
        assert repo.conditional_delete("Patient", "identifier=s|9") == []
    assert [d.id for d in deleted] == [one]
    with store.begin(FULL_ACCESS) as repo, pytest.raises(PreconditionFailed):
        repo.conditional_delete("Patient", "identifier=s|2")


def test_unit_of_work_rolls_back_on_error(store: SqlStore) -> None:
    with pytest.raises(RuntimeError), store.begin(FULL_ACCESS) as repo:
        repo.create(patient())
        raise RuntimeError("request failed after the write")
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        assert repo.search("Patient", []) == []
        assert repo.history().total == 0


def test_server_ids_are_uuid7_in_creation_order(store: SqlStore) -> None:
    """Server ids sort in creation order (docs/storage.md#server-assigned-ids): the
    indexes keyed by id then grow at their end, which keeps ingest linear."""
    ids = []
    for n in range(20):
        with store.begin(FULL_ACCESS) as repo:
            ids.append(repo.create(patient(gender="female" if n % 2 else "male")).stored.id)
    parsed = [uuid.UUID(id) for id in ids]
    assert {u.version for u in parsed} == {7}
    assert [str(u) for u in parsed] == ids
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
