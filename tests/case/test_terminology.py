"""mappings.terminology: the code tables as data and look-up of prefix:code references."""

import pytest

from mappings.terminology import UnknownCode, is_ucum_unit, lookup, systems, table, ucum

EXPECTED_SYSTEMS = {
    "snomed": "http://snomed.info/sct",
    "loinc": "http://loinc.org",
    "rxnorm": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "icd10cm": "http://hl7.org/fhir/sid/icd-10-cm",
    "icdo3": "http://terminology.hl7.org/CodeSystem/icd-o-3",
    "atc": "http://www.whocc.no/atc",
    "ucum": "http://unitsofmeasure.org",
}


def test_systems_are_the_canonical_uris() -> None:
    assert systems() == EXPECTED_SYSTEMS


def test_every_entry_has_display_status_and_source() -> None:
    for prefix in EXPECTED_SYSTEMS:
        rows = table(prefix)
        assert rows, prefix
        for entry in rows.values():
            assert entry.display and entry.source
            assert entry.status in ("checked", "known")
            assert entry.system == EXPECTED_SYSTEMS[prefix]


def test_lookup_gives_a_coding() -> None:
    entry = lookup("icd10cm:C49.4")
    assert entry.coding() == {
        "system": "http://hl7.org/fhir/sid/icd-10-cm",
        "code": "C49.4",
        "display": "Malignant neoplasm of connective and soft tissue of abdomen",
    }
    assert lookup("icdo3:8890/3").code == "8890/3"
    assert lookup("rxnorm:3946").status == "known"
    assert lookup("atc:L01FF09").status == "checked"


def test_unknown_codes_and_prefixes_raise() -> None:
    with pytest.raises(UnknownCode, match="unknown code 'snomed:1'"):
        lookup("snomed:1")
    with pytest.raises(UnknownCode, match="unknown code system prefix 'mesh'"):
        lookup("mesh:D000001")
    with pytest.raises(UnknownCode, match="bad code reference"):
        lookup("61977001")


def test_ucum_units() -> None:
    assert is_ucum_unit("mL") and is_ucum_unit("U/L") and is_ucum_unit("umol/L")
    assert not is_ucum_unit("mgs") and not is_ucum_unit("units")
    assert ucum("min").display == "minute"
    with pytest.raises(UnknownCode, match="unknown UCUM unit 'mgs'"):
        ucum("mgs")


def test_clavien_dindo_code_of_unclear_edition_is_not_in_the_tables() -> None:
    # coding-reference.md: SNOMED 1367520006 exists only in very new editions (K): text only.
    with pytest.raises(UnknownCode):
        lookup("snomed:1367520006")
