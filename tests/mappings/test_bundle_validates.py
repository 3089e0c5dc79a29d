"""The example cases, mapped into every bundle type, validate with no error against the
core spec, mCODE and the project's extension package (mappings/definitions/package)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from fhir_service.validation.engine import has_errors, validate_json_text
from fhir_service.validation.profile import definitions_from_cache
from mappings.bundle import build_bundle
from mappings.case.loader import load_case
from tests.packages.cache import package_root

from .conftest import ANCHOR, REPO
from .project_package import cache_with_project_package

__all__ = ["package_root"]


def test_collection_and_transaction_bundles_have_no_error(
    collection_bundle: dict[str, Any],
    transaction_bundle: dict[str, Any],
    package_root: Path,
    tmp_path: Path,
) -> None:
    definitions = definitions_from_cache(cache_with_project_package(package_root, tmp_path))
    for bundle in (collection_bundle, transaction_bundle):
        issues = validate_json_text(orjson.dumps(bundle).decode(), definitions=definitions)
        errors = [
            f"{i.expression}: {i.diagnostics}" for i in issues if i.severity in ("error", "fatal")
        ]
        assert errors == []
        assert not has_errors(issues)


@pytest.mark.parametrize(
    "case", sorted((REPO / "examples").glob("*/case.yaml")), ids=lambda p: p.parent.name
)
def test_every_example_case_in_every_bundle_type_has_no_error(
    case: Path, package_root: Path, tmp_path: Path
) -> None:
    definitions = definitions_from_cache(cache_with_project_package(package_root, tmp_path))
    loaded = load_case(case)
    for bundle_type in ("collection", "transaction", "document"):
        bundle = build_bundle(loaded, ANCHOR, bundle_type)
        issues = validate_json_text(orjson.dumps(bundle).decode(), definitions=definitions)
        errors = [
            f"{i.expression}: {i.diagnostics}" for i in issues if i.severity in ("error", "fatal")
        ]
        assert errors == [], bundle_type
