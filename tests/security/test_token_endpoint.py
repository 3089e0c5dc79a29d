"""The client-credentials flow with a private_key_jwt assertion
(https://hl7.org/fhir/smart-app-launch/backend-services.html#obtaining-an-access-token),
clients registered through `fhir-service auth register-client`."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from typer.testing import CliRunner

from fhir_service.api.auth.keys import ALGORITHMS
from fhir_service.cli.app import _register_commands, app
from tests.api.helpers import assert_outcome
from tests.security.conftest import Smart, World, register

TOKEN_URL = "http://testserver/auth/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_register_commands()


def assertion(key: RSAKey | ECKey, client_id: str, **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "exp": now + 240,
        "jti": uuid.uuid4().hex,
        **overrides,
    }
    alg = "RS384" if isinstance(key, RSAKey) else "ES384"
    header = {"alg": alg, "kid": key.kid, "typ": "JWT"}
    return jwt.encode(header, claims, key, algorithms=ALGORITHMS)


def request_token(smart: Smart, signed: str, scope: str) -> Any:
    return smart.client.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": signed,
        },
    )


def test_full_flow_gives_a_working_token(
    smart: Smart, world: World, database_url: str, tmp_path: Path
) -> None:
    key = RSAKey.generate_key(2048, parameters={"kid": "backend-1"})
    client_id = register(database_url, tmp_path, key, "system/*.rs system/Observation.cruds")
    response = request_token(smart, assertion(key, client_id), "system/Patient.rs system/*.read")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["scope"] == "system/Patient.rs system/*.read"
    assert body["expires_in"] == smart.settings.auth_token_lifetime
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    patient = smart.client.get(f"/fhir/Patient/{world.a}", headers=auth)
    assert patient.status_code == 200
    new = {"resourceType": "Patient", "active": True}
    assert_outcome(smart.client.post("/fhir/Patient", json=new, headers=auth), 403)


def test_patient_client_gets_patient_context(
    smart: Smart, world: World, database_url: str, tmp_path: Path
) -> None:
    key = ECKey.generate_key("P-384", parameters={"kid": "app-a"})
    client_id = register(database_url, tmp_path, key, "patient/*.rs", patient=world.a)
    response = request_token(smart, assertion(key, client_id), "patient/*.rs system/*.rs")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["patient"] == world.a
    assert body["scope"] == "patient/*.rs"
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    assert smart.client.get(f"/fhir/Patient/{world.a}", headers=auth).status_code == 200
    assert_outcome(smart.client.get(f"/fhir/Patient/{world.b}", headers=auth), 404)


def test_bad_assertions_are_refused(
    smart: Smart, world: World, database_url: str, tmp_path: Path
) -> None:
    key = ECKey.generate_key("P-384", parameters={"kid": "k1"})
    client_id = register(database_url, tmp_path, key, "system/*.rs")
    signed = assertion(key, client_id)
    assert request_token(smart, signed, "system/*.rs").status_code == 200
    replay = request_token(smart, signed, "system/*.rs")
    assert (replay.status_code, replay.json()["error"]) == (401, "invalid_client")
    impostor = ECKey.generate_key("P-384", parameters={"kid": "k1"})
    cases = [
        assertion(impostor, client_id),
        assertion(key, client_id, aud="http://testserver/fhir"),
        assertion(key, client_id, exp=int(time.time()) - 600),
        assertion(key, client_id, exp=int(time.time()) + 3600),
        assertion(key, client_id, sub="someone-else"),
        assertion(key, "unregistered-client"),
    ]
    for case in cases:
        response = request_token(smart, case, "system/*.rs")
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "invalid_client"
    scope = request_token(smart, assertion(key, client_id), "system/*.cruds")
    assert (scope.status_code, scope.json()["error"]) == (400, "invalid_scope")


def test_malformed_requests_are_oauth_errors(smart: Smart) -> None:
    wrong_grant = smart.client.post("/auth/token", data={"grant_type": "password"})
    assert (wrong_grant.status_code, wrong_grant.json()["error"]) == (400, "unsupported_grant_type")
    as_json = smart.client.post("/auth/token", json={"grant_type": "client_credentials"})
    assert (as_json.status_code, as_json.json()["error"]) == (400, "invalid_request")
    no_type = smart.client.post(
        "/auth/token", data={"grant_type": "client_credentials", "client_assertion": "x.y.z"}
    )
    assert no_type.json()["error"] == "invalid_request"


def test_cli_lists_and_disables_clients(smart: Smart, database_url: str, tmp_path: Path) -> None:
    key = ECKey.generate_key("P-384", parameters={"kid": "k2"})
    client_id = register(database_url, tmp_path, key, "system/*.rs")
    # generated ids are hex: one starting with "-" would read as an option on the CLI
    assert len(client_id) == 32 and int(client_id, 16) >= 0
    runner = CliRunner()
    listed = runner.invoke(app, ["auth", "list-clients", "--database-url", database_url])
    assert client_id in listed.output and "active" in listed.output
    disabled = runner.invoke(
        app, ["auth", "disable-client", client_id, "--database-url", database_url]
    )
    assert disabled.exit_code == 0, disabled.output
    response = request_token(smart, assertion(key, client_id), "system/*.rs")
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")
    bad = runner.invoke(
        app,
        [
            "auth",
            "register-client",
            "--name",
            "x",
            "--scope",
            "openid",
            "--jwks-url",
            "https://keys.example/jwks",
            "--database-url",
            database_url,
        ],
    )
    assert bad.exit_code == 2 and "not SMART clinical scopes" in bad.output


def test_generate_key_command(tmp_path: Path) -> None:
    target = tmp_path / "keys" / "signing.json"
    runner = CliRunner()
    first = runner.invoke(app, ["auth", "generate-key", "--path", str(target), "--alg", "RS256"])
    assert first.exit_code == 0, first.output
    assert json.loads(target.read_text())["alg"] == "RS256"
    assert target.stat().st_mode & 0o077 == 0
    again = runner.invoke(app, ["auth", "generate-key", "--path", str(target)])
    assert again.exit_code == 2 and "exists" in again.output
