"""The ``Prefer`` header of writes (https://hl7.org/fhir/R4/http.html#ops)."""

from __future__ import annotations

from typing import Literal

from fhir_service.errors import InvalidRequest

Return = Literal["minimal", "representation", "OperationOutcome"]
_RETURNS: dict[str, Return] = {
    "minimal": "minimal",
    "representation": "representation",
    "operationoutcome": "OperationOutcome",
}


def return_preference(prefer: str | None) -> Return:
    """``return=minimal|representation|OperationOutcome``; representation by default.

    Other preferences (``handling=lenient``, ``respond-async``) are ignored, as
    RFC 7240 allows.
    """
    if not prefer:
        return "representation"
    for part in prefer.split(","):
        for token in part.split(";"):
            name, _, value = token.partition("=")
            if name.strip().lower() == "return":
                chosen = _RETURNS.get(value.strip().strip('"').lower())
                if chosen is None:
                    raise InvalidRequest(
                        f"Prefer return='{value.strip()}' is not one of minimal, "
                        "representation, OperationOutcome",
                        expression="Prefer",
                    )
                return chosen
    return "representation"
