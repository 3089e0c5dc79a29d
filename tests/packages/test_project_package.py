"""The mapping's own extension definitions (package ``fhir-service.case``, docs/mapping.md)
reach the package cache without a download, so that ``fhir-service validate`` resolves
the extensions the mapping writes (https://hl7.org/fhir/R4/extensibility.html)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from fhir_service.cli.app import _register_commands, app
from fhir_service.fhir.packages import PackageRef, install_directory, is_installed
from fhir_service.settings import Settings
from mappings.definitions import PACKAGE

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "examples" / "ivc-leiomyosarcoma" / "bundle-collection.json"
REF = PackageRef("fhir-service.case", "1.0.0")

_register_commands()


def test_copied_once_and_replaced_when_the_shipped_files_change(tmp_path: Path) -> None:
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for source in PACKAGE.glob("*.json"):
        (shipped / source.name).write_bytes(source.read_bytes())
    cache = tmp_path / "cache"
    assert install_directory(cache, shipped) == REF
    installed = cache / str(REF) / "package"
    names = {p.name for p in installed.glob("*.json")}
    assert {p.name for p in PACKAGE.glob("*.json")} <= names
    assert ".index.json" in {p.name for p in installed.iterdir()}
    first = (installed / "package.json").stat().st_mtime_ns
    install_directory(cache, shipped)
    assert (installed / "package.json").stat().st_mtime_ns == first
    changed = json.loads((shipped / "package.json").read_text())
    changed["description"] = "changed"
    (shipped / "package.json").write_text(json.dumps(changed))
    install_directory(cache, shipped)
    assert json.loads((installed / "package.json").read_text())["description"] == "changed"


def test_validate_installs_it_and_the_golden_bundle_has_no_error(tmp_path: Path) -> None:
    """A cache holding only the R4 core and mCODE (links to the installed ones): the
    command adds the project's package itself and the case bundle validates."""
    real = Settings().package_cache.expanduser()
    cache = tmp_path / "cache"
    cache.mkdir()
    for name in ("hl7.fhir.r4.core#4.0.1", "hl7.fhir.us.mcode#4.0.0"):
        (cache / name).symlink_to(real / name, target_is_directory=True)
    assert not is_installed(cache, REF)
    result = CliRunner().invoke(
        app,
        ["validate", str(BUNDLE), "--format", "json"],
        env={"FHIR_SERVICE_PACKAGE_CACHE": str(cache)},
    )
    assert is_installed(cache, REF)
    assert result.exit_code == 0, result.output[-2000:]
    outcome = json.loads(result.stdout)
    assert not [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")]
