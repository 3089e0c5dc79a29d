"""FHIRPath invariants of the core definitions (https://hl7.org/fhir/R4/conformance-rules.html#constraints).

Each ElementDefinition.constraint is evaluated with fhirpathpy on the element
instances the structure walk found, so a constraint whose element is absent
costs nothing. Expressions are parsed once per process. fhirpathpy lacks a few
functions the core constraints use; they are supplied through its
user-invocation table: ``hasValue()``, ``resolve()`` (contained resources and
Bundle entries), ``htmlChecks()`` (https://hl7.org/fhir/R4/narrative.html#xhtml),
``conformsTo()`` (core resource types only) and ``memberOf()`` (raises, so the
constraint is reported as not evaluated). The two constraints on every
reference and the Bundle's fullUrl uniqueness (ref-1, bdl-7) are evaluated
natively with the same meaning, for speed. A constraint that cannot be
evaluated is reported as an information issue, never passed silently.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Callable
from functools import cache
from typing import Any

from fhirpathpy import apply_parsed_path
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models
from fhirpathpy.parser import parse

from fhir_service.errors import Issue
from fhir_service.validation.elements import Constraint
from fhir_service.validation.json_syntax import Finding
from fhir_service.validation.structure import InvariantSite, ResourceSite
from fhir_service.validation.xhtml import html_problems

_MODEL = models["r4"]
_SCOPE: contextvars.ContextVar[ResourceSite | None] = contextvars.ContextVar(
    "fhirpath_scope", default=None
)


def _has_value(inputs: list[Any]) -> bool:
    return len(inputs) == 1 and inputs[0] is not None and not isinstance(inputs[0], dict | list)


def _resolve(inputs: list[Any]) -> list[Any]:
    site = _SCOPE.get()
    found: list[Any] = []
    for item in inputs:
        ref = item.get("reference") if isinstance(item, dict) else item
        if not isinstance(ref, str) or site is None:
            continue
        target = resolve_in_scope(ref, site)
        if target is not None:
            found.append(target)
    return found


def resolve_in_scope(ref: str, site: ResourceSite) -> dict[str, Any] | None:
    """The resource a reference points to among contained resources and Bundle entries."""
    root = site.root
    if ref.startswith("#"):
        for contained in root.value.get("contained") or []:
            if isinstance(contained, dict) and contained.get("id") == ref[1:]:
                return contained
        return None
    scope = root.bundle
    if scope is None:
        return None
    entries = scope.bundle.get("entry") or []
    for entry in entries:
        if isinstance(entry, dict) and entry.get("fullUrl") == ref:
            res = entry.get("resource")
            return res if isinstance(res, dict) else None
    parts = ref.split("/")
    if len(parts) >= 2:
        rtype, rid = parts[-2], parts[-1]
        for entry in entries:
            res = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(res, dict) and res.get("resourceType") == rtype and res.get("id") == rid:
                return res
    return None


def _html_checks(inputs: list[Any]) -> bool:
    return all(not html_problems(str(x)) for x in inputs)


def _conforms_to(inputs: list[Any], url: Any) -> bool:
    text = str(url[0] if isinstance(url, list) and url else url)
    prefix = "http://hl7.org/fhir/StructureDefinition/"
    if not text.startswith(prefix):
        raise ValueError(f"conformsTo({text}) needs a profile check, not available in FHIRPath")
    return all(isinstance(x, dict) and x.get("resourceType") == text[len(prefix) :] for x in inputs)


def _member_of(inputs: list[Any], url: Any) -> bool:
    raise ValueError("memberOf() needs a terminology service")


_FUNCTIONS: dict[str, dict[str, Any]] = {
    "hasValue": {"fn": _has_value, "arity": {0: []}},
    "resolve": {"fn": _resolve, "arity": {0: []}},
    "htmlChecks": {"fn": _html_checks, "arity": {0: []}},
    "conformsTo": {"fn": _conforms_to, "arity": {1: ["String"]}},
    "memberOf": {"fn": _member_of, "arity": {1: ["String"]}},
}


def _no_trace(*_args: Any, **_kwargs: Any) -> None:
    """FHIRPath trace() output is not wanted in validation results."""


_OPTIONS = {"userInvocationTable": _FUNCTIONS, "traceFn": _no_trace}


@cache
def _parsed(expression: str) -> Any:
    return parse(expression)


def _ref_1(value: Any, site: ResourceSite) -> bool:
    ref = value.get("reference") if isinstance(value, dict) else None
    if not isinstance(ref, str) or not ref.startswith("#"):
        return True
    ids = {c.get("id") for c in site.root.value.get("contained") or [] if isinstance(c, dict)}
    return ref[1:] in ids


def _bdl_7(value: Any, site: ResourceSite) -> bool:
    if not isinstance(value, dict) or value.get("type") == "history":
        return True
    seen: set[tuple[str, Any]] = set()
    for entry in value.get("entry") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("fullUrl"), str):
            continue
        res = entry.get("resource")
        meta = res.get("meta") if isinstance(res, dict) else None
        version = meta.get("versionId") if isinstance(meta, dict) else None
        key = (entry["fullUrl"], version)
        if key in seen:
            return False
        seen.add(key)
    return True


def _txt_2(value: Any, site: ResourceSite) -> bool:
    """txt-2 reuses htmlChecks() in R4; its meaning is: some text, or an image with a source."""
    text = str(value)
    return bool(re.search(r">[^<]*\S[^<]*<", text)) or bool(re.search(r"<img[^>]+src=", text))


def _has(value: Any, name: str) -> bool:
    """Whether an element has a child ``name`` (a choice ``name[x]`` in any type)."""
    if not isinstance(value, dict):
        return False
    for key in value:
        if not isinstance(key, str):
            continue
        key = key.lstrip("_")
        if key == name or (key.startswith(name) and key[len(name) : len(name) + 1].isupper()):
            return True
    return False


def _contained(value: Any) -> list[dict[str, Any]]:
    items = value.get("contained") if isinstance(value, dict) else None
    return [c for c in items if isinstance(c, dict)] if isinstance(items, list) else []


def _meta(res: dict[str, Any]) -> dict[str, Any]:
    meta = res.get("meta")
    return meta if isinstance(meta, dict) else {}


def _instant(text: str) -> tuple[int, str | float] | None:
    """A dateTime as (precision, comparable value) when it can be ordered unambiguously:
    partial dates by their text, full date-times with a zone by their UTC timestamp."""
    from datetime import datetime

    if "T" not in text:
        return len(text), text
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return 99, moment.timestamp()


def _per_1(value: Any, site: ResourceSite) -> bool:
    start, end = value.get("start"), value.get("end")
    if not isinstance(start, str) or not isinstance(end, str):
        return True
    a, b = _instant(start), _instant(end)
    if a is None or b is None:
        return True
    if a[0] != b[0]:
        # Different precisions compare on what both state
        # (https://hl7.org/fhirpath/N1/#comparison): equal there, the result is empty,
        # and an empty invariant result is not true.
        n = min(a[0], b[0], 10)
        if "T" in start and "T" in end:
            return True  # one has no zone: the order is not known
        left, right = start[:n], end[:n]
        return left < right
    return bool(a[1] <= b[1])  # type: ignore[operator]


def _obs_7(value: Any, site: ResourceSite) -> bool:
    if not _has(value, "value"):
        return True
    codings = ((value.get("code") or {}).get("coding")) or []
    for component in value.get("component") or []:
        for coding in ((component or {}).get("code") or {}).get("coding") or []:
            if coding in codings:
                return False
    return True


def _dom_3(value: Any, site: ResourceSite) -> bool:
    """dom-3 is checked per contained resource by references.py, at the contained resource."""
    return True


NATIVE: dict[tuple[str, str], Callable[[Any, ResourceSite], bool]] = {
    (
        "ref-1",
        "reference.startsWith('#').not() or (reference.substring(1).trace('url') in "
        "%rootResource.contained.id.trace('ids'))",
    ): _ref_1,
    (
        "bdl-7",
        "(type = 'history') or entry.where(fullUrl.exists()).select(fullUrl&resource.meta."
        "versionId).isDistinct()",
    ): _bdl_7,
    ("txt-2", "htmlChecks()"): _txt_2,
    ("per-1", "start.hasValue().not() or end.hasValue().not() or (start <= end)"): _per_1,
    ("bdl-5", "resource.exists() or request.exists() or response.exists()"): lambda v, s: any(
        k in v for k in ("resource", "request", "response")
    ),
    ("bdl-8", "fullUrl.contains('/_history/').not()"): lambda v, s: (
        "/_history/" not in str(v.get("fullUrl", ""))
    ),
    ("qty-3", "code.empty() or system.exists()"): lambda v, s: "code" not in v or "system" in v,
    ("cpt-2", "value.empty() or system.exists()"): lambda v, s: "value" not in v or "system" in v,
    ("obs-6", "dataAbsentReason.empty() or value.empty()"): lambda v, s: (
        "dataAbsentReason" not in v or not _has(v, "value")
    ),
    ("ext-1", "extension.exists() != value.exists()"): lambda v, s: (
        bool(v.get("extension")) != _has(v, "value")
    ),
    ("dom-2", "contained.contained.empty()"): lambda v, s: (
        not any(c.get("contained") for c in _contained(v))
    ),
    (
        "dom-4",
        "contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()",
    ): lambda v, s: (
        not any("versionId" in _meta(c) or "lastUpdated" in _meta(c) for c in _contained(v))
    ),
    ("dom-5", "contained.meta.security.empty()"): lambda v, s: (
        not any(_meta(c).get("security") for c in _contained(v))
    ),
    (
        "obs-7",
        "value.empty() or component.code.where(coding.intersect(%resource.code.coding)"
        ".exists()).empty()",
    ): _obs_7,
}
"""Constraints evaluated in Python, keyed by (key, exact expression) so a changed definition
falls back to FHIRPath."""


ERRATA: dict[tuple[str, str], str] = {
    (
        "que-12",
        "enableWhen.count() > 2 implies enableBehavior.exists()",
    ): "enableWhen.count() > 1 implies enableBehavior.exists()",
    (
        "que-7",
        "operator = 'exists' implies (answer is Boolean)",
    ): "operator = 'exists' implies (answer is boolean)",
}
"""Core constraint expressions rewritten before evaluation. que-12 contradicts its own
human text ('more than one enableWhen'); que-7 tests a FHIR boolean against the System
type Boolean, which the HL7 engine matches and fhirpathpy does not."""


_TOKEN = re.compile(r"'(?:[^'\\]|\\.)*'|`[^`]*`|%?[A-Za-z_$][A-Za-z0-9_]*|\S")
_KEYWORDS = frozenset(
    [
        "and",
        "or",
        "xor",
        "implies",
        "not",
        "true",
        "false",
        "div",
        "mod",
        "in",
        "contains",
        "as",
        "is",
        "empty",
        "exists",
    ]
)
_NODE_FUNCTIONS = frozenset(
    [
        "children",
        "descendants",
        "hasValue",
        "resolve",
        "htmlChecks",
        "conformsTo",
        "memberOf",
        "repeat",
        "trace",
        "toString",
        "extension",
        "getValue",
    ]
)


@cache
def root_names(expression: str) -> frozenset[str] | None:
    """The child names an expression reads from its context element, or None when its
    result may depend on more than those children (variables, whole-node functions).

    When none of these children is present, the result is the same for every
    instance of the type, so it is computed once (``InvariantEvaluator``).
    """
    names: set[str] = set()
    tokens = _TOKEN.findall(expression)
    for i, tok in enumerate(tokens):
        if tok.startswith(("%", "$")):
            return None
        if tok.startswith("'") or not (tok[0].isalpha() or tok[0] in "_`"):
            continue
        after_dot = i > 0 and tokens[i - 1] == "."
        is_call = i + 1 < len(tokens) and tokens[i + 1] == "("
        if is_call:
            if tok in _NODE_FUNCTIONS and not after_dot:
                return None
            continue
        if after_dot or tok in _KEYWORDS or tok[0].isupper():
            continue
        names.add(tok.strip("`"))
    return frozenset(names)


def _absent(value: Any, names: frozenset[str]) -> bool:
    if not isinstance(value, dict):
        return False
    for key in value:
        if not isinstance(key, str):
            continue
        key = key.lstrip("_")
        for name in names:
            if key == name or (key.startswith(name) and key[len(name) : len(name) + 1].isupper()):
                return False
    return True


def _verdict(result: list[Any]) -> bool:
    if not result:
        return True
    values = [getattr(r, "data", r) for r in result]
    return not (len(values) == 1 and values[0] is False)


class InvariantEvaluator:
    """Evaluates the constraints of the collected element instances."""

    def __init__(self) -> None:
        self.not_evaluated: dict[str, str] = {}
        self.evaluated = 0

    _absent_results: dict[tuple[str, str], bool | None] = {}

    def evaluate(self, sites: list[InvariantSite]) -> list[Finding]:
        findings: list[Finding] = []
        reported: set[str] = set()
        for site in sites:
            for constraint in site.constraints:
                ok = self._check(constraint, site, findings, reported)
                if ok is False:
                    findings.append(
                        Finding(
                            Issue(
                                constraint.severity,
                                "invariant",
                                f"Constraint failed: {constraint.key}: '{constraint.human}'",
                                [site.path],
                            ),
                            site.ptr,
                        )
                    )
        return findings

    def _check(
        self,
        constraint: Constraint,
        site: InvariantSite,
        findings: list[Finding],
        reported: set[str],
    ) -> bool | None:
        native = NATIVE.get((constraint.key, constraint.expression))
        if native is not None:
            try:
                return native(site.value, site.resource)
            except (AttributeError, TypeError, ValueError):
                return self._fhirpath(constraint.expression, constraint, site, findings, reported)
        if constraint.key == "dom-3" and constraint.expression.startswith("contained.where(("):
            return _dom_3(site.value, site.resource)
        expression = ERRATA.get((constraint.key, constraint.expression), constraint.expression)
        names = root_names(expression)
        if names is not None and _absent(site.value, names):
            key = (expression, site.type_path)
            if self._absent_results.get(key) is None:
                empty = InvariantSite(
                    site.constraints, {}, site.type_path, site.path, site.ptr, site.resource
                )
                self._absent_results[key] = self._fhirpath(
                    expression, constraint, empty, findings, reported
                )
            return self._absent_results[key]
        return self._fhirpath(expression, constraint, site, findings, reported)

    def _fhirpath(
        self,
        expression: str,
        constraint: Constraint,
        site: InvariantSite,
        findings: list[Finding],
        reported: set[str],
    ) -> bool | None:
        self.evaluated += 1
        try:
            parsed = _parsed(expression)
            node = ResourceNode.create_node(site.value, site.type_path)
            variables = {
                "resource": site.resource.value,
                "rootResource": site.resource.root.value,
                "ucum": "http://unitsofmeasure.org",
            }
            token = _SCOPE.set(site.resource)
            try:
                result = apply_parsed_path(node, parsed, variables, _MODEL, _OPTIONS)
            finally:
                _SCOPE.reset(token)
            return _verdict(result)
        except Exception as exc:
            if constraint.key not in reported:
                reported.add(constraint.key)
                reason = str(exc) or type(exc).__name__
                self.not_evaluated[constraint.key] = reason
                findings.append(
                    Finding(
                        Issue(
                            "information",
                            "informational",
                            f"Constraint {constraint.key} could not be evaluated ({reason}); "
                            f"it was not checked: {constraint.expression}",
                            [site.path],
                        ),
                        site.ptr,
                    )
                )
            return None
