"""The ``version_patient`` rows of written versions: which patients' compartments each
version lies in (https://hl7.org/fhir/R4/compartmentdefinition-patient.html).

A version's patients come from its content (``PatientCompartment.patients``); a delete
marker keeps the patients of the content it deleted, so a patient scope still sees (and
only that scope sees) that its resource was deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from fhir_service.search.compartment import compartment_paths
from fhir_service.search.registry import Registry
from fhir_service.storage.search_index import registry_or_none
from fhir_service.storage.tables import resource_version, version_patient

log = logging.getLogger(__name__)
_BATCH = 1000


def patients_of(registry: Registry | None, body: dict[str, Any]) -> set[str]:
    """Ids of the patients in whose compartment ``body`` lies (none without a registry)."""
    if registry is None:
        return set()
    return compartment_paths(registry).patients(body)


def insert_rows(conn: Connection, rows: Iterable[tuple[str, int]]) -> None:
    """Insert (patient id, seq) rows."""
    batch = [{"patient_id": patient, "seq": seq} for patient, seq in rows]
    if batch:
        conn.execute(sa.insert(version_patient), batch)


def copy_rows(conn: Connection, from_seq: int, to_seq: int) -> None:
    """Give version ``to_seq`` (a delete marker) the patients of version ``from_seq``."""
    conn.execute(
        sa.insert(version_patient).from_select(
            ["patient_id", "seq"],
            sa.select(version_patient.c.patient_id, sa.literal(to_seq, sa.BigInteger)).where(
                version_patient.c.seq == from_seq
            ),
        )
    )


def backfill(conn: Connection) -> None:
    """Rows for every stored version, in history order (markers keep the prior content's)."""
    registry = registry_or_none()
    if registry is None:
        log.warning("version_patient not filled: the core package is not installed")
        return
    last: dict[tuple[str, str], set[str]] = {}
    after = -1
    while True:
        rows = conn.execute(
            sa.select(
                resource_version.c.seq,
                resource_version.c.type,
                resource_version.c.id,
                resource_version.c.body,
            )
            .where(resource_version.c.seq > after)
            .order_by(resource_version.c.seq)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        pending: list[tuple[str, int]] = []
        for row in rows:
            key = (row.type, row.id)
            body = row.body
            patients = last.get(key, set()) if body is None else patients_of(registry, body)
            last[key] = patients
            pending.extend((patient, row.seq) for patient in patients)
        insert_rows(conn, pending)
        after = rows[-1].seq
