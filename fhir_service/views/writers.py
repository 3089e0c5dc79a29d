"""View rows written as CSV, JSON, NDJSON or Parquet, as a stream of byte chunks
(the output formats of $viewdefinition-run,
https://sql-on-fhir.org/ig/latest/OperationDefinition-ViewDefinitionRun.html: ``_format``).

Every writer takes rows lazily and yields chunks as it goes; Parquet is written in
row groups of ``PARQUET_BATCH`` rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from fhir_service.errors import InvalidRequest
from fhir_service.views.definition import View

FORMATS = ("csv", "json", "ndjson", "parquet")
MEDIA_TYPES = {
    "csv": "text/csv",
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}
_ALIASES = {
    "text/csv": "csv",
    "application/json": "json",
    "application/fhir+json": "json",
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/fhir+ndjson": "ndjson",
    "application/parquet": "parquet",
    "application/vnd.apache.parquet": "parquet",
}
PARQUET_BATCH = 10_000
_CSV_AS_IS = (str, int, float)
_CSV_BATCH = 1_000
_INTEGER = {"integer", "positiveInt", "unsignedInt", "integer64"}
_ARROW: dict[str, pa.DataType] = {
    "boolean": pa.bool_(),
    "decimal": pa.float64(),
    **{name: pa.int64() for name in _INTEGER},
}


def format_of(name: str | None) -> str:
    """The output format for a ``_format`` value (a short name or a media type)."""
    key = (name or "json").strip().lower().split(";")[0]
    key = _ALIASES.get(key, key)
    if key not in FORMATS:
        raise InvalidRequest(f"_format {name!r} is not one of {', '.join(FORMATS)}")
    return key


def _json_bytes(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return value


def csv_chunks(view: View, rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """CSV with a header line of the column names; null is an empty cell; a collection
    column holds its values as a JSON array."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(view.columns)
    for count, row in enumerate(rows, start=1):
        writer.writerow([v if type(v) in _CSV_AS_IS else _csv_cell(v) for v in row.values()])
        if count % _CSV_BATCH == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def ndjson_chunks(view: View, rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """One JSON object per line."""
    for row in rows:
        yield _json_bytes(row) + b"\n"


def json_chunks(view: View, rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """One JSON array of row objects, written element by element."""
    yield b"["
    first = True
    for row in rows:
        yield (b"" if first else b",") + _json_bytes(row)
        first = False
    yield b"]\n"


def arrow_schema(view: View) -> pa.Schema:
    """The Parquet schema from the columns' FHIR types: boolean, integers and decimal keep
    their kind, everything else is a string; collection columns are lists."""
    fields = []
    for column in view.columns:
        fhir_type = view.column_types.get(column)
        kind = _ARROW.get(fhir_type or "", pa.string())
        if column in view.collection_columns:
            kind = pa.list_(kind)
        fields.append(pa.field(column, kind))
    return pa.schema(fields)


def _arrow_cell(value: Any, kind: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_list(kind):
        return [_arrow_cell(v, kind.value_type) for v in value]
    if pa.types.is_string(kind) and not isinstance(value, str):
        return (
            orjson.dumps(value).decode()
            if isinstance(value, list | dict)
            else str(value).lower()
            if isinstance(value, bool)
            else str(value)
        )
    if pa.types.is_integer(kind) and isinstance(value, float):
        return int(value)
    return value


def parquet_chunks(view: View, rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """A Parquet file, one row group per ``PARQUET_BATCH`` rows."""
    schema = arrow_schema(view)
    sink = io.BytesIO()
    writer = pq.ParquetWriter(sink, schema)
    batch: list[dict[str, Any]] = []

    def flush() -> bytes:
        columns = {f.name: [_arrow_cell(row[f.name], f.type) for row in batch] for f in schema}
        writer.write_table(pa.table(columns, schema=schema))
        batch.clear()
        data = sink.getvalue()
        sink.seek(0)
        sink.truncate()
        return data

    for row in rows:
        batch.append(row)
        if len(batch) >= PARQUET_BATCH:
            yield flush()
    if batch:
        yield flush()
    writer.close()
    yield sink.getvalue()


WRITERS = {
    "csv": csv_chunks,
    "json": json_chunks,
    "ndjson": ndjson_chunks,
    "parquet": parquet_chunks,
}


def write_chunks(view: View, rows: Iterable[dict[str, Any]], fmt: str) -> Iterator[bytes]:
    """The rows of ``view`` in format ``fmt`` (one of FORMATS), as byte chunks."""
    return WRITERS[format_of(fmt)](view, rows)
