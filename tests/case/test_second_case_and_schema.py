"""The synthetic second case loads; docs/case-schema.json equals the generated schema."""

import json
from pathlib import Path

from mappings.case import load_case
from mappings.case.model import MedicationCourse
from mappings.case.schema import DEFAULT_OUTPUT, main, render

ROOT = Path(__file__).resolve().parents[2]


def test_the_synthetic_colon_case_loads() -> None:
    case = load_case(ROOT / "examples" / "synthetic-sigmoid-colon-cancer" / "case.yaml")
    assert case.case.synthetic is True
    assert case.patient.sex == "male"
    capox = case.get("capox")
    assert isinstance(capox, MedicationCourse)
    assert capox.cycles == 4 and capox.cycle_length is not None and capox.cycle_length.days() == 21
    assert [d.codes for d in capox.drugs] == [[], []]
    assert case.labs[0].unit == "ng/mL" and case.labs[0].value == 7.9


def test_committed_schema_is_up_to_date() -> None:
    assert DEFAULT_OUTPUT == ROOT / "docs" / "case-schema.json"
    assert DEFAULT_OUTPUT.read_text(encoding="utf-8") == render()


def test_schema_command_writes_a_json_schema(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    assert main([str(out)]) == 0
    schema = json.loads(out.read_text(encoding="utf-8"))
    assert schema["properties"]["schema_version"]["const"] == "1.0"
    assert schema["additionalProperties"] is False
    when = schema["$defs"]["Procedure"]["properties"]["when"]["anyOf"][0]
    assert when["type"] == "string" and "before|after" in when["pattern"]
