"""The resources a transaction creates, validated beside its database work.

A transaction may write its POSTed resources before they are validated, as
long as nothing commits before every one of them is: the first invalid one, in
processing order, is the error of the whole Bundle, exactly as if each had been
validated when it was queued (https://hl7.org/fhir/R4/http.html#trules). With a
``ValidationPool``, every ``BATCH`` queued resources go to a worker process while
the transaction goes on with references, SQL and search index rows; the last few
are validated here, while the worker finishes. Without a pool, or with fewer
than ``BATCH`` resources, everything is validated here, in order, as before.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field

from fhir_service.errors import FhirServiceError
from fhir_service.fhir.models import parse_resource
from fhir_service.fhir.validation_pool import ValidationPool, first_invalid
from fhir_service.storage.repository import JSON

BATCH = 8
"""Resources per batch sent to a worker: enough to pay for the trip (a few hundred
microseconds), few enough that the worker starts while the Bundle is still being read."""


@dataclass
class DeferredValidation:
    """Stored bodies (with their entry positions) waiting to be validated."""

    pool: ValidationPool | None
    waiting: list[tuple[int, JSON]] = field(default_factory=list)
    sent: list[tuple[list[tuple[int, JSON]], Future[int]]] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return self.pool is not None

    def defer(self, index: int, body: JSON) -> None:
        """Validate ``body`` (of entry ``index``) before ``first_failure`` answers."""
        self.waiting.append((index, body))
        if self.pool is not None and len(self.waiting) >= BATCH:
            batch, self.waiting = self.waiting, []
            self.sent.append((batch, self.pool.submit([body for _, body in batch])))

    def first_failure(self) -> tuple[int, FhirServiceError] | None:
        """The entry position and error of the first invalid body deferred so far."""
        batches: list[tuple[list[tuple[int, JSON]], Future[int] | None]] = [
            *self.sent,
            (self.waiting, None),
        ]
        self.sent, self.waiting = [], []
        for batch, future in batches:
            bodies = [body for _, body in batch]
            if future is None or self.pool is None:
                position = first_invalid(bodies)
            else:
                position = self.pool.result(future, bodies)
            if position < 0:
                continue
            for index, body in batch[position:]:
                try:
                    parse_resource(body)
                except FhirServiceError as exc:
                    return index, exc
        return None
