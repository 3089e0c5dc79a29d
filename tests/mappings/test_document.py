"""`fhir-service map --bundle-type document`: the case as a FHIR document
(https://hl7.org/fhir/R4/documents.html), run as the CLI, checked by the project's validator
(`fhir-service validate`) and by the document rules read from the specification."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO, walk_references

CASES = sorted((REPO / "examples").glob("*/case.yaml"))
LOINC = "http://loinc.org"
XHTML = "{http://www.w3.org/1999/xhtml}"
# The LOINC section codes of the International Patient Summary and C-CDA.
HISTORY, PROBLEMS, PROCEDURES, MEDICATIONS = "11348-0", "11450-4", "47519-4", "10160-0"
RESULTS, PLAN_OF_CARE, ENCOUNTERS = "30954-2", "18776-5", "46240-8"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fhir_service", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def mapped(case: Path, tmp_path: Path, kind: str = "document") -> tuple[Path, dict[str, Any]]:
    out = tmp_path / f"{case.parent.name}-{kind}.json"
    result = cli("map", str(case), "--bundle-type", kind, "--anchor-date", "2022-03-01")
    assert result.returncode == 0, result.stderr
    out.write_text(result.stdout)
    return out, json.loads(result.stdout)


def validation_errors(path: Path) -> list[str]:
    result = cli("validate", str(path), "--format", "json")
    outcome = json.loads(result.stdout)
    return [
        f"{i.get('expression')}: {i['diagnostics']}"
        for i in outcome["issue"]
        if i["severity"] in ("error", "fatal")
    ]


@pytest.fixture(scope="module", params=CASES, ids=lambda p: p.parent.name)
def document(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return mapped(request.param, tmp_path_factory.mktemp("document"))


def test_both_cases_are_documents_without_validation_errors(document: Any) -> None:
    path, bundle = document
    assert validation_errors(path) == []
    assert bundle["type"] == "document"
    assert bundle["identifier"]["system"] and bundle["identifier"]["value"]  # bdl-9
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", bundle["timestamp"])  # bdl-10
    assert bundle["entry"][0]["resource"]["resourceType"] == "Composition"  # bdl-11


def test_every_reference_resolves_inside_the_document(document: Any) -> None:
    _, bundle = document
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(urls) == len(set(urls))
    assert all(u.startswith("urn:uuid:") for u in urls)
    unresolved = [
        (e["resource"]["resourceType"], where, ref)
        for e in bundle["entry"]
        for where, ref in walk_references(e["resource"])
        if ref not in urls
    ]
    assert unresolved == []
    # Nothing the Composition does not reach: the Provenance and the publication stay out.
    types = {e["resource"]["resourceType"] for e in bundle["entry"]}
    assert "Provenance" not in types
    descriptions = [e["resource"].get("type", {}) for e in bundle["entry"]]
    assert {"text": "Published case report"} not in descriptions


def test_the_composition_names_subject_author_and_title(document: Any) -> None:
    _, bundle = document
    composition = bundle["entry"][0]["resource"]
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    assert composition["status"] == "final"
    assert composition["type"]["coding"][0]["system"] == LOINC
    assert by_url[composition["subject"]["reference"]]["resourceType"] == "Patient"
    author = by_url[composition["author"][0]["reference"]]
    assert author["resourceType"] == "Device"
    assert author["type"]["text"] == "Software that mapped the case report to FHIR"
    assert composition["title"]
    assert bundle["timestamp"] == composition["date"]


def _sections(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    composition = bundle["entry"][0]["resource"]
    out = {}
    for section in composition["section"]:
        (coding,) = section["code"]["coding"]
        assert coding["system"] == LOINC
        out[coding["code"]] = section
    return out


def _entries(bundle: dict[str, Any], section: dict[str, Any]) -> list[dict[str, Any]]:
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    return [by_url[e["reference"]] for e in section["entry"]]


def _items(section: dict[str, Any]) -> list[str]:
    div = ET.fromstring(section["text"]["div"])
    assert div.tag == f"{XHTML}div"
    return ["".join(li.itertext()) for li in div.iter(f"{XHTML}li")]


def test_sections_hold_their_kinds_of_resource(document: Any) -> None:
    _, bundle = document
    sections = _sections(bundle)
    kinds = {
        HISTORY: {"Condition"},
        PROBLEMS: {"Condition", "AdverseEvent", "BodyStructure"},
        PROCEDURES: {"Procedure"},
        MEDICATIONS: {"MedicationRequest", "MedicationAdministration", "MedicationStatement"},
        RESULTS: {"Observation", "DiagnosticReport"},
        PLAN_OF_CARE: {"CarePlan"},
        ENCOUNTERS: {"Encounter", "DocumentReference"},
    }
    assert {PROBLEMS, RESULTS} <= set(sections)
    for code, section in sections.items():
        assert section["entry"], code  # an empty section is left out (cmp-1)
        assert "emptyReason" not in section
        assert {r["resourceType"] for r in _entries(bundle, section)} <= kinds[code]


def test_section_narrative_is_made_of_the_entries_own_words(document: Any) -> None:
    _, bundle = document
    for code, section in _sections(bundle).items():
        assert section["text"]["status"] == "generated"
        items = _items(section)
        entries = _entries(bundle, section)
        assert len(items) == len(entries), code
        for item, resource in zip(items, entries, strict=True):
            said = json.dumps(resource, ensure_ascii=False)
            invented = [w for w in re.findall(r"[A-Za-z0-9]+", item) if w not in said]
            assert invented == [], (code, item)


def test_the_ivc_document_reads_as_the_case(tmp_path: Path) -> None:
    """Expectations from examples/ivc-leiomyosarcoma/case.yaml."""
    _, bundle = mapped(REPO / "examples" / "ivc-leiomyosarcoma" / "case.yaml", tmp_path)
    sections = _sections(bundle)
    assert set(sections) == {
        HISTORY,
        PROBLEMS,
        PROCEDURES,
        MEDICATIONS,
        RESULTS,
        PLAN_OF_CARE,
        ENCOUNTERS,
    }
    (history,) = _items(sections[HISTORY])
    assert history.startswith("Chronic hepatitis B, 20-year history")
    problems = _items(sections[PROBLEMS])
    # lung metastases at month +17, day 0 = 2022-03-01: the date and how it was derived
    assert any(i.startswith("Lung metastases") and "2023-08-01 (month +17)" in i for i in problems)
    assert any(i.startswith("Bone marrow suppression") for i in problems)
    medications = _items(sections[MEDICATIONS])
    assert any(i.startswith("Doxorubicin, 40 mg ivgtt") and "(stopped)" in i for i in medications)
    procedures = _items(sections[PROCEDURES])
    assert any(i.startswith("Ex-vivo liver resection") and "(day 0)" in i for i in procedures)
    plans = _items(sections[PLAN_OF_CARE])
    assert any(i.startswith("Tislelizumab + anlotinib") for i in plans)
    stays = _items(sections[ENCOUNTERS])
    assert any(i.startswith("Intensive care unit stay after surgery") for i in stays)
    # Findings of a report are reached through it, not listed twice.
    results = _entries(bundle, sections[RESULTS])
    listed = {f"urn:uuid:{r['id']}" for r in results}
    for report in (r for r in results if r["resourceType"] == "DiagnosticReport"):
        assert not {ref["reference"] for ref in report.get("result", [])} & listed


def test_the_stored_outputs_carry_the_composition(tmp_path: Path) -> None:
    """The collection and transaction Bundles hold the same Composition, so a case loaded
    from its transaction can be served as a document; the Provenance covers it."""
    case = REPO / "examples" / "ivc-leiomyosarcoma" / "case.yaml"
    _, document = mapped(case, tmp_path)
    composition = document["entry"][0]["resource"]
    for kind in ("collection", "transaction"):
        _, bundle = mapped(case, tmp_path, kind)
        found = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Composition"]
        assert len(found) == 1
        stored = {k: v for k, v in found[0]["resource"].items() if k != "id"}
        assert stored == {k: v for k, v in composition.items() if k != "id"}
        (provenance,) = [
            e for e in bundle["entry"] if e["resource"]["resourceType"] == "Provenance"
        ]
        targets = {t["reference"] for t in provenance["resource"]["target"]}
        assert found[0]["fullUrl"] in targets


def test_the_validator_catches_a_broken_document(document: Any, tmp_path: Path) -> None:
    """The check above is not vacuous: the core document rules are enforced."""
    _, bundle = document
    broken = dict(bundle)
    broken.pop("identifier")
    broken["entry"] = [*bundle["entry"][1:], bundle["entry"][0]]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    errors = " ".join(validation_errors(path))
    assert "bdl-9" in errors and "bdl-11" in errors


def test_the_cli_refuses_an_unknown_bundle_type() -> None:
    result = cli("map", str(CASES[0]), "--bundle-type", "message")
    assert result.returncode == 2
    assert "transaction, collection or document" in result.stderr
