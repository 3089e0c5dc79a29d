"""The OpenAPI document of the app (/openapi.json, behind /docs)."""

from __future__ import annotations

import warnings
from collections import Counter

from fastapi.testclient import TestClient


def test_every_operation_has_an_id_of_its_own(client: TestClient) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # FastAPI warns of a duplicate id and goes on
        document = client.get("/openapi.json").json()
    ids = Counter(
        operation["operationId"]
        for path in document["paths"].values()
        for operation in path.values()
    )
    assert ids and not [name for name, n in ids.items() if n > 1]
    export = document["paths"]["/fhir/$export"]
    assert set(export) == {"get", "post"}
