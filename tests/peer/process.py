"""Start and stop the external FHIR server of the sync tests (server.mjs) as a process.

The server listens on 127.0.0.1 on a free port that it picks itself (``--port 0``)
and prints ``listening <port>``; we then wait for ``GET /fhir/metadata`` and stop
it by its pid. ``npm ci`` installs the pinned packages on first use.

Two router versions, each pinned by its own lock file: ``ROUTER_4`` (the packages of
tests/peer, 4.5.2) and ``ROUTER_5`` (tests/peer/medplum-5, the current 5.2.x, which wants
Node 22: on Node 20 it runs with ``--experimental-websocket``). ``capabilities="bare"``
makes the peer's CapabilityStatement list no resource types (see server.mjs).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

PEER_DIR = Path(__file__).resolve().parent
ROUTER_4 = PEER_DIR
ROUTER_5 = PEER_DIR / "medplum-5"


def ensure_installed(folder: Path = ROUTER_4) -> None:
    """Install a folder's npm packages from its lock file when they are missing."""
    if (folder / "node_modules" / "@medplum" / "fhir-router").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed for the sync tests' peer server (Node.js 20)")
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=folder, check=True, capture_output=True
    )


def _node_flags(node: str) -> list[str]:
    """``--experimental-websocket`` on Node < 22 (Medplum 5 uses the global WebSocket)."""
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    major = int(version.stdout.strip().lstrip("v").split(".")[0])
    return ["--experimental-websocket"] if major < 22 else []


@dataclass
class Peer:
    """A running peer: its process and its FHIR base URL."""

    process: subprocess.Popen[bytes]
    base_url: str

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_peer(
    timeout: float = 60.0, *, router: Path = ROUTER_4, capabilities: str = "full"
) -> Peer:
    """Start server.mjs on a free loopback port and wait until /fhir/metadata answers."""
    ensure_installed(router)
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is needed for the sync tests' peer server")
    process = subprocess.Popen(
        [
            node,
            *_node_flags(node),
            str(PEER_DIR / "server.mjs"),
            "--port",
            "0",
            "--modules",
            str(router / "node_modules"),
            "--capabilities",
            capabilities,
        ],
        cwd=PEER_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode().strip()
    if not line.startswith("listening "):
        process.kill()
        raise RuntimeError(f"peer server did not start: {line!r}")
    base_url = f"http://127.0.0.1:{int(line.split()[1])}/fhir"
    peer = Peer(process, base_url)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base_url}/metadata", timeout=5).status_code == 200:
                return peer
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            peer.stop()
            raise RuntimeError("peer server did not answer /metadata in time")
        time.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_fhir_service(
    database_url: str, timeout: float = 60.0, settings: dict[str, str] | None = None
) -> Peer:
    """An instance of this service (`fhir-service serve`) in its own process on
    ``database_url``, with extra ``FHIR_SERVICE_*`` ``settings``: a remote that declares
    system history (for the history-based pull), or a replica whose sync worker is tested."""
    port = _free_port()
    env = {
        **os.environ,
        "FHIR_SERVICE_DATABASE_URL": database_url,
        "FHIR_SERVICE_AUTH_MODE": "open",
        "FHIR_SERVICE_LOG_LEVEL": "WARNING",
        **(settings or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "fhir_service", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    peer = Peer(process, f"http://127.0.0.1:{port}/fhir")
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{peer.base_url}/metadata", timeout=5).status_code == 200:
                return peer
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            peer.stop()
            raise RuntimeError("fhir-service serve did not answer /metadata in time")
        time.sleep(0.2)
