"""ValueSet expansion for the token modifiers ``:in`` and ``:not-in``
(https://hl7.org/fhir/R4/search.html#token, https://hl7.org/fhir/R4/valueset.html#compose).

Expands from the package cache: ``compose.include`` with listed concepts, or a
whole CodeSystem (its concepts, nested ones included), and included ValueSets;
``exclude`` and filters are not evaluated (a filtered include raises Unsupported).
"""

from __future__ import annotations

from typing import Any

from fhir_service.errors import InvalidRequest
from fhir_service.fhir.package_cache import Definitions

MAX_CODES = 5000


def _concepts(concepts: list[dict[str, Any]], out: set[str]) -> None:
    for concept in concepts:
        if isinstance(concept.get("code"), str):
            out.add(concept["code"])
        _concepts(concept.get("concept") or [], out)


def expand(definitions: Definitions, url: str, depth: int = 0) -> dict[str, set[str]]:
    """Codes of the ValueSet ``url`` grouped by system; InvalidRequest if it is unknown."""
    value_set = definitions.value_set(url)
    if value_set is None or depth > 5:
        raise InvalidRequest(f"ValueSet '{url[:200]}' is not known", expression=":in")
    out: dict[str, set[str]] = {}
    expansion = (value_set.get("expansion") or {}).get("contains")
    if expansion:
        for item in expansion:
            out.setdefault(item.get("system", ""), set()).add(item.get("code", ""))
        return out
    for include in (value_set.get("compose") or {}).get("include") or []:
        if include.get("filter"):
            raise InvalidRequest(
                f"ValueSet '{url[:200]}' uses filters, which :in does not expand",
                expression=":in",
            )
        for nested in include.get("valueSet") or []:
            for system, codes in expand(definitions, nested, depth + 1).items():
                out.setdefault(system, set()).update(codes)
        system = include.get("system")
        if not isinstance(system, str):
            continue
        codes = out.setdefault(system, set())
        if include.get("concept"):
            codes.update(c["code"] for c in include["concept"] if isinstance(c.get("code"), str))
        else:
            code_system = definitions.code_system(system)
            if code_system is None:
                raise InvalidRequest(f"CodeSystem '{system}' is not known", expression=":in")
            _concepts(code_system.get("concept") or [], codes)
    if sum(len(c) for c in out.values()) > MAX_CODES:
        raise InvalidRequest(f"ValueSet '{url[:200]}' is too large for :in", expression=":in")
    return out
