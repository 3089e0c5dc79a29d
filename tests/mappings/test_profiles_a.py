"""Each resource claiming an mCODE profile has no error against that profile's snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fhir_service.fhir.package_cache import Definitions
from fhir_service.validation.profile import check_profile, definitions_from_cache
from mappings.body_structure import map_body_structures
from mappings.condition import map_conditions
from mappings.observation import map_observations
from mappings.patient import map_patient
from tests.packages.cache import installed_cache

from .mapped import run

MAPPERS = [map_patient, map_conditions, map_body_structures, map_observations]


@pytest.fixture(scope="module")
def defs() -> Definitions:
    root: Path = installed_cache()
    return definitions_from_cache(root)


def _claimed(case: Any) -> list[tuple[str, dict[str, Any]]]:
    return [
        (profile, r)
        for mapper in MAPPERS
        for r in run(case, mapper)
        for profile in r.get("meta", {}).get("profile", [])
    ]


def test_every_mcode_profile_claimed_is_met(ivc_case: Any, defs: Definitions) -> None:
    claimed = _claimed(ivc_case)
    assert {p.rsplit("/", 1)[1] for p, _ in claimed} == {
        "mcode-cancer-patient",
        "mcode-primary-cancer-condition",
        "mcode-secondary-cancer-condition",
        "mcode-tumor",
        "mcode-tumor-size",
        "mcode-cancer-disease-status",
    }
    problems = [
        (r["resourceType"], profile.rsplit("/", 1)[1], i.diagnostics, i.expression)
        for profile, r in claimed
        for i in check_profile(r, profile, defs)
        if i.severity in ("error", "fatal")
    ]
    assert problems == []
