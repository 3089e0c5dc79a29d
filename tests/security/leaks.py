"""Assertions of the patient-isolation tests: nothing of patient B in a response given to
patient A, and "outside the scope" answered exactly as "does not exist"
(https://hl7.org/fhir/R4/security.html#AccessDenied)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, unquote

import httpx

from tests.security.conftest import World


def new_id() -> str:
    """An id that nothing has (same shape as the server's own ids)."""
    return str(uuid.uuid4())


def assert_no_leak(response: httpx.Response, world: World, allow: Iterable[str] = ()) -> None:
    """No id, family name, identifier or code of patient B in the response, except what the
    request's own URL carried (echoed as it would be for a value nothing has) and ``allow``."""
    url = unquote(str(response.request.url))
    allowed = set(allow)
    for secret in world.b_secrets():
        if secret in url or secret in allowed:
            continue
        assert secret not in response.text, (
            f"{response.request.method} {url} -> {response.status_code} reveals {secret!r}: "
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
