"""Pulled resources go through validation on write, as the REST API's writes do
(docs/validation.md#validation-on-write): with ``reject`` a pulled resource that claims an
installed profile it does not meet (mCODE CancerPatient without identifier) is not
written and is reported as failed; the rest of the page is written."""

from __future__ import annotations

from pathlib import Path

import httpx

from fhir_service.api.write_validation import AppValidator, write_check
from fhir_service.storage import SqlStore
from fhir_service.sync.pull import pull
from tests.packages.cache import package_root
from tests.peer.process import Peer
from tests.sync.conftest import with_client
from tests.sync.helpers import local_all

MCODE_PATIENT = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-cancer-patient"
GOOD = {"resourceType": "Patient", "gender": "female", "name": [{"family": "Quill"}]}
CLAIMS = {
    "resourceType": "Patient",
    "meta": {"profile": [MCODE_PATIENT]},
    "gender": "female",
    "name": [{"family": "Zebediah"}],
}


__all__ = ["package_root"]


def _families(store: SqlStore) -> list[str]:
    return sorted(body["name"][0]["family"] for body in local_all(store).values())


def test_reject_keeps_an_invalid_pulled_resource_out_and_reports_it(
    empty_store: SqlStore, peer: Peer, package_root: Path
) -> None:
    for body in (GOOD, CLAIMS):
        assert httpx.post(f"{peer.base_url}/Patient", json=body).status_code == 201
    validator = AppValidator(package_root)

    report = with_client(
        peer.base_url,
        lambda c: pull(
            empty_store,
            c,
            types=["Patient"],
            checks=lambda: write_check(validator, "reject", log_each=False),
        ),
    )

    assert report.counts["created"] == 1
    assert report.counts["failed"] == 1
    [failure] = report.errors
    assert failure["kind"] == "failed"
    assert "not valid" in failure["message"]
    assert _families(empty_store) == ["Quill"]


def test_warn_writes_every_pulled_resource(
    empty_store: SqlStore, peer: Peer, package_root: Path
) -> None:
    for body in (GOOD, CLAIMS):
        assert httpx.post(f"{peer.base_url}/Patient", json=body).status_code == 201
    validator = AppValidator(package_root)

    report = with_client(
        peer.base_url,
        lambda c: pull(
            empty_store,
            c,
            types=["Patient"],
            checks=lambda: write_check(validator, "warn", log_each=False),
        ),
    )

    assert report.errors == []
    assert report.counts["created"] == 2
    assert _families(empty_store) == ["Quill", "Zebediah"]
