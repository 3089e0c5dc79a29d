"""fhir_service.fhir.package_cache: conformance resources by canonical URL, from the cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhir_service.fhir.package_cache import PackageCache, load_definitions
from fhir_service.fhir.packages import PackageError, PackageRef, install_tarball
from tests.packages.make_package import make_tarball, structure_definition, value_set

SD_URL = "http://example.org/fhir/StructureDefinition/demo"
VS_URL = "http://example.org/fhir/ValueSet/demo"


def _cache(tmp_path: Path, with_index: bool) -> PackageCache:
    resources = [structure_definition(SD_URL, "1.0.0", "demo"), value_set(VS_URL, "1.0.0", "demo")]
    tgz = make_tarball(tmp_path, "example.demo", "1.0.0", resources, with_index=with_index)
    install_tarball(tmp_path / "cache", tgz)
    return PackageCache(tmp_path / "cache")


@pytest.mark.parametrize("with_index", [True, False])
def test_lookup_by_url_version_and_type(tmp_path: Path, with_index: bool) -> None:
    if not with_index:
        # A package whose folder has no .index.json is scanned instead.
        cache = _cache(tmp_path, with_index=False)
        (cache.root / "example.demo#1.0.0" / "package" / ".index.json").unlink()
    else:
        cache = _cache(tmp_path, with_index=True)
    defs = cache.definitions()
    assert defs.structure_definition(SD_URL)["id"] == "demo"  # type: ignore[index]
    assert defs.structure_definition(f"{SD_URL}|1.0.0")["id"] == "demo"  # type: ignore[index]
    assert defs.structure_definition(f"{SD_URL}|9.9.9") is None
    assert defs.structure_definition(VS_URL) is None  # a ValueSet, not a StructureDefinition
    assert defs.value_set(VS_URL)["resourceType"] == "ValueSet"  # type: ignore[index]
    assert defs.urls("ValueSet") == [VS_URL]
    assert defs.package_of(SD_URL) == PackageRef("example.demo", "1.0.0")


def test_missing_package_says_how_to_install(tmp_path: Path) -> None:
    cache = _cache(tmp_path, with_index=True)
    with pytest.raises(
        PackageError,
        match=r"hl7.fhir.us.mcode#4.0.0 is not installed.*fhir-service packages install",
    ):
        cache.definitions(["hl7.fhir.us.mcode#4.0.0"])
    with pytest.raises(PackageError, match="fhir-service packages install"):
        PackageCache(tmp_path / "empty").definitions()


def test_definitions_are_kept_per_cache(tmp_path: Path) -> None:
    _cache(tmp_path, with_index=True)
    assert load_definitions(tmp_path / "cache") is load_definitions(tmp_path / "cache")


def test_installed_core_and_mcode(package_root: Path) -> None:
    defs = load_definitions(package_root)
    observation = defs.structure_definition("http://hl7.org/fhir/StructureDefinition/Observation")
    assert observation is not None and observation["fhirVersion"] == "4.0.1"
    mcode = defs.structure_definition(
        "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-cancer-disease-status|4.0.0"
    )
    assert mcode is not None and mcode["baseDefinition"] == observation["url"]
    codes = {p["code"] for p in defs.search_parameters("Observation")}
    assert {"code", "subject", "value-quantity"} <= codes
    assert "_id" in {p["code"] for p in defs.search_parameters("Resource")}
    status = defs.code_system("http://hl7.org/fhir/observation-status")
    assert status is not None and status["content"] == "complete"
