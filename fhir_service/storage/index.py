"""Index rows written with each version, for the minimal search and conditional interactions.

Every top-level element of a resource is indexed under its element name
(https://hl7.org/fhir/R4/search.html#token): primitives as exact tokens,
Coding/CodeableConcept as (system, code), Identifier as (system, value),
Reference as its ``reference`` text. HumanName and Address parts are indexed
lower-cased under ``name``/``family``/``given`` and ``address``/``address-city``/...
so those string searches ignore case.
"""

from __future__ import annotations

from typing import Any

MAX_VALUE_LENGTH = 1000
_SKIPPED = frozenset(
    {"resourceType", "id", "meta", "text", "contained", "extension", "modifierExtension"}
)
_ADDRESS_PARTS = {
    "city": "address-city",
    "state": "address-state",
    "postalCode": "address-postalcode",
    "country": "address-country",
}

Token = tuple[str, str, str]
"""(param, system, value)."""


def _element_tokens(name: str, value: Any, out: set[Token]) -> None:
    if isinstance(value, list):
        for item in value:
            _element_tokens(name, item, out)
        return
    if isinstance(value, bool):
        out.add((name, "", "true" if value else "false"))
    elif isinstance(value, str | int | float):
        out.add((name, "", str(value)))
    elif isinstance(value, dict):
        _complex_tokens(name, value, out)


def _complex_tokens(name: str, value: dict[str, Any], out: set[Token]) -> None:
    if "coding" in value:
        for coding in value.get("coding") or []:
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                out.add((name, str(coding.get("system", "")), coding["code"]))
    elif isinstance(value.get("code"), str):
        out.add((name, str(value.get("system", "")), value["code"]))
    elif isinstance(value.get("value"), str):
        out.add((name, str(value.get("system", "")), value["value"]))
    elif isinstance(value.get("reference"), str):
        out.add((name, "", value["reference"]))
    if name == "name" or {"family", "given"} & value.keys():
        _name_tokens(value, out)
    if {"line", "city", "postalCode"} & value.keys():
        _address_tokens(value, out)


def _name_tokens(value: dict[str, Any], out: set[Token]) -> None:
    parts: list[tuple[str, Any]] = [("family", value.get("family")), ("name", value.get("text"))]
    parts += [("given", given) for given in value.get("given") or []]
    for param, part in parts:
        if isinstance(part, str):
            out.add(("name", "", part.lower()))
            if param != "name":
                out.add((param, "", part.lower()))


def _address_tokens(value: dict[str, Any], out: set[Token]) -> None:
    for key, param in _ADDRESS_PARTS.items():
        part = value.get(key)
        if isinstance(part, str):
            out.add((param, "", part.lower()))
            out.add(("address", "", part.lower()))
    for line in value.get("line") or []:
        if isinstance(line, str):
            out.add(("address", "", line.lower()))


def extract_tokens(resource: dict[str, Any]) -> list[Token]:
    """The index rows of one resource, without duplicates or overlong values."""
    out: set[Token] = set()
    for name, value in resource.items():
        if name in _SKIPPED or name.startswith("_"):
            continue
        _element_tokens(name, value, out)
    return sorted(
        token
        for token in out
        if len(token[2]) <= MAX_VALUE_LENGTH and len(token[1]) <= MAX_VALUE_LENGTH
    )


DERIVED_PARAMS = frozenset({"family", "given", "address", *_ADDRESS_PARTS.values()})
"""Parameter names the index writes beyond element names."""
