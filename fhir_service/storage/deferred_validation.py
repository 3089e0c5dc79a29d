"""The resources a transaction writes, validated beside its database work.

A transaction may write its resources (POST, PUT, PATCH) before they are validated, as
long as nothing commits before every one of them is: the first invalid one, in
processing order, is the error of the whole Bundle, exactly as if each had been
validated when it was written (https://hl7.org/fhir/R4/http.html#trules). With a
``ValidationPool``, every ``BATCH`` resources go to a worker process while the
transaction goes on with references, SQL and search index rows. At the end the
transaction validates what is left, last batch first: the last few resources, and
batches the worker has not taken (it goes on with the first ones meanwhile).
Without a pool, or with fewer than ``BATCH`` resources, everything is validated
here, in order, as before.

Validation on write goes the same way: with a ``WorkerCheck`` (the unit of work's
``before_write``), a worker validates each body against the core specification and its
profiles (``checked_batch``) as well as against the models, and the check ``receive``s
the issues here, body by body in processing order, before the model error of that body:
the first body either refuses is the transaction's error.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path
from typing import Any

from fhir_service.errors import FhirServiceError, Issue
from fhir_service.fhir.models import parse_resource
from fhir_service.fhir.package_cache import load_definitions
from fhir_service.fhir.validation_pool import (
    Bodies,
    ValidationPool,
    first_invalid,
    packed,
    unpacked,
)
from fhir_service.storage.repository import JSON, WorkerCheck
from fhir_service.validation.engine import Validator, validator_for
from fhir_service.validation.options import Options

Checked = tuple[int, list[list[Issue]] | None]
"""The first body the models refuse (-1: none), and each body's validation issues."""


@cache
def _validator(package_cache: Path) -> Validator:
    return validator_for(load_definitions(package_cache))


def warm_validator(spec: tuple[Path, Options]) -> None:
    """A worker's preparation: the validator built and its common models compiled."""
    _validator(spec[0]).validate_resource({"resourceType": "Patient", "id": "x"}, spec[1])


def checked_batch(bodies: Bodies, spec: tuple[Path, Options] | None) -> Checked:
    """A worker's task: the models' verdict on ``bodies`` and, with a ``spec`` (package cache,
    options), each body's validation issues (the validator is built once per process)."""
    items = unpacked(bodies)
    issues = None
    if spec is not None:
        validator = _validator(spec[0])
        issues = [validator.validate_resource(body, spec[1]) for body in items]
    return first_invalid(items), issues


BATCH = 8
"""Resources per batch sent to a worker: enough to pay for the trip (a few hundred
microseconds), few enough that the worker starts while the Bundle is still being read."""


@dataclass
class _Batch:
    items: list[tuple[int, JSON]]
    """(entry position, stored body)"""
    check: Future[Checked] | None = None

    @property
    def bodies(self) -> list[JSON]:
        return [body for _, body in self.items]


@dataclass
class DeferredValidation:
    """Stored bodies (with their entry positions) waiting to be validated."""

    pool: ValidationPool | None
    worker_check: WorkerCheck | None = None
    """Validation on write, run with the models' check (None: none)."""
    waiting: list[tuple[int, JSON]] = field(default_factory=list)
    sent: list[_Batch] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return self.pool is not None

    def defer(self, index: int, body: JSON) -> None:
        """Validate ``body`` (of entry ``index``) before ``first_failure`` answers."""
        self.waiting.append((index, body))
        if self.pool is not None and self._spec is not None and len(self.waiting) == 1:
            self.pool.prepare(self._spec, warm_validator, self._spec)
        if self.pool is not None and len(self.waiting) >= BATCH:
            batch = _Batch(self.waiting)
            self.waiting = []
            batch.check = self.pool.submit(checked_batch, packed(batch.bodies), self._spec)
            self.sent.append(batch)

    @property
    def _spec(self) -> Any:
        return None if self.worker_check is None else self.worker_check.spec

    def first_failure(self) -> tuple[int, FhirServiceError] | None:
        """The entry position and error of the first invalid body deferred so far."""
        batches = [*self.sent, _Batch(self.waiting)]
        self.sent, self.waiting = [], []
        results: dict[int, Checked] = {}
        for number in reversed(range(len(batches))):
            batch = batches[number]
            inline = partial(checked_batch, batch.bodies, self._spec)
            if batch.check is None or self.pool is None:
                results[number] = inline()
            else:
                results[number] = self.pool.result(batch.check, inline)
        for number, batch in enumerate(batches):
            position, issues = results[number]
            for k, (index, body) in enumerate(batch.items):
                try:
                    if self.worker_check is not None and issues is not None:
                        self.worker_check.receive(body, issues[k])
                    if 0 <= position <= k:
                        parse_resource(body)
                except FhirServiceError as exc:
                    return index, exc
        return None
