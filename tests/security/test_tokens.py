"""Bearer token validation in smart mode: 401 for every unacceptable token, 403 for a
missing scope, public metadata (https://hl7.org/fhir/smart-app-launch/backend-services.html)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from joserfc.jwk import ECKey, RSAKey

from tests.api.helpers import assert_outcome
from tests.security.conftest import Smart, World, claims_for, sign


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(claims: dict[str, object]) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_no_token_is_401_with_challenge(smart: Smart, world: World) -> None:
    response = smart.client.get(f"/fhir/Patient/{world.a}")
    assert_outcome(response, 401, "access token")
    assert response.headers["www-authenticate"].startswith("Bearer realm=")
    assert "error=" not in response.headers["www-authenticate"]


def test_every_fhir_route_needs_a_token(smart: Smart, world: World) -> None:
    for method, path in [
        ("GET", "/fhir/Patient"),
        ("GET", "/fhir/_history"),
        ("GET", f"/fhir/Patient/{world.a}/_history"),
        ("POST", "/fhir"),
        ("DELETE", f"/fhir/Patient/{world.a}"),
        ("GET", "/fhir/AuditEvent"),
    ]:
        response = smart.client.request(method, path)
        assert_outcome(response, 401)


def test_public_endpoints_need_no_token(smart: Smart) -> None:
    metadata = smart.client.get("/fhir/metadata")
    assert metadata.status_code == 200
    security = metadata.json()["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    oauth = security["extension"][0]["extension"][0]
    assert oauth == {"url": "token", "valueUri": "http://testserver/auth/token"}
    config = smart.client.get("/fhir/.well-known/smart-configuration")
    assert config.status_code == 200
    body = config.json()
    assert body["token_endpoint"] == "http://testserver/auth/token"
    assert body["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert "client-confidential-asymmetric" in body["capabilities"]
    assert smart.client.get("/auth/jwks").json()["keys"][0]["kid"] == smart.key.kid


def test_valid_token_reads(smart: Smart, world: World) -> None:
    response = smart.client.get(f"/fhir/Patient/{world.a}", headers=smart.headers("system/*.read"))
    assert response.status_code == 200
    assert response.json()["name"][0]["family"] == "Alpha"


def test_expired_token_is_401(smart: Smart, world: World) -> None:
    past = int(time.time()) - 3600
    token = sign(smart.key, claims_for("system/*.read", exp=past, iat=past - 60))
    response = smart.client.get(f"/fhir/Patient/{world.a}", headers=_bearer(token))
    assert_outcome(response, 401, "expired")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_not_yet_valid_token_is_401(smart: Smart, world: World) -> None:
    future = int(time.time()) + 3600
    token = sign(smart.key, claims_for("system/*.read", nbf=future))
    assert_outcome(smart.client.get(f"/fhir/Patient/{world.a}", headers=_bearer(token)), 401)


def test_wrongly_signed_token_is_401(smart: Smart, world: World) -> None:
    for impostor in (
        ECKey.generate_key("P-384", parameters={"kid": str(smart.key.kid)}),
        RSAKey.generate_key(2048, parameters={"kid": str(smart.key.kid)}),
    ):
        token = sign(impostor, claims_for("system/*.read"))
        response = smart.client.get(f"/fhir/Patient/{world.a}", headers=_bearer(token))
        assert_outcome(response, 401, "signature")


def test_tampered_claims_are_401(smart: Smart, world: World) -> None:
    token = smart.token("patient/*.read", world.a)
    head, _, rest = token.partition(".")
    payload, _, signature = rest.partition(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "system/*.cruds"
    forged = f"{head}.{_b64(json.dumps(claims).encode())}.{signature}"
    assert_outcome(smart.client.get(f"/fhir/Patient/{world.b}", headers=_bearer(forged)), 401)


def test_wrong_audience_is_401(smart: Smart, world: World) -> None:
    token = sign(smart.key, claims_for("system/*.read", aud="https://elsewhere.example/fhir"))
    response = smart.client.get(f"/fhir/Patient/{world.a}", headers=_bearer(token))
    assert_outcome(response, 401, "aud")


def test_wrong_issuer_is_401(smart: Smart, world: World) -> None:
    token = sign(smart.key, claims_for("system/*.read", iss="https://other-issuer.example"))
    response = smart.client.get(f"/fhir/Patient/{world.a}", headers=_bearer(token))
    assert_outcome(response, 401, "iss")


def test_alg_none_is_401(smart: Smart, world: World) -> None:
    token = _unsigned(claims_for("system/*.cruds"))
    response = smart.client.get(f"/fhir/Patient/{world.a}", headers=_bearer(token))
    assert_outcome(response, 401, "none")


def test_hmac_with_the_public_key_is_401(smart: Smart, world: World) -> None:
    """The classic key-confusion attack: HS256 keyed with the server's public key."""
    secret = smart.key.as_pem(private=False)
    header = _b64(json.dumps({"alg": "HS256", "kid": smart.key.kid, "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims_for("system/*.cruds")).encode())
    mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    token = f"{header}.{payload}.{_b64(mac)}"
    response = smart.client.get(f"/fhir/Patient/{world.a}", headers=_bearer(token))
    assert_outcome(response, 401, "hs256")


def test_garbage_and_other_schemes_are_401(smart: Smart, world: World) -> None:
    for header in ("Bearer not-a-jwt", "Bearer a.b.c", "Basic dXNlcjpwYXNz", "Bearer "):
        response = smart.client.get(f"/fhir/Patient/{world.a}", headers={"Authorization": header})
        assert_outcome(response, 401)


def test_missing_scope_is_403(smart: Smart, world: World) -> None:
    patients_only = smart.headers("system/Patient.rs")
    response = smart.client.get(f"/fhir/Observation/{world.obs_a}", headers=patients_only)
    assert_outcome(response, 403, "read of Observation")
    read_only = smart.headers("system/*.read")
    create = smart.client.post("/fhir/Patient", json={"resourceType": "Patient"}, headers=read_only)
    assert_outcome(create, 403, "create of Patient")
    delete = smart.client.delete(f"/fhir/Patient/{world.a}", headers=read_only)
    assert_outcome(delete, 403, "delete of Patient")
    assert smart.client.get(f"/fhir/Patient/{world.a}", headers=read_only).status_code == 200


def test_v2_scopes_are_precise(smart: Smart, world: World) -> None:
    read_no_search = smart.headers("system/Patient.r")
    assert smart.client.get(f"/fhir/Patient/{world.a}", headers=read_no_search).status_code == 200
    assert_outcome(smart.client.get("/fhir/Patient", headers=read_no_search), 403, "search")
    update_only = smart.headers("system/Patient.u")
    body = {"resourceType": "Patient", "id": world.a, "active": True}
    updated = smart.client.put(f"/fhir/Patient/{world.a}", json=body, headers=update_only)
    assert updated.status_code == 200
    new = {"resourceType": "Patient", "id": "brand-new", "active": True}
    assert_outcome(
        smart.client.put("/fhir/Patient/brand-new", json=new, headers=update_only), 403, "create"
    )


def test_transaction_entries_need_their_scopes(smart: Smart, world: World) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "GET", "url": f"Patient/{world.a}"}},
            {
                "resource": {"resourceType": "Patient", "active": True},
                "request": {"method": "POST", "url": "Patient"},
            },
        ],
    }
    response = smart.client.post("/fhir", json=bundle, headers=smart.headers("system/*.read"))
    assert_outcome(response, 403, "Bundle.entry[1]", "create of Patient")


def test_sync_runs_need_full_system_scope(smart: Smart, world: World) -> None:
    body = {"direction": "push"}
    assert_outcome(smart.client.post("/sync/runs", json=body), 401)
    for scope, patient in (("patient/*.cruds", world.a), ("system/*.rs", None)):
        response = smart.client.post("/sync/runs", json=body, headers=smart.headers(scope, patient))
        assert_outcome(response, 403, "system/*.cruds")
    admin = smart.client.post("/sync/runs", json=body, headers=smart.headers("system/*.cruds"))
    assert_outcome(admin, 400, "remote")
