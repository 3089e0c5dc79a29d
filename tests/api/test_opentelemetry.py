"""FastAPI's native OpenTelemetry instrumentation follows ``FHIR_SERVICE_OPENTELEMETRY``
(docs/deployment.md#opentelemetry): off by default, so no request pays for looking up the
global providers; on, FastAPI instruments requests with the configured providers."""

from __future__ import annotations

from fhir_service.api import create_app
from fhir_service.settings import Settings


def test_off_by_default_and_on_when_asked(sqlite_url: str) -> None:
    off = create_app(Settings(database_url=sqlite_url))
    on = create_app(Settings(database_url=sqlite_url, opentelemetry=True))
    kinds = ("tracing", "metrics", "logs")
    assert [off._telemetry[k] for k in kinds] == [False, False, False]  # type: ignore[literal-required]
    assert [on._telemetry[k] for k in kinds] == [True, True, True]  # type: ignore[literal-required]
    # Off, FastAPI skips its instrumentation for every request.
    assert off._native_telemetry.enabled() is False
