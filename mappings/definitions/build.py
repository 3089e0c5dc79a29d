"""Build the StructureDefinitions of the project's extensions (the ``package/`` folder here).

``python -m mappings.definitions.build`` writes ``package/package.json`` and one
``StructureDefinition-<id>.json`` per extension, with a differential and a snapshot
derived from R4's Extension (https://hl7.org/fhir/R4/extensibility.html#Extension,
https://hl7.org/fhir/R4/defining-extensions.html). The folder is a FHIR package
(https://hl7.org/fhir/packages.html): install it into the package cache with
``tar czf ext.tgz -C mappings/definitions package && fhir-service packages install --file
ext.tgz`` so the validator knows the extensions. docs/mapping.md, "Project extensions".
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from mappings.common import PROCEDURE_DURATION, PROJECT_EXTENSION, RELATIVE_TIME
from mappings.dosage import CYCLE_DAY

PACKAGE = Path(__file__).resolve().parent / "package"
NAME = "fhir-service.case"
VERSION = "1.0.0"
FHIR_VERSION = "4.0.1"
_EXT_BASE = "http://hl7.org/fhir/StructureDefinition/Extension"


def _element(
    path: str, id_: str, short: str, minimum: int, maximum: str, **more: Any
) -> dict[str, Any]:
    return {
        "id": id_,
        "path": path,
        "short": short,
        "definition": short,
        "min": minimum,
        "max": maximum,
        "base": {"path": path, "min": 0, "max": "*" if path.endswith(".extension") else "1"},
        **more,
    }


def _base_elements(prefix: str, id_prefix: str) -> list[dict[str, Any]]:
    return [
        _element(
            f"{prefix}.id",
            f"{id_prefix}.id",
            "Unique id for inter-element referencing",
            0,
            "1",
            type=[{"code": "http://hl7.org/fhirpath/System.String"}],
        ),
    ]


def _simple(
    ext_id: str,
    title: str,
    description: str,
    value_type: str,
    contexts: list[str],
    maximum: str = "1",
) -> dict[str, Any]:
    url = PROJECT_EXTENSION + ext_id
    elements = [
        _element("Extension", "Extension", title, 0, maximum),
        *_base_elements("Extension", "Extension"),
        _element(
            "Extension.extension",
            "Extension.extension",
            "No sub-extensions",
            0,
            "0",
            type=[{"code": "Extension"}],
        ),
        _element(
            "Extension.url",
            "Extension.url",
            "identifies the meaning of the extension",
            1,
            "1",
            type=[{"code": "http://hl7.org/fhirpath/System.String"}],
            fixedUri=url,
        ),
        _element(
            "Extension.value[x]", "Extension.value[x]", title, 1, "1", type=[{"code": value_type}]
        ),
    ]
    differential: list[dict[str, Any]] = [
        {"id": "Extension", "path": "Extension", "short": title, "definition": description},
        {"id": "Extension.extension", "path": "Extension.extension", "max": "0"},
        {"id": "Extension.url", "path": "Extension.url", "fixedUri": url},
        {
            "id": "Extension.value[x]",
            "path": "Extension.value[x]",
            "min": 1,
            "type": [{"code": value_type}],
        },
    ]
    return _sd(ext_id, title, description, contexts, elements, differential)


def _complex(
    ext_id: str,
    title: str,
    description: str,
    contexts: list[str],
    parts: list[tuple[str, str, int, str]],
) -> dict[str, Any]:
    url = PROJECT_EXTENSION + ext_id
    elements: list[dict[str, Any]] = [
        _element("Extension", "Extension", title, 0, "*"),
        *_base_elements("Extension", "Extension"),
        _element(
            "Extension.extension",
            "Extension.extension",
            "Parts of the extension",
            1,
            "*",
            type=[{"code": "Extension"}],
            slicing={"discriminator": [{"type": "value", "path": "url"}], "rules": "closed"},
        ),
    ]
    differential: list[dict[str, Any]] = [
        {"id": "Extension", "path": "Extension", "short": title, "definition": description},
    ]
    for name, value_type, minimum, short in parts:
        sid = f"Extension.extension:{name}"
        elements += [
            _element(
                "Extension.extension",
                sid,
                short,
                minimum,
                "1",
                sliceName=name,
                type=[{"code": "Extension"}],
            ),
            _element(
                "Extension.extension.extension",
                f"{sid}.extension",
                "No sub-extensions",
                0,
                "0",
                type=[{"code": "Extension"}],
            ),
            _element(
                "Extension.extension.url",
                f"{sid}.url",
                name,
                1,
                "1",
                type=[{"code": "http://hl7.org/fhirpath/System.String"}],
                fixedUri=name,
            ),
            _element(
                "Extension.extension.value[x]",
                f"{sid}.value[x]",
                short,
                1,
                "1",
                type=[{"code": value_type}],
            ),
        ]
        differential += [
            {
                "id": sid,
                "path": "Extension.extension",
                "sliceName": name,
                "short": short,
                "definition": short,
                "min": minimum,
                "max": "1",
            },
            {"id": f"{sid}.extension", "path": "Extension.extension.extension", "max": "0"},
            {"id": f"{sid}.url", "path": "Extension.extension.url", "fixedUri": name},
            {
                "id": f"{sid}.value[x]",
                "path": "Extension.extension.value[x]",
                "min": 1,
                "type": [{"code": value_type}],
            },
        ]
    elements += [
        _element(
            "Extension.url",
            "Extension.url",
            "identifies the meaning of the extension",
            1,
            "1",
            type=[{"code": "http://hl7.org/fhirpath/System.String"}],
            fixedUri=url,
        ),
        _element(
            "Extension.value[x]",
            "Extension.value[x]",
            "No value (a complex extension)",
            0,
            "0",
            type=[{"code": "string"}],
        ),
    ]
    differential += [
        {"id": "Extension.url", "path": "Extension.url", "fixedUri": url},
        {"id": "Extension.value[x]", "path": "Extension.value[x]", "max": "0"},
    ]
    return _sd(ext_id, title, description, contexts, elements, differential)


def _sd(
    ext_id: str,
    title: str,
    description: str,
    contexts: list[str],
    elements: list[dict[str, Any]],
    differential: list[dict[str, Any]],
) -> dict[str, Any]:
    for element in elements:
        element.setdefault("isModifier", False)
    return {
        "resourceType": "StructureDefinition",
        "id": ext_id,
        "url": PROJECT_EXTENSION + ext_id,
        "version": VERSION,
        "name": "".join(p.capitalize() for p in ext_id.split("-")),
        "title": title,
        "status": "active",
        "description": description,
        "fhirVersion": FHIR_VERSION,
        "kind": "complex-type",
        "abstract": False,
        "context": [{"type": "element", "expression": c} for c in contexts],
        "type": "Extension",
        "baseDefinition": _EXT_BASE,
        "derivation": "constraint",
        "snapshot": {"element": copy.deepcopy(elements)},
        "differential": {"element": differential},
    }


def definitions() -> list[dict[str, Any]]:
    """The project's extension definitions."""
    return [
        _complex(
            RELATIVE_TIME.removeprefix(PROJECT_EXTENSION),
            "Date derived from a relative time",
            "On a date or dateTime (or a Period's start or end) that was not in the source but "
            "computed from a time relative to the case's anchor (day 0): the relative time as "
            "recorded in the case file (e.g. 'month +9'), what day 0 is (e.g. 'day of "
            "surgery') and the calendar date day 0 was given when mapping.",
            ["Element"],
            [
                ("relativeTime", "string", 1, "The time as recorded, e.g. 'month +9', 'day 0'"),
                ("anchor", "string", 0, "What day 0 is, e.g. 'day of surgery'"),
                ("anchorDate", "date", 1, "The calendar date day 0 was resolved to"),
            ],
        ),
        _simple(
            PROCEDURE_DURATION.removeprefix(PROJECT_EXTENSION),
            "Procedure duration",
            "How long a procedure lasted (e.g. about 11 h), when the source gives its length "
            "but no clock times, so Procedure.performedPeriod cannot hold both ends.",
            "Duration",
            ["Procedure"],
        ),
        _simple(
            CYCLE_DAY.removeprefix(PROJECT_EXTENSION),
            "Day of a treatment cycle",
            "On a Timing whose repeat.period is a treatment cycle (e.g. 21 d): one day of the "
            "cycle (1 = its first day) on which the action is performed, repeated for each "
            "day (days 1 and 8 of a 21-day cycle: two extensions). The same meaning as R4's "
            "timing-daysOfCycle, whose context is limited to PlanDefinition.action and "
            "RequestGroup.action.",
            "integer",
            ["Timing"],
            maximum="*",
        ),
    ]


def manifest() -> dict[str, Any]:
    return {
        "name": NAME,
        "version": VERSION,
        "description": "Extensions of fhir-service's case mapping (docs/mapping.md)",
        "fhirVersions": [FHIR_VERSION],
        "dependencies": {"hl7.fhir.r4.core": FHIR_VERSION},
        "type": "fhir.ig",
        "license": "CC0-1.0",
    }


def write(directory: Path = PACKAGE) -> list[Path]:
    """Write the package folder; return the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {"package.json": manifest()}
    files |= {f"StructureDefinition-{sd['id']}.json": sd for sd in definitions()}
    out = []
    for name, content in files.items():
        path = directory / name
        path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        out.append(path)
    return out


if __name__ == "__main__":
    for written in write():
        print(written)
