"""The SQL on FHIR v2 test suite beside the repository (../shared/conformance/sql-on-fhir-v2,
https://github.com/FHIR/sql-on-fhir-v2 tests/): its cases and the comparison it asks for."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import REPO_ROOT

SUITE = REPO_ROOT.parent / "shared" / "conformance" / "sql-on-fhir-v2"


@dataclass(frozen=True)
class Case:
    """One test of one suite file."""

    file: str
    index: int
    title: str
    resources: list[dict[str, Any]]
    test: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.file}:{self.index}:{self.title}"


def load_cases() -> list[Case]:
    """Every test of every suite file, in file order (empty when the suite is absent)."""
    folder = SUITE / "tests"
    if not folder.is_dir():
        return []
    cases = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        for index, test in enumerate(data["tests"]):
            cases.append(Case(path.name, index, test["title"], data["resources"], test))
    return cases


def case_params() -> list[Any]:
    """pytest parameters over the suite; one skipped parameter when it is absent."""
    cases = load_cases()
    if not cases:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"suite absent: {SUITE}"))]
    return [pytest.param(case, id=case.id) for case in cases]


def canonical(rows: list[dict[str, Any]]) -> list[str]:
    """Rows as a sorted list of canonical JSON strings: the suite compares rows in any
    order, each row by its column values."""
    return sorted(json.dumps(row, sort_keys=True) for row in rows)


def check(case: Case, rows: list[dict[str, Any]] | None, columns: list[str] | None) -> None:
    """Assert the outcome the case expects: an error (rows None), the rows, the row count
    or the column order."""
    test = case.test
    if test.get("expectError"):
        assert rows is None, f"the view should be rejected, got rows {rows}"
        return
    assert rows is not None, "the view was rejected"
    if "expect" in test:
        assert canonical(rows) == canonical(test["expect"])
    if "expectCount" in test:
        assert len(rows) == test["expectCount"]
    if "expectColumns" in test:
        assert columns == test["expectColumns"]


def suite_absent() -> None:
    """Skip when ../shared lacks the suite; fail under CI, where it must be there."""
    message = "SQL on FHIR v2 suite absent from ../shared/conformance"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
