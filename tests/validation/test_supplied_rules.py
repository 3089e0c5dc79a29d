"""Rules that need resources supplied with a validation run: questionnaires, profiles
given only as a differential, code systems; and the URN formats of uri values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fhir_service.fhir.package_cache import Definitions, load_definitions
from fhir_service.validation.engine import validate_resource
from fhir_service.validation.supplied import SuppliedDefinitions

EXT = "http://hl7.org/fhir/StructureDefinition/"


@pytest.fixture(scope="module")
def base(package_root: Path) -> Definitions:
    return load_definitions(package_root)


def errors(resource: dict[str, Any], defs: Definitions) -> list[tuple[str, str]]:
    return [
        (i.expression[0] if i.expression else "", i.diagnostics)
        for i in validate_resource(resource, definitions=defs)
        if i.severity in ("error", "fatal")
    ]


QUESTIONNAIRE = {
    "resourceType": "Questionnaire",
    "url": "http://example.org/Questionnaire/q",
    "status": "active",
    "item": [
        {
            "linkId": "age",
            "type": "integer",
            "required": True,
            "extension": [{"url": EXT + "minValue", "valueInteger": 18}],
        },
        {"linkId": "name", "type": "string", "maxLength": 5},
        {"linkId": "note", "type": "display", "text": "Thanks"},
        {
            "linkId": "colour",
            "type": "choice",
            "answerOption": [
                {"valueCoding": {"system": "http://example.org/c", "code": "red"}},
                {"valueCoding": {"system": "http://example.org/c", "code": "blue"}},
            ],
        },
    ],
}


def response(*items: dict[str, Any], status: str = "completed") -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": QUESTIONNAIRE["url"],
        "status": status,
        **({"item": list(items)} if items else {}),
    }


def test_a_conforming_response_has_no_error(base: Definitions) -> None:
    defs = SuppliedDefinitions(base, [QUESTIONNAIRE])
    answer = response(
        {"linkId": "age", "answer": [{"valueInteger": 40}]},
        {"linkId": "name", "answer": [{"valueString": "Ann"}]},
        {
            "linkId": "colour",
            "answer": [{"valueCoding": {"system": "http://example.org/c", "code": "red"}}],
        },
    )
    assert errors(answer, defs) == []


def test_answers_are_checked_against_their_items(base: Definitions) -> None:
    defs = SuppliedDefinitions(base, [QUESTIONNAIRE])
    answer = response(
        {"linkId": "age", "answer": [{"valueInteger": 12}, {"valueInteger": 30}]},
        {"linkId": "name", "answer": [{"valueBoolean": True}]},
        {"linkId": "note", "answer": [{"valueString": "x"}]},
        {
            "linkId": "colour",
            "answer": [{"valueCoding": {"system": "http://example.org/c", "code": "green"}}],
        },
        {"linkId": "nope"},
    )
    found = dict(errors(answer, defs))
    assert set(found) == {
        "QuestionnaireResponse.item[0]",  # two answers to a non-repeating item
        "QuestionnaireResponse.item[0].answer[0].value.ofType(integer)",  # 12 < 18
        "QuestionnaireResponse.item[1].answer[0].value.ofType(boolean)",  # not a string
        "QuestionnaireResponse.item[2]",  # display items take no answer
        "QuestionnaireResponse.item[3].answer[0]",  # green is not an option
        "QuestionnaireResponse",  # linkId nope is not in the questionnaire
    }
    assert (
        "less than the allowed minimum of 18"
        in found["QuestionnaireResponse.item[0].answer[0].value.ofType(integer)"]
    )


def test_a_missing_required_answer_is_an_error_only_once_completed(base: Definitions) -> None:
    defs = SuppliedDefinitions(base, [QUESTIONNAIRE])
    assert errors(response(), defs) == [
        ("QuestionnaireResponse", "No response answer found for required item 'age'")
    ]
    assert errors(response(status="in-progress"), defs) == []


def test_an_unknown_questionnaire_is_not_checked(base: Definitions) -> None:
    assert errors(response({"linkId": "nope"}), base) == []


def test_a_differential_only_profile_is_checked_through_its_generated_snapshot(
    base: Definitions,
) -> None:
    profile = {
        "resourceType": "StructureDefinition",
        "url": "http://example.org/StructureDefinition/named-patient",
        "name": "NamedPatient",
        "status": "active",
        "kind": "resource",
        "abstract": False,
        "type": "Patient",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
        "derivation": "constraint",
        "differential": {
            "element": [
                {"id": "Patient.name", "path": "Patient.name", "min": 1},
                {"id": "Patient.name.family", "path": "Patient.name.family", "min": 1},
            ]
        },
    }
    defs = SuppliedDefinitions(base, [profile])
    patient: dict[str, Any] = {"resourceType": "Patient", "meta": {"profile": [profile["url"]]}}
    assert [where for where, _ in errors(patient, defs)] == ["Patient"]
    patient["name"] = [{"given": ["Ann"]}]
    assert [where for where, _ in errors(patient, defs)] == ["Patient.name[0]"]
    patient["name"] = [{"family": "Lee"}]
    assert errors(patient, defs) == []


def test_codings_of_a_complete_code_system_and_of_a_supplement(base: Definitions) -> None:
    system = "http://example.org/CodeSystem/colours"
    colours = {
        "resourceType": "CodeSystem",
        "url": system,
        "status": "active",
        "content": "complete",
        "concept": [{"code": "red", "display": "Red", "concept": [{"code": "dark-red"}]}],
    }
    extra = {
        "resourceType": "CodeSystem",
        "url": system + "-extra",
        "status": "active",
        "content": "supplement",
        "supplements": system,
    }
    defs = SuppliedDefinitions(base, [colours, extra])

    def observation(system: str, code: str) -> dict[str, Any]:
        return {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": system, "code": code}]},
        }

    assert errors(observation(system, "dark-red"), defs) == []
    coded = observation(system, "red")
    coded["code"]["coding"][0]["display"] = " red "  # case and spacing do not matter
    assert errors(coded, defs) == []
    coded["code"]["coding"][0]["display"] = "Blue"
    assert [w for w, _ in errors(coded, defs)] == ["Observation.code.coding[0].display"]
    from fhir_service.validation.options import Options

    lenient = validate_resource(
        coded, definitions=defs, options=Options(display_issues_are_warnings=True)
    )
    assert [(i.severity, i.expression) for i in lenient if "Display" in i.diagnostics] == [
        ("warning", ["Observation.code.coding[0].display"])
    ]
    assert [w for w, _ in errors(observation(system, "green"), defs)] == [
        "Observation.code.coding[0].code"
    ]
    assert [w for w, _ in errors(observation(system + "-extra", "red"), defs)] == [
        "Observation.code.coding[0].system"
    ]


@pytest.mark.parametrize(
    ("uri", "valid"),
    [
        ("urn:uuid:c757873d-ec9a-4326-a141-556f43239520", True),
        ("urn:uuid:C757873D-EC9A-4326-A141-556F43239520", False),
        ("urn:uuid:c757873d-ec9a-4326-a141-556f4323952", False),
        ("urn:oid:2.16.840.1.113883", True),
        ("urn:oid:2.16.840.01", False),
    ],
)
def test_urn_uris(base: Definitions, uri: str, valid: bool) -> None:
    patient = {"resourceType": "Patient", "identifier": [{"system": uri, "value": "1"}]}
    assert (errors(patient, base) == []) is valid


def test_canonical_urls_are_absolute(base: Definitions) -> None:
    value_set = {
        "resourceType": "ValueSet",
        "url": "ValueSet/colours",
        "status": "active",
        "compose": {"include": [{"system": "#cs"}, {"system": "http://example.org/cs"}]},
    }
    assert sorted(w for w, _ in errors(value_set, base)) == [
        "ValueSet.compose.include[0]",
        "ValueSet.url",
    ]
    value_set["url"] = "urn:uuid:6a2ee390-978e-42c6-8f88-c17dff3bd8a3"
    value_set["compose"] = {"include": [{"system": "http://example.org/cs"}]}
    assert errors(value_set, base) == []


def test_period_start_and_end_of_different_precision(base: Definitions) -> None:
    def encounter(start: str, end: str) -> dict[str, Any]:
        return {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "period": {"start": start, "end": end},
        }

    # Same day: the order is unknown at the common precision, so per-1 is not true.
    assert [w for w, _ in errors(encounter("2023-06-21", "2023-06-21T06:20:00Z"), base)] == [
        "Encounter.period"
    ]
    assert errors(encounter("2023-06-20", "2023-06-21T06:20:00Z"), base) == []


def test_search_parameter_and_capability_statement_rules(base: Definitions) -> None:
    composite = {
        "resourceType": "SearchParameter",
        "url": "http://example.org/SearchParameter/rel",
        "name": "rel",
        "status": "active",
        "description": "x",
        "code": "rel",
        "base": ["Patient"],
        "type": "composite",
        "expression": "Organization.name",
        "derivedFrom": "http://hl7.org/fhir/SearchParameter/Organization-name",
    }
    found = errors(composite, base)
    texts = " ".join(t for _, t in found)
    assert "two or more components" in texts
    assert "'Organization' is not valid" in texts
    assert "Patient is not listed as a base" in texts
    assert "different to the type" in texts
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2024-01-01",
        "kind": "instance",
        "implementation": {"description": "x"},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "resource": [
                    {
                        "type": "Organization",
                        "searchParam": [
                            {
                                "name": "name",
                                "definition": "http://hl7.org/fhir/SearchParameter/Organization-name",
                                "type": "date",
                            }
                        ],
                    }
                ],
            }
        ],
    }
    assert [w for w, _ in errors(statement, base)] == [
        "CapabilityStatement.rest[0].resource[0].searchParam[0]"
    ]
    statement["rest"][0]["resource"][0]["searchParam"][0]["type"] = "string"
    assert errors(statement, base) == []


def test_implementation_guide_global_profiles_apply(base: Definitions) -> None:
    profile = {
        "resourceType": "StructureDefinition",
        "url": "http://example.org/StructureDefinition/active-patient",
        "name": "ActivePatient",
        "status": "active",
        "kind": "resource",
        "abstract": False,
        "type": "Patient",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
        "derivation": "constraint",
        "differential": {"element": [{"id": "Patient.active", "path": "Patient.active", "min": 1}]},
    }
    guide = {
        "resourceType": "ImplementationGuide",
        "url": "http://example.org/ImplementationGuide/ig",
        "name": "IG",
        "status": "active",
        "packageId": "example.ig",
        "fhirVersion": ["4.0.1"],
        "global": [{"type": "Patient", "profile": profile["url"]}],
    }
    defs = SuppliedDefinitions(base, [profile, guide])
    assert [w for w, _ in errors({"resourceType": "Patient"}, defs)] == ["Patient"]
    assert errors({"resourceType": "Patient", "active": True}, defs) == []


def test_code_system_properties_and_value_set_filters(base: Definitions) -> None:
    system = "http://example.org/CodeSystem/props"
    cs = {
        "resourceType": "CodeSystem",
        "url": system,
        "status": "active",
        "content": "complete",
        "property": [
            {
                "code": "notSelectable",
                "uri": "http://hl7.org/fhir/concept-properties#notSelectable",
                "type": "boolean",
            },
            {"code": "notSelectable", "type": "boolean"},
            {"code": "rel", "type": "Coding"},
        ],
        "concept": [
            {"code": "a", "property": [{"code": "notSelectable", "valueInteger": 1}]},
            {"code": "b"},
        ],
    }
    assert sorted(w for w, _ in errors(cs, base)) == [
        "CodeSystem.concept[0].property[0]",  # an integer where a boolean is declared
        "CodeSystem.property[1]",  # the code notSelectable again
    ]

    def value_set(value: str) -> dict[str, Any]:
        return {
            "resourceType": "ValueSet",
            "url": "http://example.org/ValueSet/v",
            "status": "active",
            "compose": {
                "include": [
                    {"system": system, "filter": [{"property": "rel", "op": "=", "value": value}]}
                ]
            },
        }

    defs = SuppliedDefinitions(base, [cs])
    assert errors(value_set(f"{system}#a"), defs) == []
    assert [w for w, _ in errors(value_set("a"), defs)] == ["ValueSet.compose.include[0].filter[0]"]
    assert [w for w, _ in errors(value_set(f"{system}#zz"), defs)] == [
        "ValueSet.compose.include[0].filter[0]"
    ]


def test_coding_systems_are_absolute_code_systems(base: Definitions) -> None:
    def observation(system: str) -> dict[str, Any]:
        return {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": system, "code": "x"}]},
        }

    assert [w for w, _ in errors(observation("local-codes"), base)] == [
        "Observation.code.coding[0].system"
    ]
    # A ValueSet's canonical URL is not a code system.
    assert [
        w for w, _ in errors(observation("http://hl7.org/fhir/ValueSet/measure-type"), base)
    ] == ["Observation.code.coding[0].system"]
    assert errors(observation("http://example.org/codes"), base) == []


def test_a_required_code_given_only_as_extensions(base: Definitions) -> None:
    allergy = {
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                    "code": "active",
                }
            ]
        },
        "patient": {"reference": "Patient/1"},
        "category": [None],
        "_category": [{"extension": [{"url": EXT + "data-absent-reason", "valueCode": "unknown"}]}],
    }
    assert [w for w, _ in errors(allergy, base)] == ["AllergyIntolerance.category[0]"]


def test_narrative_fragment_links_resolve_inside_the_narrative(base: Definitions) -> None:
    def patient(div: str) -> dict[str, Any]:
        return {"resourceType": "Patient", "text": {"status": "generated", "div": div}}

    ok = '<div xmlns="http://www.w3.org/1999/xhtml"><a name="p1"> </a><a href="#p1">me</a></div>'
    assert errors(patient(ok), base) == []
    bad = '<div xmlns="http://www.w3.org/1999/xhtml"><p><a href="#elsewhere">there</a></p></div>'
    assert errors(patient(bad), base) == [
        ("Patient.text.div", "Hyperlink '#elsewhere' at 'div/p/a' for 'there' does not resolve")
    ]


def test_a_cohort_measure_report_has_no_score(base: Definitions) -> None:
    measure = {
        "resourceType": "Measure",
        "url": "http://example.org/Measure/beds",
        "status": "active",
        "scoring": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/measure-scoring",
                    "code": "cohort",
                }
            ]
        },
    }
    report = {
        "resourceType": "MeasureReport",
        "status": "complete",
        "type": "summary",
        "measure": measure["url"],
        "period": {"start": "2020-01-01", "end": "2020-01-02"},
        "group": [{"measureScore": {"value": 3}}],
    }
    defs = SuppliedDefinitions(base, [measure])
    assert [w for w, _ in errors(report, defs)] == ["MeasureReport.group[0].measureScore"]
    del report["group"][0]["measureScore"]
    report["group"][0]["population"] = [{"count": 3}]
    assert errors(report, defs) == []


@pytest.mark.parametrize(
    ("language", "expression", "problem"),
    [
        ("text/fhirpath", "%p-inactive", None),
        ("text/fhirpath", "%p-other", "unknown parameter 'p-other'"),
        ("text/fhirpath", "$ and %p-inactive", "is not a valid FHIRPath"),
        ("text/cql", "%p-inactive", "must be 'text/fhirpath' not 'text/cql'"),
    ],
)
def test_value_set_filter_expressions(
    base: Definitions, language: str, expression: str, problem: str | None
) -> None:
    value_set = {
        "resourceType": "ValueSet",
        "url": "http://example.org/ValueSet/p",
        "status": "active",
        "extension": [
            {
                "url": "http://hl7.org/fhir/tools/StructureDefinition/valueset-parameter",
                "extension": [{"url": "name", "valueCode": "p-inactive"}],
            }
        ],
        "compose": {
            "include": [
                {
                    "system": "http://example.org/cs",
                    "filter": [
                        {
                            "property": "inactive",
                            "op": "=",
                            "_value": {
                                "extension": [
                                    {
                                        "url": EXT + "cqf-expression",
                                        "valueExpression": {
                                            "language": language,
                                            "expression": expression,
                                        },
                                    }
                                ]
                            },
                        }
                    ],
                }
            ]
        },
    }
    found = errors(value_set, base)
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1 and problem in found[0][1]
        assert found[0][0].endswith("filter[0].extension[0].value.ofType(Expression)")


def test_hl7_published_resources_name_their_work_group_for_publication(
    base: Definitions,
) -> None:
    from fhir_service.validation.options import Options

    cs = {
        "resourceType": "CodeSystem",
        "url": "http://hl7.org/fhir/example-status",
        "status": "active",
        "content": "complete",
        "concept": [{"code": "a"}],
    }

    def found(options: Options) -> list[str]:
        return [
            str(i.expression[0])
            for i in validate_resource(cs, definitions=base, options=options)
            if i.severity == "error"
        ]

    assert found(Options()) == []
    assert found(Options(for_publication=True)) == ["CodeSystem"]
    cs["extension"] = [{"url": EXT + "structuredefinition-wg", "valueCode": "fhir"}]
    assert found(Options(for_publication=True)) == []


def test_profile_discriminator_slices_entries_by_the_profile_they_conform_to(
    base: Definitions,
) -> None:
    active = {
        "resourceType": "StructureDefinition",
        "url": "http://example.org/StructureDefinition/active-patient",
        "name": "ActivePatient",
        "status": "active",
        "kind": "resource",
        "abstract": False,
        "type": "Patient",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
        "derivation": "constraint",
        "differential": {"element": [{"id": "Patient.active", "path": "Patient.active", "min": 1}]},
    }
    bundle_profile = {
        "resourceType": "StructureDefinition",
        "url": "http://example.org/StructureDefinition/with-active-patient",
        "name": "WithActivePatient",
        "status": "active",
        "kind": "resource",
        "abstract": False,
        "type": "Bundle",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Bundle",
        "derivation": "constraint",
        "differential": {
            "element": [
                {
                    "id": "Bundle.entry",
                    "path": "Bundle.entry",
                    "slicing": {
                        "discriminator": [{"type": "profile", "path": "resource"}],
                        "rules": "open",
                    },
                },
                {
                    "id": "Bundle.entry:patient",
                    "path": "Bundle.entry",
                    "sliceName": "patient",
                    "min": 1,
                },
                {
                    "id": "Bundle.entry:patient.resource",
                    "path": "Bundle.entry.resource",
                    "type": [{"code": "Patient", "profile": [active["url"]]}],
                },
            ]
        },
    }
    defs = SuppliedDefinitions(base, [active, bundle_profile])

    def bundle(patient: dict[str, Any]) -> dict[str, Any]:
        return {
            "resourceType": "Bundle",
            "meta": {"profile": [bundle_profile["url"]]},
            "type": "collection",
            "entry": [{"fullUrl": "http://example.org/Patient/1", "resource": patient}],
        }

    assert errors(bundle({"resourceType": "Patient", "id": "1", "active": True}), defs) == []
    missing = errors(bundle({"resourceType": "Patient", "id": "1"}), defs)
    assert [w for w, _ in missing] == ["Bundle"]
