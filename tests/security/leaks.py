"""Assertions of the patient-isolation tests: nothing of patient B in a response given to
patient A, and "outside the scope" answered exactly as "does not exist"
(https://hl7.org/fhir/R4/security.html#AccessDenied)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import httpx

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from tests.security.conftest import World


def new_id() -> str:
    """An id that nothing has (same shape as the server's own ids)."""
    return str(uuid.uuid4())


def _request_urls(request: httpx.Request) -> str:
    """The request's URL and, for a Bundle, the URLs of its entries' requests."""
    urls = [unquote(str(request.url))]
    if request.method == "POST" and request.url.path.rstrip("/") == "/fhir":
        try:
            body = json.loads(request.content)
        except ValueError:
            body = {}
        if isinstance(body, dict) and body.get("resourceType") == "Bundle":
            urls += [
                unquote(str(e.get("request", {}).get("url", ""))) for e in body.get("entry", [])
            ]
    return " ".join(urls)


def assert_no_leak(response: httpx.Response, world: World, allow: Iterable[str] = ()) -> None:
    """No id, family name, identifier or code of patient B in the response, except what the
    request's own URL (or a Bundle entry's request URL) carried, echoed as it would be for a
    value nothing has, and what ``allow`` or ``world.allow`` names."""
    urls = _request_urls(response.request)
    allowed = set(allow) | world.allow
    for secret in world.b_secrets():
        if secret in urls or secret in allowed:
            continue
        assert secret not in response.text, (
            f"{response.request.method} {urls} -> {response.status_code} reveals {secret!r}: "
            f"{response.text[:600]}"
        )


def normalized(response: httpx.Response, *values: str) -> Any:
    """The response's status and JSON body with each of ``values`` replaced by a placeholder
    (and ``meta.lastUpdated``/``id`` of created resources dropped)."""
    text = response.text
    for value in values:
        for form in (value, quote(value, safe=""), quote(value, safe="=")):
            text = text.replace(form, "{VALUE}")
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = text
    if isinstance(body, dict) and body.get("resourceType") not in ("OperationOutcome", None):
        body.pop("id", None)
        body.pop("meta", None)
    return response.status_code, body


def assert_like_missing(
    call: Callable[[str], httpx.Response], hidden: str, world: World, status: int | None = None
) -> httpx.Response:
    """``call(hidden)`` answers exactly as ``call(<an id nothing has>)``: same status and
    the same body once each id is replaced by a placeholder; nothing of B's leaks."""
    missing = new_id()
    got, control = call(hidden), call(missing)
    if status is not None:
        assert got.status_code == status, (got.status_code, got.text)
    assert normalized(got, hidden) == normalized(control, missing), (got.text, control.text)
    assert_no_leak(got, world)
    return got


def entry_ids(bundle: dict[str, Any]) -> set[str]:
    """``Type/id`` of every resource of a Bundle (OperationOutcomes left out)."""
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if "resource" in e and e["resource"].get("resourceType") != "OperationOutcome"
    }


def _token_patient(request: httpx.Request) -> str | None:
    """The ``patient`` claim of the request's bearer token (read, not verified)."""
    parts = request.headers.get("authorization", "").removeprefix("Bearer ").split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    patient = claims.get("patient") if isinstance(claims, dict) else None
    return str(patient) if patient else None


def guard(client: TestClient, world: World) -> None:
    """Check every response the client receives for a token of patient A with
    ``assert_no_leak``."""

    def check(response: httpx.Response) -> None:
        if _token_patient(response.request) == world.a:
            response.read()
            assert_no_leak(response, world)

    client.event_hooks = {
        **client.event_hooks,
        "response": [*client.event_hooks["response"], check],
    }
