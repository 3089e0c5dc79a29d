"""FHIR packages installed on first need by `demo`, `serve`, `load` and `db upgrade`.

The R4 core (and mCODE) are fetched into the package cache when missing, with
progress on stderr (docs/packages.md). When they cannot be had, the person is told
what is missing and how to supply it; commands that write the search index stop,
the others go on (the API then answers 503 where a package is needed).
"""

from __future__ import annotations

from pathlib import Path

import typer

from fhir_service.fhir.package_setup import ensure_packages, supply_instructions
from fhir_service.fhir.packages import install_directory
from fhir_service.search import registry as search_registry
from fhir_service.settings import Settings


def _stderr(line: str) -> None:
    typer.echo(line, err=True)


def prepare_packages(settings: Settings, *, required: bool) -> bool:
    """Install the missing default packages into ``settings.package_cache``; True when
    the R4 core is there. Without it: the instructions on stderr, and exit 2 when
    ``required`` (the search index of loaded resources could not be written)."""
    root = settings.package_cache.expanduser()
    search_registry.configure(root)
    install_project_package(root)
    setup = ensure_packages(root, progress=_stderr, fetch=settings.package_auto_install)
    if not setup.missing:
        return True
    _stderr(
        ("error: " if required and setup.core_missing else "warning: ") + supply_instructions(setup)
    )
    if setup.core_missing and required:
        raise typer.Exit(2)
    return not setup.core_missing


def install_project_package(root: Path) -> None:
    """The case mapping's own extension definitions (``fhir-service.case``), shipped with
    the project, into the cache at ``root``: no download, a copy when missing or changed."""
    from mappings.definitions import PACKAGE

    install_directory(root, PACKAGE)
