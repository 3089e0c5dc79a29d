"""Fixtures of the package tests; every test here leaves the search registry reading the
package cache it read before (tests here build applications over caches of their own)."""

from collections.abc import Iterator

import pytest

from fhir_service.search import registry
from tests.packages.cache import package_root

__all__ = ["package_root"]


@pytest.fixture(autouse=True)
def _registry_cache_restored() -> Iterator[None]:
    root = registry.configured_root()
    yield
    registry.configure(root)
