"""Blood products given in transfusions, with their amounts.

R4 has no quantity on Procedure.usedCode, and MedicationAdministration.medication[x]
takes only a Medication. The structure R4 offers for "this amount of this material was
used in this procedure" is Procedure.usedReference
(https://hl7.org/fhir/R4/procedure-definitions.html#Procedure.usedReference:
Reference(Device | Medication | Substance)) pointing at a Substance whose ``instance``
carries the amount (https://hl7.org/fhir/R4/substance-definitions.html#Substance.instance.quantity,
a SimpleQuantity in UCUM: ``16 {unit}``, ``2200 mL``). The Substance's ``code`` is the
product as the report names it; ``category`` is R4's ``biological``
(https://hl7.org/fhir/R4/codesystem-substance-category.html).
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.substance import Substance

from mappings.case.model import Case, Procedure, Transfusion
from mappings.common import quantity
from mappings.context import MappingContext

SUBSTANCE_CATEGORY = "http://terminology.hl7.org/CodeSystem/substance-category"
"""https://hl7.org/fhir/R4/codesystem-substance-category.html"""


def product_key(transfusion_key: str) -> str:
    """The fact key of the Substance given in transfusion ``transfusion_key``."""
    return f"{transfusion_key}-product"


def map_substances(case: Case, ctx: MappingContext) -> list[Resource]:
    """One Substance per transfused product, with the amount given."""
    return [
        Substance.model_validate(_product(ctx, proc, t))
        for proc in case.procedures
        for t in proc.transfusions
    ]


def _product(ctx: MappingContext, proc: Procedure, t: Transfusion) -> dict[str, Any]:
    key = product_key(t.key)
    amount = quantity(t.amount)
    if t.amount.unit == "{unit}":
        amount["unit"] = "units"
    res: dict[str, Any] = {
        "resourceType": "Substance",
        "id": ctx.resource_id("Substance", key),
        "identifier": [ctx.identifier("Substance", key)],
        "category": [
            {
                "coding": [
                    {
                        "system": SUBSTANCE_CATEGORY,
                        "code": "biological",
                        "display": "Biological Substance",
                    }
                ]
            }
        ],
        "code": {"text": t.product},
        "instance": [{"quantity": amount}],
    }
    if t.amount.approximate:
        res["description"] = "The amount given is approximate (the report says about)."
    return res
