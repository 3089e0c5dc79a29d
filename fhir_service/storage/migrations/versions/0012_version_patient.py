"""The patients of each version (https://hl7.org/fhir/R4/compartmentdefinition-patient.html):
patient scopes read, search and count through it, inside the SQL of every operation.

Existing versions are filled in from their content when the core package is in the
package cache; without it the table starts empty for them (``fhir-service db upgrade``
after ``fhir-service packages install`` fills it).

Revision ID: 0012_version_patient
Revises: 0011_reference_url_partial
Create Date: 2026-12-05
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

from fhir_service.storage.compartment_rows import backfill

revision = "0012_version_patient"
down_revision = "0011_reference_url_partial"
branch_labels = None
depends_on = None

_Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
log = logging.getLogger(__name__)


def upgrade() -> None:
    """Create ``version_patient`` and fill it for the versions already stored."""
    op.create_table(
        "version_patient",
        sa.Column("patient_id", sa.String(64), primary_key=True),
        sa.Column("seq", _Seq, primary_key=True),
    )
    op.create_index("ix_version_patient_seq", "version_patient", ["seq"])
    backfill(op.get_bind())


def downgrade() -> None:
    """Drop ``version_patient``."""
    op.drop_index("ix_version_patient_seq", table_name="version_patient")
    op.drop_table("version_patient")
