"""Routers added to the application as flat routes.

``FastAPI.include_router`` keeps an included router as one nested route that, since
FastAPI 0.16x, matches every request twice (to select the router, then to dispatch in
it): with fifteen routers this was a fifth of the cost of a read by id. The routers here
carry their own prefix and tags, so their routes are complete and go straight into the
application's route list, matched once, in the order they are added. Router lifespans are
not merged this way: ``create_app`` enters the background workers' lifespans itself.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """Append ``router``'s routes to ``app``'s own routes (https://www.starlette.io/routing/)."""
    app.router.routes.extend(router.routes)
