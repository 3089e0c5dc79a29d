"""Fixtures for the mapping tests: the IVC case, mapped once per session."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from mappings.bundle import build_bundle
from mappings.case.loader import load_case

REPO = Path(__file__).resolve().parents[2]
IVC_CASE = REPO / "examples" / "ivc-leiomyosarcoma" / "case.yaml"
ANCHOR = date(2022, 3, 1)


def walk_references(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every (FHIRPath-ish location, reference string) inside a JSON value."""
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str):
            yield path, ref
        for key, value in node.items():
            yield from walk_references(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk_references(value, f"{path}[{i}]")


@pytest.fixture(scope="session")
def ivc_case() -> Any:
    return load_case(IVC_CASE)


@pytest.fixture(scope="session")
def transaction_bundle(ivc_case: Any) -> dict[str, Any]:
    return build_bundle(ivc_case, ANCHOR, "transaction")


@pytest.fixture(scope="session")
def collection_bundle(ivc_case: Any) -> dict[str, Any]:
    return build_bundle(ivc_case, ANCHOR, "collection")


@pytest.fixture(scope="session")
def resources(collection_bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in collection_bundle["entry"]]
