"""Devices used or implanted during procedures (e.g. vascular grafts).

Device (https://hl7.org/fhir/R4/device.html): ``type`` from the code tables with
the report's text, ``patient`` the case's Patient; the Procedure that used it
points at it through ``focalDevice.manipulated``.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.device import Device
from fhir.resources.R4B.resource import Resource

from mappings.case.model import Case
from mappings.common import concept, note, patient_ref
from mappings.context import MappingContext


def map_devices(case: Case, ctx: MappingContext) -> list[Resource]:
    """One Device per device of every procedure."""
    out: list[Resource] = []
    for proc in case.procedures:
        for dev in proc.devices:
            res: dict[str, Any] = {
                "resourceType": "Device",
                "id": ctx.resource_id("Device", dev.key),
                "identifier": [ctx.identifier("Device", dev.key)],
                "type": concept(dev),
                "patient": patient_ref(case, ctx),
                "note": [note(f"Used in: {proc.text.strip()}")],
            }
            if dev.note:
                res["note"].append(note(dev.note))
            out.append(Device.model_validate(res))
    return out
