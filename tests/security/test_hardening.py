"""Open mode, security headers, CORS and per-client rate limits
(https://hl7.org/fhir/R4/security.html#http)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fhir_service.api import create_app
from fhir_service.api.auth.hardening import RateLimiter
from fhir_service.settings import Settings
from tests.api.helpers import assert_outcome
from tests.security.conftest import Smart


def test_open_mode_is_announced_and_open(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(database_url=database_url, auth_signing_key_path=tmp_path / "none.json")
    with caplog.at_level(logging.WARNING, logger="fhir_service.security"):
        app = create_app(settings)
    assert "FHIR_SERVICE_AUTH_MODE=open" in caplog.text
    assert "NO AUTHENTICATION" in caplog.text
    with TestClient(app) as client:
        created = client.post("/fhir/Patient", json={"resourceType": "Patient"})
        assert created.status_code == 201
        assert client.get(f"/fhir/Patient/{created.json()['id']}").status_code == 200
        security = client.get("/fhir/metadata").json()["rest"][0]["security"]
        assert "Open mode" in security["description"]
        events = client.get("/fhir/AuditEvent").json()["entry"]
        assert events[0]["resource"]["agent"][0]["who"]["identifier"]["value"] == "anonymous"


def test_smart_mode_without_keys_refuses_to_start(database_url: str, tmp_path: Path) -> None:
    settings = Settings(
        database_url=database_url,
        auth_mode="smart",
        base_url="http://testserver/fhir",
        auth_signing_key_path=tmp_path / "missing.json",
    )
    with pytest.raises(ValueError, match="generate-key"):
        create_app(settings)


def test_health_checks_need_no_token_in_smart_mode(smart: Smart) -> None:
    """Orchestrators probe without credentials: liveness and readiness answer 200 without a
    token (readiness read resources with the caller's scope and answered 401), and say
    nothing but the status."""
    assert smart.client.get("/healthz").json() == {"status": "ok"}
    ready = smart.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}
    assert smart.client.get("/fhir/Patient").status_code == 401  # the API still needs one


def test_security_headers(smart: Smart) -> None:
    response = smart.client.get("/fhir/metadata")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    refused = smart.client.get("/fhir/Patient")
    assert refused.headers["x-content-type-options"] == "nosniff"


def test_security_headers_by_path_and_scheme(smart: Smart) -> None:
    """HSTS only over https; the strict CSP on every response but the interactive
    documentation's (which would not load under it); a header the response set itself
    is kept, not doubled."""
    plain = smart.client.get("/fhir/metadata")
    assert "strict-transport-security" not in plain.headers
    https = TestClient(smart.client.app, base_url="https://testserver")
    secure = https.get("/fhir/metadata")
    assert secure.headers["strict-transport-security"] == "max-age=31536000"
    assert secure.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    schema = https.get("/openapi.json")
    assert schema.status_code == 200
    assert "content-security-policy" not in schema.headers
    assert schema.headers["strict-transport-security"] == "max-age=31536000"
    assert schema.headers["x-content-type-options"] == "nosniff"
    page = smart.client.get("/ui/validate")
    assert page.headers.get_list("content-security-policy") == [
        page.headers["content-security-policy"]
    ]
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_cors_only_for_configured_origins(make_smart: Callable[..., Smart]) -> None:
    smart = make_smart(cors_origins=["https://app.example"])
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "Authorization",
    }
    allowed = smart.client.options("/fhir/Patient", headers=preflight)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    other = smart.client.options(
        "/fhir/Patient", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in other.headers
    metadata = smart.client.get("/fhir/metadata").json()
    assert metadata["rest"][0]["security"]["cors"] is True


def test_rate_limit_per_client(make_smart: Callable[..., Smart]) -> None:
    smart = make_smart(rate_limit_per_minute=3)
    first = smart.headers("system/*.rs")
    statuses = [smart.client.get("/fhir/Patient", headers=first).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = smart.client.get("/fhir/Patient", headers=first)
    assert_outcome(limited, 429, "requests per minute")
    assert int(limited.headers["retry-after"]) >= 1
    other = smart.token("system/*.rs", sub="another-client")
    response = smart.client.get("/fhir/Patient", headers={"Authorization": f"Bearer {other}"})
    assert response.status_code == 200


def test_rate_limiter_refills() -> None:
    now = [0.0]
    limiter = RateLimiter(60, clock=lambda: now[0])
    assert all(limiter.acquire("c") is None for _ in range(60))
    wait = limiter.acquire("c")
    assert wait is not None and wait == pytest.approx(1.0)
    now[0] += 1.0
    assert limiter.acquire("c") is None
    assert RateLimiter(0).acquire("c") is None
