"""ValueSet expansion for the token modifiers ``:in`` and ``:not-in``
(https://hl7.org/fhir/R4/search.html#token, https://hl7.org/fhir/R4/valueset.html#compose).

Uses the offline expansion of ``fhir_service.fhir.expansion`` (listed concepts, whole
CodeSystems, filters on their hierarchy and properties, nested ValueSets, excludes).
A ValueSet that cannot be expanded offline (unknown, or built on a CodeSystem the
package cache lacks, such as SNOMED CT) is a 400 saying why, never an empty result.
"""

from __future__ import annotations

from functools import lru_cache

from fhir_service.errors import InvalidRequest
from fhir_service.fhir.expansion import Expander
from fhir_service.fhir.package_cache import Definitions

MAX_CODES = 5000


@lru_cache(maxsize=4)
def _expander(definitions: Definitions) -> Expander:
    return Expander(definitions)


def expand(definitions: Definitions, url: str, expression: str = ":in") -> dict[str, set[str]]:
    """Codes of the ValueSet ``url`` grouped by system ("" when the set names none);
    InvalidRequest when it cannot be expanded offline or is too large."""
    expansion = _expander(definitions).expand(url)
    if expansion.codes is None:
        raise InvalidRequest(
            f"ValueSet '{url[:200]}' cannot be expanded by this server: {expansion.reason}",
            expression=expression,
        )
    if len(expansion.codes) > MAX_CODES:
        raise InvalidRequest(f"ValueSet '{url[:200]}' is too large for :in", expression=expression)
    out: dict[str, set[str]] = {}
    for system, code in expansion.codes:
        out.setdefault(system or "", set()).add(code)
    return out
