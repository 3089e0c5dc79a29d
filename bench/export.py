"""Bulk export throughput and peak memory (`python bench/export.py`).

Loads the Synthea 300-patient set (../shared/data) until ``--resources`` are stored
(10k), then adds re-identified copies (every id and reference suffixed ``-c<k>``) up
to each ``--large`` (e.g. ``--large 100000 --large 200000``). Each export runs in a fresh
subprocess, plain and de-identified, that reports resources/s (wall clock and CPU time),
its resident set before the export and at its peak (VmHWM) and SQLite's heap peak; a
second run with tracemalloc gives the Python heap peak (``--python-heap``). Targets:
>= 10,000 resources/s; peak memory at the largest size no more than 50 MB above 10k,
and no growth from one size to the next. Writes its section of bench/RESULTS.md.
"""

from __future__ import annotations

import _sqlite3
import argparse
import ctypes
import itertools
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))

from report import cpu_check, machine, write_section  # noqa: E402

from bench.ingest import load_bundle, synthea_bundles  # noqa: E402
from fhir_service.export.deidentify import Deidentifier  # noqa: E402
from fhir_service.export.params import ExportParams  # noqa: E402
from fhir_service.export.run import run_export  # noqa: E402
from fhir_service.search import registry as search_registry  # noqa: E402
from fhir_service.search.compartment import compartment_paths  # noqa: E402
from fhir_service.settings import Settings  # noqa: E402
from fhir_service.storage import SqlStore, upgrade  # noqa: E402
from fhir_service.storage.access import AccessScope  # noqa: E402
from fhir_service.storage.tables import resource as resource_table  # noqa: E402
from fhir_service.storage.tables import resource_version  # noqa: E402

FULL_ACCESS = AccessScope.full()

START, END = "<!-- export:start -->", "<!-- export:end -->"
_REF = re.compile(r"^([A-Z][A-Za-z]+/[A-Za-z0-9\-.]+)$")


def total(store: SqlStore) -> int:
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        return sum(repo.counts().values())


def load_synthea(store: SqlStore, wanted: int) -> int:
    for _, bundle in synthea_bundles():
        load_bundle(store, bundle)
        if total(store) >= wanted:
            break
    return total(store)


def _reidentify(value: Any, suffix: str) -> Any:
    if isinstance(value, dict):
        out = {k: _reidentify(v, suffix) for k, v in value.items()}
        if isinstance(value.get("reference"), str) and _REF.match(value["reference"]):
            out["reference"] = value["reference"] + suffix
        return out
    if isinstance(value, list):
        return [_reidentify(v, suffix) for v in value]
    return value


def add_copies(store: SqlStore, wanted: int) -> int:
    """Re-identified copies of the stored resources until ``wanted`` are stored."""
    copy = 0
    while total(store) < wanted:
        copy += 1
        suffix = f"-c{copy}"
        with store.engine.connect() as conn:
            bodies = [
                row.body
                for row in conn.execute(
                    resource_version.select()
                    .join(resource_table, resource_table.c.seq == resource_version.c.seq)
                    .where(~resource_version.c.id.like("%-c%"))
                )
            ]
            taken = conn.execute(
                sa.select(resource_table.c.id).where(
                    resource_table.c.id == bodies[0]["id"] + suffix
                )
            ).first()
        if taken is not None:  # an earlier call made this copy
            continue
        need = wanted - total(store)
        now = datetime.now(UTC)
        for start in range(0, min(len(bodies), need), 1000):
            items = []
            for body in bodies[start : min(start + 1000, need)]:
                new = _reidentify(body, suffix)
                new["id"] = body["id"] + suffix
                items.append((new["resourceType"], new["id"], new, now))
            with store.begin(FULL_ACCESS) as repo:
                repo.insert_new(items)
    return total(store)


def status_mb(key: str) -> float:
    """A size of this process from /proc/self/status (``VmHWM``: the peak resident set;
    ``ru_maxrss`` would include the parent's high-water mark, which Linux carries over at
    exec; ``VmRSS``: the resident set now)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sqlite_highwater() -> Any:
    """``sqlite3_memory_highwater`` of the SQLite library the sqlite3 module uses (its
    page caches and sorters), or None (https://www.sqlite.org/c3ref/memory_highwater.html)."""
    try:
        function = ctypes.CDLL(_sqlite3.__file__).sqlite3_memory_highwater
    except (OSError, AttributeError):
        return None
    function.restype = ctypes.c_int64
    function.argtypes = [ctypes.c_int]
    return function


def child(url: str, out: str, deidentify: bool, trace: bool) -> None:
    """Run one export and print resources, seconds (wall and CPU) and memory as JSON:
    resident set before the export and at its peak, SQLite's heap peak and, with
    ``trace``, the Python heap peak (tracemalloc, which slows the run: its times are not
    reported)."""
    settings = Settings()
    search_registry.configure(settings.package_cache)
    compartment = compartment_paths(search_registry.get_registry())
    store = SqlStore.open(url)
    deid = Deidentifier("bench", compartment.patients, reference_year=2026) if deidentify else None
    if deid is not None:  # the element models, loaded once whatever the size
        deid.apply({"resourceType": "Patient", "id": "warm"})
    highwater = _sqlite_highwater()
    before = status_mb("VmRSS")
    if highwater is not None:
        highwater(1)
    if trace:
        tracemalloc.start(1)
    started, cpu = time.perf_counter(), time.process_time()
    result = run_export(
        store,
        ExportParams(deidentify=deidentify),
        Path(out),
        compartment=compartment,
        deidentifier=deid,
    )
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    python_peak = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
    sqlite_peak = highwater(0) / 2**20 if highwater is not None else None
    store.close()
    count = sum(f.count for f in result.output)
    print(
        json.dumps(
            {
                "resources": count,
                "seconds": seconds,
                "cpu_seconds": cpu,
                "rss_before_mb": before,
                "peak_mb": status_mb("VmHWM"),
                "sqlite_peak_mb": sqlite_peak,
                "python_peak_mb": python_peak,
            }
        )
    )


def _child_run(url: str, deidentify: bool, trace: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as out:
        args = [sys.executable, __file__, "--child", url, out]
        if deidentify:
            args.append("--deidentify")
        if trace:
            args.append("--trace")
        done = subprocess.run(args, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure(url: str, deidentify: bool, python_heap: bool) -> dict[str, Any]:
    """A timed run (speed, resident set, SQLite heap), then with ``python_heap`` a traced
    one (Python heap; tracemalloc makes it several times slower)."""
    result = _child_run(url, deidentify, trace=False)
    if python_heap:
        result["python_peak_mb"] = _child_run(url, deidentify, trace=True)["python_peak_mb"]
    return result


def _own(run: dict[str, Any]) -> float:
    """The export's own resident memory: peak minus the resident set before it started."""
    return float(run["peak_mb"] - run["rss_before_mb"])


def verdicts(rows: list[tuple[str, int, bool, dict[str, Any]]], sizes: list[int]) -> list[str]:
    """One line per target: met or not, with the numbers it was judged on."""
    slow = [
        f"{d} {n:,} {'de-identified' if deid else 'plain'}"
        for d, n, deid, run in rows
        if run["resources"] / run["seconds"] < 10_000
    ]
    verdict = f"NOT met by {', '.join(slow)}" if slow else "met by every row"
    out = [f"- Throughput >= 10,000 resources/s (wall clock): {verdict}."]
    if len(sizes) >= 2:
        deltas = []
        for dialect in dict.fromkeys(d for d, *_ in rows):
            for deid in (False, True):
                runs = [r[3] for r in rows if r[0] == dialect and r[2] == deid]
                steps = ", ".join(
                    f"{_own(b) - _own(a):+.0f} MB" for a, b in itertools.pairwise(runs)
                )
                deltas.append((dialect, deid, runs[-1]["peak_mb"] - runs[0]["peak_mb"], steps))
        worst = max(delta for _, _, delta, _ in deltas)
        listed = "; ".join(
            f"{d} {'de-identified' if deid else 'plain'} {delta:+.0f} MB (own memory from "
            f"size to size: {steps})"
            for d, deid, delta, steps in deltas
        )
        out.append(
            f"- Peak memory at {sizes[-1]:,} <= at {sizes[0]:,} + 50 MB: "
            f"{'met' if worst <= 50 else 'NOT met'} ({listed})."
        )
    return out


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", nargs=2)
    parser.add_argument("--deidentify", action="store_true")
    parser.add_argument("--trace", action="store_true")
    parser.add_argument(
        "--python-heap", action="store_true", help="a second, traced run per export"
    )
    parser.add_argument("--resources", type=int, default=10_000)
    parser.add_argument(
        "--large", type=int, action="append", help="also measure at this size (repeatable)"
    )
    parser.add_argument(
        "--database-url", action="append", help="an empty database (repeatable; default SQLite)"
    )
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.deidentify, args.trace)
        return
    workdir = tempfile.mkdtemp()
    urls = args.database_url or [f"sqlite:///{workdir}/bench.sqlite3"]
    rows = []
    sizes = [args.resources, *sorted(args.large or [])]
    cpu_before = cpu_check()
    for url in urls:
        upgrade(url)
        store = SqlStore.open(url)
        for size in sizes:
            stored = load_synthea(store, size) if size == sizes[0] else add_copies(store, size)
            for deidentify in (False, True):
                run = measure(url, deidentify, args.python_heap)
                rows.append((store.dialect, stored, deidentify, run))
                print(store.dialect, stored, deidentify, run, flush=True)
        store.close()
    cpu_after = cpu_check()
    lines = [
        "## Bulk export (`bench/export.py`)",
        "",
        f"Run {date.today().isoformat()} on {machine()}, {platform.system()}; load average "
        f"{os.getloadavg()[0]:.1f}, CPU check {cpu_before:.0f} ms before, {cpu_after:.0f} ms "
        "after (other processes share the machine).",
        "System-level export of every current resource to NDJSON files, each in a fresh "
        "process. resources/s: wall clock (CPU time of the",
        "process in brackets: on a shared machine the wall clock also counts the time the "
        "process waited for a CPU). Memory, MB: the resident",
        "set before the export (interpreter, models, compartment) and at its peak (VmHWM); "
        "SQLite's heap peak (page caches, sorters:",
        "sqlite3_memory_highwater); with --python-heap the Python heap peak (tracemalloc, "
        "in a second run of its own). Flat: the peaks do not grow",
        "with the number of resources. Targets: >= 10,000 resources/s; peak at the largest "
        "size <= peak at 10k + 50 MB.",
        "",
        "| database | resources | de-identified | seconds | resources/s (CPU) | RSS before | "
        "RSS peak | SQLite heap peak | Python heap peak |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for dialect, _stored, deidentify, run in rows:
        rate = run["resources"] / run["seconds"]
        cpu_rate = run["resources"] / run["cpu_seconds"]
        lines.append(
            f"| {dialect} | {run['resources']:,} | {'yes' if deidentify else 'no'} | "
            f"{run['seconds']:.2f} | {rate:,.0f} ({cpu_rate:,.0f}) | "
            f"{_mb(run['rss_before_mb'])} | {_mb(run['peak_mb'])} | "
            f"{_mb(run['sqlite_peak_mb'])} | {_mb(run['python_peak_mb'])} |"
        )
    lines += ["", *verdicts(rows, sizes)]
    write_section(START, END, lines)


if __name__ == "__main__":
    main()
