"""Bearer tokens already verified, remembered for a short time, so that a client's
requests do not each pay for the token's signature check
(https://www.rfc-editor.org/rfc/rfc6750#section-3, https://www.rfc-editor.org/rfc/rfc7519#section-7.2).

Checking a token (its signature, issuer, audience and lifetime) costs more than the read
it allows, most of it the signature: on this service's 2-core machine an ES384 token
took a read by id from 130 to about 800 µs of CPU, in a worker thread. A token that
verified is remembered, with what it grants, until the earlier of its ``exp`` and
``SECONDS`` after the check; an entry past that is checked again in full. A token that
fails is never remembered. The bound of ``SECONDS`` is how long a key removed from the
trusted set (a rotated issuer key set, fetched again every ``JWKS_CACHE_SECONDS``) may
still be honoured for a token already seen; ``SIZE`` bounds the memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from fhir_service.fhir.smart_scopes import ScopeSet


@dataclass(frozen=True, slots=True)
class Grant:
    """What a verified token grants: a request's AccessContext is built from it."""

    client_id: str
    scopes: ScopeSet
    patient: str | None
    expires: int
    """The token's ``exp`` (seconds since the epoch)."""


class VerifiedTokens:
    """Verified tokens and their grants, as described in the module docstring. Used from
    the event loop's thread only."""

    SECONDS = 60.0
    SIZE = 10_000

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._entries: dict[str, tuple[float, Grant]] = {}

    def get(self, token: str) -> Grant | None:
        """The grant of ``token`` if it verified less than ``SECONDS`` ago and has not
        expired, else None."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        until, grant = entry
        if self._clock() >= until:
            del self._entries[token]
            return None
        return grant

    def put(self, token: str, grant: Grant) -> None:
        """Remember the grant of ``token``, which has just verified; the oldest entry
        makes room when ``SIZE`` are held."""
        now = self._clock()
        until = min(float(grant.expires), now + self.SECONDS)
        if until <= now:
            return
        if token not in self._entries and len(self._entries) >= self.SIZE:
            del self._entries[next(iter(self._entries))]
        self._entries[token] = (until, grant)
