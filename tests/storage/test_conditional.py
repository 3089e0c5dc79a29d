"""Conditional interactions by identifier on both databases: the lookup built once for
``identifier=system|value`` answers as the general search does, stale claims are taken
over, and more than a thousand matching index rows still give the right answer
(https://hl7.org/fhir/R4/http.html#ccreate)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from fhir_service.errors import PreconditionFailed
from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope
from fhir_service.storage.conditional import LOOKUP_MAX
from fhir_service.storage.criteria import parse_criteria

FULL_ACCESS = AccessScope.full()

MRN = "http://hospital.example/mrn"


def patient(value: str, system: str = MRN, **extra: object) -> dict[str, object]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": system, "value": value}],
        **extra,
    }


def test_create_after_delete_takes_the_stale_claim_over(store: SqlStore) -> None:
    criteria = f"identifier={MRN}|A-1"
    with store.begin(FULL_ACCESS) as repo:
        first = repo.create(patient("A-1"), if_none_exist=criteria)
    with store.begin(FULL_ACCESS) as repo:
        repo.delete("Patient", first.stored.id)
    with store.begin(FULL_ACCESS) as repo:
        second = repo.create(patient("A-1"), if_none_exist=criteria)
    with store.begin(FULL_ACCESS) as repo:
        third = repo.create(patient("A-1"), if_none_exist=criteria)
    assert second.outcome == "created" and second.stored.id != first.stored.id
    assert third.outcome == "existing" and third.stored.id == second.stored.id


def test_create_after_the_identifier_changed_creates_again(store: SqlStore) -> None:
    criteria = f"identifier={MRN}|B-1"
    with store.begin(FULL_ACCESS) as repo:
        first = repo.create(patient("B-1"), if_none_exist=criteria)
    changed = patient("B-2", id=first.stored.id)
    with store.begin(FULL_ACCESS) as repo:
        repo.update("Patient", first.stored.id, changed)
    with store.begin(FULL_ACCESS) as repo:
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
    with store.begin(FULL_ACCESS) as repo:
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
    with store.begin(FULL_ACCESS) as repo:
        repo.delete("Patient", "gone")
    params = parse_criteria(criteria, "Patient")
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        matched = repo.match_ids("Patient", params)
        searched = {s.id for s in repo.search("Patient", params)}
    assert set(matched) == expected == searched
    assert matched == sorted(matched)


def test_more_index_rows_than_the_lookup_takes(store: SqlStore) -> None:
    count = LOOKUP_MAX + 5
    with store.begin(FULL_ACCESS) as repo:
        for i in range(count):
            repo.update("Patient", f"many-{i}", patient("SHARED", id=f"many-{i}"))
    criteria = f"identifier={MRN}|SHARED"
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        matched = repo.match_ids("Patient", parse_criteria(criteria, "Patient"))
    assert len(matched) == count
    with pytest.raises(PreconditionFailed), store.begin(FULL_ACCESS) as repo:
        repo.create(patient("SHARED"), if_none_exist=criteria)


def conditional_post(value: str, resource_type: str = "Patient") -> dict[str, object]:
    body = {**patient(value), "resourceType": resource_type}
    if resource_type == "Group":
        body.update(type="person", actual=True)
    return {
        "resource": body,
        "request": {
            "method": "POST",
            "url": resource_type,
            "ifNoneExist": f"identifier={MRN}|{value}",
        },
    }


def transaction(*entries: dict[str, object]) -> dict[str, object]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def test_one_transaction_resolves_many_conditional_creates(store: SqlStore) -> None:
    """The claims of a Bundle's conditional creates are resolved together: each entry still
    gets what it would get alone (existing match, stale claim taken over, new claim)."""
    with store.begin(FULL_ACCESS) as repo:
        existing = repo.create(patient("E-1"), if_none_exist=f"identifier={MRN}|E-1").stored
        deleted = repo.create(patient("E-2"), if_none_exist=f"identifier={MRN}|E-2").stored
        repo.update("Group", "g", {**conditional_post("E-3", "Group")["resource"], "id": "g"})
    with store.begin(FULL_ACCESS) as repo:
        repo.delete("Patient", deleted.id)
    bundle = transaction(
        conditional_post("E-1"),
        conditional_post("E-2"),
        conditional_post("E-3"),  # only a Group has it
        conditional_post("E-4"),
        conditional_post("E-4", "Group"),
    )
    with store.begin(FULL_ACCESS) as repo:
        first = repo.transaction(bundle)["entry"]
    with store.begin(FULL_ACCESS) as repo:
        again = repo.transaction(bundle)["entry"]
    assert [e["response"]["status"] for e in first] == ["200 OK"] + ["201 Created"] * 4
    assert [e["response"]["status"] for e in again] == ["200 OK"] * 5
    assert first[0]["response"]["location"].startswith(f"Patient/{existing.id}/")
    assert not first[1]["response"]["location"].startswith(f"Patient/{deleted.id}/")
    assert [e["response"]["location"] for e in again] == [e["response"]["location"] for e in first]
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        assert repo.counts() == {"Patient": 4, "Group": 2}


def test_several_matches_fail_the_transaction_at_their_entry(store: SqlStore) -> None:
    with store.begin(FULL_ACCESS) as repo:
        repo.update("Patient", "twin-1", patient("TWIN", id="twin-1"))
        repo.update("Patient", "twin-2", patient("TWIN", id="twin-2"))
    with (
        pytest.raises(PreconditionFailed, match=r"Bundle\.entry\[1\]"),
        store.begin(FULL_ACCESS) as repo,
    ):
        repo.transaction(transaction(conditional_post("F-1"), conditional_post("TWIN")))
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        assert repo.counts() == {"Patient": 2}
    with store.begin(FULL_ACCESS) as repo:
        created = repo.transaction(transaction(conditional_post("F-1"), conditional_post("F-2")))
    assert [e["response"]["status"] for e in created["entry"]] == ["201 Created"] * 2


@contextmanager
def statements_run(store: SqlStore) -> Iterator[list[str]]:
    """Every statement the database is sent while the block runs: on SQLite as the
    driver traces them (statements run on the driver connection included), on
    PostgreSQL as SQLAlchemy sends them."""
    statements: list[str] = []
    traced: list[Any] = []

    def trace(dbapi_connection: Any, *_: object) -> None:
        dbapi_connection.set_trace_callback(statements.append)
        traced.append(dbapi_connection)

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    sqlite = store.dialect == "sqlite"
    name, listener = ("checkout", trace) if sqlite else ("before_cursor_execute", record)
    event.listen(store.engine if not sqlite else store.engine.pool, name, listener)
    try:
        yield statements
    finally:
        event.remove(store.engine if not sqlite else store.engine.pool, name, listener)
        for dbapi_connection in traced:
            dbapi_connection.set_trace_callback(None)


def test_a_bundle_claims_its_identifiers_in_a_few_statements(store: SqlStore) -> None:
    """Conditional creates of three types (30, 10, 10): the claims are read and inserted
    and the identifiers looked up together, not in three statements per entry; on SQLite
    in one statement across the types, on PostgreSQL one per type."""
    entries = [conditional_post(f"G-{i}") for i in range(30)]
    entries += [conditional_post(f"G-{i}", "Practitioner") for i in range(10)]
    entries += [conditional_post(f"G-{i}", "Device") for i in range(10)]
    with statements_run(store) as statements, store.begin(FULL_ACCESS) as repo:
        response = repo.transaction(transaction(*entries))
    assert [e["response"]["status"] for e in response["entry"]] == ["201 Created"] * 50
    claim_reads = [s for s in statements if "conditional_claim" in s and s.startswith("SELECT")]
    claim_inserts = [s for s in statements if "conditional_claim" in s and s.startswith("INSERT")]
    lookups = [s for s in statements if "sp_token" in s and s.lstrip().startswith("SELECT")]
    per_type = 1 if store.dialect == "sqlite" else 3
    assert len(claim_reads) == per_type
    assert len(claim_inserts) == 1
    assert len(lookups) == per_type


def _scans(plan: dict[str, object]) -> Iterator[dict[str, object]]:
    if "Relation Name" in plan:
        yield plan
    for child in plan.get("Plans", []):  # type: ignore[attr-defined]
        yield from _scans(child)


@pytest.mark.postgres
def test_bundle_lookups_probe_the_index_once_per_value(fresh_postgres_url: str) -> None:
    """On a PostgreSQL database without planner statistics (a new one, autovacuum not yet
    or never run), every query of a Bundle of conditional creates (claims, identifier
    lookups, reads of the matches) reads about one index entry per value however large
    the tables are: none reads a type's every row and filters, which made each Bundle of
    a load slower than the one before."""
    store = SqlStore.open(fresh_postgres_url)
    try:
        for start in range(0, 2000, 500):
            with store.begin(FULL_ACCESS) as repo:
                repo.transaction(
                    transaction(*(conditional_post(f"H-{i}") for i in range(start, start + 500)))
                )
        captured: list[tuple[str, object]] = []

        def record(
            conn: object, cursor: object, statement: str, params: object, *_: object
        ) -> None:
            if statement.lstrip().upper().startswith("SELECT"):
                captured.append((statement, params))

        bundle = transaction(*(conditional_post(f"H-{i}") for i in range(1990, 2010)))
        event.listen(store.engine, "before_cursor_execute", record)
        try:
            with store.begin(FULL_ACCESS) as repo:
                entries = repo.transaction(bundle)["entry"]
        finally:
            event.remove(store.engine, "before_cursor_execute", record)
        assert [e["response"]["status"] for e in entries] == ["200 OK"] * 10 + ["201 Created"] * 10
        assert any("conditional_claim" in sql for sql, _ in captured)
        assert any("sp_token" in sql for sql, _ in captured)
        with store.engine.connect() as conn:
            for sql, params in captured:
                explained = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
                scans = list(_scans(explained.scalar_one()[0]["Plan"]))
                assert scans, sql
                for scan in scans:
                    read = scan["Actual Rows"] * scan["Actual Loops"]
                    read += scan.get("Rows Removed by Filter", 0)
                    assert read <= 20, (sql, scan.get("Index Name"), scan.get("Filter"), read)
    finally:
        store.close()


@pytest.mark.postgres
def test_prepared_statements_are_planned_for_the_tables_as_they_are(
    fresh_postgres_url: str,
) -> None:
    """A statement prepared while the tables were empty (psycopg prepares on the fifth run)
    is planned again at every execution with its parameters, so a plan costed for an
    empty table is never kept once the table has grown and nothing analyzed it."""
    store = SqlStore.open(fresh_postgres_url, pool_size=1)
    try:
        with store.engine.connect() as conn:
            conn.exec_driver_sql(
                "PREPARE lookup(text, text) AS SELECT res_id FROM sp_token "
                "WHERE res_type = $1 AND param = 'identifier' AND code = $2"
            )
            for _ in range(8):
                conn.exec_driver_sql("EXECUTE lookup('Patient', 'H-1')").all()
            with store.begin(FULL_ACCESS) as repo:
                repo.transaction(transaction(*(conditional_post(f"H-{i}") for i in range(300))))
            plan = "\n".join(
                row[0] for row in conn.exec_driver_sql("EXPLAIN EXECUTE lookup('Patient', 'H-1')")
            )
            conn.exec_driver_sql("DEALLOCATE lookup")
    finally:
        store.close()
    assert "'H-1'" in plan and "$2" not in plan, plan
