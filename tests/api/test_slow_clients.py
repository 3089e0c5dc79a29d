"""Slow and vanishing clients against `fhir-service serve` as a real process: a request
head that never ends closes the connection, a body that stalls answers 408, and a client
that disconnects mid-body is logged as such, without a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fhir_service.storage import upgrade
from tests.packages.cache import installed_cache
from tests.served import free_port

CLI = Path(sys.executable).with_name("fhir-service")
TIMEOUT = 1.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """`fhir-service serve` with 1 s header and body deadlines; yields its port and log."""
    tmp_path = tmp_path_factory.mktemp("slow")
    url = f"sqlite:///{tmp_path / 'fhir.sqlite3'}"
    upgrade(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_SERVICE_")}
    env.update(
        FHIR_SERVICE_DATABASE_URL=url,
        FHIR_SERVICE_PACKAGE_CACHE=str(installed_cache()),
        FHIR_SERVICE_HEADER_READ_TIMEOUT=str(TIMEOUT),
        FHIR_SERVICE_BODY_READ_TIMEOUT=str(TIMEOUT),
    )
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(CLI), "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                    break
                except httpx.TransportError:
                    assert process.poll() is None, log.read_text()
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.2)
            yield port, log
        finally:
            process.terminate()
            process.wait(timeout=30)


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def _answer(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    head, _, body = answer.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(4096)
    return answer


def test_a_request_head_that_never_ends_closes_the_connection(server: tuple[int, Path]) -> None:
    port, _log = server
    with _connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        started = time.monotonic()
        assert sock.recv(1024) == b""  # closed by the server
        assert time.monotonic() - started < TIMEOUT + 5


def test_a_slow_second_head_on_a_kept_connection_closes_it(server: tuple[int, Path]) -> None:
    """Requests on one connection over several deadlines are answered (the deadline is
    per head, not per connection), and a later head that never ends closes it."""
    port, _log = server
    with _connect(port) as sock:
        for _ in range(6):  # 6 requests 0.4 s apart: 2.4 deadlines on one connection
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _answer(sock).startswith(b"HTTP/1.1 200")
            time.sleep(0.4 * TIMEOUT)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        assert sock.recv(1024) == b""  # closed by the server
        waited = time.monotonic() - started
        assert TIMEOUT * 0.9 < waited < TIMEOUT + 5


def test_a_body_that_stalls_answers_408(server: tuple[int, Path]) -> None:
    port, _log = server
    head = (
        "POST /fhir HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\n"
        "Content-Length: 100\r\n\r\n"
    )
    with _connect(port) as sock:
        sock.sendall(head.encode() + b'{"resourceT')
        started = time.monotonic()
        answer = sock.recv(4096)
        assert time.monotonic() - started < TIMEOUT + 5
        while not answer.endswith(b"}"):
            more = sock.recv(4096)
            if not more:
                break
            answer += more
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b'"code":"timeout"' in answer


def test_a_client_gone_mid_body_is_no_unhandled_error(server: tuple[int, Path]) -> None:
    port, log = server
    head = (
        "POST /fhir HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\n"
        "Content-Length: 100000\r\n\r\n"
    )
    with _connect(port) as sock:
        sock.sendall(head.encode() + b'{"resourceType":"Bundle",')
        time.sleep(0.2)
    time.sleep(0.5)
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    text = log.read_text()
    assert "the client disconnected before its body arrived" in text, text
    assert "Traceback" not in text and "raised" not in text, text
