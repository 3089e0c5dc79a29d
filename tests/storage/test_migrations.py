"""Alembic migrations: upgrade, and refusing a database that is behind."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from fhir_service.export import kind as export_kind
from fhir_service.export.params import ExportParams
from fhir_service.storage import (
    SchemaNotCurrent,
    SqlStore,
    check_schema_current,
    create_engine,
    database_revision,
    head_revision,
    redacted_url,
    reindex_run,
    upgrade,
)
from fhir_service.storage.access import AccessScope, Grant
from fhir_service.storage.engine import BEGIN_OPTION
from fhir_service.storage.jobs import Jobs
from fhir_service.storage.migrate import current_revision, downgrade_engine, upgrade_engine
from fhir_service.storage.reindex_run import run_job
from fhir_service.storage.search_tables import sp_composite
from fhir_service.sync import state as sync_state

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
    jobs = Jobs(store.engine)
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
        queued = [
            j for j in reindex_run.active(jobs) if j.trigger == "migration:0010_composite_choice"
        ]
        assert [j.types for j in queued] == [["Observation"]]
        claimed = jobs.claim([reindex_run.KIND], queued[0].id)
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


def _old_rows(engine: sa.Engine) -> None:
    """Jobs as the three tables before 0013 held them: queued and running ones of each
    kind, a finished export and a `sync` command run left running."""
    meta = sa.MetaData()
    export_job, reindex_job, sync_run = (
        sa.Table(name, meta, autoload_with=engine)
        for name in ("export_job", "reindex_job", "sync_run")
    )
    at = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    params = '{"level": "system", "types": ["Patient"], "scopes": ["system/Patient.rs"]}'
    export = {
        "request": "http://x/fhir/$export",
        "params": params,
        "transaction_time": at,
        "created": at,
        "heartbeat": at,
        "progress": "1000 resources (Patient)",
    }
    with engine.begin() as conn:
        rows = [
            {**export, "id": "e-queued", "client_id": "a", "status": "queued"},
            {**export, "id": "e-running", "client_id": "b", "status": "running"},
            {
                **export,
                "id": "e-done",
                "client_id": "a",
                "status": "completed",
                "output": '{"output": [], "deleted": []}',
                "expires": at,
            },
        ]
        for row in rows:  # one at a time: their keys differ
            conn.execute(export_job.insert().values(**row))
        reindex = {"reason": "r", "created": at, "heartbeat": at, "total": 10}
        rows = [
            {**reindex, "id": "r-queued", "status": "queued", "types": "null", "done": 0},
            {
                **reindex,
                "id": "r-running",
                "status": "running",
                "trigger": "SearchParameter/x/_history/1",
                "types": '["Patient"]',
                "done": 4,
                "cursor_type": "Patient",
                "cursor_id": "p4",
            },
        ]
        for row in rows:
            conn.execute(reindex_job.insert().values(**row))
        run = {"remote": "http://peer/fhir", "scope": "changed", "started_at": at}
        run |= {"counts": {"created": 3}, "errors": [], "heartbeat": at}
        rows = [
            {**run, "id": 7, "direction": "pull", "status": "queued", "attempts": 0}
            | {"params": {"patient": None, "types": ["Patient"]}},
            {**run, "id": 8, "direction": "push", "status": "running", "attempts": 2}
            | {"params": {"patient": "p1", "types": None}},
            {**run, "id": 9, "direction": "push", "status": "running", "attempts": 1}
            | {"params": sa.null()},
        ]
        for row in rows:
            conn.execute(sync_run.insert().values(**row))


def test_upgrade_to_0013_moves_the_jobs_into_one_table_and_back(database_url: str) -> None:
    """Queued and running jobs of the three old tables arrive queued in ``job`` (a running
    reindex keeps its checkpoint); a `sync` command run left running is interrupted; the
    old tables are gone. The downgrade moves them back."""
    store = SqlStore.open(database_url)
    try:
        downgrade_engine(store.engine, "0012_version_patient")
        _old_rows(store.engine)
        upgrade_engine(store.engine)
        tables = set(sa.inspect(store.engine).get_table_names())
        assert "job" in tables and not {"export_job", "reindex_job", "sync_run"} & tables
        jobs = Jobs(store.engine)
        moved = {j.id: j for j in jobs.recent(limit=20)}
        assert {i: (j.kind, j.state) for i, j in moved.items()} == {
            "e-queued": ("export", "queued"),
            "e-running": ("export", "queued"),
            "e-done": ("export", "completed"),
            "r-queued": ("reindex", "queued"),
            "r-running": ("reindex", "queued"),
            "7": ("sync", "queued"),
            "8": ("sync", "queued"),
            "9": ("sync", "interrupted"),
        }
        exported = export_kind.get(jobs, "e-running")
        assert exported is not None and exported.client_id == "b"
        assert exported.params.access_scope().grants == (Grant("Patient", frozenset("rs"), "all"),)
        assert exported.request == "http://x/fhir/$export"
        assert export_kind.create(jobs, "b", "r", ExportParams()) is None, "b's job is active"
        resumed = reindex_run.ReindexJob.of(moved["r-running"])
        assert (resumed.types, resumed.done, resumed.cursor_id) == (["Patient"], 4, "p4")
        assert resumed.trigger == "SearchParameter/x/_history/1"
        assert reindex_run.ReindexJob.of(moved["r-queued"]).types is None
        pull = sync_state.run(store, "7")
        assert pull is not None
        assert (pull["direction"], pull["counts"], pull["attempts"]) == ("pull", {"created": 3}, 0)
        assert moved["8"].params["patient"] == "p1" and moved["8"].attempt == 2
        claimed = jobs.claim(["sync"])
        assert claimed is not None and claimed.id == "7", "the oldest run claimable"

        downgrade_engine(store.engine, "0012_version_patient")
        with store.engine.connect() as conn:
            exports: dict[str, str] = dict(
                conn.exec_driver_sql("SELECT id, status FROM export_job").tuples().all()
            )
            reindexed = conn.exec_driver_sql(
                "SELECT status, cursor_id FROM reindex_job WHERE id = 'r-running'"
            ).one()
            runs: dict[int, str] = dict(
                conn.exec_driver_sql("SELECT id, status FROM sync_run").tuples().all()
            )
        assert exports == {"e-queued": "queued", "e-running": "queued", "e-done": "completed"}
        assert tuple(reindexed) == ("queued", "p4")
        assert runs == {7: "queued", 8: "queued", 9: "interrupted"}
        upgrade_engine(store.engine)
        assert {j.id for j in Jobs(store.engine).recent(limit=20)} == set(moved)
    finally:
        store.close()
