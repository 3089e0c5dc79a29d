"""JSON Schema of the case file (https://json-schema.org/draft/2020-12/schema).

``python -m mappings.case.schema [OUT]`` writes it (default docs/case-schema.json).
The schema covers structure and string forms; code tables, units in the tables,
cross-references and time order are checked only by the loader.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from mappings.case.model import SCHEMA_VERSION, Case

DEFAULT_OUTPUT = Path(__file__).resolve().parents[2] / "docs" / "case-schema.json"


def case_schema() -> dict[str, Any]:
    """The JSON Schema of a case file (validation mode)."""
    schema = Case.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"urn:fhir-service:case-file:{SCHEMA_VERSION}"
    return schema


def render() -> str:
    """The schema as the exact text committed in docs/case-schema.json."""
    return json.dumps(case_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the schema to argv[0] or docs/case-schema.json."""
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else DEFAULT_OUTPUT
    out.write_text(render(), encoding="utf-8")
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
