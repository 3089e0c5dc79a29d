"""Build small FHIR package tarballs on disk for the tests (https://hl7.org/fhir/packages.html)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any


def make_tarball(
    directory: Path,
    name: str,
    version: str,
    resources: list[dict[str, Any]],
    dependencies: dict[str, str] | None = None,
    with_index: bool = False,
) -> Path:
    """A gzipped tarball holding ``package/package.json`` and one file per resource."""
    files: dict[str, Any] = {
        "package.json": {"name": name, "version": version, "dependencies": dependencies or {}}
    }
    for resource in resources:
        files[f"{resource['resourceType']}-{resource['id']}.json"] = resource
    if with_index:
        files[".index.json"] = {
            "index-version": 1,
            "files": [
                {
                    "filename": f"{r['resourceType']}-{r['id']}.json",
                    "resourceType": r["resourceType"],
                    "id": r["id"],
                    "url": r.get("url"),
                    "version": r.get("version"),
                }
                for r in resources
            ],
        }
    path = directory / f"{name}-{version}.tgz"
    with tarfile.open(path, "w:gz") as archive:
        for filename, content in files.items():
            data = json.dumps(content).encode()
            info = tarfile.TarInfo(f"package/{filename}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def structure_definition(url: str, version: str, rid: str) -> dict[str, Any]:
    return {
        "resourceType": "StructureDefinition",
        "id": rid,
        "url": url,
        "version": version,
        "kind": "resource",
        "type": "Observation",
    }


def value_set(url: str, version: str, rid: str) -> dict[str, Any]:
    return {"resourceType": "ValueSet", "id": rid, "url": url, "version": version}
