"""The application factory: ``create_app(settings) -> FastAPI``.

The FHIR REST API is served at ``/fhir`` (https://hl7.org/fhir/R4/http.html), health at
``/healthz`` and ``/readyz``. The store is opened when the application starts and
refuses a database whose schema is behind (run ``fhir-service db upgrade``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI

from fhir_service import __version__
from fhir_service.api import auth, docs, errors, jobs, openapi, ui
from fhir_service.api.head_requests import HeadAsGet
from fhir_service.api.read_shortcut import ReadShortcut
from fhir_service.api.routes import (
    bundle,
    crud,
    definitions,
    document,
    everything,
    export,
    health,
    history,
    metadata,
    reindex,
    search,
    sync,
    validate,
    view_export,
    views,
)
from fhir_service.api.routing import add_routes
from fhir_service.api.supervised import end_with_supervisor
from fhir_service.api.write_validation import AppValidator
from fhir_service.search import registry as search_registry
from fhir_service.settings import Settings
from fhir_service.storage import SqlStore

# The FHIR interactions, in matching order (the first route whose path and method fit wins).
FHIR_ROUTES = (
    metadata,
    bundle,
    history,
    validate,
    export,
    reindex,
    definitions,
    views,
    view_export,
    crud,
    everything,
    document,
    search,
)
# The job runner, started and stopped with the application, after the store is open.
WORKERS = (jobs.lifespan,)


def create_app(settings: Settings, *, store: SqlStore | None = None) -> FastAPI:
    """A FastAPI application for ``settings``; ``store`` replaces the one opened from
    ``settings.database_url`` (the caller then owns and closes it)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.validate_on_write != "off":
            app.state.validator.get()  # fails at start when the package cache is empty
        async with AsyncExitStack() as stack:
            if store is None:
                app.state.store = SqlStore.open(
                    settings.database_url,
                    pool_size=settings.process_pool_size(),
                    validation_workers=settings.validation_pool_size(),
                )
                stack.callback(app.state.store.close)
                if app.state.store.validation_pool is not None:
                    # Stopped here: uvicorn ends the process by its signal after shutdown,
                    # and no exit handler would run.
                    stack.callback(app.state.store.validation_pool.close)
            else:
                app.state.store = store
            stack.callback(app.state.security.close)
            for worker in WORKERS:
                await stack.enter_async_context(worker(app))
            yield

    app = FastAPI(
        title="fhir-service",
        version=__version__,
        description="FHIR R4 REST API",
        lifespan=lifespan,
        docs_url=None,  # served by fhir_service.api.docs, with local assets
        redoc_url=None,
        telemetry={
            "tracing": settings.opentelemetry,
            "metrics": settings.opentelemetry,
            "logs": settings.opentelemetry,
        },
    )
    app.state.settings = settings
    app.state.capabilities = {}
    app.state.started = datetime.now(UTC)
    app.state.validator = AppValidator(settings.package_cache)
    errors.install(app)
    openapi.install(app)
    # Added first, so innermost: reads by id pass the security layer, then skip the router.
    app.add_middleware(ReadShortcut, routes=app.router.routes)
    app.add_middleware(HeadAsGet)  # inside the security layer: audited as the HEAD it is
    auth.install(app, settings)
    search_registry.configure(settings.package_cache)
    app.state.fhir_routers = [module.router for module in FHIR_ROUTES]
    # The FHIR routes first: they are matched on every FHIR request, in order.
    for router in [
        *app.state.fhir_routers,
        health.router,
        ui.router,
        docs.router,
        sync.router,
        jobs.router,
    ]:
        add_routes(app, router)
    return app


def app_from_environment() -> FastAPI:
    """The application for the Settings of the environment (``FHIR_SERVICE_*``); the factory
    ``fhir-service serve`` hands to uvicorn as ``fhir_service.api.app:app_from_environment``.
    In a serving process of several (``FHIR_SERVICE_WORKERS`` > 1, set by ``serve``) it
    first ties the process's life to its supervisor's (``api.supervised``)."""
    settings = Settings()
    if (settings.workers or 1) > 1:
        end_with_supervisor()
    return create_app(settings)
