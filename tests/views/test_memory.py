"""View runs stream with flat memory, plain and de-identified (docs/views.md: rows are
produced one resource at a time from pages of the storage scan).

The peaks of the Python heap and of SQLite's heap (page cache included) of the
observation view over 5,000 Observations and over 20,000 differ by less than
``GROWTH_BOUND``; the run over 5,000 goes once before, so that what is loaded once is not
counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from fhir_service.export.deidentify import Deidentifier
from fhir_service.search.compartment import compartment_paths
from fhir_service.search.registry import get_registry
from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope
from fhir_service.storage.view_scan import scan_resources
from fhir_service.views import parse_view, run_view
from fhir_service.views.writers import write_chunks
from tests.memory import GROWTH_BOUND, SIZE, SQLITE_MEMORY, Peak, peak, small_and_large

pytestmark = pytest.mark.skipif(
    SQLITE_MEMORY is None, reason="the sqlite3 module's SQLite library is not reachable"
)
VIEW = parse_view(
    {
        "resource": "Observation",
        "select": [
            {
                "column": [
                    {"name": "id", "path": "getResourceKey()"},
                    {"name": "patient", "path": "subject.getReferenceKey(Patient)"},
                    {"name": "code", "path": "code.coding.first().code"},
                    {"name": "effective", "path": "effective.ofType(dateTime)"},
                    {"name": "value", "path": "value.ofType(Quantity).value"},
                    {"name": "note", "path": "note.text.first()"},
                ]
            }
        ],
    }
)


@pytest.fixture(scope="module")
def databases(tmp_path_factory: pytest.TempPathFactory) -> dict[int, str]:
    return small_and_large(tmp_path_factory.mktemp("memory"))


@contextmanager
def _store(url: str) -> Iterator[SqlStore]:
    store = SqlStore.open(url)
    try:
        yield store
    finally:
        store.close()


def _deidentified(resources: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    deidentifier = Deidentifier(
        "memory", compartment_paths(get_registry()).patients, reference_year=2026
    )
    for resource in resources:
        yield deidentifier.apply(resource)


def _run(url: str, deidentify: bool) -> tuple[int, int, Peak]:
    """Rows of the view written as CSV (to nowhere), the rows with a note, and the peaks."""
    rows = notes = 0
    with (
        peak() as measured,
        _store(url) as store,
        store.begin(AccessScope.full(), readonly=True) as repo,
    ):
        resources: Iterable[dict[str, Any]] = scan_resources(repo, "Observation")
        if deidentify:
            resources = _deidentified(resources)

        def counted() -> Iterator[dict[str, Any]]:
            nonlocal rows, notes
            for row in run_view(VIEW, resources):
                rows += 1
                notes += row["note"] is not None
                yield row

        for _chunk in write_chunks(VIEW, counted(), "csv"):
            pass
    return rows, notes, measured


@pytest.mark.parametrize("deidentify", [False, True], ids=["plain", "deidentified"])
def test_view_memory_is_flat(databases: dict[int, str], deidentify: bool) -> None:
    _run(databases[SIZE], deidentify)
    small_rows, small_notes, small = _run(databases[SIZE], deidentify)
    large_rows, large_notes, large = _run(databases[4 * SIZE], deidentify)

    assert (small_rows, large_rows) == (SIZE, 4 * SIZE)
    assert (small_notes, large_notes) == ((0, 0) if deidentify else (SIZE, 4 * SIZE))
    assert large.python - small.python < GROWTH_BOUND, (small, large)
    assert large.sqlite - small.sqlite < GROWTH_BOUND, (small, large)
