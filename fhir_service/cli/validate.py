"""`fhir-service validate FILE... [--profile URL] [--format text|json]`.

Exit status: 0 when no issue is an error or fatal, 1 when one is, 2 on usage or
I/O errors. ``--format json`` prints one OperationOutcome per file (a JSON array
when several files are given); ``text`` prints one line per issue as the HL7
validator does: severity, location, line:col, message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer

from fhir_service.cli.first_need import install_project_package
from fhir_service.errors import FhirServiceError, Issue
from fhir_service.fhir.outcome import operation_outcome
from fhir_service.fhir.package_cache import load_definitions
from fhir_service.settings import Settings
from fhir_service.validation.engine import has_errors, validator_for
from fhir_service.validation.options import Options

CASE_SUFFIXES = (".yaml", ".yml")
_SEVERITY = {"fatal": "Fatal", "error": "Error", "warning": "Warning", "information": "Information"}


def _text_line(issue: Issue) -> str:
    """``  Error @ Patient.name[0] (line 5, col10): message``, as the HL7 validator prints."""
    where = issue.expression[0] if issue.expression else "(document)"
    at = f" (line {issue.line}, col{issue.column})" if issue.line is not None else ""
    severity = _SEVERITY.get(issue.severity, issue.severity)
    return f"  {severity} @ {where}{at}: {issue.diagnostics}"


def _summary(name: str, issues: list[Issue]) -> str:
    counts = {s: sum(1 for i in issues if i.severity == s) for s in ("fatal", "error", "warning")}
    verdict = "*FAILURE*" if has_errors(issues) else "Success"
    return (
        f"-- {name} --\n{verdict}: {counts['fatal'] + counts['error']} errors, "
        f"{counts['warning']} warnings, "
        f"{len(issues) - sum(counts.values())} notes"
    )


def validate_command(
    files: Annotated[list[Path], typer.Argument(help="FHIR JSON files to validate.")],
    profile: Annotated[
        list[str] | None,
        typer.Option("--profile", help="Also validate against this profile (canonical URL)."),
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="text (default) or json (OperationOutcome).")
    ] = "text",
    no_invariants: Annotated[
        bool, typer.Option("--no-invariants", help="Skip the FHIRPath invariants.")
    ] = False,
) -> None:
    """Validate FHIR R4 JSON resources; exit 1 when any has an error."""
    if output_format not in ("text", "json"):
        typer.echo(f"error: --format must be text or json, not {output_format!r}", err=True)
        raise typer.Exit(2)
    texts: list[tuple[Path, str]] = []
    for path in files:
        if path.suffix.lower() in CASE_SUFFIXES:
            typer.echo(
                f"error: {path} is a case file, not FHIR JSON; map it first: "
                f"`fhir-service map {path} --bundle-type collection -o bundle.json`, "
                "then `fhir-service validate bundle.json`",
                err=True,
            )
            raise typer.Exit(2)
        try:
            texts.append((path, path.read_text(encoding="utf-8-sig")))
        except (OSError, UnicodeDecodeError) as exc:
            typer.echo(f"error: cannot read {path}: {exc}", err=True)
            raise typer.Exit(2) from None
    try:
        cache = Settings().package_cache.expanduser()
        install_project_package(cache)
        validator = validator_for(load_definitions(cache))
    except FhirServiceError as exc:
        typer.echo(f"error: {exc.diagnostics}", err=True)
        raise typer.Exit(2) from None
    options = Options(invariants=not no_invariants, profiles=tuple(profile or ()))
    failed = False
    outcomes = []
    for path, text in texts:
        issues = validator.validate_text(text, options)
        failed = failed or has_errors(issues)
        if output_format == "json":
            outcomes.append(operation_outcome(issues))
            continue
        typer.echo(_summary(str(path), issues))
        for issue in issues:
            typer.echo(_text_line(issue))
    if output_format == "json":
        data = outcomes[0] if len(outcomes) == 1 else outcomes
        typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    raise typer.Exit(1 if failed else 0)


def register(app: typer.Typer) -> None:
    """Add the `validate` command."""
    app.command("validate")(validate_command)
