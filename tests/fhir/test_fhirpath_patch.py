"""FHIRPath Patch applied to resource JSON (https://hl7.org/fhir/R4/fhirpatch.html)."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_service.errors import InvalidRequest, Unprocessable
from fhir_service.fhir.fhirpath_patch import apply_fhirpath_patch
from tests.fhir.patch_helpers import operation, patch


def patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [
            {"system": "http://example.org/mrn", "value": "1"},
            {"system": "http://example.org/ssn", "value": "2"},
        ],
        "name": [{"family": "Doe", "given": ["Ann", "Beth", "Cleo"]}],
        "birthDate": "1920-01-01",
    }


# ------------------------------------------------------------ the operations


def test_add_a_primitive_as_in_the_spec_example() -> None:
    result = apply_fhirpath_patch(
        {"resourceType": "Patient", "id": "p1"},
        patch(operation("add", "Patient", name="birthDate", value={"valueDate": "1930-01-01"})),
    )
    assert result == {"resourceType": "Patient", "id": "p1", "birthDate": "1930-01-01"}


def test_add_an_anonymous_element_from_nested_parts_as_in_the_spec_example() -> None:
    value = {
        "part": [
            {"name": "name", "valueHumanName": {"text": "a name"}},
            {"name": "relationship", "valueCodeableConcept": {"text": "neighbour"}},
        ]
    }
    result = apply_fhirpath_patch(
        patient(), patch(operation("add", "Patient", name="contact", value=value))
    )
    # Patient.contact and contact.relationship repeat (0..*): both become arrays.
    assert result["contact"] == [
        {"name": {"text": "a name"}, "relationship": [{"text": "neighbour"}]}
    ]


def test_add_to_a_repeating_element_appends() -> None:
    new = {"system": "http://example.org/other", "value": "3"}
    result = apply_fhirpath_patch(
        patient(),
        patch(operation("add", "Patient", name="identifier", value={"valueIdentifier": new})),
    )
    assert result["identifier"][2] == new
    assert len(result["identifier"]) == 3


def test_add_a_choice_element_takes_the_key_of_the_value_type() -> None:
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "size"}}
    quantity = {"value": 4.2, "unit": "cm"}
    result = apply_fhirpath_patch(
        observation,
        patch(operation("add", "Observation", name="value", value={"valueQuantity": quantity})),
    )
    assert result["valueQuantity"] == quantity


def test_insert_at_an_index() -> None:
    new = {"system": "http://example.org/other", "value": "3"}
    result = apply_fhirpath_patch(
        patient(),
        patch(operation("insert", "Patient.identifier", index=1, value={"valueIdentifier": new})),
    )
    assert [i["value"] for i in result["identifier"]] == ["1", "3", "2"]


def test_insert_at_the_end_and_into_an_absent_list() -> None:
    result = apply_fhirpath_patch(
        patient(),
        patch(
            operation("insert", "Patient.name[0].given", index=3, value={"valueString": "Dora"}),
            operation(
                "insert", "Patient.telecom", index=0, value={"valueContactPoint": {"value": "x"}}
            ),
        ),
    )
    assert result["name"][0]["given"] == ["Ann", "Beth", "Cleo", "Dora"]
    assert result["telecom"] == [{"value": "x"}]


def test_delete_a_primitive_and_a_selected_list_item() -> None:
    result = apply_fhirpath_patch(
        patient(),
        patch(
            operation("delete", "Patient.birthDate"),
            operation("delete", "Patient.identifier.where(system = 'http://example.org/ssn')"),
            operation("delete", "Patient.name[0].given[1]"),
        ),
    )
    assert "birthDate" not in result
    assert result["identifier"] == [{"system": "http://example.org/mrn", "value": "1"}]
    assert result["name"][0]["given"] == ["Ann", "Cleo"]


def test_delete_of_nothing_changes_nothing() -> None:
    result = apply_fhirpath_patch(
        patient(), patch(operation("delete", "Patient.identifier.where(value = 'absent')"))
    )
    assert result == patient()


def test_delete_removes_the_primitive_extension_and_empty_containers() -> None:
    resource = {
        "resourceType": "Patient",
        "birthDate": "1920-01-01",
        "_birthDate": {"extension": [{"url": "http://example.org/x", "valueString": "y"}]},
        "contact": [{"name": {"family": "Roe"}}],
    }
    result = apply_fhirpath_patch(
        resource,
        patch(
            operation("delete", "Patient.birthDate"), operation("delete", "Patient.contact.name")
        ),
    )
    assert result == {"resourceType": "Patient"}


def test_replace_a_primitive_a_list_item_and_a_complex_element() -> None:
    result = apply_fhirpath_patch(
        patient(),
        patch(
            operation("replace", "Patient.birthDate", value={"valueDate": "1930-01-01"}),
            operation("replace", "Patient.name[0].given[2]", value={"valueString": "Cora"}),
            operation(
                "replace",
                "Patient.identifier[1]",
                value={"valueIdentifier": {"system": "http://example.org/new", "value": "9"}},
            ),
        ),
    )
    assert result["birthDate"] == "1930-01-01"
    assert result["name"][0]["given"] == ["Ann", "Beth", "Cora"]
    assert result["identifier"][1] == {"system": "http://example.org/new", "value": "9"}


def test_replace_a_choice_value_with_another_type() -> None:
    observation = {"resourceType": "Observation", "status": "final", "valueString": "large"}
    result = apply_fhirpath_patch(
        observation,
        patch(operation("replace", "Observation.value", value={"valueQuantity": {"value": 5}})),
    )
    assert result == {
        "resourceType": "Observation",
        "status": "final",
        "valueQuantity": {"value": 5},
    }


def test_move_within_a_list() -> None:
    result = apply_fhirpath_patch(
        patient(), patch(operation("move", "Patient.name[0].given", source=2, destination=0))
    )
    assert result["name"][0]["given"] == ["Cleo", "Ann", "Beth"]


def test_operations_apply_in_order_and_leave_the_input_alone() -> None:
    original = patient()
    result = apply_fhirpath_patch(
        original,
        patch(
            operation("add", "Patient", name="gender", value={"valueCode": "female"}),
            operation("replace", "Patient.gender", value={"valueCode": "other"}),
        ),
    )
    assert result["gender"] == "other"
    assert original == patient()


# ------------------------------------------------------------ patches that cannot apply (422)


@pytest.mark.parametrize(
    ("op", "words"),
    [
        (operation("delete", "Patient.identifier"), "selects 2 elements"),
        (operation("replace", "Patient.name.given", value={"valueString": "x"}), "selects 3"),
        (operation("replace", "Patient.gender", value={"valueCode": "x"}), "selects 0"),
        (
            operation("insert", "Patient.identifier", index=3, value={"valueIdentifier": {}}),
            "out of range",
        ),
        (
            operation("insert", "Patient.identifier", index=-1, value={"valueIdentifier": {}}),
            "out of range",
        ),
        (operation("move", "Patient.name[0].given", source=0, destination=3), "out of range"),
        (operation("replace", "Patient.birthDate", value={"valueBoolean": True}), "does not fit"),
        (
            operation("add", "Patient", name="birthDate", value={"valueDate": "1930-01-01"}),
            "replace",
        ),
        (operation("add", "Patient", name="colour", value={"valueString": "x"}), "no element"),
        (
            operation("insert", "Patient.birthDate", index=0, value={"valueDate": "2000-01-01"}),
            "not a list",
        ),
        (operation("delete", "Patient"), "resource itself"),
        (operation("delete", "Patient.name.given.first()"), "element name"),
        (operation("delete", "Patient.name.nothing(1)"), "cannot be evaluated"),
    ],
)
def test_a_patch_that_cannot_apply_is_unprocessable(op: dict[str, Any], words: str) -> None:
    with pytest.raises(Unprocessable, match=words):
        apply_fhirpath_patch(patient(), patch(op))


# ------------------------------------------------------------ malformed Parameters (400)


@pytest.mark.parametrize(
    ("parameters", "words"),
    [
        ({"resourceType": "Bundle"}, "Parameters resource"),
        ({"resourceType": "Parameters", "parameter": {}}, "array"),
        (patch({"name": "op", "part": []}), "named 'operation'"),
        (patch({"name": "operation"}), "named parts"),
        (patch(operation("frobnicate", "Patient")), "Unknown patch operation type"),
        (patch(operation("add", "Patient", name="gender")), "missing value"),
        (patch(operation("delete", "Patient", index=1)), "unexpected index"),
        (patch(operation("delete", "Patient..name")), "not a valid FHIRPath"),
        (patch(operation("delete", "Patient.name[")), "not a valid FHIRPath"),
        (patch(operation("delete", "")), "path"),
        (
            patch(operation("insert", "Patient.name", index="1", value={"valueString": "x"})),
            "valueInteger",
        ),
        (
            patch(
                operation("replace", "Patient.gender", value={"valueCode": "x", "valueString": "y"})
            ),
            "exactly one",
        ),
        (patch(operation("replace", "Patient.gender", value={})), "exactly one"),
        (
            patch({"name": "operation", "part": [{"name": "type", "valueCode": "delete"}] * 2}),
            "twice",
        ),
    ],
)
def test_malformed_parameters_are_invalid_requests(parameters: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidRequest, match=words):
        apply_fhirpath_patch(patient(), parameters)


def test_primitive_list_extensions_stay_aligned() -> None:
    resource = {
        "resourceType": "Patient",
        "name": [{"given": ["Ann", "Beth"], "_given": [None, {"id": "b"}]}],
    }
    result = apply_fhirpath_patch(
        resource,
        patch(
            operation("move", "Patient.name[0].given", source=1, destination=0),
            operation("insert", "Patient.name[0].given", index=1, value={"valueString": "Cleo"}),
            operation("delete", "Patient.name[0].given[2]"),
        ),
    )
    assert result["name"][0] == {"given": ["Beth", "Cleo"], "_given": [{"id": "b"}, None]}


def test_an_index_counts_across_the_whole_collection_as_in_fhirpath() -> None:
    resource = {"resourceType": "Patient", "name": [{"given": ["A"]}, {"given": ["B", "C"]}]}
    result = apply_fhirpath_patch(
        resource, patch(operation("replace", "Patient.name.given[1]", value={"valueString": "X"}))
    )
    assert result["name"] == [{"given": ["A"]}, {"given": ["X", "C"]}]
