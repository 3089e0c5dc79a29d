"""Queue a reindex of the resources whose composite index rows were missing: components
reaching an element's choice through a union (``value.as(DateTime) | value.as(Period)``
of Observation ``code-value-date``, ``value.as(Quantity) | value.as(Range)`` of the
``context-type-quantity`` parameters) wrote no rows before this version
(https://hl7.org/fhir/R4/search.html#composite).

Revision ID: 0010_composite_choice
Revises: 0009_ranged_index
Create Date: 2026-11-27
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0010_composite_choice"
down_revision = "0009_ranged_index"
branch_labels = None
depends_on = None

TRIGGER = "migration:0010_composite_choice"
_TYPES = (
    "ActivityDefinition",
    "CapabilityStatement",
    "ChargeItemDefinition",
    "CodeSystem",
    "CompartmentDefinition",
    "ConceptMap",
    "EffectEvidenceSynthesis",
    "EventDefinition",
    "Evidence",
    "EvidenceVariable",
    "ExampleScenario",
    "GraphDefinition",
    "ImplementationGuide",
    "Library",
    "Measure",
    "MessageDefinition",
    "NamingSystem",
    "Observation",
    "OperationDefinition",
    "PlanDefinition",
    "Questionnaire",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "RiskEvidenceSynthesis",
    "SearchParameter",
    "StructureDefinition",
    "StructureMap",
    "TerminologyCapabilities",
    "TestScript",
    "ValueSet",
)
"""The base types of those parameters."""

_job = sa.table(
    "reindex_job",
    sa.column("id", sa.String),
    sa.column("status", sa.String),
    sa.column("reason", sa.String),
    sa.column("trigger", sa.String),
    sa.column("types", sa.Text),
    sa.column("created", sa.DateTime(timezone=True)),
    sa.column("heartbeat", sa.DateTime(timezone=True)),
    sa.column("total", sa.Integer),
    sa.column("done", sa.Integer),
)


def upgrade() -> None:
    """One queued job for the stored types among ``_TYPES`` (none when there are none);
    the service's reindex worker carries it out."""
    bind = op.get_bind()
    stored = sa.table("resource", sa.column("type", sa.String))
    present = sorted(
        bind.execute(sa.select(stored.c.type).distinct().where(stored.c.type.in_(_TYPES))).scalars()
    )
    if not present:
        return
    now = datetime.now(UTC)
    op.execute(
        _job.insert().values(
            id=str(uuid.uuid4()),
            status="queued",
            reason="index rows of composite parameters with a choice of types (0010)",
            trigger=TRIGGER,
            types=json.dumps(present),
            created=now,
            heartbeat=now,
            total=0,
            done=0,
        )
    )


def downgrade() -> None:
    """Remove the job if it has not run (rows written meanwhile stay: they are correct)."""
    op.execute(_job.delete().where(_job.c.trigger == TRIGGER, _job.c.status == "queued"))
