"""Offline ValueSet expansion with filters on CodeSystems of the core package
(https://hl7.org/fhir/R4/valueset.html#compose,
https://hl7.org/fhir/R4/valueset-filter-operator.html)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fhir_service.fhir.expansion import Expander
from fhir_service.fhir.package_cache import load_definitions
from tests.packages.cache import package_root

__all__ = ["package_root"]
ROLE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
MOOD = "http://terminology.hl7.org/CodeSystem/v3-ActMood"


def _codes(root: Path, url: str) -> set[str]:
    expansion = Expander(load_definitions(root)).expand(url)
    assert expansion.codes is not None, expansion.reason
    return {code for _, code in expansion.codes}


def test_is_a_takes_the_code_and_its_descendants(package_root: Path) -> None:
    # v3-FamilyMember: RoleCode is-a FAMMEMB (https://terminology.hl7.org/ValueSet-v3-FamilyMember.html)
    family = _codes(package_root, "http://terminology.hl7.org/ValueSet/v3-FamilyMember")
    assert {"FAMMEMB", "CHILD", "SIB", "BRO", "MTH", "GRMTH"} <= family
    assert "FRND" not in family, "a friend is no family member"
    siblings = _codes(package_root, "http://hl7.org/fhir/ValueSet/sibling-relationship-codes")
    assert {"SIB", "BRO", "SIS", "TWINBRO"} <= siblings
    assert "MTH" not in siblings


def test_descendent_of_leaves_the_code_out(package_root: Path) -> None:
    inactive = _codes(package_root, "http://hl7.org/fhir/ValueSet/inactive")
    assert "_ActMoodPredicate" not in inactive
    assert {"CRT", "EXPEC", "GOL", "RSK"} <= inactive
    assert "EVN" not in inactive


def test_is_not_a(package_root: Path) -> None:
    # patient-contactrelationship: v2-0131 is-not-a O
    relationship = _codes(package_root, "http://hl7.org/fhir/ValueSet/patient-contactrelationship")
    assert "O" not in relationship
    assert {"C", "E", "N"} <= relationship


def test_unexpandable_sets_say_why(package_root: Path) -> None:
    expander = Expander(load_definitions(package_root))
    snomed = expander.expand("http://hl7.org/fhir/ValueSet/condition-code")
    assert snomed.codes is None
    assert "http://snomed.info/sct" in snomed.reason
    undeclared = expander.expand("http://hl7.org/fhir/ValueSet/example-filter")
    assert undeclared.codes is None
    assert "acme-plasma" in undeclared.reason


class _Definitions:
    """A package with one CodeSystem and one ValueSet, given as data."""

    def __init__(self, code_system: dict[str, Any], value_set: dict[str, Any]) -> None:
        self._cs, self._vs = code_system, value_set

    def code_system(self, canonical: str) -> dict[str, Any] | None:
        return self._cs if canonical == self._cs["url"] else None

    def value_set(self, canonical: str) -> dict[str, Any] | None:
        return self._vs if canonical == self._vs["url"] else None


SHAPES: dict[str, Any] = {
    "url": "http://example.org/CodeSystem/shapes",
    "content": "complete",
    "property": [{"code": "sides", "type": "integer"}, {"code": "parent", "type": "code"}],
    "concept": [
        {"code": "shape"},
        {
            "code": "triangle",
            "property": [
                {"code": "sides", "valueInteger": 3},
                {"code": "parent", "valueCode": "shape"},
            ],
        },
        {
            "code": "square",
            "property": [
                {"code": "sides", "valueInteger": 4},
                {"code": "parent", "valueCode": "shape"},
            ],
        },
        {"code": "circle", "property": [{"code": "parent", "valueCode": "shape"}]},
    ],
}


def _filtered(*filters: dict[str, str]) -> set[str]:
    value_set: dict[str, Any] = {
        "url": "http://example.org/ValueSet/shapes",
        "compose": {"include": [{"system": SHAPES["url"], "filter": list(filters)}]},
    }
    expander = Expander(_Definitions(SHAPES, value_set))  # type: ignore[arg-type]
    expansion = expander.expand(value_set["url"])
    assert expansion.codes is not None, expansion.reason
    return {code for _, code in expansion.codes}


def test_property_filters() -> None:
    assert _filtered({"property": "sides", "op": "=", "value": "4"}) == {"square"}
    assert _filtered({"property": "sides", "op": "in", "value": "3,4"}) == {"triangle", "square"}
    assert _filtered({"property": "sides", "op": "exists", "value": "false"}) == {
        "shape",
        "circle",
    }
    assert _filtered({"property": "code", "op": "regex", "value": "s.*"}) == {"shape", "square"}
    # parent properties make the hierarchy; filters combine with AND
    assert _filtered(
        {"property": "concept", "op": "descendent-of", "value": "shape"},
        {"property": "code", "op": "regex", "value": "[a-z]*le"},
    ) == {"triangle", "circle"}
    assert _filtered({"property": "concept", "op": "generalizes", "value": "circle"}) == {
        "circle",
        "shape",
    }
