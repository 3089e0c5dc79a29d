"""A small asyncio HTTP proxy that injects faults in front of the peer server.

Every ``every``-th request gets the fault ``kind``:

- ``drop``: the connection is closed before the request is forwarded;
- ``delay``: the request is forwarded after a pause;
- ``429`` / ``503``: answered at once with that status and ``Retry-After: 1``;
- ``cut``: the request is forwarded (the peer applies it), then the response is cut
  half-way through its body and the connection closed.

Each response closes its connection, so every request is a fresh one.

``hold`` (seconds, settable while running): each POST is forwarded at once (the peer
applies it) and its response held back that long: the moment a client may be killed
after the remote committed and before the client heard of it.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import httpx


@dataclass
class FaultProxy:
    target: str  # e.g. http://127.0.0.1:1234
    kind: str
    every: int = 3
    delay: float = 0.3
    port: int = 0
    requests: int = 0
    faults: int = 0
    hold: float = 0.0

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> FaultProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._http = httpx.AsyncClient(base_url=self.target, timeout=60)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
            self.requests += 1
            fault = self.requests % self.every == 0
            if fault:
                self.faults += 1
            if fault and self.kind == "drop":
                return
            if fault and self.kind in ("429", "503"):
                writer.write(
                    f"HTTP/1.1 {self.kind} Busy\r\nRetry-After: 1\r\nContent-Length: 0\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
                await writer.drain()
                return
            if fault and self.kind == "delay":
                await asyncio.sleep(self.delay)
            forward = {k: v for k, v in headers.items() if k not in ("host", "content-length")}
            response = await self._http.request(method, target, content=body, headers=forward)
            payload = response.content
            if self.hold and method == "POST":
                await asyncio.sleep(self.hold)
            out = [f"HTTP/1.1 {response.status_code} {response.reason_phrase}"]
            for name, value in response.headers.items():
                if name.lower() not in (
                    "content-length",
                    "connection",
                    "keep-alive",
                    "transfer-encoding",
                ):
                    out.append(f"{name}: {value}")
            out += [f"Content-Length: {len(payload)}", "Connection: close", "", ""]
            writer.write("\r\n".join(out).encode("latin-1"))
            if fault and self.kind == "cut":
                writer.write(payload[: len(payload) // 2])
            else:
                writer.write(payload)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()
