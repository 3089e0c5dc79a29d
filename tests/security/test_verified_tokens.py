"""Verified bearer tokens remembered for a short time (``api.auth.verified_tokens``):
a client's requests pay for one signature check, and what a token grants never leaks to
another token, outlives the token's ``exp`` or survives a changed token."""

from __future__ import annotations

import time

import pytest

from fhir_service.api.auth.verified_tokens import Grant, VerifiedTokens
from fhir_service.fhir.smart_scopes import ScopeSet
from tests.api.helpers import assert_outcome
from tests.security.conftest import Smart, World

NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def _grant(expires: float, patient: str | None = None) -> Grant:
    return Grant("client", ScopeSet.parse("system/Patient.r"), patient, int(expires))


def test_a_grant_is_kept_until_the_earlier_of_exp_and_the_time_bound() -> None:
    clock = Clock()
    tokens = VerifiedTokens(clock)
    long_lived, short_lived = _grant(NOW + 3600), _grant(NOW + 10)
    tokens.put("long", long_lived)
    tokens.put("short", short_lived)
    clock.now = NOW + 9.9
    assert tokens.get("long") is long_lived
    assert tokens.get("short") is short_lived
    clock.now = NOW + 10  # the short token's exp: checked in full again
    assert tokens.get("short") is None
    clock.now = NOW + VerifiedTokens.SECONDS - 0.1
    assert tokens.get("long") is long_lived
    clock.now = NOW + VerifiedTokens.SECONDS  # its exp is far, but keys may have changed
    assert tokens.get("long") is None
    assert tokens.get("never seen") is None


def test_an_expired_grant_is_not_kept_and_the_oldest_makes_room() -> None:
    clock = Clock()
    tokens = VerifiedTokens(clock)
    tokens.put("expired", _grant(NOW - 1))  # verified within the leeway after its exp
    assert tokens.get("expired") is None
    for i in range(VerifiedTokens.SIZE + 1):
        tokens.put(f"t{i}", _grant(NOW + 3600))
    assert tokens.get("t0") is None
    assert tokens.get("t1") is not None
    assert tokens.get(f"t{VerifiedTokens.SIZE}") is not None


@pytest.fixture
def checked(smart: Smart, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens the app's security checks in full (its own ``verify``, counted)."""
    security = smart.client.app.state.security  # type: ignore[attr-defined]
    tokens: list[str] = []
    verify = security.verify

    def counting_verify(request: object, token: str) -> Grant:
        tokens.append(token)
        return verify(request, token)

    monkeypatch.setattr(security, "verify", counting_verify)
    return tokens


def test_one_signature_check_per_token_and_grants_kept_apart(
    smart: Smart, world: World, checked: list[str]
) -> None:
    token_a = smart.token("patient/*.rs", patient=world.a)
    token_b = smart.token("patient/*.rs", patient=world.b)
    as_a = {"Authorization": f"Bearer {token_a}"}
    as_b = {"Authorization": f"Bearer {token_b}"}
    for _ in range(5):
        assert smart.client.get(f"/fhir/Patient/{world.a}", headers=as_a).status_code == 200
        assert smart.client.get(f"/fhir/Patient/{world.b}", headers=as_a).status_code == 404
        assert smart.client.get(f"/fhir/Patient/{world.b}", headers=as_b).status_code == 200
        assert smart.client.get(f"/fhir/Patient/{world.a}", headers=as_b).status_code == 404
    assert checked == [token_a, token_b]


def test_a_changed_token_is_checked_and_refused(smart: Smart, world: World) -> None:
    token = smart.token("patient/*.rs", patient=world.a)
    path = f"/fhir/Patient/{world.a}"
    assert smart.client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    head, claims, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    for changed in (f"{head}.{claims}.{flipped}", token + "x", token[:-1]):
        refused = smart.client.get(path, headers={"Authorization": f"Bearer {changed}"})
        assert_outcome(refused, 401, "token")


def test_a_token_that_failed_is_checked_again(
    smart: Smart, world: World, checked: list[str]
) -> None:
    """An early token (``nbf`` ahead) is refused, and refused again: not remembered."""
    early = smart.token("patient/*.rs", patient=world.a, nbf=int(time.time()) + 600)
    headers = {"Authorization": f"Bearer {early}"}
    for _ in range(2):
        assert_outcome(smart.client.get(f"/fhir/Patient/{world.a}", headers=headers), 401, "")
    assert checked == [early, early]
