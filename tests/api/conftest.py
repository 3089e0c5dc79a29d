"""Fixtures of the REST tests: the app on a real database, in-process and over real HTTP."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi.testclient import TestClient

from fhir_service.api import create_app
from fhir_service.settings import Settings

BODY_LIMIT = 64 * 1024


def settings_for(url: str) -> Settings:
    return Settings(database_url=url, max_body_bytes=BODY_LIMIT, base_url=None)


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    """A TestClient on the app over an empty, upgraded database (SQLite, then PostgreSQL)."""
    with TestClient(create_app(settings_for(database_url))) as test_client:
        yield test_client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def live_server(database_url: str) -> Iterator[str]:
    """The app served by uvicorn on a free port in a background thread; yields the /fhir base."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings_for(database_url)),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/fhir"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
