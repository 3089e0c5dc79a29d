"""Load a case file (YAML) into a ``Case``, naming the file, line, column and field of any error.

YAML is read with ruamel.yaml's round-trip loader, which keeps the position of
every key, so a problem found by the model or by the whole-file checks points at
the line of the offending key (``case.yaml:57:9: medication_courses[1].drugs[0].unit:
unknown UCUM unit 'mgs'``). Format: docs/case-format.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from mappings.case.checks import check_case
from mappings.case.messages import describe
from mappings.case.model import Case


class CaseFileError(Exception):
    """A case file that cannot be loaded; ``problems`` lists every problem found, first = self."""

    def __init__(
        self,
        message: str,
        *,
        source: str,
        field: str = "",
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.field = field
        self.line = line
        self.column = column
        self.problems: list[CaseFileError] = [self]

    def __str__(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


def load_case(path: str | Path) -> Case:
    """Read, validate and check the case file at ``path``; raise CaseFileError on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseFileError(f"cannot read the file: {exc}", source=str(path)) from None
    return loads_case(text, source=str(path))


def loads_case(text: str, *, source: str = "<case>") -> Case:
    """Like ``load_case`` for YAML text; ``source`` names it in messages."""
    try:
        root = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = f"YAML syntax error: {exc.problem or exc.context or 'invalid YAML'}"
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        raise CaseFileError(message, source=source, line=line, column=column) from None
    except YAMLError as exc:
        raise CaseFileError(f"YAML syntax error: {exc}", source=source) from None
    if not isinstance(root, CommentedMap):
        raise CaseFileError(
            "a case file must be a YAML mapping (schema_version: ...)",
            source=source,
            line=1,
            column=1,
        )
    try:
        case = Case.model_validate(_plain(root))
    except ValidationError as exc:
        raise _collect(
            [(tuple(err["loc"]), describe(err)) for err in exc.errors()], root, source
        ) from None
    problems = check_case(case)
    if problems:
        raise _collect([(p.path, p.message) for p in problems], root, source)
    return case


def field_path(path: Sequence[str | int]) -> str:
    """``('drugs', 0, 'unit')`` -> ``'drugs[0].unit'``."""
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out


def locate(root: Any, path: Sequence[str | int]) -> tuple[int, int]:
    """1-based (line, column) of the deepest node of ``path`` present in the YAML tree."""
    node = root
    line, column = 0, 0
    if isinstance(node, CommentedMap | CommentedSeq):
        line, column = node.lc.line, node.lc.col
    for step in path:
        if isinstance(node, CommentedMap) and step in node:
            line, column = node.lc.key(step)
            node = node[step]
        elif isinstance(node, CommentedSeq) and isinstance(step, int) and 0 <= step < len(node):
            line, column = node.lc.item(step)
            node = node[step]
        else:
            break
    return line + 1, column + 1


def _collect(items: list[tuple[tuple[Any, ...], str]], root: Any, source: str) -> CaseFileError:
    errors = []
    for loc, message in items:
        path = tuple(step for step in loc if isinstance(step, str | int))
        line, column = locate(root, path)
        errors.append(
            CaseFileError(message, source=source, field=field_path(path), line=line, column=column)
        )
    errors.sort(key=lambda e: (e.line or 0, e.column or 0))
    first = errors[0]
    first.problems = errors
    return first


def _plain(node: Any) -> Any:
    """ruamel round-trip nodes -> plain Python values (dict, list, str, int, float, bool)."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool) or type(node).__name__ == "ScalarBoolean":
        return bool(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node
