"""`fhir-service view run`: the suite's views through the command line contract (JSON on
stdout, exit 2 and a reason on stderr for invalid views), over NDJSON files and over the
database; CSV and Parquet outputs read back with the csv module and pyarrow."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from fhir_service.cli import commands, view
from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope
from tests.views.suite import Case, canonical, check, load_cases, suite_absent

app = typer.Typer()


@app.callback()
def _root() -> None:
    """The view commands on their own, as `fhir-service` registers them."""


view.register(app)

SAMPLE = {
    "basic.json",
    "collection.json",
    "constant.json",
    "fn_boundary.json",
    "foreach.json",
    "row_index.json",
    "union.json",
    "validate.json",
    "where.json",
}
SAMPLE_CASES = [c for c in load_cases() if c.file in SAMPLE]


def _cases(cases: list[Case]) -> list[Any]:
    if not cases:
        return [pytest.param(None, marks=pytest.mark.skip(reason="SQL on FHIR suite absent"))]
    return [pytest.param(c, id=c.id) for c in cases]


def _files(case: Case, folder: Path) -> tuple[Path, Path]:
    view_file, input_file = folder / "view.json", folder / "resources.ndjson"
    view_file.write_text(json.dumps(case.test["view"]))
    input_file.write_text("".join(json.dumps(r) + "\n" for r in case.resources))
    return view_file, input_file


def _run_json(args: list[str]) -> list[dict[str, Any]] | None:
    """The rows a `view run --format json` printed, or None when it rejected the view
    (exit 2 with a reason on stderr)."""
    result = CliRunner().invoke(app, ["view", "run", *args, "--format", "json"])
    if result.exit_code == 2:
        assert result.stderr.startswith("error: ") and len(result.stderr) > 10
        return None
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def test_view_command_is_registered() -> None:
    assert view in commands.MODULES


@pytest.mark.parametrize("case", _cases(SAMPLE_CASES))
def test_suite_over_ndjson(case: Case, tmp_path: Path) -> None:
    view_file, input_file = _files(case, tmp_path)
    rows = _run_json([str(view_file), "--input", str(input_file)])
    check(case, rows, list(rows[0]) if rows else ([] if rows is not None else None))


def _store(url: str, resources: list[dict[str, Any]]) -> None:
    store = SqlStore.open(url)
    try:
        with store.begin(AccessScope.full()) as repo:
            for resource in resources:
                repo.update(resource["resourceType"], resource["id"], resource)
    finally:
        store.close()


DB_FILES = ("foreach.json", "union.json", "where.json", "fn_reference_keys.json")


@pytest.mark.parametrize("file", DB_FILES)
def test_suite_over_the_database(file: str, database_url: str, tmp_path: Path) -> None:
    """Without --input the rows come from the database: every case of a few files, each
    file's resources stored in a database of their own."""
    cases = [c for c in load_cases() if c.file == file]
    if not cases:
        suite_absent()
    _store(database_url, cases[0].resources)
    for case in cases:
        view_file, _ = _files(case, tmp_path)
        rows = _run_json([str(view_file), "--database-url", database_url])
        check(case, rows, list(rows[0]) if rows else None)


def _expected_case(file: str, title: str) -> Case:
    cases = load_cases()
    if not cases:
        suite_absent()
    return next(c for c in cases if c.file == file and c.title == title)


def test_parquet_output_reads_back(tmp_path: Path) -> None:
    case = _expected_case("collection.json", "collection = true")
    view_file, input_file = _files(case, tmp_path)
    out = tmp_path / "rows.parquet"
    result = CliRunner().invoke(
        app,
        [
            "view",
            "run",
            str(view_file),
            "--input",
            str(input_file),
            "-f",
            "parquet",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.column_names == ["id", "last_name", "first_name"]
    assert str(table.schema.field("first_name").type) == "list<element: string>"
    assert canonical(table.to_pylist()) == canonical(case.test["expect"])


def test_csv_output(tmp_path: Path) -> None:
    case = _expected_case("foreach.json", "forEachOrNull: basic")
    view_file, input_file = _files(case, tmp_path)
    result = CliRunner().invoke(app, ["view", "run", str(view_file), "--input", str(input_file)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    expected = [{k: "" if v is None else v for k, v in row.items()} for row in case.test["expect"]]
    assert canonical(rows) == canonical(expected)


def test_invalid_view_exits_2_with_reason(tmp_path: Path) -> None:
    view_file = tmp_path / "view.json"
    view_file.write_text(json.dumps({"resource": "Patient", "select": [{"forEach": "@@"}]}))
    result = CliRunner().invoke(app, ["view", "run", str(view_file), "--input", str(view_file)])
    assert result.exit_code == 2
    assert "@@" in result.stderr and result.stdout == ""
