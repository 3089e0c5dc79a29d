"""HEAD (https://www.rfc-editor.org/rfc/rfc9110#section-9.3.2) on the FHIR API's reads.

A HEAD request is answered as the GET of the same target would be, with the same status
and headers (``ETag``, ``Last-Modified``, ``Content-Type``, ``Content-Length``) and no
content: a client checks whether a resource exists or changed without fetching it.

Only safe targets answer HEAD: paths under ``/fhir`` with no operation in them (read,
vread, search, history, ``/metadata``) and the health checks. An operation may act on a
GET (``$export`` starts an export), so a HEAD on one, or on any other path, goes on as
HEAD and meets the router's 405. This layer sits inside the security layer, which
authenticates and audits the request as the HEAD it is, and outside the read shortcut
and the router, which see a GET. The content the GET renders is left for the HTTP server
to drop, as for every HEAD (uvicorn sends none for a request whose method is HEAD, and
Starlette's responses rely on that too), so the headers, ``Content-Length`` included,
stay those of the GET.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from fhir_service.api.deps import BASE_PATH

HEALTH_PATHS = frozenset({"/healthz", "/readyz"})


def answers_head(path: str) -> bool:
    """Whether a HEAD on ``path`` is answered as its GET."""
    if path in HEALTH_PATHS:
        return True
    return (path == BASE_PATH or path.startswith(BASE_PATH + "/")) and "$" not in path


class HeadAsGet:
    """The ASGI layer described in the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD" or not answers_head(scope["path"]):
            await self.app(scope, receive, send)
            return
        await self.app({**scope, "method": "GET"}, receive, send)
