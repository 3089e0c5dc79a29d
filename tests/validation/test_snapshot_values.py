"""Snapshot trees, fixed/pattern matching and offline ValueSet expansion."""

from __future__ import annotations

from pathlib import Path

from fhir_service.fhir.expansion import Expander
from fhir_service.validation.fixed_pattern import contains_pattern, equals_fixed
from fhir_service.validation.profile import definitions_from_cache
from fhir_service.validation.snapshot import build_snapshot


def _ed(element_id: str, path: str) -> dict[str, object]:
    return {"id": element_id, "path": path, "min": 0, "max": "*"}


def test_snapshot_tree_follows_ids() -> None:
    sd = {
        "url": "http://example.org/sd",
        "type": "Observation",
        "snapshot": {
            "element": [
                _ed("Observation", "Observation"),
                _ed("Observation.component", "Observation.component"),
                _ed("Observation.component.code", "Observation.component.code"),
                _ed("Observation.component:a.b", "Observation.component"),
                _ed("Observation.component:a.b.code", "Observation.component.code"),
                _ed("Observation.component:a.b/x", "Observation.component"),
            ]
        },
    }
    snap = build_snapshot(sd)
    assert snap is not None
    component = snap.root.children[0]
    assert [s.slice_name for s in component.slices] == ["a.b"]
    assert [c.id for c in component.slices[0].children] == ["Observation.component:a.b.code"]
    assert [s.slice_name for s in component.slices[0].slices] == ["a.b/x"]
    assert build_snapshot({"url": "x"}) is None


def test_pattern_is_contained_fixed_is_exact() -> None:
    pattern = {"coding": [{"system": "http://loinc.org", "code": "97509-4"}]}
    richer = {
        "coding": [
            {"system": "http://x", "code": "1"},
            {"system": "http://loinc.org", "code": "97509-4", "display": "d"},
        ],
        "text": "t",
    }
    assert contains_pattern(richer, pattern)
    assert not equals_fixed(richer, pattern)
    assert equals_fixed({"coding": [{"system": "http://loinc.org", "code": "97509-4"}]}, pattern)
    assert not contains_pattern({"coding": [{"system": "http://loinc.org", "code": "1"}]}, pattern)
    assert not equals_fixed(1, True) and equals_fixed(1.0, 1)


def test_expansion_of_observation_status(package_root: Path) -> None:
    expander = Expander(definitions_from_cache(package_root))
    status = expander.expand("http://hl7.org/fhir/ValueSet/observation-status|4.0.1")
    # The codes listed at https://hl7.org/fhir/R4/valueset-observation-status.html
    assert status.codes is not None
    assert {code for _, code in status.codes} == {
        "registered",
        "preliminary",
        "final",
        "amended",
        "corrected",
        "cancelled",
        "entered-in-error",
        "unknown",
    }
    unknown = expander.expand(
        "http://hl7.org/fhir/us/mcode/ValueSet/mcode-histology-morphology-behavior-vs"
    )
    assert unknown.codes is None
    assert "icd-o-3" in unknown.reason
    missing = expander.expand("http://example.org/ValueSet/none")
    assert missing.codes is None and "not in the installed FHIR packages" in missing.reason
