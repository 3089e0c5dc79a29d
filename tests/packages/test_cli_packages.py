"""`fhir-service packages install|list` on real package caches."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from fhir_service.cli import packages
from fhir_service.fhir.packages import install_tarball
from tests.packages.make_package import make_tarball

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    packages.register(app)

    @app.callback()
    def _root() -> None:
        """Root."""

    return app


def test_list_on_an_empty_cache(tmp_path: Path) -> None:
    result = runner.invoke(_app(), ["packages", "list", "--cache", str(tmp_path)])
    assert result.exit_code == 0
    assert "no packages installed; run `fhir-service packages install`" in result.output


def test_install_skips_what_is_installed(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    install_tarball(root, make_tarball(tmp_path, "example.demo", "1.0.0", []))
    result = runner.invoke(
        _app(), ["packages", "install", "example.demo#1.0.0", "--cache", str(root)]
    )
    assert result.exit_code == 0, result.output
    assert "example.demo#1.0.0: already installed" in result.output


def test_install_rejects_a_malformed_name(tmp_path: Path) -> None:
    result = runner.invoke(_app(), ["packages", "install", "no-version", "--cache", str(tmp_path)])
    assert result.exit_code == 2


def test_list_shows_installed_and_missing_with_reason(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    deps = {"example.absent": "3.1.0"}
    install_tarball(root, make_tarball(tmp_path, "example.ig", "2.0.0", [], dependencies=deps))
    (root / ".fhir-service-fetch.json").write_text(json.dumps({"example.absent#3.1.0": "gone"}))
    result = runner.invoke(_app(), ["packages", "list", "--cache", str(root)])
    assert result.exit_code == 0
    assert "installed  example.ig#2.0.0  (0 resources)" in result.output
    assert "missing    example.absent#3.1.0  needed by example.ig#2.0.0: gone" in result.output


def test_list_on_the_installed_cache_accounts_for_every_mcode_dependency(
    package_root: Path,
) -> None:
    result = runner.invoke(_app(), ["packages", "list", "--cache", str(package_root)])
    assert result.exit_code == 0
    assert "installed  hl7.fhir.r4.core#4.0.1" in result.output
    assert "installed  hl7.fhir.us.mcode#4.0.0" in result.output
    manifest = json.loads(
        (package_root / "hl7.fhir.us.mcode#4.0.0/package/package.json").read_text()
    )
    for name, version in manifest["dependencies"].items():
        ref = f"{name}#{version}"
        assert (
            f"installed  {ref}" in result.output or f"missing    {ref}  needed by" in result.output
        )


def test_install_from_a_file_without_any_registry(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    tarball = make_tarball(tmp_path, "example.offline", "1.2.0", [])
    result = runner.invoke(
        _app(), ["packages", "install", "--file", str(tarball), "--cache", str(root)]
    )
    assert result.exit_code == 0, result.output
    assert "example.offline#1.2.0: installed from" in result.output
    assert (root / "example.offline#1.2.0" / "package" / "package.json").is_file()
    missing = runner.invoke(
        _app(), ["packages", "install", "--file", str(tmp_path / "nope.tgz"), "--cache", str(root)]
    )
    assert missing.exit_code == 1
