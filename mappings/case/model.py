"""The case file model (schema_version 1.0): an oncology case report as reported.

One ``Case`` holds every fact of a published case, each with a stable ``key``
(unique across the file) from which the mappings derive deterministic resource
ids and through which facts refer to each other. Times are relative to one
anchor (day 0); codes are ``prefix:code`` references into mappings/terminology.
The sections follow what mCODE STU4 needs
(https://hl7.org/fhir/us/mcode/STU4/) and FHIR R4 resources
(https://hl7.org/fhir/R4/resourcelist.html). Format: docs/case-format.md.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from mappings.case.types import (
    BodySite,
    Coded,
    CodeRef,
    DurationValue,
    Key,
    KeyRef,
    Quantity,
    Strict,
    UcumUnit,
    When,
)
from mappings.terminology.units import ucum_problem

SCHEMA_VERSION = "1.0"

ClinicalStatus = Literal["active", "recurrence", "relapse", "inactive", "remission", "resolved"]
"""Condition.clinicalStatus (https://hl7.org/fhir/R4/valueset-condition-clinical.html)."""
VerificationStatus = Literal[
    "unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error"
]
"""Condition.verificationStatus (https://hl7.org/fhir/R4/valueset-condition-ver-status.html)."""
Intent = Literal["curative", "palliative"]
"""mCODE treatment intent; codes in INTENT_CODES. "Adjuvant" is a setting, not an intent."""
Setting = Literal["neoadjuvant", "adjuvant", "metastatic", "maintenance", "salvage"]
Interpretation = Literal["high", "low", "normal", "abnormal", "critical-high", "critical-low"]
"""Observation.interpretation (v3 ObservationInterpretation H, L, N, A, HH, LL)."""
ProcedureStatus = Literal[
    "preparation", "in-progress", "not-done", "on-hold", "stopped", "completed"
]
CourseStatus = Literal["active", "completed", "stopped", "on-hold", "unknown"]
DiseaseStatusValue = Literal["improved", "stable", "worsened", "undetermined"]

INTENT_CODES: dict[str, str] = {"curative": "snomed:373808002", "palliative": "snomed:363676003"}
"""Intent -> code reference (mCODE TreatmentIntentVS)."""
DISEASE_STATUS_CODES: dict[str, str] = {
    "improved": "snomed:268910001",
    "stable": "snomed:359746009",
    "worsened": "snomed:271299001",
    "undetermined": "snomed:709137006",
}
"""Disease status -> code reference (mCODE ConditionStatusTrendVS)."""
INTERPRETATION_CODES: dict[str, str] = {
    "high": "H",
    "low": "L",
    "normal": "N",
    "abnormal": "A",
    "critical-high": "HH",
    "critical-low": "LL",
}
"""Interpretation -> code in http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation."""


# --- header ---------------------------------------------------------------


class CaseInfo(Strict):
    """The case itself: ``id`` (slug, seeds every resource id) and a title."""

    id: Key
    title: str
    synthetic: bool = False
    summary: str | None = None


class Source(Strict):
    """The publication the facts come from; only what the text states, never an invented DOI."""

    citation: str
    journal: str | None = None
    title: str | None = None
    authors: list[str] = []
    year: int | None = Field(default=None, ge=1800, le=2100)
    doi: str | None = Field(default=None, pattern=r"^10\.[0-9]{4,9}/\S+$")
    url: str | None = None


class Anchor(Strict):
    """What day 0 is (e.g. "day of surgery") and, if it is one, the procedure on day 0."""

    event: str
    procedure: KeyRef | None = None


class BloodGroup(Strict):
    """ABO group and RhD type, only when the report states the patient's own group."""

    abo: Literal["A", "B", "AB", "O"]
    rhd: Literal["positive", "negative"] | None = None
    note: str | None = None


class Patient(Strict):
    """The patient as reported: age at presentation, administrative gender; no names or dates."""

    key: Key
    age: Quantity
    age_at: When
    sex: Literal["female", "male", "other", "unknown"]
    blood_group: BloodGroup | None = None
    note: str | None = None

    @field_validator("age")
    @classmethod
    def _age_in_years(cls, age: Quantity) -> Quantity:
        if age.unit not in ("a", "mo", "wk", "d"):
            raise ValueError(f"age must be in a, mo, wk or d, not {age.unit!r}")
        return age


# --- history, presentation, labs, imaging ------------------------------------


class HistoryCondition(Coded):
    """A prior condition (e.g. hepatitis B for 20 years): ``duration`` as of time ``as_of``."""

    key: Key
    duration: DurationValue | None = None
    as_of: When | None = None
    clinical_status: ClinicalStatus = "active"
    verification_status: VerificationStatus = "confirmed"
    body_sites: list[BodySite] = []
    note: str | None = None


class Symptom(Coded):
    """A presenting symptom with how long it had lasted."""

    key: Key
    duration: DurationValue | None = None
    severity: Literal["mild", "moderate", "severe"] | None = None
    body_sites: list[BodySite] = []
    note: str | None = None


def _check_dimensions(dims: list[Quantity]) -> list[Quantity]:
    units = {d.unit for d in dims}
    if not units <= {"mm", "cm"} or len(units) > 1:
        raise ValueError("tumour dimensions must all be in cm or all in mm")
    if any(b.value > a.value for a, b in itertools.pairwise(dims)):
        raise ValueError("tumour dimensions must be given longest first")
    return dims


class Finding(Coded):
    """A finding (examination, imaging, operative or pathological), with its body sites;
    ``value`` when it is a measured amount or count (``5 {mitoses}/(10.[HPF])``), ``size``
    when it gives a lesion's dimensions (longest first)."""

    key: Key
    body_sites: list[BodySite] = []
    value: Quantity | None = None
    size: list[Quantity] = Field(default=[], max_length=3)
    figures: list[str] = []
    note: str | None = None

    @field_validator("size")
    @classmethod
    def _size_longest_first(cls, dims: list[Quantity]) -> list[Quantity]:
        return _check_dimensions(dims)


class Presentation(Strict):
    """How the patient presented: symptoms and examination findings at time ``when``."""

    key: Key
    when: When
    symptoms: list[Symptom] = []
    exam_findings: list[Finding] = []
    note: str | None = None


class CorrectedValue(Strict):
    """A corrected lab value; ``note`` gives the reasoning (required)."""

    value: float
    unit: UcumUnit
    interpretation: Interpretation | None = None
    note: str


class Lab(Coded):
    """A laboratory result: value and unit AS REPORTED; ``ucum_unit`` when ``unit`` is not UCUM."""

    key: Key
    when: When
    value: float
    unit: str
    ucum_unit: UcumUnit | None = Field(default=None, validate_default=True)
    interpretation: Interpretation | None = None
    corrected: CorrectedValue | None = None
    note: str | None = None

    @field_validator("ucum_unit")
    @classmethod
    def _ucum_given(cls, value: str | None, info: ValidationInfo) -> str | None:
        reported = info.data.get("unit")
        if value is None and isinstance(reported, str):
            problem = ucum_problem(reported)
            if problem is not None:
                raise ValueError(f"reported unit: {problem}; give its UCUM equivalent in ucum_unit")
        return value

    @property
    def ucum(self) -> str:
        """The UCUM code of the reported value (``ucum_unit`` or ``unit``)."""
        return self.ucum_unit or self.unit


class ImagingStudy(Coded):
    """An imaging study (codes: LOINC), with DICOM modality, findings and figure references."""

    key: Key
    modality: Literal["CT", "MR", "US", "PT", "NM", "XA", "CR", "DX", "MG"]
    when: When
    body_sites: list[BodySite] = []
    findings: list[Finding] = []
    conclusion: str | None = None
    figures: list[str] = []
    reasons: list[KeyRef] = []
    note: str | None = None


# --- diagnoses -----------------------------------------------------------------


class Diagnosis(Coded):
    """A diagnosis: primary cancer, secondary (``primary`` = its primary's key) or other."""

    key: Key
    role: Literal["primary", "secondary", "other"]
    primary: KeyRef | None = None
    verification_status: VerificationStatus
    clinical_status: ClinicalStatus
    body_sites: list[BodySite] = []
    morphology: Coded | None = None
    extent: str | None = None
    onset: When | None = None
    onset_age: Quantity | None = None
    recorded: When | None = None
    evidence: list[KeyRef] = []
    note: str | None = None

    @model_validator(mode="after")
    def _primary_link(self) -> Diagnosis:
        if self.role == "secondary" and self.primary is None:
            raise ValueError("a secondary diagnosis needs 'primary': the key of its primary cancer")
        if self.role != "secondary" and self.primary is not None:
            raise ValueError("'primary' is only for a secondary diagnosis (role: secondary)")
        return self


# --- procedures ----------------------------------------------------------------


class Measurement(Coded):
    """A measured value belonging to a procedure (blood loss, ischaemic time)."""

    key: Key
    value: Quantity
    note: str | None = None


class Transfusion(Coded):
    """Blood products given (codes: the transfusion procedure), amount in UCUM."""

    key: Key
    product: str
    amount: Quantity
    note: str | None = None


class Device(Coded):
    """A device used or implanted (e.g. a vascular graft)."""

    key: Key
    note: str | None = None


class Grade(Strict):
    """A grade on a named scale, e.g. Clavien-Dindo "II" or CTCAE "3"."""

    scale: Literal["clavien-dindo", "ctcae", "other"]
    value: str
    codes: list[CodeRef] = []

    @model_validator(mode="after")
    def _ctcae_grades(self) -> Grade:
        if self.scale == "ctcae" and self.value not in ("1", "2", "3", "4", "5"):
            raise ValueError(f"a CTCAE grade is 1, 2, 3, 4 or 5, not {self.value!r}")
        return self


class Complication(Coded):
    """A complication of a procedure, at or after the procedure's time."""

    key: Key
    when: When | None = None
    grade: Grade | None = None
    note: str | None = None


class Procedure(Coded):
    """A procedure (or one not done: status not-done with ``status_reason``)."""

    key: Key
    status: ProcedureStatus = "completed"
    status_reason: str | None = None
    when: When | None = None
    duration: DurationValue | None = None
    part_of: KeyRef | None = None
    intent: Intent | None = None
    reasons: list[KeyRef] = []
    body_sites: list[BodySite] = []
    measurements: list[Measurement] = []
    transfusions: list[Transfusion] = []
    devices: list[Device] = []
    findings: list[Finding] = []
    complications: list[Complication] = []
    no_complications: str | None = None
    figures: list[str] = []
    note: str | None = None

    @model_validator(mode="after")
    def _reason_when_not_done(self) -> Procedure:
        if self.status == "not-done" and not self.status_reason:
            raise ValueError("a procedure with status not-done needs 'status_reason'")
        if self.no_complications and self.complications:
            raise ValueError("'no_complications' and 'complications' exclude each other")
        return self


# --- encounters ------------------------------------------------------------------


class Activity(Coded):
    """Something done during an encounter (ventilation, antibiotic therapy)."""

    key: Key
    when: When | None = None
    reasons: list[KeyRef] = []
    note: str | None = None


class Decision(Strict):
    """A conclusion of an encounter (e.g. of a tumour board), referring to facts by key."""

    key: Key
    text: str
    refs: list[KeyRef] = []


class Encounter(Coded):
    """A consultation or stay; ``length`` when only its duration is known."""

    key: Key
    kind: Literal["consultation", "inpatient", "icu", "outpatient", "follow-up"]
    start: When | None = None
    end: When | None = None
    length: DurationValue | None = None
    part_of: KeyRef | None = None
    reasons: list[KeyRef] = []
    participants: list[str] = []
    activities: list[Activity] = []
    decisions: list[Decision] = []
    note: str | None = None


# --- pathology -------------------------------------------------------------------


class Specimen(Coded):
    """The specimen examined, and the procedure that collected it."""

    key: Key
    collected_by: KeyRef | None = None
    figures: list[str] = []
    note: str | None = None


class TumourSize(Strict):
    """Tumour dimensions, longest first (mCODE tumor size: 1 longest + up to 2 others)."""

    key: Key
    dimensions: list[Quantity] = Field(min_length=1, max_length=3)
    method: Coded | None = None
    note: str | None = None

    @field_validator("dimensions")
    @classmethod
    def _longest_first(cls, dims: list[Quantity]) -> list[Quantity]:
        return _check_dimensions(dims)


class PathologyReport(Coded):
    """A pathology report: specimen, findings, the diagnoses it confirms, tumour size."""

    key: Key
    when: When | None = None
    specimen: Specimen | None = None
    findings: list[Finding] = []
    diagnoses: list[KeyRef] = []
    tumour_size: TumourSize | None = None
    conclusion: str | None = None
    figures: list[str] = []
    note: str | None = None


# --- treatment courses ---------------------------------------------------------------


class Regimen(Coded):
    """A multi-modality regimen (e.g. PRaG) that courses point to with ``regimen``."""

    key: Key
    intent: Intent | None = None
    start: When | None = None
    reasons: list[KeyRef] = []
    note: str | None = None


class Drug(Coded):
    """One drug of a course: the dose per administration as ordered (``mg/m2`` when dosed by
    body surface area), the absolute ``dose_given`` when the report states it, route, and
    when it is given: ``days`` within each cycle, or ``continuous`` (every day of the
    course), ``times_per_day`` on each of those days."""

    key: Key
    dose: Quantity | None = None
    dose_given: Quantity | None = None
    route: Coded | None = None
    route_as_written: str | None = None
    days: list[int] = []
    continuous: bool = False
    times_per_day: int = Field(default=1, ge=1, le=24)
    note: str | None = None

    @field_validator("days")
    @classmethod
    def _days_ascending(cls, days: list[int]) -> list[int]:
        if any(d < 1 for d in days) or days != sorted(set(days)):
            raise ValueError("days must be distinct cycle days (1, 2, ...) in ascending order")
        return days

    @model_validator(mode="after")
    def _continuous_or_days(self) -> Drug:
        if self.continuous and self.days:
            raise ValueError(
                "a drug is either given on cycle 'days' or 'continuous' (every day), not both"
            )
        return self


class DoseStep(Strict):
    """One dose given on some days of a cycle (``dose_given``: the absolute dose, if stated)."""

    dose: Quantity
    dose_given: Quantity | None = None
    days: list[int] = Field(min_length=1)


class CycleOverride(Strict):
    """The doses of one drug in one cycle when they differ from the drug's usual dose."""

    cycle: int = Field(ge=1)
    drug: KeyRef
    steps: list[DoseStep] = Field(min_length=1)
    note: str | None = None


class MedicationCourse(Coded):
    """A systemic therapy course (chemotherapy, immunotherapy, targeted therapy...)."""

    key: Key
    category: Literal[
        "chemotherapy",
        "immunotherapy",
        "targeted-therapy",
        "hormone-therapy",
        "supportive",
        "other",
    ]
    line: int | None = Field(default=None, ge=1)
    intent: Intent | None = None
    setting: Setting | None = None
    regimen: KeyRef | None = None
    follows: KeyRef | None = None
    drugs: list[Drug] = Field(min_length=1)
    cycle_length: DurationValue | None = None
    cycles: int | None = Field(default=None, ge=0)
    cycles_planned: int | None = Field(default=None, ge=1)
    cycle_overrides: list[CycleOverride] = []
    body_surface_area: Quantity | None = None
    start: When | None = None
    end: When | None = None
    status: CourseStatus
    stop_reason: Coded | None = None
    stop_adverse_events: list[KeyRef] = []
    reasons: list[KeyRef] = []
    note: str | None = None

    @field_validator("body_surface_area")
    @classmethod
    def _bsa_in_m2(cls, bsa: Quantity | None) -> Quantity | None:
        if bsa is not None and bsa.unit != "m2":
            raise ValueError(f"body_surface_area must be in m2, not {bsa.unit!r}")
        return bsa

    @model_validator(mode="after")
    def _stop_reason_only_when_stopped(self) -> MedicationCourse:
        if (self.stop_reason or self.stop_adverse_events) and self.status != "stopped":
            raise ValueError("stop_reason/stop_adverse_events need status: stopped")
        return self

    @model_validator(mode="after")
    def _given_within_planned(self) -> MedicationCourse:
        given, planned = self.cycles, self.cycles_planned
        if given is None or planned is None:
            return self
        if given > planned:
            raise ValueError(
                f"cycles ({given}, the number given) exceeds cycles_planned ({planned})"
            )
        if given < planned and self.status == "completed":
            raise ValueError(
                f"{given} of {planned} planned cycles given: a course ended early has "
                "status stopped (with stop_reason), one still going has status active"
            )
        return self


class RadiotherapyCourse(Coded):
    """A radiotherapy course (mCODE radiotherapy course summary)."""

    key: Key
    body_sites: list[BodySite] = []
    intent: Intent | None = None
    setting: Setting | None = None
    regimen: KeyRef | None = None
    follows: KeyRef | None = None
    start: When | None = None
    end: When | None = None
    status: CourseStatus
    dose: Quantity | None = None
    fractions: int | None = Field(default=None, ge=1)
    reasons: list[KeyRef] = []
    note: str | None = None


class AdverseEvent(Coded):
    """An adverse event of a treatment, ``caused_by`` the keys of courses or procedures."""

    key: Key
    when: When | None = None
    grade: Grade | None = None
    serious: bool | None = None
    caused_by: list[KeyRef] = []
    note: str | None = None


class DiseaseStatus(Strict):
    """One cancer disease status assessment (mCODE), in ascending time order."""

    key: Key
    when: When
    status: DiseaseStatusValue
    diagnosis: KeyRef
    evidence: list[KeyRef] = []
    text: str | None = None
    note: str | None = None


class Note(Strict):
    """Free reasoning about the case (ambiguities, corrections, choices), about some keys."""

    key: Key
    about: list[KeyRef] = []
    text: str


# --- root --------------------------------------------------------------------------


class Case(Strict):
    """A case file (schema_version 1.0). Load with mappings.case.loader.load_case."""

    schema_version: Literal["1.0"]
    case: CaseInfo
    source: Source
    anchor: Anchor
    patient: Patient
    history: list[HistoryCondition] = []
    presentation: Presentation | None = None
    labs: list[Lab] = []
    imaging: list[ImagingStudy] = []
    diagnoses: list[Diagnosis] = []
    procedures: list[Procedure] = []
    encounters: list[Encounter] = []
    pathology: list[PathologyReport] = []
    regimens: list[Regimen] = []
    medication_courses: list[MedicationCourse] = []
    radiotherapy_courses: list[RadiotherapyCourse] = []
    adverse_events: list[AdverseEvent] = []
    disease_status: list[DiseaseStatus] = []
    notes: list[Note] = []

    def keyed(self) -> Iterator[tuple[tuple[str | int, ...], Strict]]:
        """Every item with a ``key``, with its path (``('procedures', 0, 'measurements', 1)``)."""
        yield from _walk(self, ())

    def index(self) -> dict[str, Strict]:
        """Key -> item, over the whole file (keys are unique once loaded)."""
        return {item.key: item for _, item in self.keyed()}  # type: ignore[attr-defined]

    def get(self, key: str) -> Strict:
        """The item with ``key``; KeyError if none."""
        return self.index()[key]


def _walk(
    model: Strict, path: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], Strict]]:
    if path and isinstance(getattr(model, "key", None), str):
        yield path, model
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, Strict):
            yield from _walk(value, (*path, name))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, Strict):
                    yield from _walk(item, (*path, name, i))
