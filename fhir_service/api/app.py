"""The application factory: ``create_app(settings) -> FastAPI``.

The FHIR REST API is served at ``/fhir`` (https://hl7.org/fhir/R4/http.html), health at
``/healthz`` and ``/readyz``. The store is opened when the application starts and
refuses a database whose schema is behind (run ``fhir-service db upgrade``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI

from fhir_service import __version__
from fhir_service.api import auth, errors, ui
from fhir_service.api.deps import BASE_PATH
from fhir_service.api.routes import (
    bundle,
    crud,
    everything,
    export,
    health,
    history,
    metadata,
    reindex,
    search,
    sync,
    validate,
)
from fhir_service.api.write_validation import AppValidator
from fhir_service.search import registry as search_registry
from fhir_service.settings import Settings
from fhir_service.storage import SqlStore, Store


def create_app(settings: Settings, *, store: Store | None = None) -> FastAPI:
    """A FastAPI application for ``settings``; ``store`` replaces the one opened from
    ``settings.database_url`` (the caller then owns and closes it)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.validate_on_write != "off":
            app.state.validator.get()  # fails at start when the package cache is empty
        if store is not None:
            app.state.store = store
            try:
                yield
            finally:
                app.state.security.close()
            return
        opened = SqlStore.open(settings.database_url)
        app.state.store = opened
        try:
            yield
        finally:
            app.state.security.close()
            opened.close()

    app = FastAPI(
        title="fhir-service",
        version=__version__,
        description="FHIR R4 REST API",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.capabilities = {}
    app.state.started = datetime.now(UTC)
    app.state.validator = AppValidator(settings.package_cache)
    errors.install(app)
    app.include_router(health.router)
    app.include_router(ui.router)
    app.include_router(sync.router)
    auth.install(app, settings)
    app.state.fhir_routers = []
    search_registry.configure(settings.package_cache)
    for module in (metadata, bundle, history, validate, export, reindex, crud, everything, search):
        app.include_router(module.router, prefix=BASE_PATH, tags=["FHIR"])
        app.state.fhir_routers.append(module.router)
    return app


def app_from_environment() -> FastAPI:
    """The application for the Settings of the environment (``FHIR_SERVICE_*``); the factory
    ``fhir-service serve`` hands to uvicorn as ``fhir_service.api.app:app_from_environment``."""
    return create_app(Settings())
