"""FHIRPath invariants: native forms agree with fhirpathpy, failures are reported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fhirpathpy import evaluate
from fhirpathpy.models import models

from fhir_service.fhir.package_cache import Definitions, load_definitions
from fhir_service.validation.elements import Constraint
from fhir_service.validation.engine import validate_resource
from fhir_service.validation.invariants import (
    _OPTIONS,
    NATIVE,
    InvariantEvaluator,
    root_names,
)
from fhir_service.validation.structure import InvariantSite, ResourceSite

SAMPLES: dict[str, list[dict[str, Any]]] = {
    "per-1": [
        {"start": "2020-01-01", "end": "2020-02-01"},
        {"start": "2020-03-01", "end": "2020-02-01"},
        {"start": "2020-01-01T10:00:00Z", "end": "2020-01-01T09:00:00Z"},
        {"start": "2020-01-01T10:00:00+02:00", "end": "2020-01-01T07:00:00Z"},
        {"start": "1960-01-01T00:00:00Z", "end": "1959-06-01T00:00:00Z"},
        {"start": "2020-01-01"},
        {},
    ],
    "qty-3": [{"code": "mg"}, {"code": "mg", "system": "http://unitsofmeasure.org"}, {"value": 1}],
    "cpt-2": [{"value": "555"}, {"value": "555", "system": "phone"}, {"use": "home"}],
    "bdl-5": [{"resource": {"resourceType": "Patient"}}, {"fullUrl": "urn:uuid:1"}],
    "bdl-8": [
        {"fullUrl": "http://a.org/Patient/1/_history/2"},
        {"fullUrl": "http://a.org/Patient/1"},
    ],
    "ext-1": [
        {"url": "u", "valueString": "x"},
        {"url": "u"},
        {"url": "u", "valueString": "x", "extension": [{"url": "v", "valueString": "y"}]},
    ],
    "obs-6": [
        {"dataAbsentReason": {"text": "x"}, "valueString": "y"},
        {"dataAbsentReason": {"text": "x"}},
        {"valueString": "y"},
    ],
    "dom-2": [
        {
            "resourceType": "Patient",
            "contained": [{"resourceType": "Patient", "contained": [{"resourceType": "Patient"}]}],
        },
        {"resourceType": "Patient", "contained": [{"resourceType": "Patient"}]},
    ],
    "dom-4": [
        {
            "resourceType": "Patient",
            "contained": [{"resourceType": "Patient", "meta": {"versionId": "1"}}],
        },
        {"resourceType": "Patient", "contained": [{"resourceType": "Patient"}]},
    ],
    "dom-5": [
        {
            "resourceType": "Patient",
            "contained": [{"resourceType": "Patient", "meta": {"security": [{"code": "R"}]}}],
        },
        {"resourceType": "Patient"},
    ],
    "bdl-7": [
        {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"fullUrl": "urn:uuid:1"}, {"fullUrl": "urn:uuid:1"}],
        },
        {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"fullUrl": "urn:uuid:1"}, {"fullUrl": "urn:uuid:2"}],
        },
        {
            "resourceType": "Bundle",
            "type": "history",
            "entry": [{"fullUrl": "urn:uuid:1"}, {"fullUrl": "urn:uuid:1"}],
        },
    ],
    "obs-7": [
        {
            "resourceType": "Observation",
            "code": {"coding": [{"system": "s", "code": "c"}]},
            "valueString": "x",
            "component": [{"code": {"coding": [{"system": "s", "code": "c"}]}}],
        },
        {
            "resourceType": "Observation",
            "code": {"coding": [{"system": "s", "code": "c"}]},
            "valueString": "x",
            "component": [{"code": {"coding": [{"system": "s", "code": "d"}]}}],
        },
    ],
}


def _site(value: dict[str, Any]) -> ResourceSite:
    return ResourceSite(value, str(value.get("resourceType", "Basic")), "X", "X", ())


BASE = {
    "per-1": "Period",
    "qty-3": "Quantity",
    "cpt-2": "ContactPoint",
    "bdl-5": "Bundle.entry",
    "bdl-8": "Bundle.entry",
    "ext-1": "Extension",
    "obs-6": "Observation",
}


@pytest.mark.parametrize(("key", "expression"), [k for k in NATIVE if k[0] in SAMPLES])
def test_native_constraints_agree_with_fhirpath(key: str, expression: str) -> None:
    for value in SAMPLES[key]:
        path = {"base": BASE[key], "expression": expression} if key in BASE else expression
        fp = evaluate(value, path, {"resource": value}, models["r4"], _OPTIONS)
        expected = fp != [False]
        assert NATIVE[(key, expression)](value, _site(value)) is expected, (key, value, fp)


def test_per_1_orders_instants_across_time_zones() -> None:
    # 10:00+02:00 is 08:00Z, before 09:00Z: the period is in order.
    period = {"start": "2020-01-01T10:00:00+02:00", "end": "2020-01-01T09:00:00Z"}
    per_1 = next(fn for (key, _), fn in NATIVE.items() if key == "per-1")
    assert per_1(period, _site({})) is True


def test_every_native_constraint_has_samples() -> None:
    assert {k for k, _ in NATIVE} - set(SAMPLES) == {"ref-1", "txt-2"}


def test_a_constraint_that_cannot_be_evaluated_is_reported() -> None:
    value = {"resourceType": "Basic", "code": {"text": "x"}}
    constraint = Constraint("tst-1", "error", "test", "code.noSuchFunction()", False)
    site = InvariantSite((constraint,), value, "Basic", "Basic", (), _site(value))
    evaluator = InvariantEvaluator()
    [finding] = evaluator.evaluate([site, site])
    assert finding.issue.severity == "information"
    assert "tst-1 could not be evaluated" in finding.issue.diagnostics
    assert "tst-1" in evaluator.not_evaluated


def test_root_names_are_the_children_read() -> None:
    assert root_names("code.empty() or system.exists()") == {"code", "system"}
    assert root_names("hasValue() or (children().count() > id.count())") is None
    assert root_names("contained.where(id = %resource.id).empty()") is None


@pytest.fixture(scope="module")
def defs(package_root: Path) -> Definitions:
    return load_definitions(package_root)


def test_que_12_follows_its_human_text(defs: Definitions) -> None:
    # que-12: "If there are more than one enableWhen, enableBehavior must be specified";
    # the published expression says "> 2", the human text (and the HL7 validator) "> 1".
    item = {
        "linkId": "3",
        "type": "boolean",
        "enableWhen": [
            {"question": "1", "operator": "exists", "answerBoolean": True},
            {"question": "2", "operator": "exists", "answerBoolean": True},
        ],
    }
    questionnaire = {"resourceType": "Questionnaire", "status": "draft", "item": [item]}
    found = [i for i in validate_resource(questionnaire, definitions=defs) if i.severity == "error"]
    assert [(i.expression, i.diagnostics[:26]) for i in found] == [
        (["Questionnaire.item[0]"], "Constraint failed: que-12:")
    ]
    item["enableBehavior"] = "all"
    assert [
        i for i in validate_resource(questionnaire, definitions=defs) if i.severity == "error"
    ] == []
