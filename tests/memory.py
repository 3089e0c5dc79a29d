"""Peak memory of a piece of work, measured in process (tests only): the Python heap
(``tracemalloc``) and SQLite's own heap, its page cache and sorter included
(``sqlite3_memory_highwater``, https://www.sqlite.org/c3ref/memory_highwater.html, from
the SQLite library the ``sqlite3`` module is linked with).

A streaming scan holds what one batch needs, so the peaks of a run over ``n`` resources
and over ``4 n`` differ by a bounded amount; anything kept per resource shows as a
difference that grows with ``n``. No timing is involved.
"""

from __future__ import annotations

import _sqlite3
import ctypes
import shutil
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fhir_service.storage import SqlStore, upgrade
from fhir_service.storage.access import AccessScope

GROWTH_BOUND = 2 * 1024 * 1024
"""Bytes a streaming run over ``4 n`` resources may use beyond the run over ``n``
(``n`` = ``SIZE``: 15,000 more resources, about 140 bytes each)."""
SIZE = 5_000
"""Resources of the smaller run: more than the de-identifier's caches hold (4,096) and,
at about 1.5 kB each, more than the page cache of a scan (4 MiB)."""
PATIENTS = 500


def _sqlite_functions() -> tuple[Callable[[], int], Callable[[int], int]] | None:
    try:
        library = ctypes.CDLL(_sqlite3.__file__)
        used, highwater = library.sqlite3_memory_used, library.sqlite3_memory_highwater
    except (OSError, AttributeError):
        return None
    used.restype = highwater.restype = ctypes.c_int64
    used.argtypes = []
    highwater.argtypes = [ctypes.c_int]
    return used, highwater


SQLITE_MEMORY = _sqlite_functions()


@dataclass
class Peak:
    """Bytes above the start of the block, at the highest point within it."""

    python: int = 0
    sqlite: int = 0


@contextmanager
def peak() -> Iterator[Peak]:
    """The Python and SQLite heap peaks of the block, above their levels at its start."""
    assert SQLITE_MEMORY is not None
    sqlite_used, sqlite_highwater = SQLITE_MEMORY
    measured = Peak()
    tracemalloc.start(1)
    try:
        start_python = tracemalloc.get_traced_memory()[0]
        start_sqlite = sqlite_used()
        sqlite_highwater(1)  # the mark starts again from the current use
        yield measured
        measured.python = tracemalloc.get_traced_memory()[1] - start_python
        measured.sqlite = sqlite_highwater(0) - start_sqlite
    finally:
        tracemalloc.stop()


def observation(number: int, patients: int) -> dict[str, Any]:
    """An Observation of about 1.5 kB (most of it a note, which search does not index): two
    components, a reference to one of ``patients`` Patients."""
    loinc = "http://loinc.org"
    return {
        "resourceType": "Observation",
        "id": f"obs-{number}",
        "status": "final",
        "code": {"coding": [{"system": loinc, "code": "85354-9", "display": "Blood pressure"}]},
        "subject": {"reference": f"Patient/pat-{number % patients}"},
        "effectiveDateTime": f"20{10 + number % 10}-0{1 + number % 9}-1{number % 10}T08:00:00Z",
        "valueQuantity": {
            "value": number % 200,
            "unit": "mm[Hg]",
            "system": "http://unitsofmeasure.org",
        },
        "note": [{"text": f"Measured by Dr. Example Person {number} at the clinic. " * 16}],
        "component": [
            {
                "code": {"coding": [{"system": loinc, "code": f"8480-{k}", "display": "Part"}]},
                "valueQuantity": {"value": number % 100 + k, "unit": "mm[Hg]"},
            }
            for k in range(2)
        ],
    }


def patient(number: int) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": f"pat-{number}",
        "gender": "female" if number % 2 else "male",
        "birthDate": f"19{40 + number % 50}-0{1 + number % 9}-2{number % 8}",
        "name": [{"family": f"Family{number}", "given": ["Given"]}],
    }


def fill(store: SqlStore, start: int, stop: int, patients: int) -> None:
    """Store Observations ``start`` to ``stop`` (and the Patients they need, once)."""
    now = datetime.now(UTC)
    items: list[tuple[str, str, dict[str, Any], datetime]] = []
    if start == 0:
        items += [("Patient", f"pat-{n}", patient(n), now) for n in range(patients)]
    items += [
        ("Observation", f"obs-{n}", observation(n, patients), now) for n in range(start, stop)
    ]
    for first in range(0, len(items), 1000):
        with store.begin(AccessScope.full()) as repo:
            repo.insert_new(items[first : first + 1000])


def small_and_large(folder: Path) -> dict[int, str]:
    """URLs of SQLite databases of ``SIZE`` and of ``4 * SIZE`` Observations (the same
    first ``SIZE``) and ``PATIENTS`` Patients, by size. A measured run opens its own
    store, so that the page cache its connection fills is counted."""
    small, large = folder / "small.sqlite3", folder / "large.sqlite3"
    upgrade(f"sqlite:///{small}")
    store = SqlStore.open(f"sqlite:///{small}")
    fill(store, 0, SIZE, PATIENTS)
    store.close()
    shutil.copyfile(small, large)
    store = SqlStore.open(f"sqlite:///{large}")
    fill(store, SIZE, 4 * SIZE, PATIENTS)
    store.close()
    return {SIZE: f"sqlite:///{small}", 4 * SIZE: f"sqlite:///{large}"}
