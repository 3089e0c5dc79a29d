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
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial

from fhir_service.errors import FhirServiceError
from fhir_service.fhir.models import parse_resource
from fhir_service.fhir.validation_pool import ValidationPool, first_invalid, packed
from fhir_service.storage.repository import JSON

BATCH = 8
"""Resources per batch sent to a worker: enough to pay for the trip (a few hundred
microseconds), few enough that the worker starts while the Bundle is still being read."""


@dataclass
class _Batch:
    items: list[tuple[int, JSON]]
    """(entry position, stored body)"""
    check: Future[int] | None = None

    @property
    def bodies(self) -> list[JSON]:
        return [body for _, body in self.items]


@dataclass
class DeferredValidation:
    """Stored bodies (with their entry positions) waiting to be validated."""

    pool: ValidationPool | None
    waiting: list[tuple[int, JSON]] = field(default_factory=list)
    sent: list[_Batch] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return self.pool is not None

    def defer(self, index: int, body: JSON) -> None:
        """Validate ``body`` (of entry ``index``) before ``first_failure`` answers."""
        self.waiting.append((index, body))
        if self.pool is not None and len(self.waiting) >= BATCH:
            batch = _Batch(self.waiting)
            self.waiting = []
            batch.check = self.pool.submit(first_invalid, packed(batch.bodies))
            self.sent.append(batch)

    def first_failure(self) -> tuple[int, FhirServiceError] | None:
        """The entry position and error of the first invalid body deferred so far."""
        batches = [*self.sent, _Batch(self.waiting)]
        self.sent, self.waiting = [], []
        positions: dict[int, int] = {}
        for number in reversed(range(len(batches))):
            batch = batches[number]
            if batch.check is None or self.pool is None:
                positions[number] = first_invalid(batch.bodies)
            else:
                positions[number] = self.pool.result(
                    batch.check, partial(first_invalid, batch.bodies)
                )
        for number, batch in enumerate(batches):
            if positions[number] < 0:
                continue
            for index, body in batch.items[positions[number] :]:
                try:
                    parse_resource(body)
                except FhirServiceError as exc:
                    return index, exc
        return None
