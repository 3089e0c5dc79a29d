"""The resected specimen, the tumour BodyStructure and the bone marrow suppression."""

from __future__ import annotations

from typing import Any

from mappings.adverse_event import NOTE_EXTENSION, map_adverse_events
from mappings.body_structure import map_body_structures
from mappings.specimen import COLLECTION_PROCEDURE, map_specimens

from .mapped import MCODE, SCT, by_key, codes_of, run, url


def test_resected_specimen_collected_on_the_day_of_surgery(ivc_case: Any) -> None:
    s = by_key(ivc_case, run(ivc_case, map_specimens), "Specimen", "resected-specimen")
    assert s["type"]["text"] == "Resected right liver lobe and IVC tumour"
    collection = s["collection"]
    assert collection["collectedDateTime"] == "2022-03-01"
    [ext] = collection["extension"]
    assert ext["url"] == COLLECTION_PROCEDURE
    assert ext["valueReference"]["reference"] == url(ivc_case, "Procedure", "liver-ivc-resection")


def test_tumour_in_the_ivc_segments_ii_and_iii(ivc_case: Any) -> None:
    [t] = run(ivc_case, map_body_structures)
    assert t["meta"]["profile"] == [MCODE + "mcode-tumor"]
    assert codes_of(t["location"]) == {(SCT, "64131007")}
    assert "segments II and III" in t["description"]
    assert "left renal vein" in t["description"]
    assert t["extension"][0]["valueReference"]["reference"] == url(
        ivc_case, "Condition", "ivc-leiomyosarcoma"
    )


def test_serious_bone_marrow_suppression_from_doxorubicin_ifosfamide(ivc_case: Any) -> None:
    [e] = run(ivc_case, map_adverse_events)
    assert e["event"]["text"] == "Bone marrow suppression"
    assert e["actuality"] == "actual"
    assert e["seriousness"]["coding"][0]["code"] == "serious"
    assert "date" not in e  # the report gives none
    suspects = {s["instance"]["reference"] for s in e["suspectEntity"]}
    # every administration of the course: doxorubicin days 1-3 and ifosfamide days 1-5,
    # in each of the two cycles
    expected = {
        url(ivc_case, "MedicationAdministration", f"{drug}-c{cycle}-d{day}")
        for drug, days in (("ai-doxorubicin", 3), ("ai-ifosfamide", 5))
        for cycle in (1, 2)
        for day in range(1, days + 1)
    }
    assert suspects == expected
    remarks = [x["valueAnnotation"]["text"] for x in e["extension"] if x["url"] == NOTE_EXTENSION]
    assert any("particularly bone marrow suppression" in r for r in remarks)
