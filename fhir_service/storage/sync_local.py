"""What a push reads of the local resources: current versions in write order, by change
or by patient compartment, inside the unit of work's ``AccessScope``.

Reads the store's ``resource`` pointers and ``resource_version`` bodies; ``seq`` is the
store's write order, so "changed since the last push" is ``seq > checkpoint``
(https://hl7.org/fhir/R4/http.html#history). A patient's compartment is the Patient and
every resource referring to it
(https://hl7.org/fhir/R4/compartmentdefinition-patient.html), closed over the resources
they refer to so nothing pushed dangles. Every statement carries the scope
(``visibility.visible`` with the read interaction); sync runs with
``AccessScope.full()``, the service's own work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from fhir_service.fhir.references import iter_references, parse_reference
from fhir_service.storage.access import AccessScope
from fhir_service.storage.tables import resource, resource_version
from fhir_service.storage.visibility import Where, inside, visible

READ = "r"
BATCH = 500


@dataclass(frozen=True)
class Current:
    """The current version pointer of one local resource."""

    type: str
    id: str
    version: int
    deleted: bool
    seq: int


def _current(rows: Any) -> list[Current]:
    return [Current(r.type, r.id, r.version, bool(r.deleted), r.seq) for r in rows]


class LocalResources:
    """The local resources' current pointers and bodies on one connection, inside ``scope``."""

    def __init__(self, conn: Connection, scope: AccessScope) -> None:
        self._conn = conn
        self.scope = scope

    def _inside(self) -> list[Where]:
        return inside(self.scope, READ)

    def changed_since(self, seq: int) -> list[Current]:
        """Every resource whose current version was written after ``seq``, in write order."""
        return _current(
            self._conn.execute(
                sa.select(resource)
                .where(resource.c.seq > seq, *self._inside())
                .order_by(resource.c.seq)
            )
        )

    def current_of(self, keys: set[tuple[str, str]]) -> list[Current]:
        """The current pointers of the given (type, id) keys that exist, in write order."""
        found: list[Current] = []
        by_type: dict[str, list[str]] = {}
        for rtype, id in keys:
            by_type.setdefault(rtype, []).append(id)
        for rtype, ids in by_type.items():
            for start in range(0, len(ids), BATCH):
                found += _current(
                    self._conn.execute(
                        sa.select(resource).where(
                            resource.c.type == rtype,
                            resource.c.id.in_(ids[start : start + BATCH]),
                            *self._inside(),
                        )
                    )
                )
        return sorted(found, key=lambda c: c.seq)

    def bodies(self, seqs: list[int]) -> dict[int, dict[str, Any]]:
        """Resource bodies by version ``seq``."""
        where = visible(self.scope, resource_version.c.type, resource_version.c.seq, READ)
        inside = [where] if where is not None else []
        out: dict[int, dict[str, Any]] = {}
        for start in range(0, len(seqs), BATCH):
            rows = self._conn.execute(
                sa.select(resource_version.c.seq, resource_version.c.body).where(
                    resource_version.c.seq.in_(seqs[start : start + BATCH]), *inside
                )
            )
            for r in rows:
                if r.body is not None:
                    out[r.seq] = r.body
        return out

    def compartment(self, patient_id: str) -> list[Current]:
        """The patient, the resources referring to it, and what those refer to
        (transitively)."""
        needle = f'%"Patient/{patient_id}"%'
        rows = self._conn.execute(
            sa.select(resource.c.type, resource.c.id)
            .join(resource_version, resource_version.c.seq == resource.c.seq)
            .where(
                resource.c.deleted.is_(False),
                sa.cast(resource_version.c.body, sa.Text).like(needle),
                *self._inside(),
            )
        )
        keys = {("Patient", patient_id)} | {(r.type, r.id) for r in rows}
        frontier = set(keys)
        while frontier:
            members = self.current_of(frontier)
            texts = self.bodies([m.seq for m in members if not m.deleted])
            frontier = set()
            for body in texts.values():
                for ref in iter_references(body):
                    parsed = parse_reference(ref)
                    if parsed is not None and parsed.base is None:
                        key = (parsed.resource_type, parsed.id)
                        if key not in keys and key[0] != "Patient":
                            keys.add(key)
                            frontier.add(key)
        return self.current_of(keys)
