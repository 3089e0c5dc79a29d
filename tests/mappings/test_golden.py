"""The reviewed golden bundles in examples/ match what the mapping produces now.

The golden files were reviewed by reading them against the case report; when the
mapping changes on purpose, regenerate them with `make golden` and review the diff.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import IVC_CASE


@pytest.mark.parametrize("kind", ["transaction", "collection"])
def test_mapping_matches_the_reviewed_golden_bundle(
    kind: str, transaction_bundle: dict[str, Any], collection_bundle: dict[str, Any]
) -> None:
    golden_path = IVC_CASE.parent / f"bundle-{kind}.json"
    golden = json.loads(golden_path.read_text())
    produced = transaction_bundle if kind == "transaction" else collection_bundle
    assert produced == golden, f"mapping output differs from {golden_path.name}: run make golden"
