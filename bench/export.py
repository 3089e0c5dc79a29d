"""Bulk export throughput and peak memory (`python bench/export.py`).

Loads the Synthea 300-patient set (../shared/data) until ``--resources`` are stored
(10k), then adds re-identified copies (every id and reference suffixed ``-c<k>``) up
to ``--large`` (100k). Each export runs in a fresh subprocess that reports
resources/s and its peak resident memory (VmHWM), plain and de-identified.
Targets: >= 10,000 resources/s; peak memory at 100k no more than 50 MB above 10k.
Writes its section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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

RESULTS = ROOT / "bench" / "RESULTS.md"
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


def peak_mb() -> float:
    """This process's peak resident set (VmHWM); ``ru_maxrss`` would include the parent's
    high-water mark, which Linux carries over at exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(url: str, out: str, deidentify: bool) -> None:
    """Run one export and print resources, seconds and peak RSS (MB) as JSON."""
    settings = Settings()
    search_registry.configure(settings.package_cache)
    compartment = compartment_paths(search_registry.get_registry())
    store = SqlStore.open(url)
    deid = Deidentifier("bench", compartment.patients, reference_year=2026) if deidentify else None
    started = time.perf_counter()
    result = run_export(
        store.engine,
        ExportParams(deidentify=deidentify),
        Path(out),
        compartment=compartment,
        deidentifier=deid,
    )
    seconds = time.perf_counter() - started
    store.close()
    count = sum(f.count for f in result.output)
    peak = peak_mb()
    print(json.dumps({"resources": count, "seconds": seconds, "peak_mb": peak}))


def measure(url: str, deidentify: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as out:
        args = [sys.executable, __file__, "--child", url, out]
        if deidentify:
            args.append("--deidentify")
        done = subprocess.run(args, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def verdicts(rows: list[tuple[str, int, bool, dict[str, Any]]], sizes: list[int]) -> list[str]:
    """One line per target: met or not, with the numbers it was judged on."""
    slow = [
        f"{d} {n:,} {'de-identified' if deid else 'plain'}"
        for d, n, deid, run in rows
        if run["resources"] / run["seconds"] < 10_000
    ]
    verdict = f"NOT met by {', '.join(slow)}" if slow else "met by every row"
    out = [f"- Throughput >= 10,000 resources/s: {verdict}."]
    if len(sizes) == 2:
        deltas = []
        for dialect in dict.fromkeys(d for d, *_ in rows):
            for deid in (False, True):
                peaks = [r[3]["peak_mb"] for r in rows if r[0] == dialect and r[2] == deid]
                deltas.append((dialect, deid, peaks[-1] - peaks[0]))
        worst = max(delta for *_, delta in deltas)
        listed = "; ".join(
            f"{d} {'de-identified' if deid else 'plain'} {delta:+.0f} MB"
            for d, deid, delta in deltas
        )
        out.append(
            f"- Peak memory at {sizes[1]:,} <= at {sizes[0]:,} + 50 MB: "
            f"{'met' if worst <= 50 else 'NOT met'} ({listed})."
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", nargs=2)
    parser.add_argument("--deidentify", action="store_true")
    parser.add_argument("--resources", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=0, help="also measure at this size")
    parser.add_argument(
        "--database-url", action="append", help="an empty database (repeatable; default SQLite)"
    )
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.deidentify)
        return
    workdir = tempfile.mkdtemp()
    urls = args.database_url or [f"sqlite:///{workdir}/bench.sqlite3"]
    rows = []
    sizes = [args.resources] + ([args.large] if args.large else [])
    for url in urls:
        upgrade(url)
        store = SqlStore.open(url)
        for size in sizes:
            stored = load_synthea(store, size) if size == sizes[0] else add_copies(store, size)
            for deidentify in (False, True):
                run = measure(url, deidentify)
                rows.append((store.dialect, stored, deidentify, run))
                print(store.dialect, stored, deidentify, run, flush=True)
        store.close()
    lines = [
        START,
        "## Bulk export (`bench/export.py`)",
        "",
        f"Run {date.today().isoformat()} on {platform.machine()} ({os.cpu_count()} CPUs), "
        f"Python {platform.python_version()}, {platform.system()}; load average "
        f"{os.getloadavg()[0]:.1f} (other processes share the machine).",
        "System-level export of every current resource to NDJSON files, in a fresh process;",
        "peak memory is that process's VmHWM (interpreter, models and compartment included).",
        "Targets: >= 10,000 resources/s; peak at 100k <= peak at 10k + 50 MB.",
        "",
        "| database | resources | de-identified | seconds | resources/s | peak MB |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for dialect, _stored, deidentify, run in rows:
        rate = run["resources"] / run["seconds"]
        lines.append(
            f"| {dialect} | {run['resources']} | {'yes' if deidentify else 'no'} | "
            f"{run['seconds']:.2f} | {rate:,.0f} | {run['peak_mb']:.0f} |"
        )
    lines += ["", *verdicts(rows, sizes), END]
    section = "\n".join(lines)
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if START in text and END in text:
        text = text[: text.index(START)] + section + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
