"""The development cases of the FHIR validator test suite and how we score against them.

Verdict agreement: a case agrees when we report an error or fatal issue exactly when
the reference outcome has one. Issue agreement: per case, the error and fatal issues
matched on (severity, expression) -- FHIRPath comments ``/*...*/`` removed -- divided
by the larger of the two counts (1 when both are empty), averaged over cases.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fhir_service.validation.options import Options

ROOT = Path(__file__).parent / "conformance"
SCORE_FILE = ROOT / "score.json"


@dataclass
class Case:
    name: str
    file: Path
    expected: list[dict[str, Any]]
    options: Options


def _options(case: dict[str, Any]) -> Options:
    return Options(
        allow_comments=bool(case.get("allow-comments")),
        allow_example_urls=case.get("examples", True) is not False,
        security_checks=bool(case.get("security-checks")),
        no_html_in_markdown=bool(case.get("noHtmlInMarkdown")),
        check_references=case.get("validateReference") == "CHECK_EXISTS_AND_TYPE",
        validate_contained=case.get("validateContains") != "IGNORE",
        for_publication=bool(case.get("for-publication")),
    )


def load_cases() -> list[Case]:
    manifest = json.loads((ROOT / "manifest.json").read_text(encoding="utf-8"))
    cases = []
    for entry in manifest["test-cases"]:
        outcome = json.loads(
            (ROOT / "validator" / "outcomes" / entry["java"]).read_text(encoding="utf-8")
        )
        cases.append(
            Case(
                entry["name"],
                ROOT / "validator" / entry["file"],
                list(outcome.get("issue", [])),
                _options(entry),
            )
        )
    return cases


def _norm(expression: str) -> str:
    return re.sub(r"/\*.*?\*/", "", expression)


def error_keys(issues: list[tuple[str, list[str]]]) -> Counter[tuple[str, str]]:
    """The (severity, location) of each error and fatal issue."""
    return Counter(
        (severity, _norm(expression[0] if expression else ""))
        for severity, expression in issues
        if severity in ("error", "fatal")
    )


def score_case(
    expected: Counter[tuple[str, str]], got: Counter[tuple[str, str]]
) -> tuple[bool, float]:
    """(verdict agrees, issue agreement in [0, 1]) for one case."""
    verdict = bool(expected) == bool(got)
    total = max(sum(expected.values()), sum(got.values()))
    matched = sum((expected & got).values())
    return verdict, 1.0 if total == 0 else matched / total


# --- The R4 suite: all 304 cases, read in place from the shared folder (never copied) ---

SUITE_ENV = "FHIR_TEST_CASES_R4"
SUITE_DEFAULT = Path(__file__).resolve().parents[3] / "shared/conformance/fhir-test-cases-r4"
SUITE_SCORE_FILE = ROOT / "score-r4.json"

# Code systems whose content is not in the R4 core package: only a terminology server can
# say whether a code of theirs exists or is in a value set.
EXTERNAL_SYSTEMS = {
    "http://snomed.info/sct": "SNOMED CT",
    "http://loinc.org": "LOINC",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
    "http://hl7.org/fhir/sid/icd-10": "ICD-10",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
    "http://hl7.org/fhir/sid/ndc": "NDC",
    "http://hl7.org/fhir/sid/cvx": "CVX",
    "urn:iso:std:iso:3166": "ISO 3166",
    "urn:ietf:bcp:47": "BCP 47",
    "urn:ietf:bcp:13": "BCP 13 (MIME types)",
    "http://www.ama-assn.org/go/cpt": "CPT",
    "http://dicom.nema.org/resources/ontology/DCM": "DICOM",
}


@dataclass
class SuiteCase:
    name: str
    file: Path
    module: str
    expected: list[dict[str, Any]] | None  # None when only counts are given
    expected_errors: int
    options: Options
    supplied: list[dict[str, Any]]
    unread: list[str]  # supplied files that are not JSON (not loaded)


def suite_root() -> Path:
    return Path(os.environ.get(SUITE_ENV) or SUITE_DEFAULT)


def _expected(entry: dict[str, Any], base: Path) -> tuple[list[dict[str, Any]] | None, int]:
    java = entry["java"]
    if isinstance(java, str):
        outcome = json.loads((base / "outcomes" / java).read_text(encoding="utf-8"))
    elif "outcome" in java:
        outcome = java["outcome"]
    else:
        return None, int(java.get("errorCount", 0)) + int(java.get("fatalCount", 0))
    issues = list(outcome.get("issue", []))
    return issues, sum(1 for i in issues if i.get("severity") in ("error", "fatal"))


def load_suite() -> list[SuiteCase]:
    """Every case of the shared R4 suite with the resources its manifest entry supplies."""
    root = suite_root()
    base = root / "validator"
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    cases = []
    for entry in manifest["test-cases"]:
        names = [*entry.get("supporting", []), *entry.get("profiles", [])]
        supplied, unread = [], []
        for name in names:
            if not name.endswith(".json"):
                unread.append(name)
                continue
            supplied.append(json.loads((base / name).read_text(encoding="utf-8-sig")))
        expected, errors = _expected(entry, base)
        cases.append(
            SuiteCase(
                entry["name"],
                base / entry["file"],
                str(entry.get("module") or ""),
                expected,
                errors,
                _options(entry),
                supplied,
                unread,
            )
        )
    return cases


def terminology_reason(case: SuiteCase) -> str | None:
    """Why the reference outcome of a case needs a terminology server, or None.

    A case needs one when an error of the reference outcome is about a code of an
    external code system (SNOMED CT, LOINC, ...) whose content is in no FHIR package:
    whether the code exists, its display, or a value set filter on it. Codes of code
    systems and value sets of the core package or supplied by the case are checked
    offline and count as usual.
    """
    for issue in case.expected or []:
        if issue.get("severity") not in ("error", "fatal"):
            continue
        text = str((issue.get("details") or {}).get("text") or issue.get("diagnostics") or "")
        for system, label in EXTERNAL_SYSTEMS.items():
            if system in text:
                return f"{label} ({system}): {text[:140]}"
    return None
