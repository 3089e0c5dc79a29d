"""The development cases of the FHIR validator test suite and how we score against them.

Verdict agreement: a case agrees when we report an error or fatal issue exactly when
the reference outcome has one. Issue agreement: per case, the error and fatal issues
matched on (severity, expression) -- FHIRPath comments ``/*...*/`` removed -- divided
by the larger of the two counts (1 when both are empty), averaged over cases.
"""

from __future__ import annotations

import json
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
