"""A repeating primitive and its ``_name`` shadow array must be equally long: the shadow
holds the ids and extensions of the values at the same index, with ``null`` where a value
has none (https://hl7.org/fhir/R4/json.html#primitive). The R4B models do not check this.
"""

from __future__ import annotations

from typing import Any

import orjson

from fhir_service.errors import Issue


def _mismatched(value: Any) -> bool:
    """Whether any ``name`` / ``_name`` pair of arrays differs in length (no paths built:
    this runs on every write)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if isinstance(child, dict | list):
                    stack.append(child)
                    if key[0] == "_" and isinstance(child, list):
                        values = item.get(key[1:])
                        if isinstance(values, list) and len(values) != len(child):
                            return True
        elif isinstance(item, list):
            stack.extend(child for child in item if isinstance(child, dict | list))
    return False


def shadow_length_issues(resource: dict[str, Any], resource_type: str) -> list[Issue]:
    """An error for every ``name`` / ``_name`` pair of arrays of different lengths."""
    # Shadow arrays are rare: one orjson pass (a few microseconds) rules them out.
    # (``default=str``: bodies parsed with Decimal numbers serialize too.)
    if b'"_' not in orjson.dumps(resource, default=str) or not _mismatched(resource):
        return []
    issues: list[Issue] = []
    stack: list[tuple[Any, str]] = [(resource, resource_type)]
    while stack:
        value, path = stack.pop()
        if isinstance(value, list):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(value))
            continue
        if not isinstance(value, dict):
            continue
        for key, child in value.items():
            if key.startswith("_") and isinstance(child, list):
                values = value.get(key[1:])
                if isinstance(values, list) and len(values) != len(child):
                    issues.append(
                        Issue(
                            "error",
                            "structure",
                            f"'{key[1:]}' has {len(values)} item(s) but '{key}' has "
                            f"{len(child)}: the arrays must be equally long, with null for "
                            "absent items",
                            [f"{path}.{key[1:]}"],
                        )
                    )
            if key != "resourceType":
                stack.append((child, f"{path}.{key}"))
    return issues
