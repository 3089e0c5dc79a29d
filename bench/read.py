"""Read-by-id benchmark over HTTP: latency p50/p95 and throughput, one uvicorn worker.

    .venv/bin/python bench/read.py [--resources 1000] [--seconds 10] [--concurrency 16]
                                   [--postgres-url URL] [--no-write]

For each database (a fresh SQLite file; a fresh PostgreSQL database created from
--postgres-url or FHIR_SERVICE_TEST_POSTGRES_URL and dropped afterwards) it stores
N Patients, starts ``uvicorn`` with one worker in a subprocess serving
``create_app``, and reads random Patients by id (GET /fhir/Patient/{id},
https://hl7.org/fhir/R4/http.html#read) from ``--concurrency`` keep-alive HTTP/1.1
connections for ``--seconds``. The load generator is ``wrk`` when it is on the
PATH (Debian package ``wrk``; a Lua script picks the ids, ``--generator`` chooses),
otherwise a minimal asyncio client in this process, which takes a good part of one of
the two cores itself; either way client and server share the machine. Prints a table
and rewrites its section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import sqlalchemy as sa
from report import cpu_check, machine, write_section
from sqlalchemy.engine import make_url

from fhir_service.storage import SqlStore, upgrade
from fhir_service.storage.access import AccessScope

FULL_ACCESS = AccessScope.full()

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- read:start -->", "<!-- read:end -->"
TARGET = 1000.0
ACCEPT = "Accept: application/fhir+json\r\n"

SERVER = """
import sys, uvicorn
from fhir_service.api import create_app
from fhir_service.settings import Settings
uvicorn.run(create_app(Settings(database_url=sys.argv[1])), host="127.0.0.1",
            port=int(sys.argv[2]), workers=1, log_level="warning", access_log=False)
"""


@dataclass
class Run:
    database: str
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p95_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def seed(url: str, count: int) -> list[str]:
    """Store ``count`` Patients in one transaction; returns their ids."""
    upgrade(url)
    store = SqlStore.open(url)
    ids = [f"bench-{i}" for i in range(count)]
    try:
        with store.begin(FULL_ACCESS) as repo:
            for i, pid in enumerate(ids):
                repo.update(
                    "Patient",
                    pid,
                    {
                        "resourceType": "Patient",
                        "id": pid,
                        "identifier": [{"system": "http://example.org/bench", "value": str(i)}],
                        "name": [{"family": f"Family{i}", "given": ["Given"]}],
                        "gender": random.choice(["female", "male"]),
                        "birthDate": f"19{50 + i % 50}-0{1 + i % 9}-1{i % 9}",
                    },
                )
    finally:
        store.close()
    return ids


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(url: str, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", SERVER, url, str(port)], cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the server did not start")


async def _worker(
    port: int, ids: list[str], stop: float, latencies: list[float], errors: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    rng = random.Random()
    try:
        while time.perf_counter() < stop:
            pid = rng.choice(ids)
            request = f"GET /fhir/Patient/{pid} HTTP/1.1\r\nHost: bench\r\n{ACCEPT}\r\n"
            began = time.perf_counter()
            writer.write(request.encode())
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - began)
            if b" 200 " not in status_line:
                errors[0] += 1
    finally:
        writer.close()


async def _load(
    port: int, ids: list[str], seconds: float, concurrency: int
) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = [0]
    began = time.perf_counter()
    stop = began + seconds
    await asyncio.gather(*(_worker(port, ids, stop, latencies, errors) for _ in range(concurrency)))
    return latencies, errors[0], time.perf_counter() - began


WRK_SCRIPT = """
local count = COUNT
request = function()
  return wrk.format("GET", "/fhir/Patient/bench-" .. math.random(0, count - 1),
                    {["Accept"] = "application/fhir+json"})
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %f %f %f\\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout,
    summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(95) / 1e3))
end
"""


def _wrk(
    port: int, count: int, seconds: float, concurrency: int
) -> tuple[int, int, float, float, float]:
    """(requests, errors, seconds, p50 ms, p95 ms) of one wrk run."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT.replace("COUNT", str(count)))
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{concurrency}",
                f"-d{max(1, round(seconds))}s",
                "-s",
                script.name,
                f"http://127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    found = re.search(r"RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"wrk printed no result: {out[-500:]}")
    requests, errors = int(found[1]), int(found[2])
    return requests, errors, float(found[3]), float(found[4]), float(found[5])


def measure(database: str, url: str, args: argparse.Namespace) -> Run:
    ids = seed(url, args.resources)
    port = free_port()
    server = start_server(url, port)
    try:
        if args.generator == "wrk":
            _wrk(port, len(ids), 1.0, args.concurrency)  # warm-up
            requests, errors, elapsed, p50, p95 = _wrk(
                port, len(ids), args.seconds, args.concurrency
            )
            return Run(database, requests, errors, elapsed, p50, p95)
        asyncio.run(_load(port, ids, 1.0, args.concurrency))  # warm-up
        latencies, errors, elapsed = asyncio.run(_load(port, ids, args.seconds, args.concurrency))
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies.sort()
    p95_s = latencies[int(len(latencies) * 0.95)]
    return Run(
        database, len(latencies), errors, elapsed, statistics.median(latencies) * 1000, p95_s * 1000
    )


GENERATORS = {
    "wrk": "wrk (1 thread)",
    "python": "the asyncio load generator of this script",
}


def table(runs: list[Run]) -> str:
    lines = [
        "| database | requests | errors | req/s | p50 ms | p95 ms | target >= 1,000 req/s |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        ok = "met" if r.rate >= TARGET else "NOT met"
        lines.append(
            f"| {r.database} | {r.requests} | {r.errors} | {r.rate:,.0f} | {r.p50_ms:.2f} "
            f"| {r.p95_ms:.2f} | {ok} |"
        )
    return "\n".join(lines)


def write_results(runs: list[Run], args: argparse.Namespace, check: float) -> None:
    write_section(
        START,
        END,
        [
            "## Read by id over HTTP (`bench/read.py`)",
            "",
            f"Run {date.today().isoformat()} on {machine()}; CPU check (`bench/report.py`)",
            f"before the runs {check:.0f} ms.",
            f"GET /fhir/Patient/{{id}} on {args.resources} stored Patients, one uvicorn worker,",
            f"{args.concurrency} keep-alive connections for {args.seconds:g} s from "
            f"{GENERATORS[args.generator]} on the same machine. Target: >= 1,000 requests/s.",
            "",
            table(runs),
        ],
    )


def _postgres(admin_url: str) -> tuple[str, sa.Engine, str]:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"fhir_bench_read_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    return url, admin, name


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--resources", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--postgres-url", default=os.environ.get("FHIR_SERVICE_TEST_POSTGRES_URL"))
    parser.add_argument(
        "--generator",
        choices=sorted(GENERATORS),
        default="wrk" if shutil.which("wrk") else "python",
    )
    parser.add_argument("--no-write", action="store_true", help="Do not update RESULTS.md.")
    args = parser.parse_args()
    check = cpu_check()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        runs.append(measure("SQLite", f"sqlite:///{Path(tmp) / 'read.sqlite3'}", args))
    if args.postgres_url:
        url, admin, name = _postgres(args.postgres_url)
        try:
            runs.append(measure("PostgreSQL", url, args))
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()
    print(table(runs))
    print(f"CPU check: {check:.0f} ms")
    if not args.no_write:
        write_results(runs, args, check)


if __name__ == "__main__":
    main()
