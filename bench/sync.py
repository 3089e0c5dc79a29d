"""Sync benchmark: push and pull throughput (resources/s) against the peer server.

    .venv/bin/python bench/sync.py [--resources 10000] [--chunk-size 50] [--page-size 500]

Loads about half the resources as copies of the example case (distinct case ids)
and half as Synthea patients from ../shared/data into a fresh SQLite file, starts
the peer (tests/peer: Medplum's FHIR router, in memory) on a free loopback port,
then times: a full push; a second push with nothing changed; a pull of everything
into a second, empty SQLite file; a pull with nothing changed (and counts its
search requests). Prints a table and rewrites its section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from fhir_service.cli.load import load_bundle, providers_first  # noqa: E402
from fhir_service.storage import SqlStore, upgrade  # noqa: E402
from fhir_service.storage.access import AccessScope  # noqa: E402
from fhir_service.sync.client import FhirClient  # noqa: E402
from fhir_service.sync.pull import pull  # noqa: E402
from fhir_service.sync.push import RunReport, push  # noqa: E402
from mappings.bundle import build_bundle  # noqa: E402
from mappings.case.loader import load_case  # noqa: E402
from tests.peer.process import start_peer  # noqa: E402

FULL_ACCESS = AccessScope.full()

CASE = REPO_ROOT / "examples" / "ivc-leiomyosarcoma" / "case.yaml"
ARCHIVE = REPO_ROOT.parent / "shared" / "data" / "synthea-r4-300-patients.tar.xz"
RESULTS = REPO_ROOT / "bench" / "RESULTS.md"
ANCHOR = date(2022, 3, 1)


def case_bundles() -> Iterator[dict[str, Any]]:
    case = load_case(CASE)
    n = 0
    while True:
        copy = case.model_copy(update={"case": case.case.model_copy(update={"id": f"sync-{n}"})})
        yield build_bundle(copy, ANCHOR, "transaction")
        n += 1


def fill(store: SqlStore, target: int) -> int:
    """Load case copies up to half of ``target``, then Synthea Bundles up to ``target``."""
    loaded = 0
    for bundle in case_bundles():
        if loaded >= target // 2:
            break
        for entry in bundle["entry"]:
            entry["request"].pop("ifNoneExist", None)
        loaded += len(load_bundle(store, bundle, dedupe_providers=False)["entry"])
    if ARCHIVE.is_file():
        for _, bundle in providers_first([ARCHIVE], anchor_date=ANCHOR):
            if loaded >= target:
                break
            loaded += len(load_bundle(store, bundle)["entry"])
    else:
        for bundle in case_bundles():
            if loaded >= target:
                break
            loaded += len(load_bundle(store, bundle, dedupe_providers=False)["entry"])
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        return sum(repo.counts().values())


async def timed(base_url: str, work: Any) -> tuple[RunReport, float, int]:
    async with FhirClient(base_url, max_connections=4) as client:
        await client.capabilities()
        before = client.requests
        start = time.perf_counter()
        report = await work(client)
        return report, time.perf_counter() - start, client.requests - before


def machine() -> str:
    import os

    return f"{platform.machine()} ({os.cpu_count()} CPUs), Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--resources", type=int, default=10_000)
    parser.add_argument("--chunk-size", type=int, default=50)
    parser.add_argument("--page-size", type=int, default=500)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        source_url = f"sqlite:///{Path(tmp) / 'source.sqlite3'}"
        target_url = f"sqlite:///{Path(tmp) / 'target.sqlite3'}"
        upgrade(source_url)
        upgrade(target_url)
        source, target = SqlStore.open(source_url), SqlStore.open(target_url)
        peer = start_peer()
        try:
            stored = fill(source, args.resources)
            with source.begin(FULL_ACCESS, readonly=True) as repo:
                types = sorted(t for t, n in repo.counts().items() if n)
            base = peer.base_url
            rows: list[tuple[str, int, float, int, str]] = []
            report, secs, reqs = asyncio.run(
                timed(base, lambda c: push(source, c, chunk_size=args.chunk_size))
            )
            pushed = report.counts["created"]
            rows.append(("push (all new)", pushed, secs, reqs, dict(report.modes).__repr__()))
            report, secs, reqs = asyncio.run(timed(base, lambda c: push(source, c)))
            rows.append(("push (nothing changed)", report.counts["created"], secs, reqs, ""))
            report, secs, reqs = asyncio.run(
                timed(base, lambda c: pull(target, c, types=types, page_size=args.page_size))
            )
            rows.append(("pull into empty DB", report.counts["created"], secs, reqs, ""))
            report, secs, reqs = asyncio.run(
                timed(base, lambda c: pull(target, c, types=types, page_size=args.page_size))
            )
            rows.append(("pull (nothing changed)", report.counts["created"], secs, reqs, ""))
        finally:
            peer.stop()
            source.close()
            target.close()

    lines = [
        "| run | resources | seconds | resources/s | HTTP requests | bundles |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, count, secs, reqs, modes in rows:
        rate = f"{count / secs:,.0f}" if count else "-"
        lines.append(f"| {name} | {count} | {secs:.2f} | {rate} | {reqs} | {modes} |")
    table = "\n".join(lines)
    print(table)
    push_rate = rows[0][1] / rows[0][2]
    verdict = "met" if push_rate >= 500 else "NOT met"
    section = "\n".join(
        [
            "<!-- sync:start -->",
            "## Sync push and pull (`bench/sync.py`)",
            "",
            f"Run {date.today().isoformat()} on {machine()}, Linux. {stored} local resources "
            "(example case copies and Synthea patients) in SQLite; the peer is Medplum's FHIR "
            "router 4.5.2 in memory (tests/peer) on the same machine; push in transactions of "
            f"{args.chunk_size}, pull in pages of {args.page_size}, one search per resource type "
            f"({len(types)} types). Target: push >= 500 resources/s; "
            "a pull with nothing changed costs one search request.",
            "",
            table,
            "",
            f"- push target {verdict}: {push_rate:,.0f} resources/s",
            f"- pull with nothing changed: {rows[3][3]} search requests, one per type "
            "(the peer has no system-level search, so one request for all types is not possible)",
            "<!-- sync:end -->",
        ]
    )
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(r"<!-- sync:start -->.*?<!-- sync:end -->", re.S)
    text = (
        pattern.sub(section, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + section + "\n"
    )
    RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
