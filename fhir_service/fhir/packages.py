"""FHIR NPM packages in the package cache layout, without any network access.

A package is named ``<id>#<version>`` and lives in ``<cache>/<id>#<version>/package/``
with its ``package.json`` manifest (https://hl7.org/fhir/packages.html). This module
reads manifests, lists what is installed, finds the dependencies that are missing,
and unpacks a package tarball that someone else fetched into the cache.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhir_service.errors import FhirServiceError

FETCH_NOTES = ".fhir-service-fetch.json"
"""File in the cache root recording why a package could not be fetched."""

INDEX_FILE = ".index.json"
_INDEX_FIELDS = ("resourceType", "id", "url", "version", "kind", "type")


class PackageError(FhirServiceError):
    """A FHIR package is missing from the cache or is not a valid package."""

    code = "not-found"


class PackageNotInstalled(PackageError):
    """A package the service needs is not in the cache: 503, since the request succeeds
    once the package is supplied (no restart needed); the message says how."""

    status = 503
    code = "transient"


@dataclass(frozen=True, order=True)
class PackageRef:
    """A package id and exact version, written ``id#version``."""

    id: str
    version: str

    @classmethod
    def parse(cls, text: str) -> PackageRef:
        """Parse ``id#version`` (``id@version`` is accepted too)."""
        sep = "#" if "#" in text else "@"
        name, _, version = text.partition(sep)
        if not name or not version:
            raise PackageError(f"Package must be written id#version, not {text!r}")
        return cls(name.strip(), version.strip())

    def __str__(self) -> str:
        return f"{self.id}#{self.version}"


@dataclass(frozen=True)
class PackageInfo:
    """An installed package: where it is and what it depends on."""

    ref: PackageRef
    directory: Path
    manifest: dict[str, Any] = field(compare=False, repr=False)

    @property
    def dependencies(self) -> list[PackageRef]:
        deps = self.manifest.get("dependencies") or {}
        return [PackageRef(name, str(version)) for name, version in deps.items()]


def package_dir(root: Path, ref: PackageRef) -> Path:
    """The ``package/`` folder of ``ref`` inside the cache at ``root``."""
    return root / str(ref) / "package"


def is_installed(root: Path, ref: PackageRef) -> bool:
    """Whether ``ref`` is unpacked in the cache (its manifest is present)."""
    return (package_dir(root, ref) / "package.json").is_file()


def read_manifest(directory: Path) -> dict[str, Any]:
    """The ``package.json`` of a ``package/`` folder."""
    try:
        data = json.loads((directory / "package.json").read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise PackageError(f"No readable package.json in {directory}: {exc}") from exc
    if not isinstance(data, dict) or "name" not in data or "version" not in data:
        raise PackageError(f"{directory}/package.json has no name and version")
    return data


def installed_packages(root: Path) -> list[PackageInfo]:
    """Every package unpacked in the cache at ``root``, sorted by id and version."""
    found: list[PackageInfo] = []
    if not root.is_dir():
        return found
    for entry in sorted(root.iterdir()):
        if "#" not in entry.name or not (entry / "package" / "package.json").is_file():
            continue
        ref = PackageRef.parse(entry.name)
        found.append(PackageInfo(ref, entry / "package", read_manifest(entry / "package")))
    return found


def missing_dependencies(root: Path) -> dict[PackageRef, list[PackageRef]]:
    """Dependencies of installed packages that are not installed: missing -> needed by."""
    installed = {info.ref for info in installed_packages(root)}
    missing: dict[PackageRef, list[PackageRef]] = {}
    for info in installed_packages(root):
        for dep in info.dependencies:
            if dep not in installed:
                missing.setdefault(dep, []).append(info.ref)
    return dict(sorted(missing.items()))


def fetch_notes(root: Path) -> dict[str, str]:
    """Recorded reasons why packages could not be fetched, by ``id#version``."""
    try:
        data = json.loads((root / FETCH_NOTES).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def record_fetch_notes(root: Path, notes: dict[str, str]) -> None:
    """Replace the recorded fetch failures (an empty dict removes the file)."""
    path = root / FETCH_NOTES
    if not notes:
        path.unlink(missing_ok=True)
        return
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(sorted(notes.items())), indent=2) + "\n", encoding="utf-8")


def build_index(directory: Path) -> dict[str, Any]:
    """A ``.index.json`` for a ``package/`` folder, as the FHIR package tools write it."""
    files: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.json")):
        if path.name in ("package.json", INDEX_FILE):
            continue
        try:
            resource = json.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, ValueError):
            continue
        if not isinstance(resource, dict) or "resourceType" not in resource:
            continue
        entry: dict[str, Any] = {"filename": path.name}
        entry.update({k: resource[k] for k in _INDEX_FIELDS if isinstance(resource.get(k), str)})
        files.append(entry)
    return {"index-version": 1, "files": files}


def install_tarball(root: Path, tarball: Path, expected: PackageRef | None = None) -> PackageRef:
    """Unpack a package tarball into ``<root>/<id>#<version>/package/``.

    The name and version come from the tarball's own ``package.json``; when
    ``expected`` is given they must match it. The package appears in the cache
    only once fully unpacked, with a ``.index.json`` written if it had none.
    """
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".unpack-") as tmp:
        staging = Path(tmp)
        try:
            with tarfile.open(tarball, "r:gz") as archive:
                archive.extractall(staging, filter="data")
        except (OSError, tarfile.TarError) as exc:
            raise PackageError(f"{tarball.name} is not a readable package tarball: {exc}") from exc
        content = staging / "package"
        if not content.is_dir():
            raise PackageError(f"{tarball.name} has no package/ folder")
        manifest = read_manifest(content)
        ref = PackageRef(str(manifest["name"]), str(manifest["version"]))
        if expected is not None and ref != expected:
            raise PackageError(f"{tarball.name} holds {ref}, not {expected}")
        if not (content / INDEX_FILE).is_file():
            index = build_index(content)
            (content / INDEX_FILE).write_text(json.dumps(index, indent=1), encoding="utf-8")
        target = root / str(ref)
        if is_installed(root, ref):
            return ref
        if target.exists():
            shutil.rmtree(target)
        target.mkdir()
        content.rename(target / "package")
    return ref


def install_directory(root: Path, directory: Path) -> PackageRef:
    """Copy an unpacked ``package/`` folder (a FHIR package the project ships as files)
    into ``<root>/<id>#<version>/package/``; an installed copy whose files differ is
    replaced, so the cache follows the shipped definitions."""
    manifest = read_manifest(directory)
    ref = PackageRef(str(manifest["name"]), str(manifest["version"]))
    target = package_dir(root, ref)
    shipped = sorted(p.name for p in directory.glob("*.json"))
    if is_installed(root, ref) and all(
        (target / name).is_file()
        and (target / name).read_bytes() == (directory / name).read_bytes()
        for name in shipped
    ):
        return ref
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".copy-") as tmp:
        staging = Path(tmp) / "package"
        shutil.copytree(directory, staging)
        index = build_index(staging)
        (staging / INDEX_FILE).write_text(json.dumps(index, indent=1), encoding="utf-8")
        home = root / str(ref)
        if home.exists():
            shutil.rmtree(home)
        home.mkdir()
        staging.rename(home / "package")
    return ref
