"""Smart mode checks tokens and client assertions against the configured places only
(https://hl7.org/fhir/smart-app-launch/backend-services.html#step-4-fhir-api-access,
https://www.rfc-editor.org/rfc/rfc7523#section-3): it refuses to start without a base URL
or an audience and issuer, and a request's Host header changes nothing."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import RSAKey
from typer.testing import CliRunner

from fhir_service.api import create_app
from fhir_service.cli.app import app
from tests.api.helpers import assert_outcome
from tests.security.conftest import AUDIENCE, ISSUER, Smart, World, register, smart_settings
from tests.security.test_token_endpoint import assertion, request_token

SPOOFED = "evil.example"
CONFIGURED: dict[str, dict[str, Any]] = {
    "base-url": {},
    "audience-and-issuer": {"base_url": None, "auth_audience": AUDIENCE, "auth_issuer": ISSUER},
}
"""The two ways to configure smart mode: a base URL, or the audience and the issuer."""
INCOMPLETE = [
    {"base_url": None},
    {"base_url": None, "auth_audience": AUDIENCE},
    {"base_url": None, "auth_issuer": ISSUER},
]


@pytest.mark.parametrize("extra", INCOMPLETE, ids=["nothing", "audience-only", "issuer-only"])
def test_app_creation_needs_a_base_url_or_audience_and_issuer(
    database_url: str, tmp_path: Path, extra: dict[str, Any]
) -> None:
    settings = smart_settings(database_url, tmp_path, **extra)
    with pytest.raises(ValueError, match="FHIR_SERVICE_BASE_URL") as refused:
        create_app(settings)
    for name in ("FHIR_SERVICE_AUTH_AUDIENCE", "FHIR_SERVICE_AUTH_ISSUER"):
        assert name in str(refused.value)


def test_serve_refuses_to_start_naming_the_settings(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FHIR_SERVICE_AUTH_MODE", "smart")
    monkeypatch.setenv("FHIR_SERVICE_DATABASE_URL", database_url)
    for name in ("BASE_URL", "AUTH_AUDIENCE", "AUTH_ISSUER"):
        monkeypatch.delenv(f"FHIR_SERVICE_{name}", raising=False)
    result = CliRunner().invoke(app, ["serve", "--port", "1"])
    assert result.exit_code == 2, result.output
    assert "FHIR_SERVICE_BASE_URL" in result.output
    assert "FHIR_SERVICE_AUTH_AUDIENCE and FHIR_SERVICE_AUTH_ISSUER" in result.output


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    padded = payload + "=" * (-len(payload) % 4)
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return claims


def test_a_token_for_a_spoofed_host_is_refused(smart: Smart) -> None:
    spoofed = smart.token("system/*.rs", iss=f"http://{SPOOFED}/auth", aud=f"http://{SPOOFED}/fhir")
    host = {"Host": SPOOFED}
    refused = smart.client.get(
        "/fhir/Patient", headers={**host, "Authorization": f"Bearer {spoofed}"}
    )
    assert_outcome(refused, 401)
    assert "invalid_token" in refused.headers["www-authenticate"]
    configured = {**host, "Authorization": f"Bearer {smart.token('system/*.rs')}"}
    assert smart.client.get("/fhir/Patient", headers=configured).status_code == 200


@pytest.mark.parametrize("config", CONFIGURED.values(), ids=CONFIGURED.keys())
def test_a_client_assertion_for_the_host_derived_token_url_is_refused(
    make_smart: Callable[..., Smart],
    database_url: str,
    tmp_path: Path,
    config: dict[str, Any],
) -> None:
    smart = make_smart(**config)
    smart.client.headers["Host"] = SPOOFED
    key = RSAKey.generate_key(2048, parameters={"kid": "backend-host"})
    client_id = register(database_url, tmp_path, key, "system/*.rs")
    host_derived = assertion(key, client_id, aud=f"http://{SPOOFED}/auth/token")
    refused = request_token(smart, host_derived, "system/*.rs")
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"] == "invalid_client"
    granted = request_token(smart, assertion(key, client_id), "system/*.rs")
    assert granted.status_code == 200, granted.text
    claims = _claims(granted.json()["access_token"])
    assert (claims["iss"], claims["aud"]) == (ISSUER, AUDIENCE)
    discovered = smart.client.get("/fhir/.well-known/smart-configuration").json()
    assert discovered["issuer"] == ISSUER
    assert discovered["token_endpoint"] == "http://testserver/auth/token"


def test_tokens_issued_under_a_spoofed_host_work_on_the_configured_one(
    smart: Smart, world: World, database_url: str, tmp_path: Path
) -> None:
    key = RSAKey.generate_key(2048, parameters={"kid": "backend-host"})
    client_id = register(database_url, tmp_path, key, "system/*.rs")
    smart.client.headers["Host"] = SPOOFED
    granted = request_token(smart, assertion(key, client_id), "system/*.rs")
    assert granted.status_code == 200, granted.text
    del smart.client.headers["Host"]
    auth = {"Authorization": f"Bearer {granted.json()['access_token']}"}
    assert smart.client.get(f"/fhir/Patient/{world.a}", headers=auth).status_code == 200
