"""Every parameter type and modifier over HTTP, after https://hl7.org/fhir/R4/search.html."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.search.helpers import VITAL_SIGNS, ids, search

Post = Callable[[dict[str, Any]], dict[str, Any]]
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
MCODE_PATIENT = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-cancer-patient"


@pytest.fixture
def people(post: Post) -> dict[str, str]:
    created = {
        "chalmers": post(
            {
                "resourceType": "Patient",
                "name": [{"family": "Chalmers", "given": ["Peter", "James"]}],
                "gender": "male",
                "birthDate": "1974-12-25",
                "identifier": [{"system": "http://example.org/mrn", "value": "12345"}],
                "address": [{"city": "PleasantVille", "line": ["534 Erewhon St"]}],
                "meta": {
                    "tag": [{"system": "http://example.org/tags", "code": "study"}],
                    "profile": [MCODE_PATIENT],
                    "security": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                            "code": "R",
                        }
                    ],
                },
            }
        ),
        "eve": post(
            {
                "resourceType": "Patient",
                "name": [{"family": "Évè", "given": ["Zoë"]}],
                "gender": "female",
                "birthDate": "1990-03",
                "identifier": [{"system": "http://other.org", "value": "12345"}],
            }
        ),
        "nameless": post({"resourceType": "Patient", "gender": "unknown"}),
    }
    return {k: v["id"] for k, v in created.items()}


def test_string_prefix_case_and_accents(client: TestClient, people: dict[str, str]) -> None:
    assert ids(search(client, "/fhir/Patient?name=chal")) == {people["chalmers"]}
    assert ids(search(client, "/fhir/Patient?family=EVE")) == {people["eve"]}
    assert ids(search(client, "/fhir/Patient?given=zoe")) == {people["eve"]}
    assert ids(search(client, "/fhir/Patient?name=almers")) == set()
    assert ids(search(client, "/fhir/Patient?address-city=pleasant")) == {people["chalmers"]}
    assert ids(search(client, "/fhir/Patient?name=chal,zo")) == {people["chalmers"], people["eve"]}


def test_string_exact_and_contains(client: TestClient, people: dict[str, str]) -> None:
    assert ids(search(client, "/fhir/Patient?family:exact=Chalmers")) == {people["chalmers"]}
    assert ids(search(client, "/fhir/Patient?family:exact=chalmers")) == set()
    assert ids(search(client, "/fhir/Patient?family:exact=Évè")) == {people["eve"]}
    assert ids(search(client, "/fhir/Patient?name:contains=alme")) == {people["chalmers"]}
    assert ids(search(client, "/fhir/Patient?name:contains=%25")) == set()


def test_token_forms(client: TestClient, people: dict[str, str]) -> None:
    both = {people["chalmers"], people["eve"]}
    assert ids(search(client, "/fhir/Patient?identifier=12345")) == both
    mrn = "/fhir/Patient?identifier=http://example.org/mrn|12345"
    assert ids(search(client, mrn)) == {people["chalmers"]}
    assert ids(search(client, "/fhir/Patient?identifier=http://other.org|")) == {people["eve"]}
    assert ids(search(client, "/fhir/Patient?identifier=|12345")) == set()
    assert ids(search(client, "/fhir/Patient?gender=male,female")) == both
    assert ids(search(client, "/fhir/Patient?gender:not=male")) == {
        people["eve"],
        people["nameless"],
    }


def test_common_parameters(client: TestClient, people: dict[str, str]) -> None:
    chalmers = {people["chalmers"]}
    assert ids(search(client, f"/fhir/Patient?_id={people['eve']}")) == {people["eve"]}
    assert ids(search(client, "/fhir/Patient?_tag=http://example.org/tags|study")) == chalmers
    assert ids(search(client, f"/fhir/Patient?_profile={MCODE_PATIENT}")) == chalmers
    assert ids(search(client, "/fhir/Patient?_security=R")) == chalmers
    assert len(ids(search(client, "/fhir/Patient?_lastUpdated=gt2000-01-01"))) == 3
    assert ids(search(client, "/fhir/Patient?_lastUpdated=lt2000-01-01")) == set()


def test_missing(client: TestClient, people: dict[str, str]) -> None:
    assert ids(search(client, "/fhir/Patient?name:missing=true")) == {people["nameless"]}
    assert ids(search(client, "/fhir/Patient?birthdate:missing=false")) == {
        people["chalmers"],
        people["eve"],
    }


def test_date_partial_and_prefixes(client: TestClient, people: dict[str, str]) -> None:
    chalmers, eve = people["chalmers"], people["eve"]
    assert ids(search(client, "/fhir/Patient?birthdate=1974")) == {chalmers}
    assert ids(search(client, "/fhir/Patient?birthdate=1974-12")) == {chalmers}
    assert ids(search(client, "/fhir/Patient?birthdate=1974-12-25")) == {chalmers}
    assert ids(search(client, "/fhir/Patient?birthdate=1974-12-24")) == set()
    # 1990-03 is the whole of March: not within one day, but within the year.
    assert ids(search(client, "/fhir/Patient?birthdate=1990-03-15")) == set()
    assert ids(search(client, "/fhir/Patient?birthdate=1990")) == {eve}
    assert ids(search(client, "/fhir/Patient?birthdate=gt1980")) == {eve}
    assert ids(search(client, "/fhir/Patient?birthdate=lt1980-01-01")) == {chalmers}
    assert ids(search(client, "/fhir/Patient?birthdate=ge1974-12-25")) == {chalmers, eve}
    assert ids(search(client, "/fhir/Patient?birthdate=le1974-12-25")) == {chalmers}
    assert ids(search(client, "/fhir/Patient?birthdate=sa1975")) == {eve}
    assert ids(search(client, "/fhir/Patient?birthdate=eb1975")) == {chalmers}
    assert ids(search(client, "/fhir/Patient?birthdate=ne1974")) == {eve}
    assert ids(search(client, "/fhir/Patient?birthdate=ap1974-12-20")) == {chalmers}
    assert ids(search(client, "/fhir/Patient?birthdate=ge1975&birthdate=le1995")) == {eve}


def test_date_timezones_and_periods(client: TestClient, post: Post) -> None:
    late = post(
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"code": "AMB"},
            # 23:30 at UTC-05:00 is 04:30 the next day in UTC.
            "period": {"start": "2021-06-01T23:30:00-05:00", "end": "2021-06-01T23:50:00-05:00"},
        }
    )["id"]
    open_ended = post(
        {
            "resourceType": "Encounter",
            "status": "in-progress",
            "class": {"code": "IMP"},
            "period": {"start": "2021-01-01"},
        }
    )["id"]
    assert ids(search(client, "/fhir/Encounter?date=2021-06-02")) == {late}
    assert ids(search(client, "/fhir/Encounter?date=ge2021-06-02T04:30:00Z")) == {late, open_ended}
    assert ids(search(client, "/fhir/Encounter?date=lt2021-06-02T04:30:00%2B00:00")) == {open_ended}
    assert ids(search(client, "/fhir/Encounter?date=gt2030-01-01")) == {open_ended}
    assert ids(search(client, "/fhir/Encounter?date=sa2021-06-01")) == {late}


def _observation(value: dict[str, Any], code: str = "29463-7") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        **VITAL_SIGNS,
        "code": {"coding": [{"system": LOINC, "code": code}], "text": "Body weight"},
        "valueQuantity": value,
    }


def _weighed(value: dict[str, Any]) -> dict[str, Any]:
    """An Observation of a weight that is not a vital sign (a specimen's, LOINC 29463-7 is
    the body weight): its quantity may be any, with or without a UCUM code."""
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "Specimen weight"},
        "valueQuantity": value,
    }


def test_quantity_and_ucum(client: TestClient, post: Post) -> None:
    grams = post(_weighed({"value": 5400, "system": UCUM, "code": "g"}))["id"]
    kilos = post(_weighed({"value": 5.4, "system": UCUM, "code": "kg"}))["id"]
    pounds = post(_weighed({"value": 12, "unit": "lb"}))["id"]
    url = "/fhir/Observation?value-quantity="
    assert ids(search(client, url + f"5.4|{UCUM}|kg")) == {grams, kilos}
    assert ids(search(client, url + f"5400000|{UCUM}|mg")) == {grams, kilos}
    assert ids(search(client, url + "5.4||kg")) == {kilos}
    assert ids(search(client, url + "5.4")) == {kilos}
    assert ids(search(client, url + "gt10")) == {grams, pounds}
    assert ids(search(client, url + "le12")) == {kilos, pounds}
    assert ids(search(client, url + "ap5.5")) == {kilos}
    assert ids(search(client, url + "ne5.4")) == {grams, pounds}
    assert ids(search(client, url + f"lt5|{UCUM}|kg")) == set()


def test_number(client: TestClient, post: Post) -> None:
    two = post(
        {
            "resourceType": "RiskAssessment",
            "status": "final",
            "subject": {"reference": "Patient/x"},
            "prediction": [{"probabilityDecimal": 0.2}],
        }
    )["id"]
    eight = post(
        {
            "resourceType": "RiskAssessment",
            "status": "final",
            "subject": {"reference": "Patient/x"},
            "prediction": [{"probabilityDecimal": 0.8}],
        }
    )["id"]
    assert ids(search(client, "/fhir/RiskAssessment?probability=0.2")) == {two}
    assert ids(search(client, "/fhir/RiskAssessment?probability=gt0.5")) == {eight}
    assert ids(search(client, "/fhir/RiskAssessment?probability=le0.8")) == {two, eight}


def test_token_text_and_in(client: TestClient, post: Post) -> None:
    weight = post(_observation({"value": 70, "unit": "kg", "system": UCUM, "code": "kg"}))["id"]
    other = post(
        {
            "resourceType": "Observation",
            "status": "final",
            **VITAL_SIGNS,
            "code": {"coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"}]},
            "valueQuantity": {"value": 60, "unit": "/min", "system": UCUM, "code": "/min"},
        }
    )["id"]
    assert ids(search(client, "/fhir/Observation?code:text=body")) == {weight}
    assert ids(search(client, "/fhir/Observation?code:text=heart")) == {other}
    assert ids(search(client, "/fhir/Observation?code:not=29463-7")) == {other}
    vitals = "http://hl7.org/fhir/ValueSet/observation-vitalsignresult"
    assert ids(search(client, f"/fhir/Observation?code:in={vitals}")) == {weight, other}
    assert ids(search(client, f"/fhir/Observation?code:not-in={vitals}")) == set()
    status_set = "http://hl7.org/fhir/ValueSet/observation-status"
    assert ids(search(client, f"/fhir/Observation?status:in={status_set}")) == {weight, other}


def test_reference_forms(client: TestClient, post: Post) -> None:
    patient = post({"resourceType": "Patient", "name": [{"family": "Ref"}]})["id"]
    group = post({"resourceType": "Group", "type": "person", "actual": True})["id"]
    on_patient = post(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "subject": {"reference": f"Patient/{patient}"},
        }
    )["id"]
    on_group = post(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "subject": {"reference": f"Group/{group}"},
        }
    )["id"]
    absolute = post(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "subject": {"reference": "http://elsewhere.org/fhir/Patient/77"},
        }
    )["id"]
    by_identifier = post(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "subject": {"identifier": {"system": "http://example.org/mrn", "value": "M-1"}},
        }
    )["id"]
    assert ids(search(client, f"/fhir/Observation?subject=Patient/{patient}")) == {on_patient}
    assert ids(search(client, f"/fhir/Observation?subject={group}")) == {on_group}
    assert ids(search(client, f"/fhir/Observation?subject:Group={group}")) == {on_group}
    assert ids(search(client, f"/fhir/Observation?subject:Patient={group}")) == set()
    assert ids(search(client, f"/fhir/Observation?patient={patient}")) == {on_patient}
    url = "http://elsewhere.org/fhir/Patient/77"
    assert ids(search(client, f"/fhir/Observation?subject={url}")) == {absolute}
    mrn = "http://example.org/mrn|M-1"
    assert ids(search(client, f"/fhir/Observation?subject:identifier={mrn}")) == {by_identifier}


def test_uri_below_above(client: TestClient, post: Post) -> None:
    def value_set(url: str) -> str:
        return post({"resourceType": "ValueSet", "status": "active", "url": url})["id"]

    root = value_set("http://acme.org/fhir/ValueSet")
    deep = value_set("http://acme.org/fhir/ValueSet/123")
    other = value_set("http://other.org/fhir/ValueSet/123")
    base = "/fhir/ValueSet?url"
    assert ids(search(client, f"{base}=http://acme.org/fhir/ValueSet/123")) == {deep}
    assert ids(search(client, f"{base}:below=http://acme.org/fhir/")) == {root, deep}
    above = f"{base}:above=http://acme.org/fhir/ValueSet/123/_history/5"
    assert ids(search(client, above)) == {root, deep}
    assert other not in ids(search(client, above))


def test_identifier_of_type(client: TestClient, post: Post) -> None:
    v2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
    mrn = post(
        {
            "resourceType": "Patient",
            "identifier": [
                {"type": {"coding": [{"system": v2, "code": "MR"}]}, "value": "446053"},
            ],
        }
    )["id"]
    post(
        {
            "resourceType": "Patient",
            "identifier": [
                {"type": {"coding": [{"system": v2, "code": "DL"}]}, "value": "446053"},
            ],
        }
    )
    url = f"/fhir/Patient?identifier:of-type={v2}|MR|446053"
    assert ids(search(client, url)) == {mrn}
    assert client.get("/fhir/Patient?identifier:of-type=MR|446053").status_code == 400


def test_list(client: TestClient, post: Post, people: dict[str, str]) -> None:
    listed = post(
        {
            "resourceType": "List",
            "status": "current",
            "mode": "working",
            "entry": [{"item": {"reference": f"Patient/{people['eve']}"}}],
        }
    )["id"]
    assert ids(search(client, f"/fhir/Patient?_list={listed}")) == {people["eve"]}
    assert ids(search(client, "/fhir/Patient?_list=no-such-list")) == set()


def test_composite(client: TestClient, post: Post) -> None:
    def pressure(systolic: int, diastolic: int) -> str:
        return post(
            {
                "resourceType": "Observation",
                "status": "final",
                **VITAL_SIGNS,
                "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
                "component": [
                    {
                        "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                        "valueQuantity": {
                            "value": systolic,
                            "unit": "mmHg",
                            "system": UCUM,
                            "code": "mm[Hg]",
                        },
                    },
                    {
                        "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                        "valueQuantity": {
                            "value": diastolic,
                            "unit": "mmHg",
                            "system": UCUM,
                            "code": "mm[Hg]",
                        },
                    },
                ],
            }
        )["id"]

    high = pressure(150, 95)
    normal = pressure(118, 76)
    url = "/fhir/Observation?component-code-value-quantity="
    assert ids(search(client, url + f"{LOINC}|8480-6$gt140")) == {high}
    assert ids(search(client, url + "8462-4$lt80")) == {normal}
    # Both components exist in each, but 95 is diastolic: no systolic of 95.
    assert ids(search(client, url + "8480-6$95")) == set()
    assert ids(search(client, url + "8480-6$118|http://unitsofmeasure.org|mm[Hg]")) == {normal}
    assert client.get(url + "8480-6").status_code == 400
    weight = post(
        {
            "resourceType": "Observation",
            "status": "final",
            **VITAL_SIGNS,
            "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
            "valueQuantity": {"value": 72, "unit": "kg", "system": UCUM, "code": "kg"},
        }
    )["id"]
    cvq = "/fhir/Observation?code-value-quantity="
    assert ids(search(client, cvq + f"{LOINC}|29463-7$72000|{UCUM}|g")) == {weight}


def test_composite_components_with_a_choice_of_types(client: TestClient, post: Post) -> None:
    """Components such as ``value.as(DateTime) | value.as(Period)`` (Observation
    code-value-date) and ``value.as(Quantity) | value.as(Range)`` (context-type-quantity)
    reach the element's choice (valueDateTime, valuePeriod, valueQuantity)."""

    def observation(**value: object) -> str:
        code = {"coding": [{"system": LOINC, "code": "21918-8"}]}
        return post({"resourceType": "Observation", "status": "final", "code": code, **value})["id"]

    instant = observation(valueDateTime="2021-06-01")
    period = observation(valuePeriod={"start": "2019-01-01", "end": "2019-12-31"})
    cvd = f"/fhir/Observation?code-value-date={LOINC}|21918-8$"
    assert ids(search(client, cvd + "ge2021-01-01")) == {instant}
    assert ids(search(client, cvd + "2019")) == {period}
    age = {"system": "http://terminology.hl7.org/CodeSystem/usage-context-type", "code": "age"}
    library = post(
        {
            "resourceType": "Library",
            "status": "active",
            "type": {"text": "logic"},
            "useContext": [
                {"code": age, "valueQuantity": {"value": 18, "system": UCUM, "code": "a"}}
            ],
        }
    )["id"]
    ctq = "/fhir/Library?context-type-quantity="
    assert ids(search(client, ctq + f"{age['system']}|age$ge18")) == {library}
    assert ids(search(client, ctq + "age$lt18")) == set()


def test_in_with_filtered_value_sets(client: TestClient, post: Post) -> None:
    role = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"

    def related(code: str) -> str:
        return post(
            {
                "resourceType": "RelatedPerson",
                "patient": {"reference": "Patient/p"},
                "relationship": [{"coding": [{"system": role, "code": code}]}],
            }
        )["id"]

    brother, mother, friend = related("BRO"), related("MTH"), related("FRND")
    family = "http://terminology.hl7.org/ValueSet/v3-FamilyMember"  # RoleCode is-a FAMMEMB
    siblings = "http://hl7.org/fhir/ValueSet/sibling-relationship-codes"
    url = "/fhir/RelatedPerson?relationship"
    assert ids(search(client, f"{url}:in={family}")) == {brother, mother}
    assert ids(search(client, f"{url}:in={siblings}")) == {brother}
    assert ids(search(client, f"{url}:not-in={family}")) == {friend}
    # SNOMED CT is not in the package cache: a 400 that says so, not an empty result.
    response = client.get("/fhir/Condition?code:in=http://hl7.org/fhir/ValueSet/condition-code")
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "http://snomed.info/sct" in outcome["issue"][0]["diagnostics"]
    unknown = client.get("/fhir/Condition?code:in=http://example.org/ValueSet/none")
    assert unknown.status_code == 400
