"""Transaction ingest benchmark: resources/s loading the Synthea set and copies of the case.

    .venv/bin/python bench/ingest.py [--patients 300] [--small 30] [--source synthea|case|both]
                                     [--repeat 3] [--postgres-url URL] [--no-write]
                                     [--validation-workers N] [--validate off|warn|reject]

For each database (a fresh SQLite file; a fresh PostgreSQL database created from
--postgres-url or FHIR_SERVICE_TEST_POSTGRES_URL and dropped afterwards) it loads
the hospital and practitioner Bundles, then N patient transaction Bundles, one
database transaction per Bundle, with the loader's provider deduplication
(``fhir-service load`` does the same). Two sizes (small = 1x, full = 10x) show
whether time grows linearly. The large size runs ``--repeat`` times; before each of
them the small size runs (large / small) times, so both sizes load the same data
over about as long a stretch of the machine's time. The table shows the median run
of each size; the linearity check compares the time per resource of all runs of
each size, pooled (on a shared machine a short run often falls into a quiet minute
that a long run cannot, so medians of one short and one long run would compare the
machine's quiet minutes with its average).
``--source case`` loads the IVC leiomyosarcoma case
mapped N times under distinct case ids (so N distinct patients, every id and
identifier different; about 100 resources each). The clock covers ``load_bundle`` only (validation,
reference rewriting, SQL), not reading JSON from the archive. The store validates new
resources in ``--validation-workers`` worker processes (default: the service's setting,
``FHIR_SERVICE_VALIDATION_WORKERS``), as ``fhir-service load`` does. ``--validate`` is
validation on write (docs/validation.md), default ``warn``: every resource is validated
as the REST API validates it and everything is stored (the Synthea set has resources
that ``reject`` refuses, see docs/validation.md), so the stored counts match ``off``.
Prints a table and rewrites its section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from report import cpu_check, machine, write_section
from sqlalchemy.engine import make_url

from fhir_service.api.write_validation import AppValidator, write_check
from fhir_service.cli.load import load_bundle, providers_first
from fhir_service.settings import Settings
from fhir_service.storage import SqlStore, upgrade
from fhir_service.storage.access import AccessScope
from mappings.bundle import build_bundle
from mappings.case.loader import load_case

FULL_ACCESS = AccessScope.full()

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = ROOT.parent / "shared" / "data" / "synthea-r4-300-patients.tar.xz"
CASE = ROOT / "examples" / "ivc-leiomyosarcoma" / "case.yaml"
START, END = "<!-- ingest:start -->", "<!-- ingest:end -->"


@dataclass
class Run:
    source: str
    database: str
    patients: int
    resources: int
    seconds: float
    stored: int
    tenths: list[float]
    """ms per resource over each tenth of the patient Bundles, in loading order"""

    @property
    def rate(self) -> float:
        return self.resources / self.seconds


def synthea_bundles() -> Iterator[tuple[str, dict[str, Any]]]:
    """The Synthea set's providers, then its patient Bundles."""
    yield from providers_first([ARCHIVE], anchor_date=date(2022, 3, 1))


def case_bundles() -> Iterator[tuple[str, dict[str, Any]]]:
    """The example case as transaction Bundles of ever new patients (case ids ivc-0, ivc-1, ...)."""
    case = load_case(CASE)
    n = 0
    while True:
        copy = case.model_copy(update={"case": case.case.model_copy(update={"id": f"ivc-{n}"})})
        yield f"case-{n}", build_bundle(copy, date(2022, 3, 1), "transaction")
        n += 1


SOURCES = {"synthea": synthea_bundles, "case": case_bundles}


VALIDATOR = AppValidator(Settings().package_cache)


def ingest(
    url: str, patients: int, source: str, workers: int | None, validate: str = "warn"
) -> Run:
    """Load ``patients`` patient Bundles (after any providers) into the empty database,
    validating each resource written as ``validate`` says (validation on write)."""
    upgrade(url)
    if validate != "off":
        VALIDATOR.get()  # the package cache read once, outside the clock
    pool = Settings().validation_pool_size(url) if workers is None else workers
    store = SqlStore.open(url, validation_workers=pool)
    resources = 0
    seconds = 0.0
    loaded = 0
    per_patient: list[tuple[float, int]] = []
    try:
        for name, bundle in SOURCES[source]():
            is_patient = "Information" not in name
            if is_patient and loaded >= patients:
                break
            start = time.perf_counter()
            check = write_check(VALIDATOR, validate, log_each=False)
            response = load_bundle(store, bundle, check=check)
            took = time.perf_counter() - start
            seconds += took
            resources += len(response["entry"])
            loaded += int(is_patient)
            if is_patient:
                per_patient.append((took, len(response["entry"])))
        with store.begin(FULL_ACCESS, readonly=True) as repo:
            stored = sum(repo.counts().values())
    finally:
        store.close()
    return Run(source, store.dialect, patients, resources, seconds, stored, by_tenth(per_patient))


def by_tenth(per_patient: list[tuple[float, int]]) -> list[float]:
    """ms per resource over each tenth of the (seconds, resources) of the patient Bundles."""
    tenth = max(1, len(per_patient) // 10)
    parts = [per_patient[i : i + tenth] for i in range(0, tenth * 10, tenth)]
    totals = [(sum(t for t, _ in part), sum(n for _, n in part)) for part in parts]
    return [1000 * seconds / count for seconds, count in totals if count]


def run_sqlite(workers: int | None, validate: str, patients: int, source: str) -> Run:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        return ingest(url, patients, source, workers, validate)


def run_postgres(
    admin_url: str, workers: int | None, validate: str, patients: int, source: str
) -> Run:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"fhir_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        return ingest(url, patients, source, workers, validate)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def median_run(runs: list[Run]) -> Run:
    """The run with the median time (the slower middle one of an even number)."""
    return sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]


def medians(runs: list[Run]) -> list[Run]:
    """The median run of each (source, database, patients), in the order they first ran."""
    groups: dict[tuple[str, str, int], list[Run]] = {}
    for r in runs:
        groups.setdefault((r.source, r.database, r.patients), []).append(r)
    return [median_run(group) for group in groups.values()]


def table(runs: list[Run]) -> str:
    lines = [
        "| data | database | patients | resources | seconds | resources/s | stored |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r.source} | {r.database} | {r.patients} | {r.resources} | {r.seconds:.1f} | "
            f"{r.rate:,.0f} | {r.stored} |"
        )
    return "\n".join(lines)


LINEAR_SLACK = 1.10
"""Linear enough: 10x the data in at most 11x the time, i.e. the time per resource grows by
at most 10 % (with 10.7x the resources, as the Synthea sizes have, 11.8x the time)."""


def linearity(runs: list[Run]) -> list[str]:
    """Per source and database: how the time grew against the resources, and the verdict,
    from all runs of each size pooled (seconds and resources summed)."""
    out = []
    for src, db in sorted({(r.source, r.database) for r in runs}):
        mine = [r for r in runs if r.database == db and r.source == src]
        sizes = sorted({r.patients for r in mine})
        if len(sizes) != 2:
            continue
        small, big = ([r for r in mine if r.patients == size] for size in sizes)
        per_resource = [
            sum(r.seconds for r in group) / sum(r.resources for r in group)
            for group in (small, big)
        ]
        data = (sum(r.resources for r in big) / len(big)) / (
            sum(r.resources for r in small) / len(small)
        )
        growth = per_resource[1] / per_resource[0]
        verdict = "linear" if growth <= LINEAR_SLACK else "NOT linear"
        out.append(
            f"- {src} on {db}: {data:.1f}x the resources took {data * growth:.1f}x the time "
            f"({len(small)} runs of {sizes[0]} patients, {len(big)} of {sizes[1]}, pooled); "
            f"time per resource x{growth:.2f} ({verdict}: target <= x{LINEAR_SLACK:.2f})"
        )
    return out


def tenth_lines(runs: list[Run]) -> list[str]:
    """How the time per resource moved during the median largest run of each source and
    database: does it keep growing?"""
    largest = max(r.patients for r in runs)
    return [
        f"- {r.source} on {r.database}, {r.patients} patients, ms per resource by tenth of "
        f"the patient Bundles: {', '.join(f'{ms:.2f}' for ms in r.tenths)}"
        for r in medians(runs)
        if r.patients == largest
    ]


def write_results(runs: list[Run], checks: list[float], workers: int | None, validate: str) -> None:
    write_section(
        START,
        END,
        [
            "## Transaction ingest (`bench/ingest.py`)",
            "",
            f"Run {date.today().isoformat()} on {machine()}; load average at the end "
            f"{os.getloadavg()[0]:.1f} (other processes share the machine). CPU check",
            "(`bench/report.py`, a fixed pure-Python loop, lower is faster) before each",
            f"run: {min(checks):.0f}-{max(checks):.0f} ms, median {statistics.median(checks):.0f}.",
            "synthea: the Synthea 300-patient set (../shared/data): hospital and practitioner",
            "Bundles, then patient transaction Bundles, one database transaction each, provider",
            "POSTs deduplicated by identifier. case: the IVC case mapped under distinct case ids",
            "(distinct patients, about 100 resources each, conditional creates). Target:",
            ">= 1,000 resources/s on SQLite; 10x the data in <= 11x the time, i.e. the time",
            "per resource grows by at most 10 %. Each row is the median of its size's runs;",
            "the small size runs (large / small) times before each large run, and the",
            "linearity lines pool all runs of each size (see the script's docstring).",
            "Validation workers (`--validation-workers`): "
            f"{'the default (1 on SQLite, 0 on PostgreSQL)' if workers is None else workers}. "
            "Validation on write",
            f"(`--validate`): {validate}.",
            "",
            table(medians(runs)),
            "",
            *linearity(runs),
            *tenth_lines(runs),
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--small", type=int, default=30)
    parser.add_argument("--postgres-url", default=os.environ.get("FHIR_SERVICE_TEST_POSTGRES_URL"))
    parser.add_argument("--source", choices=["synthea", "case", "both"], default="both")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="Runs of each size, in turn; the median counts.",
    )
    parser.add_argument("--no-write", action="store_true", help="Do not update RESULTS.md.")
    parser.add_argument(
        "--validate",
        choices=["off", "warn", "reject"],
        default="warn",
        help="Validation on write of every resource loaded (warn: validated, all stored).",
    )
    parser.add_argument(
        "--validation-workers",
        type=int,
        default=Settings().validation_workers,
        help="Worker processes validating new resources (0: inline; default: the service's).",
    )
    args = parser.parse_args()
    sources = ["synthea", "case"] if args.source == "both" else [args.source]
    if "synthea" in sources and not ARCHIVE.exists():
        raise SystemExit(f"{ARCHIVE} is absent")
    runs: list[Run] = []
    checks: list[float] = []
    for source in sources:
        databases: list[Callable[[int, str], Run]] = [
            partial(run_sqlite, args.validation_workers, args.validate)
        ]
        if args.postgres_url:
            databases.append(
                partial(run_postgres, args.postgres_url, args.validation_workers, args.validate)
            )
        for run in databases:
            rounds = [args.small] * max(1, args.patients // args.small) + [args.patients]
            for _ in range(args.repeat):
                for patients in rounds:
                    checks.append(cpu_check())
                    runs.append(run(patients, source))
                    print(table(runs[-1:]).splitlines()[-1], flush=True)
    print(table(medians(runs)))
    print("\n".join(linearity(runs) + tenth_lines(runs)))
    print(f"CPU check: {min(checks):.0f}-{max(checks):.0f} ms")
    if not args.no_write:
        write_results(runs, checks, args.validation_workers, args.validate)


if __name__ == "__main__":
    main()
