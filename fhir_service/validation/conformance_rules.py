"""Rules of conformance resources that their StructureDefinitions do not hold.

- SearchParameter (https://hl7.org/fhir/R4/searchparameter.html): a ``composite``
  parameter has two or more ``component``; one ``derivedFrom`` another keeps its
  ``type`` and a subset of its ``base``; each path of ``expression`` starts at one of
  the ``base`` types.
- CapabilityStatement (https://hl7.org/fhir/R4/capabilitystatement.html):
  ``rest.resource.searchParam.type`` matches the ``type`` of the SearchParameter its
  ``definition`` names, when that one is known.
- CodeSystem (https://hl7.org/fhir/R4/codesystem.html#properties): property codes and
  URIs are unique, a property of the standard concept-properties
  (https://hl7.org/fhir/R4/codesystem-concept-properties.html) keeps its code and type,
  and a concept's property value has the type its property declares.
- ValueSet filters (https://hl7.org/fhir/R4/valueset.html#filters): a filter on a
  Coding property of a known CodeSystem is written ``system(|version)#code`` and names
  a code that exists.
- ValueSet parameters (the HL7 tools extensions ``valueset-parameter`` with filter
  values given by ``cqf-expression``, https://hl7.org/fhir/R4/extension-cqf-expression.html):
  the expression is FHIRPath (``text/fhirpath``), parses, and names only declared
  parameters or the standard FHIRPath environment variables.
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


_CONCEPT_PROPERTIES = "http://hl7.org/fhir/concept-properties#"
_STANDARD_PROPERTIES = {
    "inactive": "boolean",
    "deprecationDate": "dateTime",
    "retirementDate": "dateTime",
    "notSelectable": "boolean",
    "parent": "code",
    "child": "code",
}


def code_system(cs: dict[str, Any], path: str) -> list[Issue]:
    out: list[Issue] = []
    types: dict[str, str] = {}
    codes: set[str] = set()
    uris: set[str] = set()
    for i, prop in enumerate(cs.get("property") or []):
        if not isinstance(prop, dict):
            continue
        where = [f"{path}.property[{i}]"]
        code, uri, kind = prop.get("code"), prop.get("uri"), prop.get("type")
        if isinstance(code, str):
            if code in codes:
                text = f"A property is already defined with the code '{code}'"
                out.append(Issue("error", "business-rule", text, where))
            codes.add(code)
            if isinstance(kind, str):
                types.setdefault(code, kind)
        if isinstance(uri, str):
            if uri in uris:
                text = f"A property is already defined with the URI '{uri}'"
                out.append(Issue("error", "business-rule", text, where))
            uris.add(uri)
            if uri.startswith(_CONCEPT_PROPERTIES):
                name = uri[len(_CONCEPT_PROPERTIES) :]
                expected = _STANDARD_PROPERTIES.get(name)
                if expected is not None and isinstance(code, str) and code != name:
                    text = (
                        f"The URI '{uri}' is normally assigned the code '{name}'. Using the "
                        f"code '{code}' will usually create confusion in ValueSet filters etc"
                    )
                    out.append(Issue("error", "business-rule", text, where))
                if expected is not None and isinstance(kind, str) and kind != expected:
                    text = (
                        f"Wrong type '{kind}': The URI '{uri}' identifies a property that has "
                        f"the type '{expected}'"
                    )
                    out.append(Issue("error", "business-rule", text, where))
    stack = [(c, f"{path}.concept[{i}]") for i, c in enumerate(cs.get("concept") or [])]
    while stack:
        concept, where_c = stack.pop(0)
        if not isinstance(concept, dict):
            continue
        for j, prop in enumerate(concept.get("property") or []):
            if not isinstance(prop, dict):
                continue
            declared = types.get(str(prop.get("code")))
            key = next((k for k in prop if k.startswith("value") and len(k) > 5), None)
            if declared is None or key is None:
                continue
            given = key[5].lower() + key[6:] if key[5:] not in ("Coding",) else key[5:]
            if given != declared:
                text = (
                    f"The property '{prop.get('code')}' has the invalid type '{given}', when it "
                    f"is defined to have the type '{declared}'"
                )
                out.append(Issue("error", "business-rule", text, [f"{where_c}.property[{j}]"]))
        stack.extend(
            (c, f"{where_c}.concept[{k}]") for k, c in enumerate(concept.get("concept") or [])
        )
    return out


_CODING_VALUE = re.compile(r"^([^|#\s]+)(?:\|([^#\s]+))?#(\S+)$")


def value_set(
    vs: dict[str, Any],
    path: str,
    definitions: Definitions,
    code_known: Callable[[str, str], bool | None],
) -> list[Issue]:
    out: list[Issue] = []
    compose = vs.get("compose")
    if not isinstance(compose, dict):
        return out
    out += _filter_expressions(vs, compose, path)
    for part in ("include", "exclude"):
        for i, row in enumerate(compose.get(part) or []):
            if not isinstance(row, dict) or not isinstance(row.get("system"), str):
                continue
            cs = definitions.code_system(row["system"])
            if cs is None:
                continue
            kinds = {
                str(p.get("code")): p.get("type")
                for p in cs.get("property") or []
                if isinstance(p, dict)
            }
            for j, f in enumerate(row.get("filter") or []):
                if not isinstance(f, dict) or kinds.get(str(f.get("property"))) != "Coding":
                    continue
                value = f.get("value")
                if not isinstance(value, str):
                    continue
                where = [f"{path}.compose.{part}[{i}].filter[{j}]"]
                m = _CODING_VALUE.match(value)
                if m is None:
                    text = (
                        f"The value for a filter based on property '{f.get('property')}' must be "
                        f"in the format system(|version)#code, not '{value}'"
                    )
                    out.append(Issue("error", "invalid", text, where))
                elif code_known(m.group(1), m.group(3)) is False:
                    text = (
                        f"The value for a filter based on property '{f.get('property')}' is "
                        f"'{value}' which is not a valid code (Unknown code '{m.group(3)}' in the "
                        f"CodeSystem '{m.group(1)}')"
                    )
                    out.append(Issue("error", "code-invalid", text, where))
    return out


def concept_map(
    cm: dict[str, Any], path: str, definitions: Definitions, expander: Any
) -> list[Issue]:
    """The source codes of a ConceptMap are in its source ValueSet when that one expands
    offline (https://hl7.org/fhir/R4/conceptmap.html: ``sourceUri``/``sourceCanonical``
    is the value set the source codes come from)."""
    source = cm.get("sourceCanonical") or cm.get("sourceUri")
    if not isinstance(source, str):
        return []
    vs = definitions.value_set(source)
    if vs is None:
        return []
    expansion = expander.expand(source.split("|", 1)[0])
    if not expansion.known:
        return []
    shown = f"{vs.get('url')}|{vs['version']}" if vs.get("version") else str(vs.get("url"))
    out: list[Issue] = []
    for i, group in enumerate(cm.get("group") or []):
        if not isinstance(group, dict):
            continue
        system = group.get("source")
        for j, element in enumerate(group.get("element") or []):
            code = element.get("code") if isinstance(element, dict) else None
            if isinstance(code, str) and not expansion.contains(system, code):
                out.append(
                    Issue(
                        "error",
                        "code-invalid",
                        f"The source code '{code}' is not valid in the value set {shown}",
                        [f"{path}.group[{i}].element[{j}].code"],
                    )
                )
    return out


def measure_report(mr: dict[str, Any], path: str, definitions: Definitions) -> list[Issue]:
    """A cohort Measure has no score (https://hl7.org/fhir/R4/measure.html#scoring:
    a cohort is a population only), so its report's groups carry no ``measureScore``."""
    url = mr.get("measure")
    measure = definitions.resource(url, "Measure") if isinstance(url, str) else None
    if measure is None:
        return []
    codings = (measure.get("scoring") or {}).get("coding") or []
    if not any(isinstance(c, dict) and c.get("code") == "cohort" for c in codings):
        return []
    return [
        Issue(
            "error",
            "business-rule",
            "No measureScore when the scoring of the message is 'cohort'",
            [f"{path}.group[{i}].measureScore"],
        )
        for i, group in enumerate(mr.get("group") or [])
        if isinstance(group, dict) and "measureScore" in group
    ]


_PARAMETER = "http://hl7.org/fhir/tools/StructureDefinition/valueset-parameter"
_EXPRESSION = "http://hl7.org/fhir/StructureDefinition/cqf-expression"
_VARIABLE = re.compile(r"%(`[^`]+`|[A-Za-z_][A-Za-z0-9_\-]*)")
_ENVIRONMENT = frozenset({"resource", "rootResource", "context", "ucum", "sct", "loinc"})


def _filter_expressions(vs: dict[str, Any], compose: dict[str, Any], path: str) -> list[Issue]:
    from fhirpathpy.parser import parse

    declared = {
        str(sub.get("valueCode"))
        for ext in vs.get("extension") or []
        if isinstance(ext, dict) and ext.get("url") == _PARAMETER
        for sub in ext.get("extension") or []
        if isinstance(sub, dict) and sub.get("url") == "name"
    }
    out: list[Issue] = []
    for part in ("include", "exclude"):
        for i, row in enumerate(compose.get(part) or []):
            for j, f in enumerate((row.get("filter") if isinstance(row, dict) else None) or []):
                shadow = f.get("_value") if isinstance(f, dict) else None
                exts = shadow.get("extension") if isinstance(shadow, dict) else None
                for k, ext in enumerate(exts or []):
                    if not isinstance(ext, dict) or ext.get("url") != _EXPRESSION:
                        continue
                    value = ext.get("valueExpression")
                    if not isinstance(value, dict) or not isinstance(value.get("expression"), str):
                        continue
                    where = [
                        f"{path}.compose.{part}[{i}].filter[{j}].extension[{k}]"
                        ".value.ofType(Expression)"
                    ]
                    expression, language = value["expression"], value.get("language")
                    if language != "text/fhirpath":
                        text = (
                            "A ValueSet expression language must be 'text/fhirpath' not "
                            f"'{language}'"
                        )
                        out.append(Issue("error", "invalid", text, where))
                        continue
                    try:
                        parse(expression)
                    except Exception as exc:  # the parser raises its own lexer/parser errors
                        text = (
                            f"The value of the expression '{expression}' is not a valid "
                            f"FHIRPath: {exc}"
                        )
                        out.append(Issue("error", "invalid", text, where))
                        continue
                    for name in _VARIABLE.findall(expression):
                        name = name.strip("`")
                        known = name in declared or name in _ENVIRONMENT
                        if not known and not name.startswith(("vs-", "ext-")):
                            text = (
                                f"The filter parameter expression '{expression}' refers to the "
                                f"unknown parameter '{name}'"
                            )
                            out.append(Issue("error", "invalid", text, where))
    return out


_WG = "http://hl7.org/fhir/StructureDefinition/structuredefinition-wg"
_HL7_SPACES = ("http://hl7.org/fhir/", "http://terminology.hl7.org/")


def hl7_publication(resource: dict[str, Any], path: str) -> list[Issue]:
    """A canonical resource HL7 publishes (its URL in HL7's space) names its owning work
    group with ``structuredefinition-wg``
    (https://hl7.org/fhir/R4/extension-structuredefinition-wg.html); checked only when
    validating for publication."""
    url = resource.get("url")
    if not isinstance(url, str) or not url.startswith(_HL7_SPACES):
        return []
    if any(isinstance(e, dict) and e.get("url") == _WG for e in resource.get("extension") or []):
        return []
    return [
        Issue(
            "error",
            "business-rule",
            "When HL7 is publishing a resource, the owning committee must be stated using the "
            f"{_WG} extension",
            [path],
        )
    ]
