"""Streaming NDJSON output files, one resource type at a time, split at a size limit
(https://hl7.org/fhir/uv/bulkdata/STU2/export.html#file-request, http://ndjson.org).

Only the current line is held in memory; each file is written and closed in turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

DEFAULT_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class OutputFile:
    """One finished file: its resource type, name within the job directory, lines written."""

    type: str
    name: str
    count: int


class NdjsonWriter:
    """Writes resources of one type after another into ``<Type>-<n>.ndjson`` files."""

    def __init__(self, directory: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, prefix: str = ""):
        self.directory = directory
        self.max_bytes = max_bytes
        self.prefix = prefix
        self.files: list[OutputFile] = []
        self._type: str | None = None
        self._handle: IO[bytes] | None = None
        self._name = ""
        self._count = 0
        self._size = 0
        self._parts: dict[str, int] = {}
        directory.mkdir(parents=True, exist_ok=True)

    def write(self, resource_type: str, resource: dict[str, Any]) -> None:
        """Append one resource as a line of the current file of ``resource_type``."""
        self.write_json(resource_type, orjson.dumps(resource))

    def write_json(self, resource_type: str, text: bytes) -> None:
        """Append one resource given as JSON text on one line (no newline in ``text``)."""
        line = text + b"\n"
        if self._type != resource_type or (self._count and self._size + len(line) > self.max_bytes):
            self._finish()
            self._open(resource_type)
        assert self._handle is not None
        self._handle.write(line)
        self._count += 1
        self._size += len(line)

    def _open(self, resource_type: str) -> None:
        part = self._parts.get(resource_type, 0) + 1
        self._parts[resource_type] = part
        self._type = resource_type
        self._name = f"{self.prefix}{resource_type}-{part}.ndjson"
        self._handle = (self.directory / self._name).open("wb")
        self._count = 0
        self._size = 0

    def _finish(self) -> None:
        if self._handle is None or self._type is None:
            return
        self._handle.close()
        self.files.append(OutputFile(self._type, self._name, self._count))
        self._handle = None

    def close(self) -> list[OutputFile]:
        """Close the open file; every file written, in order."""
        self._finish()
        self._type = None
        return self.files

    def __enter__(self) -> NdjsonWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
