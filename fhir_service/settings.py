"""The one Settings object (environment prefix ``FHIR_SERVICE_``).

Only ``fhir_service.api`` and ``fhir_service.cli`` read it; everything below
receives plain values from them.
"""

from __future__ import annotations

import math
import os
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
    remote_token: str | None = None
    remote_token_url: str | None = None
    remote_client_id: str | None = None
    remote_private_key: Path | None = None
    """Authentication to ``remote_url`` (a bearer token, or SMART Backend Services with
    token URL, client id and PEM key), for the CLI and for runs queued over HTTP."""
    sync_remotes: list[str] = Field(default_factory=list)
    """Base URLs a sync run queued over HTTP may name besides ``remote_url``."""
    auth_mode: Literal["open", "smart"] = "open"
    base_url: str | None = None
    anchor_date: date = date(2022, 3, 1)
    package_cache: Path = Field(default_factory=lambda: Path.home() / ".fhir" / "packages")
    package_auto_install: bool = True
    """Fetch the R4 core and mCODE packages when missing (demo, serve, load, db upgrade)."""
    max_body_bytes: int = 10 * 1024 * 1024
    header_read_timeout: float = Field(default=10.0, gt=0)
    """Seconds a client has to send a request's line and headers (else the connection closes)."""
    body_read_timeout: float = Field(default=30.0, gt=0)
    """Seconds a client may pause while sending a request body (else 408)."""
    log_level: str = "INFO"
    auth_issuer: str | None = None
    auth_audience: str | None = None
    auth_jwks_path: Path | None = None
    auth_jwks_url: str | None = None
    auth_signing_key_path: Path = Path("var/auth-signing-key.json")
    auth_token_lifetime: int = 300
    cors_origins: list[str] = Field(default_factory=list)
    rate_limit_per_minute: int = 600
    audit_enabled: bool = True
    export_dir: Path = Path("var/exports")
    deid_secret: str | None = None
    validate_on_write: Literal["off", "warn", "reject"] = "reject"
    """Validation of every resource the REST API, ``load`` and sync pulls write
    (docs/validation.md#validation-on-write)."""
    unknown_profiles: Literal["reject", "warn"] = "reject"
    """A ``meta.profile`` the package cache does not hold: an error on write, or a warning."""
    validation_workers: int | None = Field(default=None, ge=0)
    """Worker processes that validate the resources a transaction Bundle writes while the
    transaction does its SQL work (0: validate them in the request's own thread; unset:
    ``validation_pool_size``)."""
    opentelemetry: bool = False
    """FastAPI's native OpenTelemetry instrumentation (traces, metrics, logs) with the
    globally configured providers; off, it costs nothing per request (on, FastAPI checks
    the providers on every request)."""
    workers: int | None = Field(default=None, ge=1)
    """Serving processes of ``fhir-service serve`` (default: the number of cores)."""
    database_pool_size: int = Field(default=20, ge=2)
    """Database connections the serving processes keep open together (each process
    keeps its share, at least 2, and as many again under load)."""
    worker_stale_seconds: float = Field(default=120.0, gt=0)
    """A background job (sync run, export, reindex) whose heartbeat is older is taken over."""
    job_poll_seconds: float = Field(default=1.0, gt=0)
    """Seconds between a job runner's looks for queued jobs (a request queuing one wakes it)."""
    export_jobs: int = Field(default=1, ge=1)
    """Export jobs one service process runs at once."""
    sync_jobs: int = Field(default=1, ge=1)
    """Sync runs one service process carries out at once (one per remote and direction)."""

    def serving_processes(self) -> int:
        """``workers``, else the number of cores."""
        return self.workers or os.cpu_count() or 1

    def process_pool_size(self) -> int:
        """This process's share of ``database_pool_size``: an application built outside
        ``serve`` (``workers`` unset) is the only process and keeps all of it."""
        return max(2, math.ceil(self.database_pool_size / (self.workers or 1)))

    def validation_pool_size(self, database_url: str | None = None) -> int:
        """``validation_workers``, or by default 1 on SQLite and 0 on PostgreSQL
        (docs/storage.md#validation-beside-the-sql-work): SQLite writes one transaction
        at a time, and validating beside it shortens the write lock's hold; PostgreSQL
        writes in every serving process at once, which keeps the cores busy, and handing
        resources to a validation process cost more than it saved (measured in
        bench/RESULTS.md)."""
        if self.validation_workers is not None:
            return self.validation_workers
        url = database_url or self.database_url
        return 1 if url.startswith("sqlite") else 0

    def smart_problem(self) -> str | None:
        """Why ``smart`` mode cannot start with these settings, or None.

        The expected token ``iss``/``aud`` and the token endpoint's URL must be configured,
        never taken from a request's Host header
        (https://hl7.org/fhir/smart-app-launch/backend-services.html#step-4-fhir-api-access).
        """
        if self.auth_mode != "smart" or self.base_url:
            return None
        if self.auth_audience and self.auth_issuer:
            return None
        return (
            "FHIR_SERVICE_AUTH_MODE=smart needs FHIR_SERVICE_BASE_URL (the public FHIR base "
            "URL), or both FHIR_SERVICE_AUTH_AUDIENCE and FHIR_SERVICE_AUTH_ISSUER: the "
            "expected token audience and issuer are never taken from the request's Host"
        )
