"""`fhir-service map CASE_FILE [-o OUT] [--bundle-type transaction|collection|document] [--strict]`.

After loading, every code written out in full in the case file is looked up in the
project's tables and the FHIR packages of the cache (mappings.case.codecheck); those
found nowhere are listed on stderr as unchecked, and ``--strict`` refuses them.
"""

from __future__ import annotations

import os
import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated

import orjson
import typer

from fhir_service.fhir.package_cache import Definitions, load_definitions
from fhir_service.fhir.packages import PackageError
from fhir_service.settings import Settings
from mappings.bundle import BUNDLE_TYPES, build_bundle
from mappings.case.codecheck import CodeUse, check_codes
from mappings.case.loader import CaseFileError, load_case
from mappings.case.model import Case


def write_json_atomically(path: Path, data: object) -> None:
    """Write ``data`` as pretty JSON to ``path`` via a temporary file: never half-written."""
    payload = orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def map_command(
    case_file: Annotated[Path, typer.Argument(help="The case file (YAML) to map.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the Bundle here (default stdout).")
    ] = None,
    bundle_type: Annotated[
        str, typer.Option("--bundle-type", help="transaction, collection or document.")
    ] = "transaction",
    anchor_date: Annotated[
        str | None,
        typer.Option(
            "--anchor-date", help="Calendar date of day 0 (default FHIR_SERVICE_ANCHOR_DATE)."
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Refuse codes found neither in the project's tables nor in a FHIR package.",
        ),
    ] = False,
) -> None:
    """Map a case file to a FHIR R4 Bundle (JSON)."""
    kind = next((t for t in BUNDLE_TYPES if t == bundle_type), None)
    if kind is None:
        typer.echo(
            "error: --bundle-type must be transaction, collection or document, "
            f"not {bundle_type!r}",
            err=True,
        )
        raise typer.Exit(2)
    try:
        anchor = date.fromisoformat(anchor_date) if anchor_date else Settings().anchor_date
    except ValueError:
        typer.echo(f"error: --anchor-date must be YYYY-MM-DD, not {anchor_date!r}", err=True)
        raise typer.Exit(2) from None
    try:
        case = load_case(case_file)
    except CaseFileError as exc:
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        if len(exc.problems) > 1:
            typer.echo(f"{len(exc.problems)} errors in {case_file}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        typer.echo(f"error: cannot read {case_file}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    unchecked = _report_codes(case)
    if strict and unchecked:
        typer.echo(
            f"error: --strict: {len(unchecked)} unchecked code(s) in {case_file}: "
            + "; ".join(str(u) for u in unchecked),
            err=True,
        )
        raise typer.Exit(1)
    bundle = build_bundle(case, anchor, kind)
    if output is None:
        typer.echo(orjson.dumps(bundle, option=orjson.OPT_INDENT_2).decode())
    else:
        write_json_atomically(output, bundle)
        typer.echo(f"wrote {len(bundle['entry'])} resources to {output}", err=True)


def _definitions() -> Definitions | None:
    try:
        return load_definitions(Settings().package_cache)
    except PackageError as exc:
        typer.echo(f"warning: codes not looked up in FHIR packages: {exc}", err=True)
        return None


def _report_codes(case: Case) -> list[CodeUse]:
    """Print which written-out codes were checked where; return the unchecked ones."""
    uses = check_codes(case, None)
    if any(not u.checked for u in uses):
        uses = check_codes(case, _definitions())
    for use in uses:
        if use.checked:
            typer.echo(f"checked: {use} in {use.found_in}", err=True)
    unchecked = [u for u in uses if not u.checked]
    for use in unchecked:
        typer.echo(f"unchecked (taken as written): {use}", err=True)
    return unchecked


def register(app: typer.Typer) -> None:
    """Add the `map` command."""
    app.command("map")(map_command)
