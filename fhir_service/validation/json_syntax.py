"""JSON syntax of FHIR resources, with line and column for every problem.

FHIR JSON is RFC 8259 JSON (https://hl7.org/fhir/R4/json.html): no comments,
no duplicate property names, quoted names and strings, no trailing commas.
Well-formed input goes through the standard library parser; anything else is
read by a tolerant parser that reports each problem the way the HL7 validator
does (missing or extra commas, missing quotes, comments) and recovers what it
can. ``Locator`` maps JSON pointers to line and column for the issues of the
later checks.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from fhir_service.errors import Issue

Pointer = tuple[str | int, ...]
_WS = " \t\r\n\ufeff"
_BARE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.+-$")


@dataclass
class Finding:
    """An issue with the JSON pointer it is about (for line/column and FHIRPath)."""

    issue: Issue
    pointer: Pointer | None = None


@dataclass
class ParsedJson:
    """The value read from the text (None when unreadable) and the syntax findings."""

    value: Any
    findings: list[Finding] = field(default_factory=list)
    fatal: bool = False


class _Fatal(Exception):
    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.pos = pos


class _Duplicate(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _Duplicate
    return out


def parse_json(text: str, *, allow_comments: bool = False) -> ParsedJson:
    """Read FHIR JSON text; syntax problems become findings, unreadable text a fatal one."""
    try:
        return ParsedJson(json.loads(text, object_pairs_hook=_no_duplicates))
    except RecursionError:
        issue = Issue("fatal", "invalid", "Error parsing JSON: the JSON is nested too deeply")
        return ParsedJson(None, [Finding(issue)], fatal=True)
    except (_Duplicate, ValueError):
        pass
    parser = _Parser(text, allow_comments, record_locations=False)
    try:
        value = parser.document()
    except RecursionError:
        issue = Issue("fatal", "invalid", "Error parsing JSON: the JSON is nested too deeply")
        return ParsedJson(None, [Finding(issue)], fatal=True)
    except _Fatal as exc:
        line, col = parser.line_col(exc.pos)
        issue = Issue(
            "fatal", "invalid", f"Error parsing JSON: {exc} at line {line}", [], line, col
        )
        return ParsedJson(None, [Finding(issue)], fatal=True)
    return ParsedJson(value, parser.findings)


_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\r\n\ufeff]*")


class Locator:
    """Line and column (1-based) of each value in a JSON text, by JSON pointer.

    Well-formed text is navigated along the pointer only, skipping sibling values
    with the standard library scanner; other text is read once by the tolerant parser.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._map: dict[Pointer, tuple[int, int]] | None = None
        # Offsets of the elements of each array met so far, so that locating many
        # issues in a large Bundle skips each entry once rather than once per issue.
        self._elements: dict[Pointer, list[int]] = {}
        self._newlines: list[int] | None = None

    def __call__(self, pointer: Pointer | None) -> tuple[int, int] | None:
        if pointer is None:
            return None
        pos = self._navigate(pointer)
        if pos is not None:
            return self._line_col(pos)
        return self._tolerant(pointer)

    def _line_col(self, pos: int) -> tuple[int, int]:
        """Line and column of an offset; the line starts are found once per text."""
        if self._newlines is None:
            self._newlines = [m.start() for m in re.finditer("\n", self._text)]
        before = bisect.bisect_left(self._newlines, pos)  # newlines before pos
        start = self._newlines[before - 1] if before else -1
        return before + 1, pos - start

    def _navigate(self, pointer: Pointer) -> int | None:
        """The offset of the deepest value on ``pointer``, or None when the text is not JSON."""
        s = self._text
        try:
            pos = _SPACE.match(s, 0).end()  # type: ignore[union-attr]
            for depth, part in enumerate(pointer):
                if isinstance(part, int):
                    if s[pos] != "[":
                        return pos
                    known = self._elements.setdefault(
                        pointer[:depth],
                        [_SPACE.match(s, pos + 1).end()],  # type: ignore[union-attr]
                    )
                    while len(known) <= part:
                        _, pos = _DECODER.raw_decode(s, known[-1])
                        pos = _SPACE.match(s, pos).end()  # type: ignore[union-attr]
                        if s[pos] != ",":
                            return None
                        known.append(_SPACE.match(s, pos + 1).end())  # type: ignore[union-attr]
                    pos = known[part]
                    continue
                if s[pos] != "{":
                    return pos
                pos = _SPACE.match(s, pos + 1).end()  # type: ignore[union-attr]
                while True:
                    key, pos = _DECODER.raw_decode(s, pos)
                    pos = _SPACE.match(s, pos).end()  # type: ignore[union-attr]
                    if s[pos] != ":":
                        return None
                    pos = _SPACE.match(s, pos + 1).end()  # type: ignore[union-attr]
                    if key == part:
                        break
                    _, pos = _DECODER.raw_decode(s, pos)
                    pos = _SPACE.match(s, pos).end()  # type: ignore[union-attr]
                    if s[pos] != ",":
                        return None
                    pos = _SPACE.match(s, pos + 1).end()  # type: ignore[union-attr]
            return pos
        except (ValueError, IndexError):
            return None

    def _tolerant(self, pointer: Pointer) -> tuple[int, int] | None:
        if self._map is None:
            parser = _Parser(self._text, True, record_locations=True)
            with contextlib.suppress(_Fatal, RecursionError):
                parser.document()
            self._map = parser.locations
        while pointer:
            if pointer in self._map:
                return self._map[pointer]
            pointer = pointer[:-1]
        return self._map.get(())


def fhirpath(pointer: Pointer, root: Any) -> str:
    """A JSON pointer as a FHIRPath-like location, starting at the root resource type."""
    base = root.get("resourceType") if isinstance(root, dict) else None
    path = str(base) if isinstance(base, str) else "$"
    for part in pointer:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


class _Parser:
    """A recursive-descent JSON reader that reports and recovers from common mistakes."""

    def __init__(self, text: str, allow_comments: bool, record_locations: bool) -> None:
        self.s = text
        self.n = len(text)
        self.i = 0
        self.allow_comments = allow_comments
        self.record = record_locations
        self.raw: list[tuple[str, str, Pointer]] = []
        self.pending_comments: list[int] = []
        self.locations: dict[Pointer, tuple[int, int]] = {}
        self._lines = [m.start() for m in re.finditer("\n", text)]
        self._root: Any = None

    @property
    def findings(self) -> list[Finding]:
        out = []
        for severity, message, pointer in self.raw:
            issue = Issue(severity, "invalid", message, [fhirpath(pointer, self._root)])
            out.append(Finding(issue, pointer))
        return out

    def line_col(self, pos: int) -> tuple[int, int]:
        line = bisect.bisect_left(self._lines, pos)
        start = self._lines[line - 1] + 1 if line else 0
        return line + 1, pos - start + 1

    def problem(self, message: str, pointer: Pointer) -> None:
        self.raw.append(("error", message, pointer))

    def flush_comments(self, pointer: Pointer) -> None:
        if self.pending_comments and not self.allow_comments:
            self.problem("Comments are not allowed in JSON", pointer)
        self.pending_comments = []

    def skip(self) -> None:
        s, n = self.s, self.n
        while self.i < n:
            ch = s[self.i]
            if ch in _WS:
                self.i += 1
            elif s.startswith("//", self.i):
                self.pending_comments.append(self.i)
                end = s.find("\n", self.i)
                self.i = n if end < 0 else end + 1
            elif s.startswith("/*", self.i):
                self.pending_comments.append(self.i)
                end = s.find("*/", self.i + 2)
                if end < 0:
                    raise _Fatal("Unterminated comment", self.i)
                self.i = end + 2
            else:
                return

    def document(self) -> Any:
        self.skip()
        self.flush_comments(())
        value = self.value(())
        self._root = value
        self.skip()
        self.flush_comments(())
        if self.i < self.n:
            raise _Fatal(
                f"Unexpected content after the end of the JSON: {self.s[self.i]!r}", self.i
            )
        return value

    def value(self, ptr: Pointer) -> Any:
        self.skip()
        if self.i >= self.n:
            raise _Fatal("Unexpected end of the JSON text", self.i)
        if self.record:
            self.locations[ptr] = self.line_col(self.i)
        ch = self.s[self.i]
        if ch == "{":
            return self.obj(ptr)
        if ch == "[":
            return self.arr(ptr)
        if ch == '"':
            return self.string()
        word = self.bare()
        if word is None:
            raise _Fatal(f"Unexpected character {ch!r}", self.i)
        return word

    def bare(self) -> Any:
        start = self.i
        while self.i < self.n and self.s[self.i] in _BARE:
            self.i += 1
        word = self.s[start : self.i]
        if not word:
            return None
        if word in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[word]
        try:
            return json.loads(word)
        except ValueError:
            return _Unquoted(word)

    def string(self) -> str:
        start = self.i
        self.i += 1
        s = self.s
        while True:
            end = s.find('"', self.i)
            if end < 0:
                raise _Fatal("Unterminated string", start)
            backslashes = 0
            j = end - 1
            while s[j] == "\\":
                backslashes += 1
                j -= 1
            self.i = end + 1
            if backslashes % 2 == 0:
                break
        try:
            return str(json.loads(s[start : self.i]))
        except ValueError as exc:
            raise _Fatal(f"Invalid string: {exc}", start) from None

    def obj(self, ptr: Pointer) -> dict[str, Any]:
        self.i += 1
        out: dict[str, Any] = {}
        first, comma = True, False
        while True:
            self.skip()
            if self.i >= self.n:
                raise _Fatal("Unexpected end of the JSON text in an object", self.i)
            ch = self.s[self.i]
            if ch == "}":
                if comma:
                    self.problem(
                        "There is an extra comma at the end of the Object in the JSON", ptr
                    )
                self.i += 1
                return out
            if ch == "]":
                raise _Fatal("Unexpected close marker ']'. Expected '}'", self.i)
            if not first and not comma:
                self.problem("A Comma is missing in the JSON", ptr)
            if ch == '"':
                key = self.string()
            else:
                word = self.bare()
                if not isinstance(word, _Unquoted):
                    raise _Fatal(f"Unexpected character {ch!r}, expected a property name", self.i)
                key = str(word)
                self.problem(
                    f"The JSON property '{key}' has no quotes around the name of the property",
                    ptr,
                )
            self.flush_comments((*ptr, key))
            self.skip()
            if self.i >= self.n or self.s[self.i] != ":":
                raise _Fatal(f"Expected ':' after the property name '{key}'", self.i)
            self.i += 1
            value = self.value((*ptr, key))
            if isinstance(value, _Unquoted):
                self.problem(
                    f"The JSON property '{key}' has no quotes around the value of the "
                    f"property '{value}'",
                    ptr,
                )
                value = str(value)
            if key in out:
                self.problem(f"The JSON property '{key}' is a duplicate and will be ignored", ptr)
            else:
                out[key] = value
            first, comma = False, False
            self.skip()
            if self.i < self.n and self.s[self.i] == ",":
                self.i += 1
                comma = True

    def arr(self, ptr: Pointer) -> list[Any]:
        self.i += 1
        out: list[Any] = []
        comma = False
        while True:
            self.skip()
            if self.i >= self.n:
                raise _Fatal("Unexpected end of the JSON text in an array", self.i)
            ch = self.s[self.i]
            if ch == "]":
                if comma:
                    self.problem("There is an extra comma at the end of the Array in the JSON", ptr)
                self.i += 1
                return out
            if ch == "}":
                raise _Fatal("Unexpected close marker '}'. Expected ']'", self.i)
            if out and not comma:
                self.problem("A Comma is missing in the JSON", ptr)
            item_ptr = (*ptr, len(out))
            value = self.value(item_ptr)
            if isinstance(value, _Unquoted):
                self.problem(
                    f"The JSON property 'item' has no quotes around the value of the "
                    f"property '{value}'",
                    item_ptr,
                )
                value = str(value)
            out.append(value)
            comma = False
            self.skip()
            if self.i < self.n and self.s[self.i] == ",":
                self.i += 1
                comma = True


class _Unquoted(str):
    """A bare word read where a JSON string was expected."""
