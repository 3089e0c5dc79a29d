"""The SQL on FHIR v2 test suite through the view runner, every test of every file
(https://sql-on-fhir.org/ig/latest/tests.html); the results are written in the suite's
test report format to ``sql-on-fhir-v2-report.json`` in the pytest temporary folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fhir_service.errors import InvalidView
from fhir_service.views import parse_view, run_view
from tests.views.suite import Case, case_params, check, suite_absent

_RESULTS: dict[str, dict[str, list[dict[str, Any]]]] = {}


@pytest.fixture(scope="module", autouse=True)
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Writes the test report ({file: {tests: [{name, result: {passed}}]}}) at the end."""
    path = tmp_path_factory.getbasetemp() / "sql-on-fhir-v2-report.json"
    yield path
    if _RESULTS:
        path.write_text(json.dumps(_RESULTS, indent=2))
        passed = sum(t["result"]["passed"] for f in _RESULTS.values() for t in f["tests"])
        total = sum(len(f["tests"]) for f in _RESULTS.values())
        print(f"\nSQL on FHIR v2 suite: {passed}/{total} passed; report: {path}")


@pytest.mark.parametrize("case", case_params())
def test_suite_case(case: Case) -> None:
    """The runner as it runs (direct walkers where the path allows, else fhirpathpy)."""
    entry: dict[str, Any] = {"name": case.title, "result": {"passed": False}}
    _RESULTS.setdefault(case.file, {"tests": []})["tests"].append(entry)
    try:
        view = parse_view(case.test["view"])
        rows: list[dict[str, Any]] | None = list(run_view(view, case.resources))
        columns: list[str] | None = view.columns
    except InvalidView:
        rows, columns = None, None
    check(case, rows, columns)
    entry["result"]["passed"] = True


@pytest.mark.parametrize("case", case_params())
def test_suite_case_general_evaluator(case: Case) -> None:
    """The same case with every path evaluated by fhirpathpy (no direct walkers)."""
    try:
        view = parse_view(case.test["view"], fast=False)
        rows: list[dict[str, Any]] | None = list(run_view(view, case.resources))
        columns: list[str] | None = view.columns
    except InvalidView:
        rows, columns = None, None
    check(case, rows, columns)


def test_report_covers_the_whole_suite(report: Path) -> None:
    """Every file of the suite has an entry per test (the report is complete)."""
    files = {case.values[0].file for case in case_params() if case.values[0] is not None}
    if not files:
        suite_absent()
    assert set(_RESULTS) == files
