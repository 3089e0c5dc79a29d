"""Search latency benchmark: p50/p95 of typical searches at growing database sizes.

    .venv/bin/python bench/search.py [--sizes 10000,30000] [--postgres-url URL] [--no-write]

For each database (a fresh SQLite file; a fresh PostgreSQL database created from
--postgres-url or FHIR_SERVICE_TEST_POSTGRES_URL and dropped afterwards) it
loads Synthea patient Bundles (../shared/data; beyond the 300 patients, copies
re-identified as new patients) until each size is reached, runs
ANALYZE (as after any bulk load), then times each query (parse + SQL + loading
the page, in-process, no HTTP) 40 times after 5 warm-up runs. Prints a table and
rewrites its section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))


from report import machine, write_section

from fhir_service.cli.load import load_bundle, providers_first
from fhir_service.search.extract import normalize
from fhir_service.search.query import parse_search
from fhir_service.search.registry import get_registry
from fhir_service.storage import SqlStore, upgrade
from fhir_service.storage.access import AccessScope
from fhir_service.storage.search_sql import match_query

FULL_ACCESS = AccessScope.full()

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = ROOT.parent / "shared" / "data" / "synthea-r4-300-patients.tar.xz"
START, END = "<!-- search:start -->", "<!-- search:end -->"
RUNS, WARMUP = 40, 5


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_FAMILY = re.compile(r'("family": ?")([^"]*)(")')


def reidentified(bundle: dict[str, Any], copy: int) -> dict[str, Any]:
    """A patient Bundle as another patient: every UUID (ids, fullUrls, references,
    identifiers) mapped to a new one, family names prefixed with the copy number."""
    text = json.dumps(bundle)
    text = _UUID.sub(lambda m: str(uuid.uuid5(uuid.NAMESPACE_URL, f"{copy}:{m[0]}")), text)
    text = _FAMILY.sub(lambda m: f"{m[1]}C{copy}{m[2]}{m[3]}", text)
    result: dict[str, Any] = json.loads(text)
    return result


def bundles() -> Iterator[dict[str, Any]]:
    """The Synthea Bundles (providers first), then re-identified copies of the patients."""
    for copy in range(100):
        for name, bundle in providers_first([ARCHIVE], anchor_date=date(2022, 3, 1)):
            if copy == 0:
                yield bundle
            elif "Information" not in name:
                yield reidentified(bundle, copy)


def stored_count(store: SqlStore) -> int:
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        return sum(repo.counts().values())


def analyze(store: SqlStore) -> None:
    """Refresh the planner statistics after a bulk load (ANALYZE on both databases)."""
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")


def archive_families() -> list[str]:
    """The normalized family names of every patient of the archive (copies excluded)."""
    families = []
    for _, bundle in providers_first([ARCHIVE], anchor_date=date(2022, 3, 1)):
        for entry in bundle.get("entry") or []:
            resource = entry.get("resource") or {}
            if resource.get("resourceType") == "Patient":
                families += [normalize(n.get("family", "")) for n in resource.get("name") or []]
    return families


def sample(store: SqlStore) -> dict[str, str]:
    """A patient with observations, one of its codes and a family name, from the data
    (chosen at the first size and reused, so every size runs the same queries).

    The family name is one that no other family of the archive starts with, so that the
    chained search ``subject:Patient.family=`` finds the same patient at every size
    (copies are named ``C<n><family>``): the sizes then compare equal result sizes.
    """
    families = archive_families()
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        search = parse_search(get_registry(), ["Patient"], [("_count", "1000")])
        for match in repo.search_page(search).matches:
            patient = match.resource
            assert patient is not None
            family = patient["name"][0]["family"]
            if sum(f.startswith(normalize(family)) for f in families) != 1:
                continue
            observations = parse_search(
                get_registry(), ["Observation"], [("patient", match.id), ("_count", "1")]
            )
            found = repo.search_page(observations).matches
            if found and found[0].resource is not None:
                obs = found[0].resource
                return {
                    "patient": match.id,
                    "code": obs["code"]["coding"][0]["code"],
                    "family": family,
                }
    raise SystemExit("no patient with a unique family name and observations at the first size")


def explain(store: SqlStore, rtype: str, query: str) -> str:
    """The database's plan of a query's match (EXPLAIN QUERY PLAN / EXPLAIN)."""
    pairs = [tuple(p.split("=", 1)) for p in query.split("&")]
    search = parse_search(get_registry(), [rtype], pairs)  # type: ignore[arg-type]
    with store.engine.connect() as conn:
        statement = match_query(get_registry(), search, conn.dialect.name)
        compiled = statement.compile(conn, compile_kwargs={"render_postcompile": True})
        if conn.dialect.name == "sqlite":
            params: Any = tuple(compiled.params[k] for k in compiled.positiontup or ())
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), params)
            return "\n".join(f"  {r[0]:>3} {r[1]:>3} {r[3]}" for r in rows)
        rows = conn.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params)
        return "\n".join(f"  {r[0]}" for r in rows)


def queries(s: dict[str, str]) -> list[tuple[str, str]]:
    return [
        ("Observation", f"patient={s['patient']}&code={s['code']}&date=ge2000-01-01"),
        (
            "Condition",
            "clinical-status:in=http://hl7.org/fhir/ValueSet/condition-clinical"
            f"&patient={s['patient']}",
        ),
        ("Observation", f"subject:Patient.family={s['family']}&code={s['code']}"),
        ("Observation", f"patient={s['patient']}&_include=Observation:subject&_count=20"),
        ("Patient", f"name={s['family']}&_count=20"),
    ]


def measure(store: SqlStore, rtype: str, query: str) -> tuple[float, float, int]:
    pairs = [tuple(p.split("=", 1)) for p in query.split("&")]
    times = []
    found = 0
    for i in range(WARMUP + RUNS):
        start = time.perf_counter()
        with store.begin(FULL_ACCESS, readonly=True) as repo:
            search = parse_search(get_registry(), [rtype], pairs)  # type: ignore[arg-type]
            page = repo.search_page(search)
        if i >= WARMUP:
            times.append((time.perf_counter() - start) * 1000)
        found = page.total or 0
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], found


def run(url: str, sizes: list[int], plans: bool = False) -> list[dict[str, Any]]:
    upgrade(url)
    store = SqlStore.open(url)
    rows: list[dict[str, Any]] = []
    source = bundles()
    chosen: dict[str, str] | None = None
    try:
        for size in sizes:
            while stored_count(store) < size:
                for _ in range(5):
                    load_bundle(store, next(source))
            total = stored_count(store)
            analyze(store)
            chosen = chosen or sample(store)
            for rtype, query in queries(chosen):
                p50, p95, found = measure(store, rtype, query)
                rows.append(
                    {
                        "db": store.dialect,
                        "size": total,
                        "query": f"{rtype}?{query}",
                        "p50": p50,
                        "p95": p95,
                        "found": found,
                    }
                )
                print(
                    f"{store.dialect} {total} {p50:.1f} {p95:.1f} {found} {rtype}?{query}",
                    flush=True,
                )
                if plans:
                    print(explain(store, rtype, query), flush=True)
    finally:
        store.close()
    return rows


def run_postgres(admin_url: str, sizes: list[int], plans: bool = False) -> list[dict[str, Any]]:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"fhir_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        return run(
            make_url(admin_url).set(database=name).render_as_string(hide_password=False),
            sizes,
            plans,
        )
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| database | resources | query | p50 ms | p95 ms | total |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        query = r["query"].replace("|", "\\|")
        lines.append(
            f"| {r['db']} | {r['size']} | `{query[:90]}` | {r['p50']:.1f} | {r['p95']:.1f} | "
            f"{r['found']} |"
        )
    return "\n".join(lines)


def ratios(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for db in sorted({r["db"] for r in rows}):
        sizes = sorted({r["size"] for r in rows if r["db"] == db})
        if len(sizes) < 2:
            continue
        small = [r["p50"] for r in rows if r["db"] == db and r["size"] == sizes[0]]
        big = [r["p50"] for r in rows if r["db"] == db and r["size"] == sizes[-1]]
        factors = [b / s for b, s in zip(big, small, strict=True)]
        out.append(
            f"- {db}: p50 at {sizes[-1]} / p50 at {sizes[0]} resources: worst query "
            f"{max(factors):.2f}x, median over the queries {statistics.median(factors):.2f}x"
        )
    return out


def write_results(rows: list[dict[str, Any]]) -> None:
    write_section(
        START,
        END,
        [
            "## Search latency (`bench/search.py`)",
            "",
            f"Run {date.today().isoformat()} on {machine()}; load average at the end "
            f"{os.getloadavg()[0]:.1f} (other processes share the machine).",
            "Synthea patient Bundles loaded until each size, then ANALYZE; the same queries at",
            "every size (patient, code and name sampled at the first); each query parsed and run",
            f"in-process (no HTTP) {RUNS} times after {WARMUP} warm-up runs. Targets: p50 <= 20 ms",
            "at 100k resources on SQLite; p50 ratio between the sizes <= 1.5.",
            "",
            table(rows),
            "",
            *ratios(rows),
            "- Every query finds the same resources at both sizes (total column): the family",
            "  name is one no other family of the archive starts with, and copies are renamed,",
            "  so the chain and name queries compare equal result sizes. Before, a family",
            "  shared by more patients at 100k gave the chain 4x the matches (6 vs 24), which",
            "  was its 3.1x ratio. `--explain` prints the plans: at 100k all are index",
            "  searches on both databases (at 10k PostgreSQL prefers a sequential scan of the",
            "  few thousand Observation rows for the patient queries).",
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,30000")
    parser.add_argument("--postgres-url", default=os.environ.get("FHIR_SERVICE_TEST_POSTGRES_URL"))
    parser.add_argument("--no-write", action="store_true", help="Do not update RESULTS.md.")
    parser.add_argument("--explain", action="store_true", help="Print each query's plan.")
    args = parser.parse_args()
    if not ARCHIVE.exists():
        raise SystemExit(f"{ARCHIVE} is absent")
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        rows += run(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", sizes, args.explain)
    if args.postgres_url:
        rows += run_postgres(args.postgres_url, sizes, args.explain)
    print(table(rows))
    print("\n".join(ratios(rows)))
    if not args.no_write:
        write_results(rows)


if __name__ == "__main__":
    main()
