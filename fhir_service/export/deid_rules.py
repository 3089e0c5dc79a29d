"""The allow-list rules of the de-identified export, as data
(https://hl7.org/fhir/R4/security-labels.html, the de-identification of a data set).

The package's ``deid_rules.json`` is the default; ``fhir-service export --deid-rules FILE``
and the ``_deidRules`` kick-off parameter replace it with rules of the same shape:

- ``keep``: per resource type, the element paths kept (``code``, ``component.code``,
  ``value[x]`` or ``valueQuantity``); a path keeps what is below it, subject to the type
  rules of ``fhir_service.export.deidentify``. A type that is not named keeps nothing but
  its pseudonymous id.
- ``all``: paths kept on every resource type (``meta.profile``, ...).
- ``text``: per resource type (``"*"``: every type), the paths whose free text (string,
  markdown) is kept, scrubbed of names, dates, phone numbers, e-mail addresses,
  identifiers and URLs; the path ``"*"`` keeps all free text of the kept elements.
- ``extensions``: the extension URLs kept, ``"coded"`` (strings inside are removed) or
  ``"text"`` (strings inside are kept, scrubbed). Every other extension is removed.

Everything else is removed (default deny).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhir_service.errors import InvalidRequest

DEFAULT_RULES = Path(__file__).with_name("deid_rules.json")
ALL = True
"""A rule tree leaf: the element and everything below it (subject to the type rules)."""
Tree = dict[str, Any]
"""Element name -> ``ALL`` or the tree of the kept elements below it."""
_MODES = frozenset({"coded", "text"})


@dataclass(frozen=True)
class Rules:
    """Compiled rules: per resource type the tree of kept paths and the text paths."""

    source: str
    keep: dict[str, Tree]
    all: Tree
    text: dict[str, frozenset[str]]
    extensions: dict[str, bool]
    """Extension URL -> whether free text inside it is kept (scrubbed)."""
    data: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    def tree(self, resource_type: str) -> Tree:
        """The kept paths of a type, with those of ``all``."""
        return _merge(self.keep.get(resource_type, {}), self.all)

    def text_paths(self, resource_type: str) -> frozenset[str]:
        return self.text.get(resource_type, frozenset()) | self.text.get("*", frozenset())


def _merge(a: Tree, b: Tree) -> Tree:
    out: Tree = dict(a)
    for key, sub in b.items():
        mine = out.get(key)
        if mine is ALL or sub is ALL:
            out[key] = ALL
        elif isinstance(mine, dict):
            out[key] = _merge(mine, sub)
        else:
            out[key] = sub
    return out


def _tree(paths: list[str]) -> Tree:
    root: Tree = {}
    for path in paths:
        node = root
        parts = path.split(".")
        for i, part in enumerate(parts):
            if i == len(parts) - 1:
                node[part] = ALL
            else:
                child = node.get(part)
                if child is ALL:
                    break
                if child is None:
                    child = node[part] = {}
                node = child
    return root


def _paths(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
        raise InvalidRequest(f"de-identification rules: {where} must be a list of element paths")
    for path in value:
        if any(not part for part in path.split(".")):
            raise InvalidRequest(f"de-identification rules: '{path[:80]}' is no element path")
    return list(value)


def _types(value: Any, where: str) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise InvalidRequest(f"de-identification rules: {where} must map resource types to paths")
    return {str(t): _paths(p, f"{where}.{t}") for t, p in value.items()}


def parse_rules(data: Any, source: str) -> Rules:
    """Rules from their JSON form; InvalidRequest says what is wrong."""
    if not isinstance(data, dict) or not isinstance(data.get("keep"), dict):
        raise InvalidRequest("de-identification rules must be a JSON object with 'keep'")
    unknown = set(data) - {"about", "all", "keep", "text", "extensions"}
    if unknown:
        raise InvalidRequest(f"de-identification rules: unknown entries {sorted(unknown)}")
    keep = _types(data["keep"], "keep")
    text = _types(data.get("text", {}), "text")
    extensions = data.get("extensions", {})
    if not isinstance(extensions, dict) or not all(
        isinstance(u, str) and m in _MODES for u, m in extensions.items()
    ):
        raise InvalidRequest("de-identification rules: extensions maps URLs to 'coded' or 'text'")
    return Rules(
        source=source,
        keep={t: _tree(p) for t, p in keep.items()},
        all=_tree(_paths(data.get("all", []), "all")),
        text={t: frozenset(p) for t, p in text.items()},
        extensions={u: m == "text" for u, m in extensions.items()},
        data=data,
    )


def rules_from_text(text: str, source: str) -> Rules:
    """Rules from JSON text (a file or the ``_deidRules`` parameter)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidRequest(f"de-identification rules are not JSON: {exc}") from None
    return parse_rules(data, source)


def load_rules(path: Path | None = None) -> Rules:
    """The rules of ``path``, or the package's default rules."""
    path = path or DEFAULT_RULES
    source = "default" if path == DEFAULT_RULES else path.name
    return rules_from_text(path.read_text(encoding="utf-8"), source)
