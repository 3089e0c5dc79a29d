"""Views compiled into PostgreSQL SQL (fhir_service.views.sql_plan, storage/view_sql.py)
against the SQL on FHIR v2 suite: every case whose view compiles gives, run inside the
real PostgreSQL, the rows the suite expects and the Python runner's rows in the same
order. Views that do not compile run in Python (tests/views/test_conformance.py); a floor
on how many compile keeps a change from sending them all back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from fhir_service.errors import InvalidView
from fhir_service.storage.view_sql import view_rows_over
from fhir_service.views import parse_view, run_view
from fhir_service.views.sql_plan import NotExpressible, plan_view, rows_of
from tests.views.suite import Case, check, load_cases, suite_absent


@pytest.fixture(scope="module")
def connection(postgres_session_url: str) -> Iterator[sa.Connection]:
    engine = sa.create_engine(postgres_session_url)
    with engine.connect() as conn:
        yield conn
    engine.dispose()


def _compiled_cases() -> list[Any]:
    """pytest parameters over the suite cases whose view is valid and compiles to SQL
    (the others run in Python: tests/views/test_conformance.py)."""
    params = []
    for case in load_cases():
        try:
            parse_view(case.test["view"])
            plan_view(case.test["view"])
        except (InvalidView, NotExpressible):
            continue
        params.append(pytest.param(case, id=case.id))
    if not params:
        return [pytest.param(None, marks=pytest.mark.skip(reason="SQL on FHIR suite absent"))]
    return params


@pytest.mark.parametrize("case", _compiled_cases())
def test_compiled_case(connection: sa.Connection, case: Case) -> None:
    raw = case.test["view"]
    view = parse_view(raw)
    plan = plan_view(raw)
    try:
        rows: list[dict[str, Any]] | None = list(
            rows_of(plan, view, iter(view_rows_over(connection, plan, case.resources)))
        )
    except InvalidView:
        rows = None
    check(case, rows, None if rows is None else view.columns)
    if rows is not None:
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
