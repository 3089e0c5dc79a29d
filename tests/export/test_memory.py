"""Export memory does not grow with the number of resources, plain and de-identified
(docs/export.md, "Jobs": rows stream from the database to the files).

The peaks of the Python heap and of SQLite's heap (page cache and sorter included) of an
export of 5,000 Observations and of 20,000 differ by less than ``GROWTH_BOUND``; the
export of 5,000 runs once before, so that what is loaded once (models, definitions) is
not counted.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from fhir_service.export.deidentify import Deidentifier
from fhir_service.export.params import ExportParams
from fhir_service.export.run import run_export
from fhir_service.search.compartment import compartment_paths
from fhir_service.search.registry import get_registry
from fhir_service.storage import SqlStore
from tests.memory import GROWTH_BOUND, PATIENTS, SIZE, SQLITE_MEMORY, Peak, peak, small_and_large

pytestmark = pytest.mark.skipif(
    SQLITE_MEMORY is None, reason="the sqlite3 module's SQLite library is not reachable"
)


@pytest.fixture(scope="module")
def databases(tmp_path_factory: pytest.TempPathFactory) -> dict[int, str]:
    return small_and_large(tmp_path_factory.mktemp("memory"))


def _export(url: str, directory: Path, deidentify: bool) -> tuple[int, Peak]:
    compartment = compartment_paths(get_registry())
    deidentifier = (
        Deidentifier("memory", compartment.patients, reference_year=2026) if deidentify else None
    )
    with peak() as measured:
        store = SqlStore.open(url)
        try:
            result = run_export(
                store,
                ExportParams(deidentify=deidentify),
                directory,
                compartment=compartment,
                deidentifier=deidentifier,
            )
        finally:
            store.close()
    return sum(f.count for f in result.output), measured


@pytest.mark.parametrize("deidentify", [False, True], ids=["plain", "deidentified"])
def test_export_memory_is_flat(databases: dict[int, str], tmp_path: Path, deidentify: bool) -> None:
    _export(databases[SIZE], tmp_path / "warm", deidentify)
    small_count, small = _export(databases[SIZE], tmp_path / "small", deidentify)
    large_count, large = _export(databases[4 * SIZE], tmp_path / "large", deidentify)

    assert (small_count, large_count) == (SIZE + PATIENTS, 4 * SIZE + PATIENTS)
    last = (tmp_path / "large" / "Observation-1.ndjson").read_bytes().splitlines()[-1]
    exported = orjson.loads(last)
    assert (exported["id"] != f"obs-{4 * SIZE - 1}") is deidentify
    assert ("note" in exported) is not deidentify
    assert large.python - small.python < GROWTH_BOUND, (small, large)
    assert large.sqlite - small.sqlite < GROWTH_BOUND, (small, large)
