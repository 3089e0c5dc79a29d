"""Dates computed from the anchor carry the relative-time extension (docs/mapping.md)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from fhir_service.validation.engine import validate_json_text
from fhir_service.validation.profile import definitions_from_cache
from mappings.context import MappingContext
from tests.packages.cache import package_root

from .conftest import ANCHOR
from .project_package import PACKAGE_DIR, cache_with_project_package

__all__ = ["package_root"]

RELATIVE_TIME = "urn:fhir-service:StructureDefinition:relative-time"
CTX = MappingContext("ivc-leiomyosarcoma", ANCHOR)
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def find(resources: list[dict[str, Any]], rtype: str, key: str) -> dict[str, Any]:
    rid = CTX.resource_id(rtype, key)
    return next(r for r in resources if r["resourceType"] == rtype and r["id"] == rid)


def mark(element: dict[str, Any]) -> dict[str, Any]:
    (ext,) = [e for e in element["extension"] if e["url"] == RELATIVE_TIME]
    return {
        p["url"]: next(v for k, v in p.items() if k.startswith("value")) for p in ext["extension"]
    }


def test_month_12_is_marked_with_the_relative_time_and_its_anchor(
    resources: list[dict[str, Any]],
) -> None:
    # Case file: liver-metastases onset "month +12"; day 0 = the day of surgery = 2022-03-01.
    liver = find(resources, "Condition", "liver-metastases")
    assert liver["onsetDateTime"] == "2023-03-01"
    assert mark(liver["_onsetDateTime"]) == {
        "relativeTime": "month +12",
        "anchor": "day of surgery (ELRA, tumour resection and IVC reconstruction)",
        "anchorDate": "2022-03-01",
    }


def test_an_end_computed_from_a_length_quotes_both(resources: list[dict[str, Any]]) -> None:
    # ICU stay: start day 0, length 4 d -> end 2022-03-05, derived from both.
    icu = find(resources, "Encounter", "icu-stay")
    assert icu["period"]["end"] == "2022-03-05"
    assert mark(icu["period"]["_end"])["relativeTime"] == "day 0 + 4 d"
    assert mark(icu["period"]["_start"])["relativeTime"] == "day 0"


def _dates(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any], str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key.startswith("_"):
                continue  # the primitive's own extensions (the marks themselves)
            if isinstance(value, str) and DATE.match(value):
                yield f"{path}.{key}", node, key
            else:
                yield from _dates(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _dates(item, f"{path}[{i}]")


def test_every_clinical_date_is_marked_derived(resources: list[dict[str, Any]]) -> None:
    unmarked = []
    count = 0
    for resource in resources:
        if resource["resourceType"] in ("Provenance", "Composition"):
            continue  # when the record or the document was made, not a fact of the case
        for where, parent, key in _dates(resource):
            count += 1
            if RELATIVE_TIME not in json.dumps(parent.get(f"_{key}", {})):
                unmarked.append(f"{resource['resourceType']}{where}")
    assert count > 20
    assert unmarked == []


def test_the_extensions_are_defined_and_checked_by_the_validator(
    package_root: Path, tmp_path: Path
) -> None:
    names = {p.name for p in PACKAGE_DIR.iterdir()}
    assert {
        "package.json",
        "StructureDefinition-relative-time.json",
        "StructureDefinition-procedure-duration.json",
    } <= names
    definitions = definitions_from_cache(cache_with_project_package(package_root, tmp_path))
    procedure = {
        "resourceType": "Procedure",
        "status": "completed",
        "subject": {"reference": "Patient/p"},
        "performedDateTime": "2022-03-01",
        "_performedDateTime": {
            "extension": [
                {
                    "url": RELATIVE_TIME,
                    "extension": [
                        {"url": "relativeTime", "valueString": "day 0"},
                        {"url": "anchorDate", "valueDate": "2022-03-01"},
                    ],
                }
            ]
        },
        "extension": [
            {
                "url": "urn:fhir-service:StructureDefinition:procedure-duration",
                "valueDuration": {"value": 11, "system": "http://unitsofmeasure.org", "code": "h"},
            }
        ],
    }

    def errors(resource: dict[str, Any]) -> list[str]:
        issues = validate_json_text(orjson.dumps(resource).decode(), definitions=definitions)
        return [str(i.diagnostics) for i in issues if i.severity in ("error", "fatal")]

    assert errors(procedure) == []
    wrong = json.loads(json.dumps(procedure))
    wrong["extension"][0] = {"url": wrong["extension"][0]["url"], "valueString": "11 h"}
    assert any("procedure-duration" in e for e in errors(wrong))


def test_the_committed_extension_package_is_what_the_builder_writes(tmp_path: Path) -> None:
    from mappings.definitions.build import write

    for path in write(tmp_path):
        assert (PACKAGE_DIR / path.name).read_text(encoding="utf-8") == path.read_text(
            encoding="utf-8"
        ), path.name
