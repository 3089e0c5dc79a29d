"""Concurrent clients against the service with 1 and N serving processes and against the
peer, all in one run: reads by id, searches and transaction ingest with 1, 4 and 16
concurrent clients, on SQLite and PostgreSQL, printed with ratios.

    .venv/bin/python bench/concurrency.py [--seconds 5] [--workers N] [--no-write]

- read: ``GET /fhir/Patient/{id}`` of a random one of 1,000 stored Patients
  (https://hl7.org/fhir/R4/http.html#read);
- search: ``GET /fhir/Patient?family=FamilyK`` for a random K (one match each,
  https://hl7.org/fhir/R4/search.html);
- ingest: ``POST /fhir`` transaction Bundles of 10 new Patients each
  (https://hl7.org/fhir/R4/http.html#transaction), a new identifier per Patient.

The load generator is wrk (Debian package ``wrk``, one thread, keep-alive connections,
a Lua script per operation) on the same machine. Our server is ``fhir-service serve
--workers W`` with its defaults (validation on write included); the peer is Medplum's
FHIR router in memory (tests/peer), which keeps nothing on disk and validates nothing,
so its ingest is a ceiling rather than a like-for-like figure. After every run the
answers are checked: no status other than 2xx (wrk counts the others as errors), and
after ingest the stored Patient count grew by whole Bundles, at least 10 per Bundle wrk
saw answered and at most 10 per Bundle it may have left in flight: no write lost, none
doubled. Writes its section of bench/RESULTS.md. (Not named ``concurrent.py``: in bench/, which
is first on the path of every bench script, that name would hide the standard
library's ``concurrent`` package from asyncio.)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from floor_app import seed_durable  # noqa: E402
from read import _postgres, free_port, seed  # noqa: E402
from report import cpu_check, machine, write_section  # noqa: E402

from fhir_service.api.auth.keys import generate_signing_key, load_signing_key  # noqa: E402
from fhir_service.api.auth.tokens import issue_token  # noqa: E402
from tests.peer.process import start_peer  # noqa: E402

START, END = "<!-- concurrent:start -->", "<!-- concurrent:end -->"
PATIENTS = 1000
BUNDLE = 10
CLIENTS = (1, 4, 16)
OPERATIONS = ["read", "search", "ingest"]
CLI = Path(sys.executable).with_name("fhir-service")

READ = """
request = function()
  return wrk.format("GET", "/fhir/Patient/" .. ids[math.random(1, #ids)],
                    {["Accept"] = "application/fhir+json"AUTHORIZATION})
end
"""
SEARCH = """
request = function()
  return wrk.format("GET", "/fhir/Patient?family=Family" .. math.random(0, COUNT - 1),
                    {["Accept"] = "application/fhir+json"})
end
"""
INGEST = """
local counter = 0
local tag = string.format("%d-%d", os.time(), math.random(1, 1000000000))
request = function()
  local entries = {}
  for i = 1, BUNDLE do
    counter = counter + 1
    entries[i] = string.format(
      '{"fullUrl":"urn:uuid:00000000-0000-4000-8000-%012d","resource":{"resourceType":"Patient",'
      .. '"identifier":[{"system":"urn:bench:%s","value":"%d"}],"name":[{"family":"Ingest"}],'
      .. '"gender":"female"},"request":{"method":"POST","url":"Patient"}}', counter, tag, counter)
  end
  local body = '{"resourceType":"Bundle","type":"transaction","entry":['
    .. table.concat(entries, ",") .. ']}'
  return wrk.format("POST", "/fhir", {["Content-Type"] = "application/fhir+json",
                    ["Accept"] = "application/fhir+json"}, body)
end
"""
DONE = """
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %f %f\\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout,
    summary.duration / 1e6, latency:percentile(50) / 1e3))
end
"""


@dataclass
class Result:
    target: str
    database: str
    operation: str
    clients: int
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    cpu_seconds: float = float("nan")
    """User and system CPU the server's processes spent during the run (/proc)."""

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_seconds * 1e6 / max(1, self.requests)

    @property
    def rate(self) -> float:
        """Requests/s; resources/s for ingest."""
        per = BUNDLE if self.operation == "ingest" else 1
        return self.requests * per / self.seconds


def _script(operation: str, ids: list[str], token: str | None = None) -> str:
    body = {"read": READ, "search": SEARCH, "ingest": INGEST}[operation]
    prelude = "ids = {" + ",".join(f'"{i}"' for i in ids) + "}\n"
    body = body.replace("COUNT", str(PATIENTS)).replace("BUNDLE", str(BUNDLE))
    bearer = f', ["Authorization"] = "Bearer {token}"' if token else ""
    return prelude + body.replace("AUTHORIZATION", bearer) + DONE


def wrk(
    base: str,
    operation: str,
    ids: list[str],
    clients: int,
    seconds: float,
    token: str | None = None,
) -> tuple:
    """(requests, errors, seconds, p50 ms) of one wrk run (reads with ``token`` as their
    bearer token when one is given)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_script(operation, ids, token))
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
             "-s", script.name, base],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        os.unlink(script.name)
    found = re.search(r"RESULT (\d+) (\d+) ([\d.]+) ([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"wrk printed no result: {out[-500:]}")
    return int(found[1]), int(found[2]), float(found[3]), float(found[4])


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its descendants so far
    (/proc/PID/stat fields 14 and 15; children found through /proc/PID/task/*/children)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended meanwhile
    return total


def measured(pid: int, *args: Any) -> tuple:
    """``wrk(*args)``'s result with the CPU seconds process ``pid``'s tree spent in the
    run appended."""
    before = tree_cpu(pid)
    result = wrk(*args)
    return (*result, tree_cpu(pid) - before)


def patient_count(base: str) -> int:
    answer = httpx.get(f"{base}/fhir/Patient", params={"_summary": "count"}, timeout=120)
    answer.raise_for_status()
    total: int = answer.json()["total"]
    return total


def wait_until_up(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    """Return once ``url`` answers 200; kill ``process`` and raise when it ends or two
    minutes pass first."""
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.2)


def start_service(
    url: str, workers: int, workdir: Path, **settings: str
) -> tuple[subprocess.Popen[bytes], str]:
    """``serve --workers`` on ``url`` in ``workdir``, with further ``FHIR_SERVICE_*``
    ``settings`` (named without the prefix)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_SERVICE_")}
    env.update(FHIR_SERVICE_DATABASE_URL=url, FHIR_SERVICE_LOG_LEVEL="WARNING")
    env.update({f"FHIR_SERVICE_{name.upper()}": value for name, value in settings.items()})
    port = free_port()
    process = subprocess.Popen(
        [str(CLI), "serve", "--port", str(port), "--workers", str(workers)],
        cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_until_up(f"{base}/readyz", process, "the service")
    for _ in range(workers * 4):  # warm every process (packages, first queries)
        httpx.get(f"{base}/fhir/Patient/{'bench-0'}", timeout=120)
    return process, base


def settle(postgres_url: str | None, timeout: float = 60.0) -> None:
    """Wait for the work a previous run left behind: PostgreSQL writes its dirty buffers
    (``CHECKPOINT``; after a run of transactions it would do so during the next run), then
    until the machine is idle at least 90 % of one second (at most ``timeout`` seconds)."""
    if postgres_url:
        admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql("CHECKPOINT")
        finally:
            admin.dispose()
    deadline = time.monotonic() + timeout
    while _idle_share(1.0) < 0.9 and time.monotonic() < deadline:
        pass


def _idle_share(seconds: float) -> float:
    """The share of all cores' time idle during the next ``seconds`` (/proc/stat)."""

    def times() -> list[int]:
        with open("/proc/stat") as stat:
            return [int(field) for field in stat.readline().split()[1:]]

    before = times()
    time.sleep(seconds)
    spent = [b - a for a, b in zip(before, times(), strict=True)]
    return (spent[3] + spent[4]) / max(1, sum(spent))  # idle + iowait


def run_operations(
    target: str,
    database: str,
    base: str,
    ids: list[str],
    seconds: float,
    counted: bool,
    pid: int,
) -> list[Result]:
    results = []
    for operation in OPERATIONS:
        for clients in CLIENTS:
            wrk(base, operation, ids, clients, 1.0)  # warm-up
            before = patient_count(base) if counted and operation == "ingest" else 0
            requests, errors, elapsed, p50, cpu = measured(
                pid, base, operation, ids, clients, seconds
            )
            result = Result(
                target, database, operation, clients, requests, errors, elapsed, p50, cpu
            )
            if errors:
                raise RuntimeError(f"{target} {database} {operation} x{clients}: {errors} errors")
            if counted and operation == "ingest":
                grown = patient_count(base) - before
                # The warm-up's and this run's Bundles: whole ones, none lost or doubled.
                if grown % BUNDLE or grown < requests * BUNDLE:
                    raise RuntimeError(f"{target} {database} ingest: {grown} new Patients")
            results.append(result)
            print(
                f"{target:>12} {database:>10} {operation:>6} x{clients:<2} "
                f"{result.rate:>9,.0f}/s p50 {p50:.1f} ms",
                flush=True,
            )
    return results


def service_runs(database: str, url: str, workers: int, args: argparse.Namespace) -> list[Result]:
    ids = seed(url, PATIENTS)
    with tempfile.TemporaryDirectory() as tmp:
        process, base = start_service(url, workers, Path(tmp))
        try:
            return run_operations(
                f"ours x{workers}", database, base, ids, args.seconds, True, process.pid
            )
        finally:
            process.terminate()
            process.wait(timeout=60)


def smart_runs(url: str, workers: int, args: argparse.Namespace) -> list[Result]:
    """Reads by id at 16 clients against ``serve`` in smart mode, every request with one
    bearer token (ES384, signed with the service's own key as its token endpoint would):
    the production setting's cost. The rate limiter is set out of the way."""
    ids = [f"bench-{i}" for i in range(PATIENTS)]
    with tempfile.TemporaryDirectory() as tmp:
        key_path = Path(tmp) / "signing-key.json"
        generate_signing_key(key_path, "ES384")
        audience, issuer = "https://fhir.example/fhir", "https://fhir.example/auth"
        token, _ = issue_token(
            load_signing_key(key_path), issuer=issuer, audience=audience, client_id="bench",
            scope="system/Patient.rs", patient=None, lifetime=3600,
        )  # fmt: skip
        process, base = start_service(
            url, workers, Path(tmp), auth_mode="smart", auth_audience=audience,
            auth_issuer=issuer, auth_signing_key_path=str(key_path),
            rate_limit_per_minute=str(10**9),
        )  # fmt: skip
        try:
            wrk(base, "read", ids, 16, 1.0, token)
            requests, errors, elapsed, p50, cpu = measured(
                process.pid, base, "read", ids, 16, args.seconds, token
            )
            if errors:
                raise RuntimeError(f"ours x{workers} smart: {errors} errors")
            result = Result(
                f"ours x{workers} smart", "SQLite", "read", 16, requests, 0, elapsed, p50, cpu
            )
            print(f"{result.target:>14}     SQLite   read x16 {result.rate:>9,.0f}/s")
            return [result]
        finally:
            process.terminate()
            process.wait(timeout=60)


def peer_runs(args: argparse.Namespace) -> list[Result]:
    peer = start_peer()
    try:
        ids = []
        with httpx.Client(timeout=60) as client:
            for i in range(PATIENTS):
                body = {"resourceType": "Patient", "name": [{"family": f"Family{i}"}]}
                answer = client.post(f"{peer.base_url}/Patient", json=body)
                answer.raise_for_status()
                ids.append(answer.json()["id"])
        base = peer.base_url.removesuffix("/fhir")
        return run_operations("peer", "memory", base, ids, args.seconds, False, peer.process.pid)
    finally:
        peer.stop()


def floor_runs(workers: int, args: argparse.Namespace, durable: bool = False) -> list[Result]:
    """Reads against ``bench/floor_app.py`` served by uvicorn with ``workers`` processes:
    the reads per second the HTTP layer alone allows here, or with ``durable`` the
    reads per second of a bare read by id from SQLite with an audit row per request
    (every answered read's row checked stored after the runs)."""
    port = free_port()
    name = "durable floor" if durable else "floor"
    ids = [f"bench-{i}" for i in range(PATIENTS)] if durable else ["bench-0"]
    with tempfile.TemporaryDirectory() as tmp:
        database = str(Path(tmp) / "floor.sqlite3")
        env = dict(os.environ, FLOOR_DATABASE=database)
        if durable:
            seed_durable(database, ids)
        process = subprocess.Popen(
            [str(CLI.with_name("uvicorn")), "floor_app:durable_app" if durable else "floor_app:app",
             "--app-dir", str(ROOT / "bench"), "--port", str(port), "--workers", str(workers),
             "--http", "httptools", "--log-level", "warning", "--no-access-log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        results = []
        try:
            wait_until_up(f"{base}/fhir/Patient/bench-0", process, f"the {name} application")
            for clients in CLIENTS:
                wrk(base, "read", ids, clients, 1.0)
                requests, errors, elapsed, p50, cpu = measured(
                    process.pid, base, "read", ids, clients, args.seconds
                )
                if errors:
                    raise RuntimeError(f"{name} x{workers}: {errors} errors")
                result = Result(
                    f"{name} x{workers}", "SQLite" if durable else "none", "read", clients,
                    requests, 0, elapsed, p50, cpu,
                )  # fmt: skip
                print(f"{result.target:>12} {result.database:>10}   read x{clients:<2} "
                      f"{result.rate:>9,.0f}/s")  # fmt: skip
                results.append(result)
        finally:
            process.terminate()
            process.wait(timeout=30)
        if durable:
            _check_audited(database, sum(r.requests for r in results))
        return results


def _check_audited(database: str, answered: int) -> None:
    """Every read the durable floor answered in a measured run has its audit row (the
    warm-ups' rows come on top)."""
    with closing(sqlite3.connect(database)) as connection:
        (stored,) = connection.execute("SELECT count(*) FROM audit").fetchone()
    if stored < answered:
        raise RuntimeError(f"durable floor: {stored} audit rows for {answered} reads")


def cpu_table(results: list[Result], workers: int) -> list[str]:
    """Reads by id, 16 clients: the CPU each server's processes spent per request."""
    targets = [
        ("peer", "memory"),
        ("floor x1", "none"),
        (f"floor x{workers}", "none"),
        ("durable floor x1", "SQLite"),
        (f"durable floor x{workers}", "SQLite"),
        ("ours x1", "SQLite"),
        (f"ours x{workers}", "SQLite"),
        ("ours x1 smart", "SQLite"),
        (f"ours x{workers} smart", "SQLite"),
        ("ours x1", "PostgreSQL"),
        (f"ours x{workers}", "PostgreSQL"),
    ]
    lines = ["| server | database | reads/s | CPU µs per read |", "|---|---|---:|---:|"]
    for target, database in targets:
        for r in results:
            if (r.target, r.database, r.operation, r.clients) == (target, database, "read", 16):
                lines.append(
                    f"| {target} | {database} | {r.rate:,.0f} | {r.cpu_us_per_request:,.0f} |"
                )
    return lines


def floor_table(results: list[Result], workers: int) -> list[str]:
    """Reads by id: the peer, the two floors and ours (SQLite), side by side."""
    n = f"x{workers}"
    lines = [
        f"| clients | peer | floor x1 | floor {n} | durable floor x1 | durable floor {n} "
        f"| ours x1 | ours {n} | floor {n} / peer | durable floor {n} / peer "
        f"| ours {n} / floor {n} | ours {n} / durable floor {n} |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for clients in CLIENTS:
        peer = _find(results, "peer", "memory", "read", clients)
        floor1 = _find(results, "floor x1", "none", "read", clients)
        floor = _find(results, f"floor {n}", "none", "read", clients)
        durable1 = _find(results, "durable floor x1", "SQLite", "read", clients)
        durable = _find(results, f"durable floor {n}", "SQLite", "read", clients)
        one = _find(results, "ours x1", "SQLite", "read", clients)
        many = _find(results, f"ours {n}", "SQLite", "read", clients)
        lines.append(
            f"| {clients} | {peer:,.0f} | {floor1:,.0f} | {floor:,.0f} | {durable1:,.0f} "
            f"| {durable:,.0f} | {one:,.0f} | {many:,.0f} | {floor / peer:.2f} "
            f"| {durable / peer:.2f} | {many / floor:.2f} | {many / durable:.2f} |"
        )
    return lines


def _find(results: list[Result], target: str, database: str, operation: str, clients: int) -> float:
    for r in results:
        if (r.target, r.database, r.operation, r.clients) == (target, database, operation, clients):
            return r.rate
    return float("nan")


def table(results: list[Result], workers: int) -> list[str]:
    lines = [
        f"| operation | clients | database | ours x1 | ours x{workers} | x{workers} / x1 "
        "| peer | ours x{workers} / peer |".replace("{workers}", str(workers)),
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for operation in ("read", "search", "ingest"):
        for clients in CLIENTS:
            peer = _find(results, "peer", "memory", operation, clients)
            for database in ("SQLite", "PostgreSQL"):
                one = _find(results, "ours x1", database, operation, clients)
                many = _find(results, f"ours x{workers}", database, operation, clients)
                if one != one:  # not run
                    continue
                lines.append(
                    f"| {operation} | {clients} | {database} | {one:,.0f} | {many:,.0f} "
                    f"| {many / one:.2f} | {peer:,.0f} | {many / peer:.2f} |"
                )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--postgres-url", default=os.environ.get("FHIR_SERVICE_TEST_POSTGRES_URL"))
    parser.add_argument(
        "--operations", default=",".join(OPERATIONS), help="Comma-separated: read,search,ingest."
    )
    parser.add_argument("--no-peer", action="store_true", help="Skip the peer's runs.")
    parser.add_argument("--no-floor", action="store_true", help="Skip the bare HTTP layer's runs.")
    parser.add_argument("--no-write", action="store_true", help="Do not update RESULTS.md.")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench/concurrency.py needs wrk (Debian package wrk)")
    OPERATIONS[:] = [o for o in args.operations.split(",") if o]
    check = cpu_check()
    results = [] if args.no_peer else peer_runs(args)
    if "read" in OPERATIONS and not args.no_floor:
        for durable in (False, True):
            for workers in sorted({1, args.workers}):
                results += floor_runs(workers, args, durable)
    # Each database's 1- and N-process runs one after the other, each on a settled machine.
    for workers in (1, args.workers):
        settle(args.postgres_url)
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'concurrent.sqlite3'}"
            results += service_runs("SQLite", url, workers, args)
            if "read" in OPERATIONS:
                settle(args.postgres_url)
                results += smart_runs(url, workers, args)
    for workers in (1, args.workers) if args.postgres_url else ():
        settle(args.postgres_url)
        url, admin, name = _postgres(args.postgres_url)
        try:
            results += service_runs("PostgreSQL", url, workers, args)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()
    after = cpu_check()
    lines = table(results, args.workers)
    floor = floor_table(results, args.workers) if "read" in OPERATIONS else []
    cpu = cpu_table(results, args.workers) if "read" in OPERATIONS else []
    print("\n".join([*lines, "", *floor, "", *cpu]))
    if not args.no_write:
        write_section(
            START,
            END,
            [
                "## Concurrent clients, 1 and N processes, and the peer (`bench/concurrency.py`)",
                "",
                f"Run {date.today().isoformat()} on {machine()}; CPU check {check:.0f} ms "
                f"before, {after:.0f} ms after. wrk (one thread) on the same machine, "
                f"{args.seconds:g} s per figure after a 1 s warm-up; requests/s (ingest: "
                f"Patients/s, transactions of {BUNDLE}). Ours: `fhir-service serve --workers "
                f"1` and `--workers {args.workers}` with default settings (validation on "
                "write and the audit trail included); peer: Medplum's FHIR router in memory "
                "(tests/peer), no durable store, no validation, no audit. Each server "
                "started once the machine had settled (PostgreSQL checkpointed, the cores "
                "90 % idle). No run had a non-2xx answer; every ingest "
                "run's stored count grew by whole Bundles, none lost or doubled.",
                "",
                *lines,
                "",
                "Reads by id against two floors of the serving stack (`bench/floor_app.py`, "
                "served by uvicorn as `serve` is: httptools, same process count). The floor: "
                "an ASGI application answering every request with one Patient's bytes and "
                "nothing else, what no FastAPI application on uvicorn can exceed here. The "
                "durable floor: a bare ASGI application that reads the Patient by id from a "
                "SQLite file and queues one audit row per request for a writer thread "
                "(committed every 50 ms, as our audit trail is; every answered read's row "
                "checked stored), with no token, access scope, negotiation, FHIR error "
                "handling or security headers: the least a server with a durable read and "
                "an audit record per request does:",
                "",
                *floor,
                "",
                "What each server's processes spent per read by id at 16 clients (user and "
                "system CPU of the process tree from /proc, over the run; the PostgreSQL "
                'server\'s own processes not counted; "smart": `serve` in smart mode, each '
                "request with one ES384 bearer token, the rate limiter out of the way). wrk "
                "shares the same 2 cores, so reads/s is bounded by the sum of the server's "
                "and wrk's CPU per request:",
                "",
                *cpu,
            ],
        )


if __name__ == "__main__":
    main()
