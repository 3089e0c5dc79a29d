"""The Patient of the IVC case: a woman of 39, no name, no birth date in the report."""

from __future__ import annotations

from typing import Any

from mappings.case.model import BloodGroup
from mappings.observation import map_observations
from mappings.patient import map_patient

from .mapped import DAR, MCODE, UCUM, by_key, run


def test_one_female_cancer_patient_without_a_name(ivc_case: Any) -> None:
    [patient] = run(ivc_case, map_patient)
    assert patient["gender"] == "female"
    assert patient["meta"]["profile"] == [MCODE + "mcode-cancer-patient"]
    assert patient["identifier"][0]["value"] == f"urn:uuid:{patient['id']}"
    [name] = patient["name"]
    assert name == {"extension": [{"url": DAR, "valueCode": "masked"}]}
    assert "birthDate" not in patient


def test_age_39_at_presentation_is_kept_without_a_date(ivc_case: Any) -> None:
    age = by_key(ivc_case, run(ivc_case, map_observations), "Observation", "patient-age")
    assert age["valueQuantity"] == {"value": 39, "unit": "year", "system": UCUM, "code": "a"}
    assert "effectiveDateTime" not in age
    assert age["_effectiveDateTime"]["extension"][0]["url"] == DAR


def test_no_blood_group_observation_when_the_report_states_none(ivc_case: Any) -> None:
    # The report gives the group of the transfused red cells (B RhD+), not the patient's.
    observations = run(ivc_case, map_observations)
    assert not [o for o in observations if o["code"].get("coding", [{}])[0].get("code") == "882-1"]


def test_a_stated_blood_group_becomes_an_abo_rh_observation(ivc_case: Any) -> None:
    group = BloodGroup(abo="O", rhd="negative")
    case = ivc_case.model_copy(
        update={"patient": ivc_case.patient.model_copy(update={"blood_group": group})}
    )
    o = by_key(case, run(case, map_observations), "Observation", "patient-blood-group")
    assert o["code"]["coding"][0]["code"] == "882-1"
    assert o["valueString"] == "O RhD negative"
