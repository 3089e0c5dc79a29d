"""fhir_service.fhir.packages: cache layout, manifests, unpacking, missing dependencies."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from fhir_service.fhir.packages import (
    PackageError,
    PackageRef,
    fetch_notes,
    install_tarball,
    installed_packages,
    is_installed,
    missing_dependencies,
    record_fetch_notes,
)
from tests.packages.make_package import make_tarball, structure_definition

SD_URL = "http://example.org/fhir/StructureDefinition/demo"


def test_package_ref_parses_both_spellings() -> None:
    assert PackageRef.parse("hl7.fhir.us.mcode#4.0.0") == PackageRef("hl7.fhir.us.mcode", "4.0.0")
    assert PackageRef.parse("hl7.fhir.us.mcode@4.0.0") == PackageRef("hl7.fhir.us.mcode", "4.0.0")
    assert str(PackageRef("a.b", "1.0")) == "a.b#1.0"
    with pytest.raises(PackageError):
        PackageRef.parse("hl7.fhir.us.mcode")


def test_install_unpacks_into_the_cache_layout(tmp_path: Path) -> None:
    tgz = make_tarball(
        tmp_path, "example.demo", "1.2.0", [structure_definition(SD_URL, "1.2.0", "demo")]
    )
    root = tmp_path / "cache"
    ref = install_tarball(root, tgz)
    assert ref == PackageRef("example.demo", "1.2.0")
    folder = root / "example.demo#1.2.0" / "package"
    assert json.loads((folder / "StructureDefinition-demo.json").read_text())["url"] == SD_URL
    index = json.loads((folder / ".index.json").read_text())
    assert index["files"] == [
        {
            "filename": "StructureDefinition-demo.json",
            "resourceType": "StructureDefinition",
            "id": "demo",
            "url": SD_URL,
            "version": "1.2.0",
            "kind": "resource",
            "type": "Observation",
        }
    ]
    assert is_installed(root, ref)
    assert [p.name for p in root.iterdir()] == ["example.demo#1.2.0"]  # no staging left behind


def test_install_again_keeps_the_installed_package(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    install_tarball(root, make_tarball(tmp_path, "example.demo", "1.0.0", []))
    marker = root / "example.demo#1.0.0" / "package" / "kept.txt"
    marker.write_text("x")
    install_tarball(root, make_tarball(tmp_path, "example.demo", "1.0.0", []))
    assert marker.read_text() == "x"


def test_install_refuses_another_package_than_expected(tmp_path: Path) -> None:
    tgz = make_tarball(tmp_path, "example.demo", "1.0.0", [])
    with pytest.raises(PackageError, match=r"holds example.demo#1.0.0, not example.demo#2.0.0"):
        install_tarball(tmp_path / "cache", tgz, expected=PackageRef("example.demo", "2.0.0"))
    assert installed_packages(tmp_path / "cache") == []


def test_tarball_without_package_folder_is_refused(tmp_path: Path) -> None:
    tgz = tmp_path / "bad.tgz"
    with tarfile.open(tgz, "w:gz") as archive:
        archive.add(__file__, arcname="other/file.py")
    with pytest.raises(PackageError, match="no package/ folder"):
        install_tarball(tmp_path / "cache", tgz)
    (tmp_path / "junk.tgz").write_bytes(b"not a tarball")
    with pytest.raises(PackageError, match="not a readable package tarball"):
        install_tarball(tmp_path / "cache", tmp_path / "junk.tgz")


def test_missing_dependencies_name_who_needs_them(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    install_tarball(root, make_tarball(tmp_path, "example.base", "1.0.0", []))
    deps = {"example.base": "1.0.0", "example.absent": "3.1.0"}
    install_tarball(root, make_tarball(tmp_path, "example.ig", "2.0.0", [], dependencies=deps))
    assert [str(i.ref) for i in installed_packages(root)] == [
        "example.base#1.0.0",
        "example.ig#2.0.0",
    ]
    assert missing_dependencies(root) == {
        PackageRef("example.absent", "3.1.0"): [PackageRef("example.ig", "2.0.0")]
    }


def test_fetch_notes_round_trip(tmp_path: Path) -> None:
    record_fetch_notes(tmp_path, {"example.absent#3.1.0": "not on the registry"})
    assert fetch_notes(tmp_path) == {"example.absent#3.1.0": "not on the registry"}
    record_fetch_notes(tmp_path, {})
    assert fetch_notes(tmp_path) == {}
