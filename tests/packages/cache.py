"""The package cache the tests read: the default one (FHIR_SERVICE_PACKAGE_CACHE or
~/.fhir/packages), filled by `make packages`, or here when it is not filled yet.

In CI (CI=true) a cache without the packages fails the tests; elsewhere it skips them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fhir_service.cli.packages import DEFAULT_PACKAGES, install_packages
from fhir_service.fhir.packages import is_installed
from fhir_service.settings import Settings


def installed_cache() -> Path:
    """The package cache root with the R4 core and mCODE packages installed."""
    root = Settings().package_cache.expanduser()
    if not all(is_installed(root, ref) for ref in DEFAULT_PACKAGES):
        install_packages(root, list(DEFAULT_PACKAGES))
    missing = [str(ref) for ref in DEFAULT_PACKAGES if not is_installed(root, ref)]
    if missing:
        message = f"FHIR packages {', '.join(missing)} not installed in {root}; run `make packages`"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture(scope="session")
def package_root() -> Path:
    return installed_cache()
