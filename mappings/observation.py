"""Observations of the case (https://hl7.org/fhir/R4/observation.html).

Labs (value and unit as printed, a correction in a note), procedure measurements and
findings (partOf the Procedure), imaging and pathology findings (the DiagnosticReport
lists them in ``result``), the Clavien-Dindo grade of a complication (focus: the
complication Condition), the mCODE tumour size
(https://hl7.org/fhir/us/mcode/STU4/StructureDefinition-mcode-tumor-size.html), the
mCODE cancer disease status
(https://hl7.org/fhir/us/mcode/STU4/StructureDefinition-mcode-cancer-disease-status.html)
and the patient's age at presentation.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.resource import Resource

from mappings.body_structure import tumor_key
from mappings.case.model import (
    DISEASE_STATUS_CODES,
    INTERPRETATION_CODES,
    Case,
    DiseaseStatus,
    Finding,
    Lab,
    PathologyReport,
    Procedure,
)
from mappings.case.timing import RelativeTime
from mappings.case.types import BodySite, Quantity
from mappings.common import (
    body_site,
    codings,
    concept,
    notes,
    patient_ref,
    profile,
    quantity,
    set_datetime,
    ucum_quantity,
)
from mappings.context import MappingContext
from mappings.terminology import codes

CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
"""https://hl7.org/fhir/R4/codesystem-observation-category.html"""
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
"""https://hl7.org/fhir/R4/v3/ObservationInterpretation/cs.html"""
TUMOR_SIZE = "loinc:21889-1"
LONGEST_DIMENSION = "loinc:33728-7"
OTHER_DIMENSION = "loinc:33729-5"
"""Fixed by mcode-tumor-size (code and component slices)."""
DISEASE_STATUS = "loinc:97509-4"
"""Fixed by mcode-cancer-disease-status."""
BLOOD_GROUP = "loinc:882-1"
"""ABO and Rh group (https://loinc.org/882-1/)."""


def grade_key(complication_key: str) -> str:
    """The fact key of the Observation holding a complication's grade."""
    return f"{complication_key}-grade"


def size_key(finding_key: str) -> str:
    """The fact key of the tumour size Observation of a finding with ``size``."""
    return f"{finding_key}-size"


def age_key(patient_key: str) -> str:
    """The fact key of the Observation holding the patient's age at presentation."""
    return f"{patient_key}-age"


def map_observations(case: Case, ctx: MappingContext) -> list[Resource]:
    """Every Observation of the case, in case file order."""
    out: list[dict[str, Any]] = [_age(case, ctx)]
    if case.patient.blood_group is not None:
        out.append(_blood_group(case, ctx))
    out += [_lab(case, ctx, lab) for lab in case.labs]
    for study in case.imaging:
        for f in study.findings:
            obs = _finding(case, ctx, f, "imaging", "Imaging finding", study.when)
            obs["note"] = [*obs.get("note", []), {"text": f"Finding of: {study.text}"}]
            out.append(obs)
            out += _finding_size(case, ctx, f, study.when)
    for proc in case.procedures:
        out += _procedure_observations(case, ctx, proc)
    for report in case.pathology:
        out += _pathology_observations(case, ctx, report)
    out += [_disease_status(case, ctx, ds) for ds in case.disease_status]
    return [Observation.model_validate(_clean(o)) for o in out]


def _category(code: str) -> list[dict[str, Any]]:
    return [{"coding": [{"system": CATEGORY, "code": code}]}]


def _coded(ref: str, text: str | None = None) -> dict[str, Any]:
    entry = codes.lookup(ref)
    return {"coding": [entry.coding()], "text": text or entry.display}


def _base(case: Case, ctx: MappingContext, key: str, category: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "resourceType": "Observation",
        "id": ctx.resource_id("Observation", key),
        "identifier": [ctx.identifier("Observation", key)],
        "status": "final",
    }
    if category:
        data["category"] = _category(category)
    return data


def _finish(
    case: Case,
    ctx: MappingContext,
    data: dict[str, Any],
    key: str,
    rt: RelativeTime | None,
    *texts: str | None,
) -> dict[str, Any]:
    """Add subject, effective time (or its absence) and notes."""
    data["subject"] = patient_ref(case, ctx)
    data["note"] = notes(case, key, *texts)
    set_datetime(data, "effectiveDateTime", rt, ctx)
    return data


def _sites(data: dict[str, Any], sites: list[BodySite]) -> str | None:
    """Observation.bodySite holds one site: the first; the others are named in a note."""
    if not sites:
        return None
    data["bodySite"] = body_site(sites[0])
    others = [body_site(s)["text"] for s in sites[1:]]
    return f"Also at: {'; '.join(others)}" if others else None


def _age(case: Case, ctx: MappingContext) -> dict[str, Any]:
    p = case.patient
    data = _base(case, ctx, age_key(p.key), None)
    data["code"] = {"text": "Age at presentation"}
    data["valueQuantity"] = quantity(p.age)
    return _finish(case, ctx, data, age_key(p.key), p.age_at, p.note)


def blood_group_key(patient_key: str) -> str:
    """The fact key of the Observation holding the patient's own blood group."""
    return f"{patient_key}-blood-group"


def _blood_group(case: Case, ctx: MappingContext) -> dict[str, Any]:
    p = case.patient
    group = p.blood_group
    assert group is not None
    key = blood_group_key(p.key)
    data = _base(case, ctx, key, "laboratory")
    data["code"] = _coded(BLOOD_GROUP)
    rh = f" RhD {group.rhd}" if group.rhd else ""
    data["valueString"] = f"{group.abo}{rh}"
    data["subject"] = patient_ref(case, ctx)
    data["note"] = notes(case, key, group.note)
    return data


def _lab(case: Case, ctx: MappingContext, lab: Lab) -> dict[str, Any]:
    data = _base(case, ctx, lab.key, "laboratory")
    data["code"] = concept(lab)
    data["valueQuantity"] = ucum_quantity(lab.value, lab.ucum, lab.unit)
    if lab.interpretation is not None:
        data["interpretation"] = [_interpretation(lab.interpretation)]
    corrected = None
    if lab.corrected is not None:
        c = lab.corrected
        reading = f"{c.value:g} {c.unit}" + (f" ({c.interpretation})" if c.interpretation else "")
        corrected = f"Corrected reading: {reading}. {c.note}"
    return _finish(
        case,
        ctx,
        data,
        lab.key,
        lab.when,
        f"As printed: {lab.value:g} {lab.unit}",
        corrected,
        lab.note,
    )


def _interpretation(value: str) -> dict[str, Any]:
    return {
        "coding": [{"system": INTERPRETATION, "code": INTERPRETATION_CODES[value]}],
        "text": value,
    }


def _finding(
    case: Case,
    ctx: MappingContext,
    f: Finding,
    category: str | None,
    kind: str,
    rt: RelativeTime | None,
) -> dict[str, Any]:
    data = _base(case, ctx, f.key, category)
    if f.value is not None:
        # A measured amount or count: what was measured is the code, the amount the value.
        data["code"] = concept(f)
        data["valueQuantity"] = quantity(f.value)
    else:
        data["code"] = {"text": kind}
        data["valueCodeableConcept"] = concept(f)
    if f.size:
        data["hasMember"] = [ctx.reference("Observation", size_key(f.key))]
    also = _sites(data, f.body_sites)
    figures = f"Figures: {', '.join(f.figures)}" if f.figures else None
    return _finish(case, ctx, data, f.key, rt, also, figures, f.note)


def _procedure_observations(
    case: Case, ctx: MappingContext, proc: Procedure
) -> list[dict[str, Any]]:
    part_of = [ctx.reference("Procedure", proc.key)]
    out: list[dict[str, Any]] = []
    for m in proc.measurements:
        data = _base(case, ctx, m.key, "procedure")
        data["partOf"] = part_of
        data["code"] = concept(m)
        data["valueQuantity"] = quantity(m.value)
        approx = "Approximate value (the report says about)" if m.value.approximate else None
        out.append(_finish(case, ctx, data, m.key, proc.when, approx, m.note))
    for f in proc.findings:
        data = _finding(case, ctx, f, "procedure", "Operative finding", proc.when)
        data["partOf"] = part_of
        out.append(data)
        out += _finding_size(case, ctx, f, proc.when, part_of=part_of)
    for c in proc.complications:
        if c.grade is None:
            continue
        key = grade_key(c.key)
        data = _base(case, ctx, key, "procedure")
        data["partOf"] = part_of
        data["code"] = {"text": f"{_SCALES[c.grade.scale]} grade"}
        value: dict[str, Any] = {"text": f"Grade {c.grade.value}"}
        if c.grade.codes:
            value = {"coding": codings(c.grade.codes), **value}
        data["valueCodeableConcept"] = value
        data["focus"] = [ctx.reference("Condition", c.key)]
        out.append(_finish(case, ctx, data, key, c.when, f"Grade of: {c.text}"))
    return out


_SCALES = {"clavien-dindo": "Clavien-Dindo", "ctcae": "CTCAE", "other": "Complication"}


def _pathology_observations(
    case: Case, ctx: MappingContext, report: PathologyReport
) -> list[dict[str, Any]]:
    specimen = (
        ctx.reference("Specimen", report.specimen.key) if report.specimen is not None else None
    )
    out: list[dict[str, Any]] = []
    for f in report.findings:
        data = _finding(case, ctx, f, "laboratory", "Pathology finding", report.when)
        if specimen is not None:
            data["specimen"] = specimen
        out.append(data)
        out += _finding_size(case, ctx, f, report.when, specimen=specimen)
    size = report.tumour_size
    if size is not None:
        data = _base(case, ctx, size.key, "laboratory")
        data["meta"] = profile("mcode-tumor-size")
        data["code"] = _coded(TUMOR_SIZE)
        data["component"] = _size_components(size.dimensions)
        if size.method is not None:
            data["method"] = concept(size.method)
        primaries = [d for d in case.diagnoses if d.role == "primary" and d.body_sites]
        if specimen is not None:
            data["specimen"] = specimen
        elif primaries:
            data["focus"] = [ctx.reference("BodyStructure", tumor_key(primaries[0].key))]
        out.append(_finish(case, ctx, data, size.key, report.when, size.note))
    return out


def _size_components(dims: list[Quantity]) -> list[dict[str, Any]]:
    """mCODE tumor size components: the longest dimension, then up to two others."""
    out = [{"code": _coded(LONGEST_DIMENSION), "valueQuantity": quantity(dims[0])}]
    out += [{"code": _coded(OTHER_DIMENSION), "valueQuantity": quantity(d)} for d in dims[1:]]
    return out


def _finding_size(
    case: Case,
    ctx: MappingContext,
    f: Finding,
    rt: RelativeTime | None,
    *,
    specimen: dict[str, Any] | None = None,
    part_of: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The dimensions of a finding (e.g. a metastasis on imaging) as a tumour size
    Observation (LOINC 21889-1 with 33728-7/33729-5 components). It claims mCODE
    mcode-tumor-size only when measured on a specimen: the profile needs exactly one of
    a Tumor focus or a specimen, and a finding names no Tumor."""
    if not f.size:
        return []
    key = size_key(f.key)
    data = _base(case, ctx, key, "laboratory" if specimen is not None else "imaging")
    data["code"] = _coded(TUMOR_SIZE)
    data["component"] = _size_components(f.size)
    if specimen is not None:
        data["meta"] = profile("mcode-tumor-size")
        data["specimen"] = specimen
    if part_of:
        data["partOf"] = part_of
    data["derivedFrom"] = [ctx.reference("Observation", f.key)]
    return [_finish(case, ctx, data, key, rt, f"Size of: {f.text}")]


def _disease_status(case: Case, ctx: MappingContext, ds: DiseaseStatus) -> dict[str, Any]:
    data = _base(case, ctx, ds.key, None)
    data["meta"] = profile("mcode-cancer-disease-status")
    data["code"] = _coded(DISEASE_STATUS)
    data["valueCodeableConcept"] = _coded(DISEASE_STATUS_CODES[ds.status], ds.text)
    data["focus"] = [ctx.reference("Condition", ds.diagnosis)]
    index = case.index()
    evidence = [getattr(index.get(k), "text", k) for k in ds.evidence]
    basis = f"Based on: {'; '.join(evidence)}" if evidence else None
    return _finish(case, ctx, data, ds.key, ds.when, basis, ds.note)


def _clean(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v not in (None, [], {})}


__all__ = ["age_key", "blood_group_key", "grade_key", "map_observations"]
