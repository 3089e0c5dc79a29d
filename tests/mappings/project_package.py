"""A package cache holding the installed packages plus the project's extension package."""

from __future__ import annotations

import tarfile
from pathlib import Path

from fhir_service.fhir.packages import install_tarball

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DIR = REPO / "mappings" / "definitions" / "package"


def cache_with_project_package(installed: Path, tmp: Path) -> Path:
    """``tmp/cache``: links to every package of ``installed`` and the project package,
    installed from a tarball the way `fhir-service packages install --file` does."""
    root = tmp / "cache"
    root.mkdir()
    for package in installed.iterdir():
        if "#" in package.name and not package.name.startswith("fhir-service."):
            (root / package.name).symlink_to(package.resolve(), target_is_directory=True)
    tarball = tmp / "fhir-service.case.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(PACKAGE_DIR, arcname="package")
    install_tarball(root, tarball)
    return root
