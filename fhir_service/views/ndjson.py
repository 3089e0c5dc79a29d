"""Resources read one line at a time from an NDJSON file (the Bulk Data file format,
https://hl7.org/fhir/uv/bulkdata/export.html#file-format), for views run over files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from fhir_service.errors import InvalidRequest


def read_ndjson(path: Path) -> Iterator[dict[str, Any]]:
    """Each non-blank line of ``path`` as a resource (a JSON object)."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                resource = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise InvalidRequest(f"{path}:{number}: not JSON: {exc}") from exc
            if not isinstance(resource, dict):
                raise InvalidRequest(f"{path}:{number}: not a JSON object")
            yield resource
