"""The one Settings object (environment prefix ``FHIR_SERVICE_``).

Only ``fhir_service.api`` and ``fhir_service.cli`` read it; everything below
receives plain values from them.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_database_url() -> str:
    return f"sqlite:///{Path('var/fhir-service.sqlite3').resolve()}"


class Settings(BaseSettings):
    """Every setting of the service; see the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="FHIR_SERVICE_", extra="ignore")

    database_url: str = Field(default_factory=_default_database_url)
    remote_url: str | None = None
    auth_mode: Literal["open", "smart"] = "open"
    base_url: str | None = None
    anchor_date: date = date(2022, 3, 1)
    package_cache: Path = Field(default_factory=lambda: Path.home() / ".fhir" / "packages")
    max_body_bytes: int = 10 * 1024 * 1024
    log_level: str = "INFO"
