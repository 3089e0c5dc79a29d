"""Terminology bindings of the core elements (https://hl7.org/fhir/R4/terminologies.html#strength).

``required``: the code must be in the ValueSet (error); a CodeableConcept with text
and no code has no concept from it, so it is an error too. ``extensible``: a code
outside the ValueSet is a warning. ``preferred`` and ``example`` are not
checked. Only ValueSets that expand offline from the package cache are
checked; for a required binding that cannot be expanded, one information
issue per ValueSet says so. Grammar-based code systems (MIME types, language
tags, UCUM) are not enumerable and are left to their own formats.
"""

from __future__ import annotations

import re
from typing import Any

from fhir_service.errors import Issue
from fhir_service.fhir.expansion import Expander
from fhir_service.fhir.package_cache import Definitions

_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_THO = "http://terminology.hl7.org/"
_GRAMMARS = ("urn:ietf:bcp:13", "urn:ietf:bcp:47", "http://unitsofmeasure.org")
CODED_TYPES = frozenset({"code", "Coding", "CodeableConcept", "Quantity", "string", "uri"})


class BindingChecker:
    """Checks coded values against bound ValueSets; expansions are kept."""

    def __init__(self, definitions: Definitions) -> None:
        self.definitions = definitions
        self.expander = Expander(definitions)
        self._titles: dict[str, str] = {}
        self._grammar: dict[str, bool] = {}
        self._system_problems: dict[str, str | None] = {}
        self._systems: dict[str, tuple[str, dict[str, list[str]], str] | None] = {}

    def coding(self, value: Any, path: str, display_severity: str = "error") -> list[Issue]:
        """A Coding against its code system when the system is held offline.

        https://hl7.org/fhir/R4/datatypes.html#Coding: ``code`` is a symbol defined by
        ``system``. A CodeSystem whose ``content`` is ``complete`` lists every code, so
        any other code is unknown; a ``supplement``
        (https://hl7.org/fhir/R4/codesystem.html#supplements) defines no codes of its
        own (its ``supplements`` names the system it adds to) and cannot be a Coding's system.
        """
        if not isinstance(value, dict):
            return []
        system, code = value.get("system"), value.get("code")
        if not isinstance(system, str):
            return []
        problem = self._system_problems.get(system, "?")
        if problem == "?":
            problem = self._system_problems[system] = self._system_problem(system)
        if problem is not None:
            return [Issue("error", "invalid", problem, [f"{path}.system"])]
        known = self._code_system(system)
        if known is None:
            return []
        content, codes, version = known
        if content == "supplement":
            text = (
                f"CodeSystem {system} is a supplement, so can't be used as a value in Coding.system"
            )
            return [Issue("error", "business-rule", text, [f"{path}.system"])]
        if content == "complete" and isinstance(code, str) and code not in codes:
            text = f"Unknown code '{code}' in the CodeSystem '{system}' version '{version}'"
            return [Issue("error", "code-invalid", text, [f"{path}.code"])]
        display = value.get("display")
        names = codes.get(code) if isinstance(code, str) else None
        if isinstance(display, str) and names and _plain(display) not in {_plain(n) for n in names}:
            # https://hl7.org/fhir/R4/datatypes.html#Coding: display is the system's own
            # representation of the code (its display or one of its designations).
            text = (
                f"Wrong Display Name '{display}' for {system}#{code}. Valid display is "
                f"'{names[0]}' (for the language(s) 'en-US')"
            )
            return [Issue(display_severity, "invalid", text, [f"{path}.display"])]
        return []

    def _system_problem(self, system: str) -> str | None:
        if not _ABSOLUTE.match(system):
            # https://hl7.org/fhir/R4/datatypes.html#Coding: system is an absolute URI
            return "Coding.system must be an absolute reference, not a local reference"
        if self.definitions.code_system(system) is None and self.definitions.value_set(system):
            # https://hl7.org/fhir/R4/terminologies.html#4.1: system names a code system
            return f"The Coding references a value set, not a code system ('{system}')"
        return None

    def code_known(self, system: str, code: str) -> bool | None:
        """Whether a complete CodeSystem held offline defines a code (None: not known)."""
        known = self._code_system(system)
        if known is None or known[0] != "complete":
            return None
        return code in known[1]

    def _code_system(self, url: str) -> tuple[str, dict[str, list[str]], str] | None:
        if url not in self._systems:
            cs = self.definitions.code_system(url)
            if cs is not None and url.startswith(_THO):
                # HL7 terminology (https://terminology.hl7.org) is published apart from the
                # R4 core package, whose copies of its code systems are older: only the
                # hl7.terminology package, or a system supplied with the run, is current.
                package = self.definitions.package_of(url)
                if package is not None and package.id != "hl7.terminology":
                    cs = None
            if cs is None:
                self._systems[url] = None
            else:
                codes: dict[str, list[str]] = {}
                stack = list(cs.get("concept") or [])
                while stack:
                    concept = stack.pop()
                    if isinstance(concept, dict):
                        if isinstance(concept.get("code"), str):
                            names = (
                                [concept["display"]]
                                if isinstance(concept.get("display"), str)
                                else []
                            )
                            names += [
                                d["value"]
                                for d in concept.get("designation") or []
                                if isinstance(d, dict) and isinstance(d.get("value"), str)
                            ]
                            codes[concept["code"]] = names
                        stack.extend(concept.get("concept") or [])
                supplement = cs.get("content") == "supplement" or bool(cs.get("supplements"))
                self._systems[url] = (
                    "supplement" if supplement else str(cs.get("content") or ""),
                    codes,
                    str(cs.get("version") or "null"),
                )
        return self._systems[url]

    def _title(self, url: str) -> str:
        if url not in self._titles:
            vs = self.definitions.value_set(url) or {}
            self._titles[url] = str(vs.get("title") or vs.get("name") or url)
        return self._titles[url]

    def _is_grammar(self, url: str) -> bool:
        if url not in self._grammar:
            vs = self.definitions.value_set(url) or {}
            includes = (vs.get("compose") or {}).get("include") or []
            self._grammar[url] = any(i.get("system") in _GRAMMARS for i in includes)
        return self._grammar[url]

    def no_code_issue(self, vs_url: str, path: str) -> Issue:
        """A coded element with a required binding that carries no code at all."""
        text = self._no_code(vs_url, vs_url.split("|", 1)[0])
        return Issue("error", "code-invalid", text, [path])

    def _no_code(self, vs_url: str, url: str) -> str:
        shown = f"{vs_url}|4.0.1" if "|" not in vs_url else vs_url
        return (
            f"No code provided, and a code is required from the value set "
            f"'{self._title(url)}' ({shown})"
        )

    def check(
        self, binding: tuple[str, str], type_code: str, value: Any, path: str, reported: set[str]
    ) -> Issue | None:
        """The issue of one coded value against its binding, or None."""
        strength, vs_url = binding
        if strength not in ("required", "extensible") or type_code not in CODED_TYPES:
            return None
        codes = _codes(type_code, value)
        url = vs_url.split("|", 1)[0]
        if not codes:
            if strength == "required" and type_code == "CodeableConcept":
                return Issue("error", "code-invalid", self._no_code(vs_url, url), [path])
            return None
        expansion = self.expander.expand(url)
        if not expansion.known:
            if strength == "required" and not self._is_grammar(url) and url not in reported:
                reported.add(url)
                return Issue(
                    "information",
                    "not-supported",
                    f"The required binding to {vs_url} could not be checked offline: "
                    f"{expansion.reason}",
                    [path],
                )
            return None
        if any(expansion.contains(system, code) for system, code in codes):
            return None
        severity = "error" if strength == "required" else "warning"
        shown = f"{vs_url}|4.0.1" if "|" not in vs_url else vs_url
        name = self._title(url)
        if type_code == "CodeableConcept":
            text = f"None of the codings provided are in the value set '{name}' ({shown})"
        else:
            system, code = codes[0]
            written = f"{system}#{code}" if system else code
            text = f"The value provided ('{written}') is not in the value set '{name}' ({shown})"
        text += (
            ", and a code is required from this value set"
            if strength == "required"
            else ", and a code should come from this value set unless it has no suitable code"
        )
        return Issue(severity, "code-invalid", text, [path])


def _plain(text: str) -> str:
    return " ".join(text.split()).lower()


def _codes(type_code: str, value: Any) -> list[tuple[str | None, str]]:
    if type_code in ("code", "string", "uri"):
        return [(None, value)] if isinstance(value, str) else []
    if not isinstance(value, dict):
        return []
    if type_code == "CodeableConcept":
        codings = value.get("coding")
        items = codings if isinstance(codings, list) else []
    else:
        items = [value]
    return [
        (c.get("system") if isinstance(c.get("system"), str) else None, c["code"])
        for c in items
        if isinstance(c, dict) and isinstance(c.get("code"), str)
    ]
