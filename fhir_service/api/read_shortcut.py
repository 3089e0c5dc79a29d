"""The read interaction (https://hl7.org/fhir/R4/http.html#read) reached past the router.

``GET /fhir/{type}/{id}`` is the request a FHIR server answers most. Through FastAPI it
passes the exception layer, the dependency exit stack, the match against every route
before it and the endpoint wrapper, which together cost more than the read. This ASGI
layer sits inside the security layer (the request is authenticated, audited and gets
its security headers as any other) and calls the read route's own endpoint
(``routes.crud.read``) directly when the router would pick that route: a GET whose path
no route before it matches fully, checked against those routes themselves.

Whatever the shortcut does not answer with a response (an unknown type, an invalid or
unknown id, a deleted resource, a database fault) it hands on untouched to the router,
which answers with the usual error handlers: a read has no side effect to repeat.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from fhir_service.api.deps import BASE_PATH
from fhir_service.api.routes import crud

_SHAPE = re.compile(re.escape(BASE_PATH) + r"/([A-Za-z]{1,64})/([A-Za-z0-9\-.]{1,64})")


def _may_match_a_read(route: BaseRoute) -> bool:
    methods = getattr(route, "methods", None)
    path: str = getattr(route, "path", "")
    if methods is not None and "GET" not in methods:
        return False
    if not path or ":path}" in path:  # a mount, or a parameter spanning segments
        return True
    return path.startswith(BASE_PATH + "/") and path.count("/") == BASE_PATH.count("/") + 2


class ReadShortcut:
    """The ASGI layer described in the module docstring; ``routes`` is the application's
    route list (read when the first request comes, when every route is in it)."""

    def __init__(self, app: ASGIApp, routes: list[BaseRoute]) -> None:
        self.app = app
        self.routes = routes
        self._before: tuple[re.Pattern[str], list[BaseRoute]] | None = None

    def _routes_before_read(self) -> tuple[re.Pattern[str], list[BaseRoute]]:
        """The routes ahead of the read route that could match a GET of two path segments
        under the base (the others cannot keep the router from choosing the read): the
        plain routes' path patterns as one alternation, and the other routes."""
        if self._before is None:
            endpoints = [getattr(route, "endpoint", None) for route in self.routes]
            ahead = self.routes[: endpoints.index(crud.read)]
            before = [route for route in ahead if _may_match_a_read(route)]
            patterns = [  # named groups unnamed: one alternation cannot repeat a name
                re.sub(r"\(\?P<\w+>", "(?:", route.path_regex.pattern)
                for route in before
                if hasattr(route, "path_regex")
            ]
            others = [route for route in before if not hasattr(route, "path_regex")]
            either = re.compile("|".join(f"(?:{pattern})" for pattern in patterns) or "(?!)")
            self._before = (either, others)
        return self._before

    def _is_read(self, scope: Scope) -> re.Match[str] | None:
        if scope["type"] != "http" or scope["method"] != "GET":
            return None
        shape = _SHAPE.fullmatch(scope["path"])
        if shape is None:
            return None
        plain, others = self._routes_before_read()
        if plain.match(scope["path"]):  # a GET route ahead: its path alone decides
            return None
        for route in others:  # not plain routes: let them match as the router would
            if route.matches(scope)[0] is Match.FULL:
                return None
        return shape

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        shape = self._is_read(scope)
        if shape is not None:
            try:
                response = await crud.read(shape[1], shape[2], Request(scope, receive))
            except Exception:  # answered by the router below, with its error handlers
                pass
            else:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
