"""Alembic migrations: upgrade, and refusing a database that is behind."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from fhir_service.storage import (
    SchemaNotCurrent,
    SqlStore,
    check_schema_current,
    create_engine,
    database_revision,
    head_revision,
    redacted_url,
    upgrade,
)
from fhir_service.storage.access import AccessScope
from fhir_service.storage.engine import BEGIN_OPTION
from fhir_service.storage.migrate import current_revision, downgrade_engine, upgrade_engine
from fhir_service.storage.reindex_jobs import ReindexJobs
from fhir_service.storage.reindex_run import run_job
from fhir_service.storage.search_tables import sp_composite

FULL_ACCESS = AccessScope.full()


def test_empty_database_is_refused_with_the_command_to_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    engine = create_engine(url)
    try:
        with pytest.raises(SchemaNotCurrent, match="fhir-service db upgrade"):
            check_schema_current(engine)
    finally:
        engine.dispose()
    with pytest.raises(SchemaNotCurrent, match="fhir-service db upgrade"):
        SqlStore.open(url)


def test_upgrade_reaches_head_and_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db' / 'fhir.sqlite3'}"
    assert upgrade(url) == head_revision()
    assert upgrade(url) == head_revision()
    engine = create_engine(url)
    try:
        check_schema_current(engine)
        tables = set(sa.inspect(engine).get_table_names())
        journal = engine.connect().exec_driver_sql("PRAGMA journal_mode").scalar()
    finally:
        engine.dispose()
    assert {"resource", "resource_version", "conditional_claim"} <= tables
    assert journal == "wal"


def test_sqlite_connections_get_the_store_pragmas(tmp_path: Path) -> None:
    """Every pooled SQLite connection: WAL, synchronous NORMAL, 60 s busy timeout, a
    64 MiB page cache and a 10,000-page checkpoint interval (docs/storage.md)."""
    engine = create_engine(f"sqlite:///{tmp_path / 'fhir.sqlite3'}")
    names = ("journal_mode", "synchronous", "busy_timeout", "cache_size", "wal_autocheckpoint")
    try:
        readers = [engine.connect().execution_options(**{BEGIN_OPTION: "DEFERRED"}) for _ in "ab"]
        for conn in readers:
            pragmas = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar() for name in names}
            assert pragmas == {
                "journal_mode": "wal",
                "synchronous": 1,
                "busy_timeout": 60_000,
                "cache_size": -65_536,
                "wal_autocheckpoint": 10_000,
            }
        for conn in readers:
            conn.close()
    finally:
        engine.dispose()


def test_database_behind_head_is_refused(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        downgrade_engine(engine, "base")
        assert current_revision(engine) is None
        with pytest.raises(SchemaNotCurrent, match="fhir-service db upgrade"):
            check_schema_current(engine)
        upgrade_engine(engine)
        check_schema_current(engine)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_an_open_store_checks_its_schema(database_url: str) -> None:
    """``SqlStore.check_schema`` and ``database_revision``: storage's API for callers that
    hold a store or a URL, not an engine."""
    store = SqlStore.open(database_url)
    try:
        store.check_schema()
        assert database_revision(database_url) == head_revision()
        downgrade_engine(store.engine, "base")
        assert database_revision(database_url) is None
        with pytest.raises(SchemaNotCurrent, match="fhir-service db upgrade"):
            store.check_schema()
        upgrade_engine(store.engine)
        store.check_schema()
    finally:
        store.close()


def test_redacted_url_hides_the_password() -> None:
    url = "postgresql+psycopg://app:s3cret@db.example:5432/fhir"
    assert redacted_url(url) == "postgresql+psycopg://app:***@db.example:5432/fhir"


def test_unknown_newer_revision_is_refused(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'zzzz'")
        with pytest.raises(SchemaNotCurrent, match="newer"):
            check_schema_current(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"UPDATE alembic_version SET version_num = '{head_revision()}'")
    finally:
        engine.dispose()


def test_upgrade_to_0010_reindexes_the_composites_with_a_choice(database_url: str) -> None:
    """An Observation indexed before 0010 lacks its code-value-date row; the upgrade
    queues a reindex of the stored types it concerns, and running it adds the row."""
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "21918-8"}]},
        "valueDateTime": "2021-06-01",
    }
    store = SqlStore.open(database_url)
    jobs = ReindexJobs(store.engine)
    query = [("code-value-date", "http://loinc.org|21918-8$ge2021-01-01")]

    def found() -> list[str]:
        with store.begin(FULL_ACCESS, readonly=True) as repo:
            return [s.id for s in repo.search("Observation", query)]

    try:
        with store.begin(FULL_ACCESS) as repo:
            created = repo.create(observation).stored.id
            repo.create({"resourceType": "Patient"})
        with store.engine.begin() as conn:
            conn.execute(sa.delete(sp_composite).where(sp_composite.c.param == "code-value-date"))
        assert found() == []
        downgrade_engine(store.engine, "0009_ranged_index")
        upgrade_engine(store.engine)
        queued = [j for j in jobs.active() if j.trigger == "migration:0010_composite_choice"]
        assert [j.types for j in queued] == [["Observation"]]
        claimed = jobs.claim(queued[0].id)
        assert claimed is not None
        assert run_job(jobs, claimed) == "completed"
        assert found() == [created]
    finally:
        store.close()


def _url_index_definition(conn: sa.Connection) -> str:
    if conn.dialect.name == "sqlite":
        sql = "SELECT sql FROM sqlite_master WHERE name = 'ix_sp_reference_3'"
    else:
        sql = "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_sp_reference_3'"
    return str(conn.exec_driver_sql(sql).scalar_one())


def _url_lookup_plan(conn: sa.Connection) -> str:
    """The plan of the lookup a search by absolute or canonical reference makes."""
    where = "res_type = 'QuestionnaireResponse' AND param = 'questionnaire' AND url = 'x'"
    if conn.dialect.name == "sqlite":
        query = f"EXPLAIN QUERY PLAN SELECT res_id FROM sp_reference WHERE {where}"
        return " ".join(str(row[-1]) for row in conn.exec_driver_sql(query))
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    rows = conn.exec_driver_sql(f"EXPLAIN SELECT res_id FROM sp_reference WHERE {where}")
    return " ".join(str(row[0]) for row in rows)


def test_upgrade_to_0011_keeps_only_references_with_a_url_in_the_url_index(
    database_url: str,
) -> None:
    """0011 turns the (res_type, param, url) index into a partial one over the rows that
    have a url; the lookup by url uses it and a search by canonical still finds its resource."""
    questionnaire = "http://example.org/Questionnaire/intake"
    store = SqlStore.open(database_url)

    def by_url() -> list[str]:
        with store.begin(FULL_ACCESS, readonly=True) as repo:
            found = repo.search("QuestionnaireResponse", [("questionnaire", questionnaire)])
            return [s.id for s in found]

    try:
        with store.begin(FULL_ACCESS) as repo:
            patient = repo.create({"resourceType": "Patient"}).stored.id
            answered = repo.create(
                {
                    "resourceType": "QuestionnaireResponse",
                    "status": "completed",
                    "questionnaire": questionnaire,
                    "subject": {"reference": f"Patient/{patient}"},
                }
            ).stored.id
        downgrade_engine(store.engine, "0010_composite_choice")
        with store.engine.connect() as conn:
            assert "WHERE" not in _url_index_definition(conn).upper()
        upgrade_engine(store.engine)
        with store.engine.begin() as conn:
            assert "url IS NOT NULL" in _url_index_definition(conn)
            assert "ix_sp_reference_3" in _url_lookup_plan(conn)
        assert by_url() == [answered]
    finally:
        store.close()
