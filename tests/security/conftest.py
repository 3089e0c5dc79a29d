"""Fixtures of the security tests: the app in ``smart`` mode on a real database, the
service's signing key, a token minting helper and two patients with observations."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from typer.testing import CliRunner

from fhir_service.api import create_app
from fhir_service.api.auth.keys import ALGORITHMS, generate_signing_key, load_signing_key
from fhir_service.cli.app import _register_commands, app
from fhir_service.settings import Settings
from tests.security.leaks import guard

ISSUER = "http://testserver/auth"
AUDIENCE = "http://testserver/fhir"


def sign(key: RSAKey | ECKey, claims: dict[str, Any], **header: Any) -> str:
    alg = "RS256" if isinstance(key, RSAKey) else "ES384"
    return jwt.encode({"alg": alg, "kid": key.kid, **header}, claims, key, algorithms=ALGORITHMS)


def claims_for(scope: str, patient: str | None = None, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "test-client",
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "scope": scope,
    }
    if patient is not None:
        claims["patient"] = patient
    claims.update(overrides)
    return claims


@dataclass
class Smart:
    """A smart-mode app with its client, its signing key and a token helper."""

    client: TestClient
    key: RSAKey | ECKey
    settings: Settings

    def token(self, scope: str, patient: str | None = None, **overrides: Any) -> str:
        return sign(self.key, claims_for(scope, patient, **overrides))

    def headers(self, scope: str, patient: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(scope, patient)}"}


def smart_settings(database_url: str, tmp_path: Path, **extra: Any) -> Settings:
    key_path = tmp_path / "signing-key.json"
    if not key_path.exists():
        generate_signing_key(key_path, "ES384")
    values: dict[str, Any] = {
        "database_url": database_url,
        "auth_mode": "smart",
        "auth_signing_key_path": key_path,
        "base_url": AUDIENCE,
        "export_dir": tmp_path / "exports",
        "rate_limit_per_minute": 0,
        **extra,
    }
    return Settings(**values)


@pytest.fixture
def make_smart(database_url: str, tmp_path: Path) -> Iterator[Callable[..., Smart]]:
    """Builds smart-mode apps on the test database (settings overridable)."""
    opened: list[TestClient] = []

    def make(**extra: Any) -> Smart:
        settings = smart_settings(database_url, tmp_path, **extra)
        client = TestClient(create_app(settings))
        client.__enter__()
        opened.append(client)
        return Smart(client, load_signing_key(settings.auth_signing_key_path), settings)

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def smart(make_smart: Callable[..., Smart]) -> Smart:
    return make_smart()


ADMIN = "system/*.cruds system/AuditEvent.rs"


# Patient B's distinctive data: none of it may ever reach a response given to patient A.
B_FAMILY = "Bravo-Secret"
B_IDENTIFIER = "B-SECRET-4471"
B_CODE = "b-secret-code-93"
A_IDENTIFIER = "A-PUBLIC-1001"
IDENTIFIER_SYSTEM = "urn:test:mrn"
CODE_SYSTEM = "urn:test:codes"


@dataclass
class World:
    """Patients A and B, each with an Observation and an Encounter, written by an admin;
    B's family name, identifier and observation code are distinctive."""

    a: str
    b: str
    obs_a: str
    obs_b: str
    enc_b: str
    more_b: list[str] = field(default_factory=list)
    """Ids of further resources of B's compartment made by a test."""
    allow: set[str] = field(default_factory=set)
    """What of B's a response to A may hold in a test (A's own data naming it)."""

    def b_secrets(self) -> list[str]:
        """Everything of B's that must never reach patient A: ids, name, identifier, code."""
        ids = [self.b, self.obs_b, self.enc_b, *self.more_b]
        return [*ids, B_FAMILY, B_IDENTIFIER, B_CODE]


def _create(smart: Smart, resource: dict[str, Any]) -> str:
    response = smart.client.post(
        f"/fhir/{resource['resourceType']}", json=resource, headers=smart.headers(ADMIN)
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def create(smart: Smart, resource: dict[str, Any]) -> str:
    """Create ``resource`` with the admin token; its id."""
    return _create(smart, resource)


VITAL_SIGNS = [
    {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "vital-signs",
            }
        ]
    }
]


def observation(patient: str, text: str, code: str = "8867-4", **fields: Any) -> dict[str, Any]:
    """An Observation of ``patient`` (its subject) with a coded ``code``; a heart rate
    (LOINC 8867-4) carries what the R4 vital signs profile requires (category, effective)."""
    system = "http://loinc.org" if code == "8867-4" else CODE_SYSTEM
    vital = {"category": VITAL_SIGNS, "effectiveDateTime": "2022-03-01"} if code == "8867-4" else {}
    return {
        "resourceType": "Observation",
        "status": "final",
        **vital,
        "code": {"coding": [{"system": system, "code": code}], "text": text},
        "subject": {"reference": f"Patient/{patient}"},
        **fields,
    }


@pytest.fixture
def world(smart: Smart) -> World:
    a = _create(
        smart,
        {
            "resourceType": "Patient",
            "name": [{"family": "Alpha"}],
            "identifier": [{"system": IDENTIFIER_SYSTEM, "value": A_IDENTIFIER}],
        },
    )
    b = _create(
        smart,
        {
            "resourceType": "Patient",
            "name": [{"family": B_FAMILY}],
            "identifier": [{"system": IDENTIFIER_SYSTEM, "value": B_IDENTIFIER}],
        },
    )
    obs_a = _create(smart, observation(a, "heart rate A"))
    obs_b = _create(smart, observation(b, "heart rate B", B_CODE))
    enc_b = _create(
        smart,
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"code": "AMB"},
            "subject": {"reference": f"Patient/{b}"},
        },
    )
    return World(a, b, obs_a, obs_b, enc_b)


_register_commands()


def register(
    database_url: str, tmp_path: Path, key: RSAKey | ECKey, scope: str, patient: str | None = None
) -> str:
    jwks = tmp_path / f"client-{uuid.uuid4().hex}.json"
    jwks.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    args = ["auth", "register-client", "--name", "backend", "--scope", scope, "--jwks", str(jwks)]
    args += ["--database-url", database_url]
    if patient is not None:
        args += ["--patient", patient]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


def backend_client(database_url: str, tmp_path: Path, scope: str) -> tuple[str, Path]:
    """A client registered with a new RSA key: its id and its private key as a PEM file."""
    key = RSAKey.generate_key(2048, private=True)
    pem = tmp_path / f"client-{uuid.uuid4().hex}.pem"
    pem.write_bytes(key.as_pem(private=True))
    return register(database_url, tmp_path, key, scope), pem


V1_PATIENT = "patient/*.read patient/*.write"
V2_PATIENT = "patient/*.cruds"


@pytest.fixture(params=[V1_PATIENT, V2_PATIENT], ids=["v1", "v2"])
def attacker(request: pytest.FixtureRequest, smart: Smart, world: World) -> dict[str, str]:
    """Headers of a token for patient A, with SMART v1 then v2 patient scopes; from now on
    every response to a token of patient A is checked for B's data (``leaks.guard``)."""
    guard(smart.client, world)
    return smart.headers(str(request.param), world.a)


@pytest.fixture
def gone_b(smart: Smart, world: World) -> str:
    """A deleted Observation of patient B (two versions: the resource, then its deletion)."""
    gone = _create(smart, observation(world.b, "deleted B"))
    deleted = smart.client.delete(f"/fhir/Observation/{gone}", headers=smart.headers(ADMIN))
    assert deleted.status_code in (200, 204), deleted.text
    world.more_b.append(gone)
    return gone


@dataclass
class Links:
    """Cross-patient references written by an admin: A's Observation whose ``focus`` is
    Patient B, and B's Observation (B's code) whose ``focus`` is Patient A. ``focus`` is not
    a parameter of CompartmentDefinition-patient for Observation, so each stays in the
    compartment of its subject only."""

    obs_a_focus_b: str
    obs_b_focus_a: str


@pytest.fixture
def links(smart: Smart, world: World) -> Links:
    a_focus_b = _create(
        smart,
        observation(
            world.a, "A about B", "a-own-code", focus=[{"reference": f"Patient/{world.b}"}]
        ),
    )
    b_focus_a = _create(
        smart,
        observation(world.b, "B about A", B_CODE, focus=[{"reference": f"Patient/{world.a}"}]),
    )
    world.more_b.append(b_focus_a)
    return Links(a_focus_b, b_focus_a)
