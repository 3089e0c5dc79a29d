"""fhir_service.fhir.models: parsing names every problem with a FHIRPath location."""

import pytest

from fhir_service.errors import InvalidResource, UnknownResourceType
from fhir_service.fhir.models import dump_resource, is_resource_type, parse_resource


def test_round_trip_keeps_the_resource() -> None:
    data = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1983"}
    assert dump_resource(parse_resource(data)) == data


def test_unknown_element_is_located() -> None:
    with pytest.raises(InvalidResource) as info:
        parse_resource({"resourceType": "Patient", "nmae": [{"family": "X"}]})
    assert info.value.expression == ["Patient.nmae"]
    assert info.value.status == 400


def test_nested_error_location_has_index() -> None:
    with pytest.raises(InvalidResource) as info:
        parse_resource({"resourceType": "Patient", "name": [{"given": "not-a-list"}]})
    assert info.value.expression[0].startswith("Patient.name[0].given")


@pytest.mark.parametrize("payload", [[], "Patient", {"id": "x"}])
def test_not_a_resource(payload: object) -> None:
    with pytest.raises(InvalidResource):
        parse_resource(payload)


def test_unknown_type_and_data_type() -> None:
    with pytest.raises(UnknownResourceType):
        parse_resource({"resourceType": "Patientz"})
    assert is_resource_type("Observation")
    assert not is_resource_type("HumanName")
