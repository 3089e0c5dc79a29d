"""`fhir-service serve` refuses a database whose schema is behind, naming the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fhir_service.api import create_app
from fhir_service.cli import serve
from fhir_service.storage import SchemaNotCurrent
from tests.api.conftest import settings_for


def _cli() -> typer.Typer:
    app = typer.Typer()
    serve.register(app)

    @app.callback()
    def _root() -> None:
        """Test command group."""

    return app


def test_serve_refuses_an_unmigrated_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    monkeypatch.setenv("FHIR_SERVICE_DATABASE_URL", url)
    result = CliRunner().invoke(_cli(), ["serve", "--port", "1"])
    assert result.exit_code == 2
    assert "fhir-service db upgrade" in result.output


def test_app_does_not_start_on_an_unmigrated_database(tmp_path: Path) -> None:
    app = create_app(settings_for(f"sqlite:///{tmp_path / 'empty.sqlite3'}"))
    with pytest.raises(SchemaNotCurrent, match="fhir-service db upgrade"), TestClient(app):
        pass


def test_check_database_accepts_a_current_database(database_url: str) -> None:
    assert serve.check_database(settings_for(database_url)) is None
