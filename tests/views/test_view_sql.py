"""Views compiled into PostgreSQL SQL (fhir_service.views.sql_plan, storage/view_sql.py)
against the SQL on FHIR v2 suite: every case whose view compiles gives, run inside the
real PostgreSQL, the rows the suite expects and the Python runner's rows in the same
order; cases that do not compile are counted and must run in Python."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from fhir_service.errors import InvalidView
from fhir_service.storage.view_sql import view_rows_over
from fhir_service.views import parse_view, run_view
from fhir_service.views.sql_plan import NotExpressible, plan_view, rows_of
from tests.views.suite import Case, case_params, check, load_cases, suite_absent

_COMPILED: set[str] = set()


@pytest.fixture(scope="module")
def connection(postgres_session_url: str) -> Iterator[sa.Connection]:
    engine = sa.create_engine(postgres_session_url)
    with engine.connect() as conn:
        yield conn
    engine.dispose()


def _sql_rows(conn: sa.Connection, case: Case) -> list[dict[str, Any]] | None:
    """The case's rows computed in PostgreSQL; None when the view is invalid."""
    raw = case.test["view"]
    view = parse_view(raw)
    plan = plan_view(raw)
    _COMPILED.add(case.id)
    try:
        return list(rows_of(plan, view, iter(view_rows_over(conn, plan, case.resources))))
    except InvalidView:
        return None


@pytest.mark.parametrize("case", case_params())
def test_compiled_case(connection: sa.Connection, case: Case) -> None:
    try:
        parse_view(case.test["view"])
    except InvalidView:
        pytest.skip("the suite expects this view to be rejected before any SQL")
    try:
        rows = _sql_rows(connection, case)
    except NotExpressible as exc:
        pytest.skip(f"runs in Python: {exc}")
    check(case, rows, None if rows is None else parse_view(case.test["view"]).columns)
    if rows is not None:
        view = parse_view(case.test["view"])
        assert rows == list(run_view(view, case.resources)), "row order differs from the runner"


def test_most_of_the_suite_compiles(connection: sa.Connection) -> None:
    """A floor on what compiles, so a change that sends every view back to Python fails."""
    cases = load_cases()
    if not cases:
        suite_absent()
        return
    compiled = 0
    for case in cases:
        try:
            parse_view(case.test["view"])
            plan_view(case.test["view"])
        except (InvalidView, NotExpressible):
            continue
        compiled += 1
    print(f"\n{compiled}/{len(cases)} suite views compile to SQL")
    assert compiled >= 70
