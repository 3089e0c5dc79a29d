"""The validator against the HL7 reference validator on the 50 development cases.

Prints a per-case table and a summary line, and fails when either agreement falls
below the score recorded in conformance/score.json.
"""

from __future__ import annotations

import json
from pathlib import Path

from fhir_service.fhir.package_cache import load_definitions
from fhir_service.validation.engine import validate_json_text
from tests.validation.conformance_cases import SCORE_FILE, error_keys, load_cases, score_case


def test_conformance_cases_do_not_regress(package_root: Path) -> None:
    definitions = load_definitions(package_root)
    cases = load_cases()
    assert len(cases) == 50
    verdicts, agreements, rows = 0, 0.0, []
    for case in cases:
        text = case.file.read_text(encoding="utf-8")
        issues = validate_json_text(text, definitions=definitions, options=case.options)
        got = error_keys([(i.severity, i.expression) for i in issues])
        expected = error_keys([(i["severity"], i.get("expression") or []) for i in case.expected])
        verdict, agreement = score_case(expected, got)
        verdicts += verdict
        agreements += agreement
        rows.append(
            f"{case.name[:44]:44} {'ok ' if verdict else 'BAD'} {agreement:5.2f} "
            f"expected {sum(expected.values())} errors, got {sum(got.values())}"
        )
    verdict_pct = 100.0 * verdicts / len(cases)
    issue_pct = 100.0 * agreements / len(cases)
    print("\n".join(rows))
    print(
        f"conformance: {len(cases)} cases, verdict agreement {verdict_pct:.1f}%, "
        f"issue agreement {issue_pct:.1f}%"
    )
    recorded = json.loads(SCORE_FILE.read_text(encoding="utf-8"))
    assert verdict_pct >= recorded["verdict_agreement"] - 1e-9
    assert issue_pct >= recorded["issue_agreement"] - 1e-9
