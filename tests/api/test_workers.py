"""`fhir-service serve --workers 2` as a real process group on one database (a SQLite
file, then PostgreSQL), hit by concurrent clients: conditional creates make one
resource, If-Match lets exactly one writer of a version through, no answer is a 5xx,
and export jobs kicked off at once each finish once, with every resource once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.packages.cache import installed_cache
from tests.served import free_port

CLI = Path(sys.executable).with_name("fhir-service")
CLIENTS = 16
FHIR_JSON = "application/fhir+json"


def _children(pid: int) -> list[int]:
    """The serving processes started by ``pid`` (from /proc: its children started by
    multiprocessing's spawn, not its resource tracker)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(fields[1]) == pid and b"spawn_main" in cmdline:
                out.append(int(entry.name))
    return out


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`fhir-service serve --workers 2` on ``database_url``; yields its base URL and process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_SERVICE_")}
    env.update(
        FHIR_SERVICE_DATABASE_URL=database_url,
        FHIR_SERVICE_PACKAGE_CACHE=str(installed_cache()),
        FHIR_SERVICE_EXPORT_DIR=str(tmp_path / "exports"),
    )
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(CLI), "serve", "--port", str(port), "--workers", "2"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            # Both serving processes up, so that the requests below are spread over both.
            while len(_children(process.pid)) < 2:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            yield f"http://127.0.0.1:{port}", process
        finally:
            process.terminate()
            process.wait(timeout=30)
    assert "Traceback" not in log.read_text(), log.read_text()


def _concurrently(call: object, count: int = CLIENTS) -> list[httpx.Response]:
    """``call(i)`` from ``count`` threads at once, each with its own connection."""
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(call, range(count)))  # type: ignore[arg-type]


def test_two_processes_serve_and_a_killed_one_is_replaced(
    served: tuple[str, subprocess.Popen[bytes]],
) -> None:
    base, process = served
    first = _children(process.pid)
    assert len(first) == 2
    os.kill(first[0], signal.SIGKILL)
    deadline = time.monotonic() + 90
    while True:
        now = _children(process.pid)
        if len(now) == 2 and first[0] not in now:
            break
        assert time.monotonic() < deadline, now
        time.sleep(0.2)
    for _ in range(10):
        assert httpx.get(f"{base}/fhir/metadata", timeout=120).status_code == 200


def test_conditional_creates_from_many_clients_make_one_resource(
    served: tuple[str, subprocess.Popen[bytes]],
) -> None:
    base, _ = served
    value = uuid.uuid4().hex
    body = {"resourceType": "Patient", "identifier": [{"system": "urn:test", "value": value}]}

    def create(_: int) -> httpx.Response:
        with httpx.Client(timeout=60) as client:
            return client.post(
                f"{base}/fhir/Patient",
                json=body,
                headers={
                    "If-None-Exist": f"identifier=urn:test|{value}",
                    "Content-Type": FHIR_JSON,
                },
            )

    answers = _concurrently(create)
    statuses = sorted(r.status_code for r in answers)
    assert statuses.count(201) == 1, statuses
    assert set(statuses) <= {200, 201}, [r.text for r in answers if r.status_code >= 300]
    ids = {r.json()["id"] for r in answers}
    assert len(ids) == 1
    found = httpx.get(
        f"{base}/fhir/Patient", timeout=60, params={"identifier": f"urn:test|{value}"}
    ).json()
    assert found["total"] == 1


def test_if_match_lets_one_writer_of_a_version_through(
    served: tuple[str, subprocess.Popen[bytes]],
) -> None:
    base, _ = served
    created = httpx.post(
        f"{base}/fhir/Patient",
        timeout=60,
        json={"resourceType": "Patient", "active": True},
        headers={"Content-Type": FHIR_JSON},
    )
    assert created.status_code == 201
    pid = created.json()["id"]

    def update(i: int) -> httpx.Response:
        body = {"resourceType": "Patient", "id": pid, "name": [{"family": f"Writer{i}"}]}
        with httpx.Client(timeout=60) as client:
            return client.put(
                f"{base}/fhir/Patient/{pid}",
                json=body,
                headers={"If-Match": 'W/"1"', "Content-Type": FHIR_JSON},
            )

    answers = _concurrently(update)
    statuses = sorted(r.status_code for r in answers)
    assert statuses.count(200) == 1, statuses
    assert statuses.count(412) == CLIENTS - 1, statuses
    winner = next(r for r in answers if r.status_code == 200).json()["name"][0]["family"]
    current = httpx.get(f"{base}/fhir/Patient/{pid}", timeout=60).json()
    assert current["meta"]["versionId"] == "2"
    assert current["name"][0]["family"] == winner
    history = httpx.get(f"{base}/fhir/Patient/{pid}/_history", timeout=60).json()
    assert history["total"] == 2


def test_exports_kicked_off_at_once_each_finish_once(
    served: tuple[str, subprocess.Popen[bytes]],
) -> None:
    base, _ = served
    ids = []
    for i in range(20):
        r = httpx.post(
            f"{base}/fhir/Patient",
            timeout=60,
            json={"resourceType": "Patient", "name": [{"family": f"Export{i}"}]},
            headers={"Content-Type": FHIR_JSON},
        )
        assert r.status_code == 201
        ids.append(r.json()["id"])

    def kick_off(_: int) -> httpx.Response:
        with httpx.Client(timeout=60) as client:
            return client.get(
                f"{base}/fhir/$export",
                params={"_type": "Patient"},
                headers={"Accept": FHIR_JSON, "Prefer": "respond-async"},
            )

    # One export per client at a time: the kick-offs that find one queued or running are
    # 429 with Retry-After; every accepted one runs once, in one of the processes.
    answers = _concurrently(kick_off, 6)
    assert {r.status_code for r in answers} <= {202, 429}, [r.text for r in answers]
    assert all("Retry-After" in r.headers for r in answers if r.status_code == 429)
    kicked = [r for r in answers if r.status_code == 202]
    assert kicked
    deadline = time.monotonic() + 120
    for answer in kicked:
        status_url = answer.headers["Content-Location"]
        while True:
            status = httpx.get(status_url, timeout=60, headers={"Accept": "application/json"})
            if status.status_code == 200:
                break
            assert status.status_code == 202, status.text
            assert time.monotonic() < deadline
            time.sleep(0.3)
        manifest = status.json()
        assert manifest["error"] == []
        exported: list[str] = []
        for output in manifest["output"]:
            lines = httpx.get(output["url"], timeout=60).text.splitlines()
            exported.extend(httpx.Response(200, content=line).json()["id"] for line in lines)
        assert sorted(exported) == sorted(ids)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_serving_processes_end_with_a_killed_supervisor(
    served: tuple[str, subprocess.Popen[bytes]],
) -> None:
    base, process = served
    children = _children(process.pid)
    assert len(children) == 2
    process.kill()  # SIGKILL: no graceful shutdown of the children
    process.wait(timeout=30)
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in children):
        assert time.monotonic() < deadline, [pid for pid in children if _alive(pid)]
        time.sleep(0.1)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{base}/healthz", timeout=5)


def _sockets_by_state(port: int) -> dict[str, set[int]]:
    """Inodes of the TCP sockets whose local port is ``port``, by state ("listen",
    "established"), from /proc/net/tcp and tcp6
    (https://docs.kernel.org/networking/proc_net_tcp.html)."""
    states = {"0A": "listen", "01": "established"}
    found: dict[str, set[int]] = {"listen": set(), "established": set()}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] in states:
                found[states[fields[3]]].add(int(fields[9]))
    return found


def _socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets process ``pid`` holds open (/proc/PID/fd)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT spreads on Linux")
def test_connections_made_together_are_spread_over_the_serving_processes(
    served: tuple[str, subprocess.Popen[bytes]],
) -> None:
    """Each serving process listens with a socket of its own, the supervisor with none,
    and 64 keep-alive connections opened at once are spread over both processes (with one
    shared socket, the first process to wake could accept them all)."""
    base, process = served
    port = int(base.rsplit(":", 1)[1])
    children = _children(process.pid)
    deadline = time.monotonic() + 60
    while len(_sockets_by_state(port)["listen"]) < 2:
        assert time.monotonic() < deadline, _sockets_by_state(port)
        time.sleep(0.1)
    listening = _sockets_by_state(port)["listen"]
    assert not listening & _socket_inodes(process.pid)
    assert [len(listening & _socket_inodes(pid)) for pid in children] == [1, 1]

    connections = [socket.create_connection(("127.0.0.1", port)) for _ in range(64)]
    try:
        for connection in connections:
            connection.sendall(b"GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n")
        for connection in connections:  # every connection accepted and answered
            assert connection.recv(4096).startswith(b"HTTP/1.1 200")
        established = _sockets_by_state(port)["established"]
        held = [len(established & _socket_inodes(pid)) for pid in children]
        # Spread by a hash of each connection's ports: at least 16 of 64 each, but for
        # a chance below 1 in 10,000.
        assert sum(held) == 64 and min(held) >= 16, held
    finally:
        for connection in connections:
            connection.close()
