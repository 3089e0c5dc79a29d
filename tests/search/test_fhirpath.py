"""Simple SearchParameter paths compiled into walkers (fhir_service.search.fhirpath): a
step looks for ``name[Type]`` keys only where R4 declares a choice element
(https://hl7.org/fhir/R4/formats.html#choice)."""

from __future__ import annotations

from fhir_service.search.fhirpath import compile_expression, compile_relative


def values(expression: str, resource: dict[str, object]) -> list[tuple[object, str | None]]:
    evaluate = compile_expression(expression, str(resource["resourceType"]))
    assert evaluate is not None
    return evaluate(resource)


def test_choice_elements_are_reached_through_their_typed_keys() -> None:
    quantity = {"value": 5, "unit": "mg"}
    observation = {
        "resourceType": "Observation",
        "valueQuantity": quantity,
        "effectivePeriod": {"start": "2020"},
        "component": [{"valueString": "x"}],
    }
    assert values("Observation.value", observation) == [(quantity, "Quantity")]
    assert values("Observation.effective", observation) == [({"start": "2020"}, "Period")]
    assert values("Observation.component.value", observation) == [("x", "String")]
    condition = {"resourceType": "Condition", "onsetAge": {"value": 40}}
    assert values("Condition.onset", condition) == [({"value": 40}, "Age")]


def test_choice_elements_of_data_types_and_extensions() -> None:
    request = {
        "resourceType": "MedicationRequest",
        "dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": {"end": "2021"}}}}],
        "extension": [{"url": "http://example.org/x", "valueCode": "a"}],
    }
    bounds = "MedicationRequest.dosageInstruction.timing.repeat.bounds"
    assert values(bounds, request) == [({"end": "2021"}, "Period")]
    extension = "MedicationRequest.extension('http://example.org/x').value"
    assert values(extension, request) == [("a", "Code")]


def test_an_element_that_is_not_a_choice_does_not_match_longer_keys() -> None:
    # Patient.name is HumanName, not name[x]: a key "nameSuffix" is not a name.
    patient = {"resourceType": "Patient", "nameSuffix": {"family": "X"}}
    assert values("Patient.name", patient) == []
    # Paths the R4 model does not know keep looking for choices.
    assert values("Patient.custom", {"resourceType": "Patient", "customString": "y"}) == [
        ("y", "String")
    ]


def test_relative_expressions_look_for_choices() -> None:
    evaluate = compile_relative("value.as(Quantity)")
    assert evaluate is not None
    assert evaluate({"valueQuantity": {"value": 1}}) == [({"value": 1}, "Quantity")]
