"""Smart mode takes the places of its tokens from configuration, never from the request:
without a base URL (or audience and issuer) it refuses to start, and the token endpoint
expects the configured URL as the assertion audience whatever the Host header says
(https://hl7.org/fhir/smart-app-launch/backend-services.html#authorize-backend-service,
RFC 7523 section 3)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey

from fhir_service.api import create_app
from tests.security.conftest import ADMIN, Smart, World, claims_for, register, sign, smart_settings
from tests.security.test_token_endpoint import TOKEN_URL, assertion, request_token

EVIL = "evil.example"


def test_smart_mode_without_base_url_refuses_to_start(database_url: str, tmp_path: Path) -> None:
    """No base URL, audience nor issuer: creating or starting the app fails, naming what is
    missing."""
    with pytest.raises(Exception, match=r"(?i)base.?url"):
        settings = smart_settings(database_url, tmp_path, base_url=None)
        with TestClient(create_app(settings)) as client:
            client.get("/fhir/metadata")


def test_smart_mode_with_audience_and_issuer_starts(
    make_smart: Callable[..., Smart], world: World
) -> None:
    """Audience and issuer configured instead of a base URL: the app starts and accepts a
    token for them."""
    smart = make_smart(
        base_url=None, auth_audience="http://testserver/fhir", auth_issuer="http://testserver/auth"
    )
    response = smart.client.get(f"/fhir/Patient/{world.a}", headers=smart.headers(ADMIN))
    assert response.status_code == 200, response.text


def test_host_header_moves_nothing(
    smart: Smart, world: World, database_url: str, tmp_path: Path
) -> None:
    """With Host: evil.example, an assertion made for the configured token URL is accepted
    and one made for the Host's token URL is refused; a bearer token whose aud and iss
    follow the Host is refused."""
    key = ECKey.generate_key("P-384", parameters={"kid": "host-test"})
    client_id = register(database_url, tmp_path, key, "system/*.rs")
    evil = {"Host": EVIL}

    def token(aud: str) -> int:
        form = {
            "grant_type": "client_credentials",
            "scope": "system/*.rs",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion(key, client_id, aud=aud),
        }
        return smart.client.post("/auth/token", data=form, headers=evil).status_code

    assert token(TOKEN_URL) == 200
    assert token(f"http://{EVIL}/auth/token") == 401
    assert request_token(smart, assertion(key, client_id), "system/*.rs").status_code == 200
    forged = sign(
        smart.key,
        claims_for(ADMIN, aud=f"http://{EVIL}/fhir", iss=f"http://{EVIL}/auth"),
    )
    response = smart.client.get(
        f"/fhir/Patient/{world.a}", headers={"Authorization": f"Bearer {forged}", **evil}
    )
    assert response.status_code == 401, response.text
    configured = smart.client.get("/fhir/.well-known/smart-configuration", headers=evil)
    assert configured.json()["token_endpoint"] == TOKEN_URL
