"""`fhir-service load FILE...`: load case files and Bundles into the configured database.

Accepted inputs: case files (``.yaml``/``.yml``, mapped to a transaction Bundle),
Bundle JSON files (``transaction``, ``batch``, ``collection``/``document``), and
directories or tar archives (``.tar``, ``.tar.gz``, ``.tar.xz``) of Bundle JSON
files. Bundles holding only shared provider resources (Organization, Location,
Practitioner, PractitionerRole) load first, so conditional references to them
resolve (https://hl7.org/fhir/R4/http.html#trules). Each Bundle is one database
transaction (https://hl7.org/fhir/R4/http.html#transaction).

With ``--dedupe-providers`` (the default) plain POSTs of provider resources get
``ifNoneExist`` on their first identifier, so a provider repeated in many
Bundles is stored once; see docs/storage.md.

Every resource written is validated as the REST API validates it
(``FHIR_SERVICE_VALIDATE_ON_WRITE``, or ``--validate``; docs/validation.md): with
``reject`` a Bundle holding an invalid resource fails and the others go on; with ``warn``
everything is stored and the resources with errors are counted.
"""

from __future__ import annotations

import tarfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from fhir_service.api.write_validation import AppValidator, WriteCheck, write_check
from fhir_service.cli.first_need import prepare_packages
from fhir_service.errors import FhirServiceError
from fhir_service.fhir.bundle import add_identifier_conditions
from fhir_service.settings import Settings
from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope
from fhir_service.storage.errors import DatabaseError

PROVIDER_TYPES = frozenset({"Organization", "Location", "Practitioner", "PractitionerRole"})
CASE_SUFFIXES = (".yaml", ".yml")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz")


class LoadError(Exception):
    """An input that cannot be read or is not a Bundle or case file."""


@dataclass
class LoadReport:
    """Counts of one load run."""

    bundles: int = 0
    failed: list[str] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    not_valid: int = 0
    """Resources stored although validation found errors (``--validate warn``)."""

    @property
    def entries(self) -> int:
        return sum(self.statuses.values())


def _is_archive(path: Path) -> bool:
    return path.name.endswith(ARCHIVE_SUFFIXES)


def _parse(name: str, data: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise LoadError(f"{name}: not JSON: {exc}") from None
    if not isinstance(value, dict) or value.get("resourceType") != "Bundle":
        raise LoadError(f"{name}: not a FHIR Bundle")
    return value


def _case_bundle(path: Path, anchor_date: date) -> dict[str, Any]:
    try:
        from mappings.bundle import build_bundle
        from mappings.case.loader import CaseFileError, load_case
    except ImportError as exc:
        raise LoadError(f"{path}: case files cannot be mapped in this build: {exc}") from None
    try:
        case = load_case(path)
    except CaseFileError as exc:
        raise LoadError("\n".join(str(problem) for problem in exc.problems)) from None
    return build_bundle(case, anchor_date, bundle_type="transaction")


def iter_bundles(path: Path, *, anchor_date: date) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, Bundle) for each Bundle in a file, directory or tar archive, names sorted."""
    if path.is_dir():
        for child in sorted(path.iterdir()):
            if child.suffix == ".json" or child.name.endswith(CASE_SUFFIXES):
                yield from iter_bundles(child, anchor_date=anchor_date)
        return
    if path.name.endswith(CASE_SUFFIXES):
        yield str(path), _case_bundle(path, anchor_date)
        return
    try:
        if _is_archive(path):
            with tarfile.open(path, "r:*") as archive:
                members = sorted(
                    (m for m in archive.getmembers() if m.isfile() and m.name.endswith(".json")),
                    key=lambda m: m.name,
                )
                for member in members:
                    handle = archive.extractfile(member)
                    if handle is not None:
                        yield f"{path}:{member.name}", _parse(member.name, handle.read())
            return
        yield str(path), _parse(str(path), path.read_bytes())
    except (OSError, tarfile.TarError) as exc:
        raise LoadError(f"cannot read {path}: {exc}") from None


def is_provider_bundle(bundle: dict[str, Any]) -> bool:
    """True when every entry's resource is a shared provider resource."""
    entries = bundle.get("entry") or []
    return bool(entries) and all(
        isinstance(e, dict)
        and isinstance(e.get("resource"), dict)
        and e["resource"].get("resourceType") in PROVIDER_TYPES
        for e in entries
    )


def providers_first(
    paths: list[Path], *, anchor_date: date
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every Bundle of ``paths``: provider-only Bundles first, then the others.

    Two passes over the inputs, so large archives are never held in memory whole.
    """
    for path in paths:
        for item in iter_bundles(path, anchor_date=anchor_date):
            if is_provider_bundle(item[1]):
                yield item
    for path in paths:
        for item in iter_bundles(path, anchor_date=anchor_date):
            if not is_provider_bundle(item[1]):
                yield item


def as_transaction(bundle: dict[str, Any]) -> dict[str, Any]:
    """A collection or document Bundle as a transaction: PUT entries with an id, POST others."""
    entries = []
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        rtype, rid = resource.get("resourceType"), resource.get("id")
        request = (
            {"method": "PUT", "url": f"{rtype}/{rid}"} if rid else {"method": "POST", "url": rtype}
        )
        new_entry: dict[str, Any] = {"resource": resource, "request": request}
        if entry.get("fullUrl"):
            new_entry["fullUrl"] = entry["fullUrl"]
        entries.append(new_entry)
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def load_bundle(
    store: SqlStore,
    bundle: dict[str, Any],
    *,
    dedupe_providers: bool = True,
    check: WriteCheck | None = None,
) -> dict[str, Any]:
    """Load one Bundle in one database transaction; returns the response Bundle. ``check``
    validates every resource written (validation on write)."""
    kind = bundle.get("type")
    if kind in ("collection", "document"):
        bundle = as_transaction(bundle)
        kind = "transaction"
    if dedupe_providers:
        bundle = add_identifier_conditions(bundle, PROVIDER_TYPES)
    with store.begin(AccessScope.full(), before_write=check) as repo:
        if kind == "transaction":
            return repo.transaction(bundle)
        if kind == "batch":
            return repo.batch(bundle)
    raise LoadError(f"Bundle.type '{kind}' cannot be loaded (transaction, batch, collection)")


def load_all(
    store: SqlStore,
    bundles: Iterable[tuple[str, dict[str, Any]]],
    *,
    dedupe_providers: bool = True,
    echo: Any = None,
    checks: Callable[[], WriteCheck | None] = lambda: None,
) -> LoadReport:
    """Load Bundles one transaction each; a failing Bundle is reported and the rest go on.
    ``checks()`` gives each Bundle its validation on write (None: not validated)."""
    report = LoadReport()
    start = time.perf_counter()
    for name, bundle in bundles:
        check = checks()
        try:
            response = load_bundle(store, bundle, dedupe_providers=dedupe_providers, check=check)
        except (FhirServiceError, LoadError) as exc:
            report.failed.append(f"{name}: {exc}")
            if echo is not None:
                echo(f"failed {name}: {exc}")
            continue
        report.bundles += 1
        for entry in response.get("entry") or []:
            report.statuses[entry["response"]["status"]] += 1
        if check is not None:
            report.not_valid += check.not_valid
    report.seconds = time.perf_counter() - start
    return report


def load_command(
    files: Annotated[
        list[Path], typer.Argument(help="Case files, Bundles, folders, tar archives.")
    ],
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="Database URL (default FHIR_SERVICE_DATABASE_URL)."),
    ] = None,
    dedupe_providers: Annotated[
        bool,
        typer.Option(
            "--dedupe-providers/--no-dedupe-providers",
            help="Create Organization/Location/Practitioner(Role) once per identifier.",
        ),
    ] = True,
    validate: Annotated[
        str | None,
        typer.Option(
            "--validate",
            help="off, warn or reject (default FHIR_SERVICE_VALIDATE_ON_WRITE, reject).",
        ),
    ] = None,
) -> None:
    """Load case files and FHIR Bundles into the database, one transaction per Bundle."""
    settings = Settings()
    mode = validate or settings.validate_on_write
    if mode not in ("off", "warn", "reject"):
        typer.echo(f"error: --validate must be off, warn or reject, not {mode}", err=True)
        raise typer.Exit(2)
    for path in files:
        if not path.exists():
            typer.echo(f"error: {path} does not exist", err=True)
            raise typer.Exit(2)
    prepare_packages(settings, required=True)
    try:
        store = SqlStore.open(
            database_url or settings.database_url,
            validation_workers=settings.validation_pool_size(database_url),
        )
    except (FhirServiceError, DatabaseError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    validator = AppValidator(settings.package_cache)
    try:
        bundles = providers_first(files, anchor_date=settings.anchor_date)
        report = load_all(
            store,
            bundles,
            dedupe_providers=dedupe_providers,
            echo=lambda line: typer.echo(line, err=True),
            checks=lambda: write_check(validator, mode, settings.unknown_profiles, log_each=False),
        )
    except LoadError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        store.close()
    rate = report.entries / report.seconds if report.seconds else 0.0
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(report.statuses.items()))
    typer.echo(
        f"loaded {report.bundles} bundle(s), {report.entries} entries ({statuses}) "
        f"in {report.seconds:.1f}s, {rate:.0f} entries/s"
    )
    if report.not_valid:
        typer.echo(
            f"{report.not_valid} resource(s) stored with validation errors (--validate warn)",
            err=True,
        )
    if report.failed:
        typer.echo(f"{len(report.failed)} bundle(s) failed", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the `load` command."""
    app.command("load")(load_command)
