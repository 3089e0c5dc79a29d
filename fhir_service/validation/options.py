"""What a validation run checks, mirroring the HL7 validator's settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Options:
    """Validation settings; the defaults are those of the HL7 validator's command line.

    ``check_references`` makes a relative reference that does not resolve inside the
    Bundle an error (the HL7 validator's ``validateReference``); ``validate_contained``
    checks that contained resources are referenced (dom-3); ``declared_profiles`` checks
    each resource against the profiles of its ``meta.profile``; ``vital_signs`` checks an
    Observation with a vital-sign code against its R4 vital signs profile
    (``vital_signs.py``); ``profiles`` are checked on the top-level resource as well.
    ``for_publication`` adds the rules for resources HL7 publishes (the HL7 validator's
    ``-forPublication``); ``display_issues_are_warnings`` makes a Coding display that its
    code system does not know a warning instead of an error (the HL7 validator's
    ``-display-issues-are-warnings``). ``unknown_profile`` is the severity of a
    ``meta.profile`` that is not installed: ``warning`` as in the HL7 validator, ``error``
    for validation on write that refuses what it cannot check (HAPI's
    ``errorForUnknownProfiles``). ``unknown_extension`` is the severity of an extension
    whose definition is nowhere to be found: ``error`` as in the HL7 validator,
    ``warning`` for validation on write (HAPI's default: anyone may define extensions,
    https://hl7.org/fhir/R4/extensibility.html).
    """

    invariants: bool = True
    best_practice: bool = False
    allow_comments: bool = False
    allow_example_urls: bool = True
    security_checks: bool = False
    no_html_in_markdown: bool = False
    check_references: bool = False
    validate_contained: bool = True
    declared_profiles: bool = True
    vital_signs: bool = True
    profiles: tuple[str, ...] = ()
    for_publication: bool = False
    display_issues_are_warnings: bool = False
    unknown_profile: Literal["warning", "error"] = "warning"
    unknown_extension: Literal["warning", "error"] = "error"
