"""What the remote server can do, read from its CapabilityStatement.

https://hl7.org/fhir/R4/capabilitystatement.html: ``rest.interaction`` (transaction,
batch, history-system, search-system), ``rest.resource`` (updateCreate,
interactions), ``rest.operation`` ($everything).

``rest.resource`` is 0..*: a remote may list no types at all, and then nothing can be
told from the statement about which types it holds; ``served_types`` are the types this
server serves (those of its own CapabilityStatement), what a pull falls back on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from fhir_service.fhir.models import is_resource_type

_ABSTRACT = {"Resource", "DomainResource"}


@cache
def served_types() -> tuple[str, ...]:
    """Every concrete resource type this server serves (the R4B models' types), sorted."""
    from fhir.resources.R4B import fhirtypes

    names = {n[:-4] for n in dir(fhirtypes) if n.endswith("Type") and n[:1].isupper()}
    return tuple(sorted(n for n in names - _ABSTRACT if is_resource_type(n)))


@dataclass(frozen=True)
class Capabilities:
    """The parts of a CapabilityStatement the sync uses."""

    transaction: bool = False
    batch: bool = False
    history_system: bool = False
    search_system: bool = False
    everything: bool = False
    update_create: frozenset[str] = field(default_factory=frozenset)
    types: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, statement: dict[str, Any]) -> Capabilities:
        """Read the server-mode ``rest`` entry; an unusable statement gives no capabilities."""
        rests = [r for r in statement.get("rest") or [] if r.get("mode", "server") == "server"]
        if not rests:
            return cls()
        rest = rests[0]
        codes = {i.get("code") for i in rest.get("interaction") or []}
        resources = rest.get("resource") or []
        operations = {o.get("name") for o in rest.get("operation") or []}
        for resource in resources:
            operations |= {o.get("name") for o in resource.get("operation") or []}
        return cls(
            transaction="transaction" in codes,
            batch="batch" in codes,
            history_system="history-system" in codes,
            search_system="search-system" in codes,
            everything="everything" in operations,
            update_create=frozenset(r["type"] for r in resources if r.get("updateCreate")),
            types=frozenset(r["type"] for r in resources if r.get("type")),
        )
