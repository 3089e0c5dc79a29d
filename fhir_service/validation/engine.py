"""The validator: JSON syntax, structure, bindings, invariants, references, profiles.

Runs the checks of https://hl7.org/fhir/R4/validation.html in order on one
resource (a Bundle validates its entries too) and returns OperationOutcome
issues with FHIRPath locations, plus line and column when the input was text.
Profiles come from ``meta.profile`` of every resource, from the caller, and for
Observations with a vital-sign code from the R4 vital signs profiles (``vital_signs.py``);
a profile that is not installed is reported (a warning for ``meta.profile``,
as the HL7 validator does; an error for one the caller asked for).
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fhir_service.errors import Issue
from fhir_service.fhir.package_cache import Definitions, load_definitions
from fhir_service.validation.bindings import BindingChecker
from fhir_service.validation.conformance_rules import (
    capability_statement,
    code_system,
    concept_map,
    global_profiles,
    hl7_publication,
    measure_report,
    search_parameter,
    value_set,
)
from fhir_service.validation.elements import CORE, ModelIndex
from fhir_service.validation.invariants import InvariantEvaluator
from fhir_service.validation.json_syntax import Finding, Locator, Pointer, parse_json
from fhir_service.validation.options import Options
from fhir_service.validation.profile import check_profile
from fhir_service.validation.questionnaire import QuestionnaireChecker
from fhir_service.validation.references import ReferenceChecker
from fhir_service.validation.structure import ResourceSite, StructureWalker
from fhir_service.validation.vital_signs import required_profile

DEFAULT_PACKAGE_CACHE = Path("~/.fhir/packages")
_SEVERITY_ORDER = {"fatal": 0, "error": 1, "warning": 2, "information": 3}
_STEP = re.compile(r"([^.\[(]+)(?:\.ofType\((\w+)\))?((?:\[\d+\])*)")


class Validator:
    """Validates resources against one set of definitions; compiled models are kept."""

    def __init__(self, definitions: Definitions) -> None:
        self.definitions = definitions
        self.index = ModelIndex(definitions)
        self.bindings = BindingChecker(definitions)
        self.questionnaires = QuestionnaireChecker(definitions, self.index.is_resource)

    def validate_text(
        self, text: str, options: Options | None = None, *, at: Pointer = ()
    ) -> list[Issue]:
        """Issues of a JSON text, each with line and column where it can be placed.

        ``at`` is the JSON pointer of the resource to validate when it is not the whole
        text (the ``resource`` of a Parameters); its FHIRPath locations start at it.
        """
        options = options or Options()
        parsed = parse_json(text, allow_comments=options.allow_comments)
        if parsed.fatal:
            return [f.issue for f in parsed.findings]
        value = parsed.value
        for part in at:
            value = value[part]
        own = self._findings(value, options)
        locate = Locator(text)
        for finding in own:
            if finding.issue.line is not None:
                continue
            pointer = finding.pointer
            if pointer is None and finding.issue.expression:
                pointer = pointer_of(finding.issue.expression[0])
            where = locate(None if pointer is None else at + pointer)
            if where is not None:
                finding.issue.line, finding.issue.column = where
        return _ordered(list(parsed.findings) + own)

    def validate_resource(self, resource: Any, options: Options | None = None) -> list[Issue]:
        """Issues of a resource already read from JSON (no line and column)."""
        return _ordered(self._findings(resource, options or Options()))

    def _findings(self, resource: Any, options: Options) -> list[Finding]:
        walker = StructureWalker(self.index, self.bindings, options)
        walked = walker.walk(resource)
        findings = list(walked.findings)
        if options.invariants:
            findings.extend(InvariantEvaluator().evaluate(walked.invariants))
        findings.extend(
            ReferenceChecker(self.index, options).check(walked.references, walked.resources)
        )
        for site in walked.resources:
            explicit = options.profiles if site.path == site.rtype else ()
            findings.extend(self._profiles(site, explicit, options))
            own: list[Issue] = []
            if site.rtype == "SearchParameter":
                own = search_parameter(
                    site.value, site.rtype, self.definitions, self.index.is_resource
                )
            elif site.rtype == "CapabilityStatement":
                own = capability_statement(site.value, site.rtype, self.definitions)
            elif site.rtype == "ConceptMap":
                own = concept_map(site.value, site.rtype, self.definitions, self.bindings.expander)
            elif site.rtype == "MeasureReport":
                own = measure_report(site.value, site.rtype, self.definitions)
            elif site.rtype == "CodeSystem":
                own = code_system(site.value, site.rtype)
            elif site.rtype == "ValueSet":
                own = value_set(site.value, site.rtype, self.definitions, self.bindings.code_known)
            if options.for_publication and site.container is None:
                own = own + hl7_publication(site.value, site.rtype)
            for issue in own:
                issue.expression = [_rebase(e, site) for e in issue.expression]
                findings.append(Finding(issue, None))
            if site.rtype == "QuestionnaireResponse":
                for issue in self.questionnaires.check(site.value, site.rtype):
                    issue.expression = [_rebase(e, site) for e in issue.expression]
                    findings.append(Finding(issue, None))
        return _unique(findings)

    def _profiles(
        self, site: ResourceSite, explicit: Iterable[str], options: Options
    ) -> list[Finding]:
        out: list[Finding] = []
        meta = site.value.get("meta")
        use_declared = options.declared_profiles
        declared = meta.get("profile") if isinstance(meta, dict) and use_declared else None
        wanted: list[tuple[str, str | None]] = [(p, None) for p in explicit]
        wanted += [(p, None) for p in global_profiles(self.definitions, site.rtype)]
        if isinstance(declared, list):
            wanted += [
                (p, f"{site.child_path}.meta.profile[{i}]")
                for i, p in enumerate(declared)
                if isinstance(p, str)
            ]
        done: set[str] = set()
        vital = None
        if options.vital_signs and site.rtype == "Observation":
            vital = required_profile(site.value)
        if vital is not None:
            text = (
                f"Validate Observation against the {vital.name} profile ({vital.profile}) which "
                f"is required by the FHIR specification because the {vital.system_name} code "
                f"{vital.code} was found"
            )
            out.append(Finding(Issue("information", "informational", text, [site.path]), None))
            wanted.append((vital.profile, None))
        for url, where in wanted:
            plain = url.split("|", 1)[0]
            if plain in done or plain == CORE + site.rtype:
                continue
            done.add(plain)
            if self.definitions.structure_definition(url) is None:
                if where is None:
                    text = f"Profile {url} is not available in the installed FHIR packages"
                    out.append(Finding(Issue("error", "not-found", text, [site.path]), site.ptr))
                else:
                    text = (
                        f"Profile reference '{url}' has not been checked because it could not "
                        "be found in the installed FHIR packages"
                    )
                    issue = Issue(options.unknown_profile, "structure", text, [where])
                    out.append(Finding(issue, None))
                continue
            for issue in check_profile(site.value, url, self.definitions):
                issue.expression = [_rebase(e, site) for e in issue.expression]
                out.append(Finding(issue, None))
        return out


def _rebase(expression: str, site: ResourceSite) -> str:
    if site.path == site.rtype or not expression.startswith(site.rtype):
        return expression
    return (
        site.child_path + expression[len(site.rtype) :] if expression != site.rtype else site.path
    )


def pointer_of(expression: str) -> Pointer | None:
    """The JSON pointer of a FHIRPath location written by this validator."""
    text = re.sub(r"/\*.*?\*/", "", expression)
    parts = text.split(".", 1)
    if len(parts) < 2:
        return ()
    pointer: list[str | int] = []
    for m in _STEP.finditer(parts[1]):
        name, of_type, indexes = m.group(1), m.group(2), m.group(3)
        if not name:
            continue
        pointer.append(name + (of_type[0].upper() + of_type[1:] if of_type else ""))
        pointer.extend(int(i) for i in re.findall(r"\[(\d+)\]", indexes))
    return tuple(pointer)


def _unique(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str, str, tuple[str, ...]]] = set()
    out = []
    for f in findings:
        key = (f.issue.severity, f.issue.code, f.issue.diagnostics, tuple(f.issue.expression))
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def _ordered(findings: list[Finding]) -> list[Issue]:
    issues = [f.issue for f in findings]
    return sorted(issues, key=lambda i: _SEVERITY_ORDER.get(i.severity, 4))


_VALIDATORS: weakref.WeakKeyDictionary[Definitions, Validator] = weakref.WeakKeyDictionary()


def validator_for(definitions: Definitions | None = None) -> Validator:
    """The shared Validator of a Definitions (default: every package in ~/.fhir/packages)."""
    if definitions is None:
        definitions = load_definitions(DEFAULT_PACKAGE_CACHE)
    found = _VALIDATORS.get(definitions)
    if found is None:
        found = _VALIDATORS[definitions] = Validator(definitions)
    return found


def validate_json_text(
    text: str,
    *,
    profiles: Iterable[str] = (),
    definitions: Definitions | None = None,
    options: Options | None = None,
) -> list[Issue]:
    """Validate FHIR JSON text: every issue, with FHIRPath location, line and column."""
    options = _with_profiles(options, profiles)
    return validator_for(definitions).validate_text(text, options)


def validate_resource(
    resource: Any,
    *,
    profiles: Iterable[str] = (),
    definitions: Definitions | None = None,
    options: Options | None = None,
) -> list[Issue]:
    """Validate a resource given as parsed JSON: every issue, with FHIRPath location."""
    options = _with_profiles(options, profiles)
    return validator_for(definitions).validate_resource(resource, options)


def _with_profiles(options: Options | None, profiles: Iterable[str]) -> Options:
    options = options or Options()
    extra = tuple(profiles)
    if not extra:
        return options
    from dataclasses import replace

    return replace(options, profiles=(*options.profiles, *extra))


def has_errors(issues: Iterable[Issue]) -> bool:
    """Whether any issue is an error or fatal (the resource is not valid)."""
    return any(i.severity in ("error", "fatal") for i in issues)
