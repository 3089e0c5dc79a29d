"""View runner throughput (`python bench/views.py`): rows/s of a patient view and an
observation view at 10k and 100k resources of the view's type: on SQLite with the
Python runner and, with ``--postgres-url`` (default FHIR_SERVICE_TEST_POSTGRES_URL), on
PostgreSQL with the Python runner and with the view compiled into SQL
(``views.sql_plan``, run inside the database).

Patients and Observations are taken from the Synthea 300-patient set (../shared/data),
their ``urn:uuid`` references rewritten to ``Type/id``, and stored with re-identified
copies (every id and reference suffixed ``-c<k>``) until each type has ``--large``
resources; a second database holds the first ``--resources``. Each run is a fresh
subprocess that reads the type through the storage scan, runs the view and writes CSV
to /dev/null (``fhir-service view run`` without ``--input``), and reports rows, seconds
and its peak resident memory (VmHWM). Target: >= 20,000 rows/s for the observation
view. Writes its section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from read import _postgres  # noqa: E402
from report import cpu_check, machine, write_section  # noqa: E402

from fhir_service.cli.load import iter_bundles  # noqa: E402
from fhir_service.storage import SqlStore, upgrade  # noqa: E402
from fhir_service.storage.access import AccessScope  # noqa: E402
from fhir_service.storage.view_scan import scan_resources  # noqa: E402
from fhir_service.views import parse_view, run_view  # noqa: E402
from fhir_service.views.sql_plan import plan_view, stored_rows  # noqa: E402
from fhir_service.views.writers import write_chunks  # noqa: E402

ARCHIVE = ROOT.parent / "shared" / "data" / "synthea-r4-300-patients.tar.xz"
START, END = "<!-- views:start -->", "<!-- views:end -->"
FULL_ACCESS = AccessScope.full()
RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"

VIEWS: dict[str, dict[str, Any]] = {
    "patient": {
        "resource": "Patient",
        "select": [
            {
                "column": [
                    {"name": "id", "path": "getResourceKey()"},
                    {"name": "gender", "path": "gender"},
                    {"name": "birth_date", "path": "birthDate"},
                    {"name": "family", "path": "name.where(use = 'official').family.first()"},
                    {"name": "given", "path": "name.where(use = 'official').given.join(' ')"},
                    {"name": "city", "path": "address.city.first()"},
                    {
                        "name": "race",
                        "path": f"extension('{RACE}').extension('text')"
                        ".value.ofType(string).first()",
                    },
                    {"name": "deceased", "path": "deceased.ofType(dateTime).exists()"},
                ]
            }
        ],
    },
    "observation": {
        "resource": "Observation",
        "select": [
            {
                "column": [
                    {"name": "id", "path": "getResourceKey()"},
                    {"name": "patient", "path": "subject.getReferenceKey(Patient)"},
                    {"name": "encounter", "path": "encounter.getReferenceKey(Encounter)"},
                    {"name": "status", "path": "status"},
                    {"name": "code", "path": "code.coding.first().code"},
                    {"name": "effective", "path": "effective.ofType(dateTime)"},
                    {"name": "value", "path": "value.ofType(Quantity).value"},
                    {"name": "unit", "path": "value.ofType(Quantity).unit"},
                ]
            }
        ],
    },
}


def _rewrite(value: Any, urls: dict[str, str], suffix: str) -> Any:
    if isinstance(value, dict):
        out = {k: _rewrite(v, urls, suffix) for k, v in value.items()}
        ref = value.get("reference")
        if isinstance(ref, str) and ref in urls:
            out["reference"] = urls[ref] + suffix
        return out
    if isinstance(value, list):
        return [_rewrite(v, urls, suffix) for v in value]
    return value


def source(wanted: int) -> dict[str, list[dict[str, Any]]]:
    """Patients and Observations of the Synthea set, references as ``Type/id``, until
    ``wanted`` Observations (all the patients of those Bundles)."""
    found: dict[str, list[dict[str, Any]]] = {"Patient": [], "Observation": []}
    for name, bundle in iter_bundles(ARCHIVE, anchor_date=date(2022, 3, 1)):
        if "Information" in name:
            continue
        entries = bundle.get("entry", [])
        urls = {
            e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}"
            for e in entries
            if "fullUrl" in e and "id" in e.get("resource", {})
        }
        for entry in entries:
            resource = entry["resource"]
            if resource["resourceType"] in found:
                found[resource["resourceType"]].append(_rewrite(resource, urls, ""))
        if len(found["Observation"]) >= wanted:
            break
    return found


def fill(url: str, base: dict[str, list[dict[str, Any]]], size: int) -> None:
    """``size`` resources of each type: the originals, then suffixed copies."""
    upgrade(url)
    store = SqlStore.open(url)
    now = datetime.now(UTC)
    try:
        for rtype, originals in base.items():
            done, copy = 0, 0
            while done < size:
                suffix = "" if copy == 0 else f"-c{copy}"
                batch = []
                for resource in originals[: size - done]:
                    body = _rewrite_suffix(resource, suffix)
                    batch.append((rtype, body["id"], body, now))
                for start in range(0, len(batch), 1000):
                    with store.begin(FULL_ACCESS) as repo:
                        repo.insert_new(batch[start : start + 1000])
                done += len(batch)
                copy += 1
    finally:
        store.close()


def _rewrite_suffix(resource: dict[str, Any], suffix: str) -> dict[str, Any]:
    if not suffix:
        return resource
    body = json.loads(json.dumps(resource))
    body["id"] += suffix
    for key in ("subject", "encounter"):
        if isinstance(body.get(key), dict) and "reference" in body[key]:
            body[key]["reference"] += suffix
    return body


def status_mb(key: str) -> float:
    """``VmHWM`` (peak resident set) or ``VmRSS`` (now) of this process, MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child(url: str, name: str, runner: str) -> None:
    """Run one view over the database (``runner`` python, or sql: compiled and run in
    PostgreSQL); print rows, seconds and peak RSS as JSON."""
    view = parse_view(VIEWS[name])
    store = SqlStore.open(url)
    before = status_mb("VmRSS")
    started, cpu = time.perf_counter(), time.process_time()
    rows = 0
    with store.begin(FULL_ACCESS, readonly=True) as repo, open("/dev/null", "wb") as sink:
        if runner == "sql":
            plan_view(VIEWS[name])  # compiles, so stored_rows runs it in the database
            source = stored_rows(repo, VIEWS[name], view)
        else:
            source = run_view(view, scan_resources(repo, view.resource))

        def counted() -> Any:
            nonlocal rows
            for row in source:
                rows += 1
                yield row

        for chunk in write_chunks(view, counted(), "csv"):
            sink.write(chunk)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    store.close()
    print(
        json.dumps(
            {
                "rows": rows,
                "seconds": seconds,
                "cpu_seconds": cpu,
                "rss_before_mb": before,
                "peak_mb": status_mb("VmHWM"),
            }
        )
    )


def measure(url: str, name: str, runner: str, repeat: int) -> dict[str, Any]:
    """The median of ``repeat`` runs by rate (each in a fresh process)."""
    runs = []
    for _ in range(repeat):
        done = subprocess.run(
            [sys.executable, __file__, "--child", url, name, runner],
            check=True,
            capture_output=True,
            text=True,
        )
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    runs.sort(key=lambda r: r["rows"] / r["seconds"])
    result: dict[str, Any] = runs[len(runs) // 2]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", nargs=3)
    parser.add_argument("--postgres-url", default=os.environ.get("FHIR_SERVICE_TEST_POSTGRES_URL"))
    parser.add_argument("--resources", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.child[2])
        return
    workdir = Path(tempfile.mkdtemp())
    base = source(args.resources)
    print({k: len(v) for k, v in base.items()}, flush=True)
    results = []
    cpu_before = cpu_check()
    for size in (args.resources, args.large):
        sqlite = f"sqlite:///{workdir / f'views-{size}.sqlite3'}"
        targets: list[tuple[str, str, str, Any]] = [("SQLite", "python", sqlite, None)]
        if args.postgres_url:
            url, admin, db = _postgres(args.postgres_url)
            targets += [
                ("PostgreSQL", "python", url, None),
                ("PostgreSQL", "sql", url, (admin, db)),
            ]
        try:
            filled: set[str] = set()
            for database, runner, url, _ in targets:
                if url not in filled:
                    fill(url, base, size)
                    filled.add(url)
                for name in VIEWS:
                    run = measure(url, name, runner, args.repeat)
                    results.append((name, size, f"{database}, {runner}", run))
                    print(name, size, database, runner, run, flush=True)
        finally:
            for *_, dropped in targets:
                if dropped is not None:
                    admin, db = dropped
                    with admin.connect() as conn:
                        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
                    admin.dispose()
    cpu_after = cpu_check()
    lines = [
        "## View runner (`bench/views.py`)",
        "",
        f"Run {date.today().isoformat()} on {machine()}; CPU check "
        f"{cpu_before:.0f} ms before, {cpu_after:.0f} ms after (other processes share "
        "the machine). Each run: a fresh process reads the view's type through the",
        "storage scan (keyset pages) and runs the view in Python, or (`sql`, PostgreSQL) "
        "runs the compiled view inside the database, and writes CSV to /dev/null; median of "
        f"{args.repeat} runs. Patients and Observations from the Synthea set, with",
        "re-identified copies up to the size. Patient view: 8 columns (official name, "
        "joined given names, race extension, deceased...);",
        "observation view: 8 columns (keys, code, effective, value and unit of valueQuantity).",
        "rows/s: wall clock, the process's CPU time in brackets (on a shared machine the wall "
        "clock also counts waiting for a CPU).",
        "Memory: resident set before the run and at its peak (VmHWM), MB. Load average "
        f"{os.getloadavg()[0]:.1f} at the end.",
        "Target: >= 20,000 rows/s for the observation view.",
        "",
        "| view | resources | database, runner | rows | seconds | rows/s (CPU) | RSS before "
        "| RSS peak |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for name, size, target, run in results:
        lines.append(
            f"| {name} | {size:,} | {target} | {run['rows']:,} | {run['seconds']:.2f} | "
            f"{run['rows'] / run['seconds']:,.0f} ({run['rows'] / run['cpu_seconds']:,.0f}) | "
            f"{run['rss_before_mb']:.0f} | {run['peak_mb']:.0f} |"
        )
    obs = [r for n, _, t, r in results if n == "observation" and t == "SQLite, python"]
    slow = [r for r in obs if r["rows"] / r["seconds"] < 20_000]
    rates = ", ".join(f"{r['rows'] / r['seconds']:,.0f}" for r in obs)
    lines += [
        "",
        f"- Observation view on SQLite >= 20,000 rows/s: {'met' if not slow else 'NOT met'} "
        f"({rates} rows/s).",
    ]
    peaks = {
        n: [r["peak_mb"] for m, _, t, r in results if m == n and t == "SQLite, python"]
        for n in VIEWS
    }
    lines.append(
        "- Peak memory from 10k to 100k on SQLite: "
        + "; ".join(f"{n} {p[-1] - p[0]:+.0f} MB" for n, p in peaks.items())
        + " (the runner holds one page of 500 resources; the scan's connection keeps a"
        " page cache of 4 MiB, engine.scan_cache)."
    )
    write_section(START, END, lines)


if __name__ == "__main__":
    main()
