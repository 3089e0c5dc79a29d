"""The IVC leiomyosarcoma case file loads and holds the report's facts (numbers from the paper)."""

from datetime import date
from pathlib import Path

import pytest

from mappings.case import Case, load_case
from mappings.case import model as m
from mappings.terminology import lookup

ROOT = Path(__file__).resolve().parents[2]
CASE_FILE = ROOT / "examples" / "ivc-leiomyosarcoma" / "case.yaml"


@pytest.fixture(scope="module")
def case() -> Case:
    return load_case(CASE_FILE)


def test_header_and_patient(case: Case) -> None:
    assert case.schema_version == "1.0"
    assert case.case.id == "ivc-leiomyosarcoma"
    assert case.source.doi is None
    assert case.source.journal == "Frontiers in Oncology"
    assert case.patient.sex == "female"
    assert (case.patient.age.value, case.patient.age.unit) == (39, "a")
    assert case.anchor.procedure == "elra-operation"


def test_history_presentation_and_labs(case: Case) -> None:
    hep_b = case.get("hepatitis-b")
    assert isinstance(hep_b, m.HistoryCondition)
    assert hep_b.duration is not None and (hep_b.duration.value, hep_b.duration.unit) == (20, "a")
    assert "snomed:61977001" in hep_b.codes and "icd10cm:B18.1" in hep_b.codes
    assert case.presentation is not None
    swelling = case.get("lower-limb-swelling")
    assert isinstance(swelling, m.Symptom) and swelling.duration is not None
    assert swelling.duration.days() == 14
    assert [f.key for f in case.presentation.exam_findings] == ["lower-extremity-edema"]
    labs = {lab.key: lab for lab in case.labs}
    assert (labs["ast"].value, labs["ast"].unit, labs["ast"].codes) == (
        180,
        "U/L",
        ["loinc:1920-8"],
    )
    assert (labs["alt"].value, labs["alt"].unit) == (80, "U/L")
    bili = labs["total-bilirubin"]
    assert (bili.value, bili.unit) == (14.8, "mmol/L")
    assert bili.corrected is not None
    assert (bili.corrected.value, bili.corrected.unit, bili.corrected.interpretation) == (
        14.8,
        "umol/L",
        "normal",
    )


def test_imaging(case: Case) -> None:
    studies = {s.key: s for s in case.imaging}
    assert set(studies) == {
        "ct-liver",
        "ct-angiography-pelvis",
        "ct-cinematic-rendering",
        "mri-abdomen",
        "ct-followup",
    }
    assert studies["mri-abdomen"].modality == "MR"
    assert len(studies["mri-abdomen"].findings) == 4
    assert studies["ct-followup"].when.resolve(date(2022, 1, 10)) is None


def test_diagnoses(case: Case) -> None:
    primary = case.get("ivc-leiomyosarcoma")
    assert isinstance(primary, m.Diagnosis)
    assert primary.role == "primary" and primary.verification_status == "confirmed"
    assert primary.morphology is not None and "icdo3:8890/3" in primary.morphology.codes
    assert "icd10cm:C49.4" in primary.codes
    thrombosis = case.get("ovarian-vein-thrombosis")
    assert isinstance(thrombosis, m.Diagnosis)
    assert thrombosis.verification_status == "provisional"
    assert thrombosis.body_sites[0].laterality is not None
    assert thrombosis.body_sites[0].laterality.codes == ["snomed:24028007"]
    liver = case.get("liver-metastases")
    lung = case.get("lung-metastases")
    assert isinstance(liver, m.Diagnosis) and isinstance(lung, m.Diagnosis)
    assert liver.primary == lung.primary == "ivc-leiomyosarcoma"
    assert liver.onset is not None and liver.onset.resolve(date(2021, 1, 31)) == date(2022, 1, 31)
    assert lung.onset is not None and lung.onset.resolve(date(2021, 1, 31)) == date(2022, 6, 30)


def test_operation_numbers(case: Case) -> None:
    op = case.get("elra-operation")
    assert isinstance(op, m.Procedure)
    assert op.duration is not None and (op.duration.value, op.duration.unit) == (11, "h")
    assert op.duration.approximate
    measured = {x.key: x.value for x in op.measurements}
    assert (measured["blood-loss"].value, measured["blood-loss"].unit) == (5000, "mL")
    assert measured["blood-loss"].approximate
    assert (measured["ischemic-time"].value, measured["ischemic-time"].unit) == (100, "min")
    given = {t.key: t for t in op.transfusions}
    assert given["transfusion-red-cells"].amount.value == 16
    assert "B RhD(+)" in given["transfusion-red-cells"].product
    assert (given["transfusion-plasma"].amount.value, given["transfusion-plasma"].amount.unit) == (
        2200,
        "mL",
    )
    assert given["transfusion-cryoprecipitate"].amount.value == 10
    [fever] = op.complications
    assert fever.grade is not None and (fever.grade.scale, fever.grade.value) == (
        "clavien-dindo",
        "II",
    )
    not_done = [p for p in case.procedures if p.status == "not-done"]
    assert {p.key for p in not_done} == {"no-extracorporeal-circulation", "no-cell-saver"}
    assert all(p.status_reason for p in not_done)
    parts = {p.key for p in case.procedures if p.part_of == "elra-operation"}
    assert {"liver-ivc-resection", "liver-autotransplantation", "ivc-reconstruction"} <= parts


def test_stays_and_pathology(case: Case) -> None:
    icu = case.get("icu-stay")
    stay = case.get("hospital-stay")
    assert isinstance(icu, m.Encounter) and isinstance(stay, m.Encounter)
    assert icu.length is not None and icu.length.days() == 4
    assert stay.length is not None and stay.length.days() == 15
    assert {a.key for a in icu.activities} == {"ventilation", "antibiotic-therapy"}
    [report] = case.pathology
    assert report.tumour_size is not None
    assert [(d.value, d.unit) for d in report.tumour_size.dimensions] == [
        (8, "cm"),
        (6, "cm"),
        (5, "cm"),
    ]
    assert report.diagnoses == ["ivc-leiomyosarcoma"]


def test_chemotherapy_regimens(case: Case) -> None:
    ai = case.get("chemo-doxorubicin-ifosfamide")
    assert isinstance(ai, m.MedicationCourse)
    drugs = {d.key: d for d in ai.drugs}
    doxo, ifo = drugs["ai-doxorubicin"], drugs["ai-ifosfamide"]
    assert doxo.dose is not None and (doxo.dose.value, doxo.dose.unit) == (40, "mg")
    assert doxo.days == [1, 2, 3] and doxo.route_as_written == "ivgtt"
    assert ifo.dose is not None and (ifo.dose.value, ifo.dose.unit) == (3.0, "g")
    assert ifo.days == [1, 2, 3, 4, 5] and ifo.route_as_written == "civ"
    assert ai.cycles == 2 and ai.cycle_length is None
    [override] = ai.cycle_overrides
    assert (override.cycle, override.drug) == (2, "ai-ifosfamide")
    assert [(s.dose.value, s.dose.unit, s.days) for s in override.steps] == [
        (5, "g", [1, 2]),
        (7.5, "g", [3, 4, 5]),
    ]
    assert ai.status == "stopped" and ai.stop_adverse_events == ["bone-marrow-suppression"]
    assert ai.stop_reason is not None and ai.stop_reason.codes == ["snomed:407563006"]
    ad = case.get("chemo-doxorubicin-dacarbazine")
    assert isinstance(ad, m.MedicationCourse)
    assert [(d.dose.value if d.dose else None, d.days) for d in ad.drugs] == [
        (30, [1, 2, 3]),
        (300, [1, 2, 3]),
    ]
    assert ad.cycles == 2


def test_immunotherapy_prag_and_status(case: Case) -> None:
    ta = case.get("tislelizumab-anlotinib")
    assert isinstance(ta, m.MedicationCourse)
    assert ta.cycle_length is not None and ta.cycle_length.days() == 21 and ta.cycles == 2
    tisl, anlo = ta.drugs
    assert tisl.dose is not None and (tisl.dose.value, tisl.days) == (200, [1])
    assert anlo.codes == [] and anlo.dose is not None and anlo.dose.value == 12
    assert anlo.days == list(range(1, 15))
    rt = [r for r in case.radiotherapy_courses if r.regimen == "prag"]
    assert sorted(s.codes[0] for r in rt for s in r.body_sites) == [
        "snomed:10200004",
        "snomed:39607008",
    ]
    statuses = [(s.status, str(s.when)) for s in case.disease_status]
    assert statuses == [
        ("worsened", "month +12"),
        ("worsened", "month +17"),
        ("stable", "~month +21"),
    ]


def test_every_code_is_in_the_tables(case: Case) -> None:
    refs: set[str] = set()
    for _, item in case.keyed():
        refs.update(getattr(item, "codes", []))
    assert len(refs) > 30
    for ref in refs:
        assert lookup(ref).ref == ref


def test_mapping_constants_point_into_the_tables() -> None:
    for ref in [*m.INTENT_CODES.values(), *m.DISEASE_STATUS_CODES.values()]:
        assert lookup(ref).system == "http://snomed.info/sct"
