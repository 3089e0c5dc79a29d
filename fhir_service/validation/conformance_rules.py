"""Rules of conformance resources that their StructureDefinitions do not hold.

- SearchParameter (https://hl7.org/fhir/R4/searchparameter.html): a ``composite``
  parameter has two or more ``component``; one ``derivedFrom`` another keeps its
  ``type`` and a subset of its ``base``; each path of ``expression`` starts at one of
  the ``base`` types.
- CapabilityStatement (https://hl7.org/fhir/R4/capabilitystatement.html):
  ``rest.resource.searchParam.type`` matches the ``type`` of the SearchParameter its
  ``definition`` names, when that one is known.
- ImplementationGuide.global (https://hl7.org/fhir/R4/implementationguide.html):
  the profiles every resource of a type conforms to (used by the engine).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fhir_service.errors import Issue
from fhir_service.fhir.package_cache import Definitions

_FIRST_STEP = re.compile(r"^\s*\(?\s*([A-Z][A-Za-z]+)\s*(?:\.|$)")


def search_parameter(
    sp: dict[str, Any], path: str, definitions: Definitions, is_resource: Callable[[str], bool]
) -> list[Issue]:
    out: list[Issue] = []
    kind, base = sp.get("type"), [b for b in sp.get("base") or [] if isinstance(b, str)]
    if kind == "composite" and len(sp.get("component") or []) < 2:
        out.append(
            Issue(
                "error",
                "business-rule",
                "When the SearchParameter has a type of 'composite', then the SearchParameter "
                "must define two or more components",
                [path],
            )
        )
    expression = sp.get("expression")
    if isinstance(expression, str) and base:
        for part in expression.split("|"):
            m = _FIRST_STEP.match(part)
            if m and is_resource(m.group(1)) and m.group(1) not in [*base, "Resource"]:
                out.append(
                    Issue(
                        "error",
                        "invalid",
                        f"Error in search expression '{expression}': The name '{m.group(1)}' "
                        f"is not valid for any of the possible types: {base}",
                        [f"{path}.expression"],
                    )
                )
                break
    derived = sp.get("derivedFrom")
    parent = definitions.resource(derived, "SearchParameter") if isinstance(derived, str) else None
    if parent is not None:
        if isinstance(kind, str) and kind != parent.get("type"):
            out.append(
                Issue(
                    "error",
                    "business-rule",
                    f"The type {parent.get('type')} is different to the type {derived} in the "
                    "derivedFrom SearchParameter",
                    [path],
                )
            )
        for b in base:
            if b not in (parent.get("base") or []):
                out.append(
                    Issue(
                        "error",
                        "business-rule",
                        f"The resource type {b} is not listed as a base in the SearchParameter "
                        f"this is derived from ({derived})",
                        [path],
                    )
                )
    return out


def capability_statement(cs: dict[str, Any], path: str, definitions: Definitions) -> list[Issue]:
    out: list[Issue] = []
    for r, rest in enumerate(cs.get("rest") or []):
        if not isinstance(rest, dict):
            continue
        for i, resource in enumerate(rest.get("resource") or []):
            if not isinstance(resource, dict):
                continue
            for j, param in enumerate(resource.get("searchParam") or []):
                if not isinstance(param, dict) or not isinstance(param.get("definition"), str):
                    continue
                url = param["definition"]
                sp = definitions.resource(url, "SearchParameter")
                if sp is None or not isinstance(param.get("type"), str):
                    continue
                if sp.get("type") != param["type"]:
                    shown = url if "|" in url or not sp.get("version") else f"{url}|{sp['version']}"
                    out.append(
                        Issue(
                            "error",
                            "business-rule",
                            f"Type mismatch - SearchParameter '{shown}' type is {sp.get('type')}, "
                            f"but type here is {param['type']}",
                            [f"{path}.rest[{r}].resource[{i}].searchParam[{j}]"],
                        )
                    )
    return out


def global_profiles(definitions: Definitions, rtype: str) -> list[str]:
    """Profiles the ImplementationGuides at hand declare for every resource of a type."""
    found = []
    for guide in definitions.all("ImplementationGuide"):
        for row in guide.get("global") or []:
            if (
                isinstance(row, dict)
                and row.get("type") == rtype
                and isinstance(row.get("profile"), str)
            ):
                found.append(row["profile"])
    return found
