"""The SQL tables of the security layer (created by migration ``0004_security``); only
``storage/clients.py`` and ``storage/audit_log.py`` query them.

- ``auth_client``: clients registered for the token endpoint, with the JWKS (or JWKS URL)
  their assertions are signed with, the scopes they may get and an optional patient
  context (https://hl7.org/fhir/smart-app-launch/backend-services.html#registering-a-client-communicating-public-keys).
- ``auth_assertion``: ``jti`` of every accepted client assertion until it expires, so an
  assertion is never accepted twice (https://hl7.org/fhir/smart-app-launch/backend-services.html#authenticating-to-the-token-endpoint).
- ``audit_event``: one row per audited request, served as AuditEvent
  (https://hl7.org/fhir/R4/auditevent.html); never bodies or query strings.
"""

from __future__ import annotations

import sqlalchemy as sa

from fhir_service.storage.tables import UtcDateTime

security_metadata = sa.MetaData()

_Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

auth_client = sa.Table(
    "auth_client",
    security_metadata,
    sa.Column("client_id", sa.String(128), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("jwks", sa.Text, nullable=True),
    sa.Column("jwks_url", sa.String(2000), nullable=True),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("patient", sa.String(64), nullable=True),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created", UtcDateTime(), nullable=False),
)

auth_assertion = sa.Table(
    "auth_assertion",
    security_metadata,
    sa.Column("client_id", sa.String(128), primary_key=True),
    sa.Column("jti", sa.String(255), primary_key=True),
    sa.Column("expires", UtcDateTime(), nullable=False),
)

audit_event = sa.Table(
    "audit_event",
    security_metadata,
    sa.Column("seq", _Seq, primary_key=True, autoincrement=True),
    sa.Column("recorded", UtcDateTime(), nullable=False),
    sa.Column("client_id", sa.String(128), nullable=False),
    sa.Column("patient", sa.String(64), nullable=True),
    sa.Column("source", sa.String(100), nullable=True),
    sa.Column("action", sa.String(1), nullable=False),
    sa.Column("subtype", sa.String(40), nullable=False),
    sa.Column("method", sa.String(10), nullable=False),
    sa.Column("path", sa.String(2000), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("outcome", sa.String(2), nullable=False),
    sa.Column("entities", sa.Text, nullable=False),
)
