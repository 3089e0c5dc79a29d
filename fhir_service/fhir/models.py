"""Parse and dump FHIR resources with the fhir.resources R4B models.

The wire format is FHIR R4 4.0.1 JSON (https://hl7.org/fhir/R4/json.html); the
R4B models are structurally the same for the resources this service handles.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError

from fhir_service.errors import InvalidResource, Issue, UnknownResourceType
from fhir_service.fhir.primitive_arrays import shadow_length_issues


@cache
def model_class(resource_type: str) -> type[Resource]:
    """The R4B model class for a resource type name, or UnknownResourceType."""
    try:
        cls = get_fhir_model_class(resource_type)
    except (KeyError, ValueError) as exc:
        raise UnknownResourceType(f"Unknown resource type '{resource_type}'") from exc
    if not issubclass(cls, Resource):
        raise UnknownResourceType(f"'{resource_type}' is a data type, not a resource type")
    return cls


def is_resource_type(name: str) -> bool:
    """True when ``name`` is a FHIR resource type the models know."""
    try:
        model_class(name)
    except UnknownResourceType:
        return False
    return True


def _location(loc: tuple[int | str, ...], resource_type: str) -> str:
    """A pydantic error location as a FHIRPath expression (``Patient.name[0].given``)."""
    path = resource_type
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part != "__root__":
            path += f".{part}"
    return path


def parse_resource(data: Any) -> Resource:
    """Validate a JSON object as a FHIR resource; InvalidResource names every problem."""
    if not isinstance(data, dict):
        raise InvalidResource("A FHIR resource must be a JSON object")
    resource_type = data.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        raise InvalidResource("The resource has no resourceType", expression="resourceType")
    cls = model_class(resource_type)
    try:
        model = cls.model_validate(data)
    except ValidationError as exc:
        issues = [
            Issue(
                "error",
                "structure",
                f"{err['msg']}",
                [_location(tuple(err["loc"]), resource_type)],
            )
            for err in exc.errors()
        ]
        first = issues[0]
        raise InvalidResource(
            f"Invalid {resource_type}: {first.diagnostics} at {first.expression[0]}",
            expression=first.expression,
            issues=issues[1:],
        ) from None
    shadows = shadow_length_issues(data, resource_type)
    if shadows:
        first = shadows[0]
        raise InvalidResource(
            f"Invalid {resource_type}: {first.diagnostics} at {first.expression[0]}",
            expression=first.expression,
            issues=shadows[1:],
        )
    return model


def dump_resource(resource: Resource) -> dict[str, Any]:
    """A resource model as a plain JSON-ready dict, FHIR element order kept."""
    return dict(resource.model_dump(mode="json", exclude_none=True))
