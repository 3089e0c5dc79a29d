"""The list of command modules; each has ``register(app: typer.Typer)``."""

from __future__ import annotations

from types import ModuleType

from fhir_service.cli import (
    auth,
    db,
    demo,
    export,
    jobs,
    load,
    map,
    packages,
    reindex,
    serve,
    sync,
    validate,
    view,
)

MODULES: list[ModuleType] = [
    map,
    packages,
    db,
    load,
    serve,
    demo,
    validate,
    sync,
    auth,
    reindex,
    export,
    jobs,
    view,
]
