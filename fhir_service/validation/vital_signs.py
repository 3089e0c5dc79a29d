"""The R4 vital signs profiles an Observation must meet because of its code
(https://hl7.org/fhir/R4/observation-vitalsigns.html: "When a FHIR implementation supports
any of the vital signs listed below, the implementation SHALL conform to this profile").

The HL7 reference validator applies them to every Observation whose ``code`` holds one of
the LOINC or SNOMED CT codes below, whatever ``meta.profile`` says (its "implied
profiles" of full validation); the code lists are those it uses. Groups are tried in
order, LOINC first, and the first group with a matching coding decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LOINC = "http://loinc.org"
SNOMED_CT = "http://snomed.info/sct"
_BASE = "http://hl7.org/fhir/StructureDefinition/"


@dataclass(frozen=True)
class VitalSign:
    """A code group: the profile it selects and its display name."""

    system: str
    profile: str
    name: str
    codes: frozenset[str]


def _group(system: str, profile: str, name: str, codes: str) -> VitalSign:
    return VitalSign(system, _BASE + profile, name, frozenset(codes.split()))


GROUPS: tuple[VitalSign, ...] = (
    _group(LOINC, "vitalspanel", "Vital Signs Panel", "85353-1"),
    _group(
        LOINC,
        "resprate",
        "Respiratory Rate",
        "9279-1 76170-0 76172-6 76171-8 19840-8 33438-3 76270-8 11291-2",
    ),
    _group(
        LOINC,
        "heartrate",
        "Heart rate",
        "60978-4 73795-7 73799-9 76476-1 76477-9 8867-4 8889-8 8890-6 8891-4 8892-2 8893-0 "
        "40443-4 55425-3 68999-2 11328-2 69000-8 8886-4",
    ),
    _group(
        LOINC,
        "oxygensat",
        "Oxygen saturation",
        "2708-6 19224-5 20564-1 2709-4 2710-2 2713-6 51733-4 59408-5 59417-6 89276-0 97549-0",
    ),
    _group(
        LOINC,
        "bodytemp",
        "Body temperature",
        "8310-5 60834-9 60835-6 60836-4 60838-0 60955-2 61009-7 75539-7 75987-8 76010-8 76011-6 "
        "76278-1 8309-7 8328-7 8329-5 8330-3 8331-1 8332-9 8333-7 8334-5 91371-5 98657-0 98663-8",
    ),
    _group(LOINC, "bodyheight", "Body height", "8302-2 3137-7 3138-5 8306-3 8308-9"),
    _group(LOINC, "headcircum", "Head circumference", "9843-4 8287-5"),
    _group(
        LOINC,
        "bodyweight",
        "Body weight",
        "29463-7 3141-9 3142-7 75292-3 79348-9 8350-1 8351-9",
    ),
    _group(LOINC, "bmi", "Body mass index", "39156-5 89270-3"),
    _group(
        LOINC,
        "bp",
        "Blood pressure systolic and diastolic",
        "85354-9 35094-2 8459-0 76534-7 55284-4 8480-6",
    ),
    _group(SNOMED_CT, "vitalspanel", "Vital Signs Panel", "46680005"),
    _group(SNOMED_CT, "resprate", "Respiratory Rate", "86290005 271625008 271306003"),
    _group(
        SNOMED_CT,
        "heartrate",
        "Heart rate",
        "249043002 444981005 399017001 251670001 429525003 429614003",
    ),
    _group(
        SNOMED_CT,
        "oxygensat",
        "Oxygen saturation",
        "442476006 431314004",
    ),
    _group(
        SNOMED_CT,
        "bodytemp",
        "Body temperature",
        "386725007 276885007 300076005 1222808002 364246006 307047009 708499008 431598003 "
        "698831002 698832009 415882003 415974002 415929009 415945006",
    ),
    _group(
        SNOMED_CT,
        "bodyheight",
        "Body height",
        "1153637007 1162419008 50373000 1162418000 1230278008 1162392001 1162417005",
    ),
    _group(
        SNOMED_CT, "headcircum", "Head circumference", "363812007 169876006 1269262007 363811000"
    ),
    _group(
        SNOMED_CT,
        "bodyweight",
        "Body weight",
        "735395000 425024002 424927000 784399000 1162416001 1162415002",
    ),
    _group(SNOMED_CT, "bmi", "Body mass index", "60621009"),
    _group(
        SNOMED_CT,
        "bp",
        "Blood pressure systolic and diastolic",
        "251076008 163033001 163035008 386534000 386536003 271649006 271650006 407556006 "
        "407554009 716579001 399304008",
    ),
)

_SYSTEM_NAMES = {LOINC: "LOINC", SNOMED_CT: "SNOMED CT"}


@dataclass(frozen=True)
class Required:
    """The vital signs profile an Observation must meet, and the code that requires it."""

    profile: str
    name: str
    system_name: str
    code: str


def required_profile(observation: dict[str, Any]) -> Required | None:
    """The vital signs profile ``observation.code`` requires, or None."""
    concept = observation.get("code")
    codings = concept.get("coding") if isinstance(concept, dict) else None
    if not isinstance(codings, list):
        return None
    pairs = [
        (c.get("system"), c.get("code"))
        for c in codings
        if isinstance(c, dict) and isinstance(c.get("code"), str)
    ]
    for group in GROUPS:
        code = next((c for s, c in pairs if s == group.system and c in group.codes), None)
        if code is not None:
            return Required(group.profile, group.name, _SYSTEM_NAMES[group.system], code)
    return None
