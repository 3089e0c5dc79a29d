"""The floor of the serving stack: an ASGI application that answers every request with
the same stored Patient's bytes and headers, doing nothing else (no routing, no
database, no security layer, no audit). ``bench/concurrency.py`` serves it with
uvicorn, as ``fhir-service serve`` is served, to show how many reads by id per second
the HTTP layer alone allows on the machine (https://asgi.readthedocs.io/en/latest/specs/www.html).
"""

from __future__ import annotations

import json

from starlette.types import Receive, Scope, Send

BODY = json.dumps(
    {
        "resourceType": "Patient",
        "id": "bench-0",
        "meta": {"versionId": "1", "lastUpdated": "2026-12-05T09:50:47.123456+00:00"},
        "name": [{"family": "Family0"}],
    },
    separators=(",", ":"),
).encode()
HEADERS = [
    (b"content-type", b"application/fhir+json"),
    (b"content-length", str(len(BODY)).encode()),
    (b"etag", b'W/"1"'),
    (b"last-modified", b"Sat, 05 Dec 2026 09:50:47 GMT"),
]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
