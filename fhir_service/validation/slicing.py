"""Which slice an instance value belongs to, from the slicing discriminators.

Implements the discriminator types of https://hl7.org/fhir/R4/profiling.html#discriminator:
``value`` and ``pattern`` (against the fixed[x]/pattern[x] or a required binding
that expands offline at the discriminator path), ``exists``, and ``type`` for
resources. ``profile`` discriminators and paths with ``resolve()`` or ``ofType()``
are not evaluated: the answer is then "unknown" with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from fhir_service.errors import Issue
from fhir_service.fhir.expansion import Expansion
from fhir_service.validation.fixed_pattern import contains_pattern, equals_fixed
from fhir_service.validation.snapshot import ElementNode, Snapshot

_SEGMENT = re.compile(r"extension\('([^']*)'\)|([A-Za-z_$][\w]*(?:\([^)]*\))?)")


class Resolver(Protocol):
    """What slice matching needs from the profile checker."""

    def snapshot(self, url: str) -> Snapshot | None: ...

    def expand(self, url: str) -> Expansion: ...

    def check(self, resource: dict[str, Any], profile_url: str) -> list[Issue]: ...


@dataclass(frozen=True)
class Match:
    """Whether a value is in a slice: True, False, or None (unknown, with the reason)."""

    result: bool | None
    reason: str = ""


class _Unknown(Exception):
    pass


def _segments(path: str) -> list[tuple[str, str | None]]:
    """``(name, extension url)`` pairs of a simple FHIRPath discriminator path."""
    out: list[tuple[str, str | None]] = []
    pos = 0
    while pos < len(path):
        m = _SEGMENT.match(path, pos)
        if m is None:
            raise _Unknown(f"discriminator path {path!r} is not supported")
        if m.group(1) is not None:
            out.append(("extension", m.group(1)))
        else:
            token = m.group(2)
            if "(" in token:
                raise _Unknown(f"discriminator path {path!r} uses {token}, which is not evaluated")
            out.append((token, None))
        pos = m.end()
        if pos < len(path) and path[pos] == ".":
            pos += 1
    return out


def _children(value: Any, name: str) -> list[Any]:
    if not isinstance(value, dict):
        return []
    found = value.get(name)
    if found is None:
        found = next(
            (
                v
                for k, v in value.items()
                if k.startswith(name) and k[len(name) : len(name) + 1].isupper()
            ),
            None,
        )
    if found is None:
        return []
    return found if isinstance(found, list) else [found]


def evaluate(value: Any, path: str) -> list[Any]:
    """The values a simple discriminator path selects in an instance value."""
    current = [value]
    for name, url in _segments(path):
        if name == "$this":
            continue
        current = [c for v in current for c in _children(v, name)]
        if url is not None:
            current = [c for c in current if isinstance(c, dict) and c.get("url") == url]
    return current


def _type_profiles(node: ElementNode) -> list[str]:
    return [str(p) for t in node.types for p in t.get("profile") or []]


def _find(resolver: Resolver, node: ElementNode, path: str) -> list[tuple[ElementNode, str]]:
    """The elements a discriminator path names inside a slice (or inside its type profile).

    When an element on the way fixes a whole value (fixed[x] or pattern[x]), the walk
    stops there and the rest of the path is returned, to be read inside that value.
    When an element on the way is itself sliced, its required slices are walked too.
    """
    segments = _segments(path)
    found: list[tuple[ElementNode, str]] = []
    todo: list[tuple[ElementNode, int]] = [(node, 0)]
    while todo:
        current, i = todo.pop()
        while i < len(segments) and segments[i][0] == "$this":
            i += 1
        if i == len(segments):
            found.append((current, ""))
            continue
        if current is not node and current.fixed_or_pattern() is not None:
            found.append((current, _join(segments[i:])))
            continue
        name, url = segments[i]
        nxt = current.child(name) or current.child(name + "[x]")
        if nxt is None:
            for profile in _type_profiles(current):
                snap = resolver.snapshot(profile)
                if snap is not None:
                    nxt = snap.root.child(name) or snap.root.child(name + "[x]")
                    break
        if nxt is None:
            continue
        if url is not None:
            ext = next(
                (s for s in nxt.slices if url in _type_profiles(s) or _fixed_url(s) == url), None
            )
            if ext is not None:
                todo.append((ext, i + 1))
            continue
        todo.append((nxt, i + 1))
        todo.extend((s, i + 1) for s in nxt.slices if s.min >= 1 and i + 1 < len(segments))
    return found


def _join(segments: list[tuple[str, str | None]]) -> str:
    return ".".join(f"extension('{url}')" if url is not None else name for name, url in segments)


def _fixed_url(node: ElementNode) -> str | None:
    url = node.child("url")
    return str(url.ed["fixedUri"]) if url is not None and "fixedUri" in url.ed else None


def _value_test(resolver: Resolver, slice_node: ElementNode, path: str, actual: list[Any]) -> bool:
    found = _find(resolver, slice_node, path)
    profiles = _type_profiles(slice_node)
    by_profile = path == "url" and "Extension" in slice_node.type_codes and bool(profiles)
    if by_profile and not any(e.fixed_or_pattern() for e, _ in found):
        return any(a == profiles[0] for a in actual)
    tested = False
    for element, rest in found:
        fixed = element.fixed_or_pattern()
        if fixed is not None:
            kind, _, expected = fixed
            if rest:
                wanted = evaluate(expected, rest)
                ok = bool(wanted) and all(
                    any(contains_pattern(a, w) for a in actual) for w in wanted
                )
            else:
                test = equals_fixed if kind == "fixed" else contains_pattern
                ok = any(test(a, expected) for a in actual)
        else:
            binding = element.ed.get("binding") or {}
            if binding.get("strength") != "required" or not binding.get("valueSet"):
                continue
            expansion = resolver.expand(str(binding["valueSet"]))
            if not expansion.known:
                raise _Unknown(f"slice {slice_node.id} is chosen by a binding: {expansion.reason}")
            ok = any(_coded_in(a, expansion) for a in actual)
        if not ok:
            return False
        tested = True
    if not tested:
        raise _Unknown(f"slice {slice_node.id} fixes no value at discriminator path {path!r}")
    return True


def _coded_in(value: Any, expansion: Expansion) -> bool:
    if isinstance(value, str):
        return expansion.contains(None, value)
    if not isinstance(value, dict):
        return False
    codings = value.get("coding") if "coding" in value else [value]
    return any(
        isinstance(c, dict) and "code" in c and expansion.contains(c.get("system"), str(c["code"]))
        for c in codings or []
    )


def _exists_test(resolver: Resolver, slice_node: ElementNode, path: str, actual: list[Any]) -> bool:
    found = [element for element, rest in _find(resolver, slice_node, path) if not rest]
    if not found:
        raise _Unknown(f"slice {slice_node.id} has no element at discriminator path {path!r}")
    element = found[0]
    if element.min >= 1:
        return bool(actual)
    if element.max == 0:
        return not actual
    raise _Unknown(f"slice {slice_node.id} neither requires nor forbids {path!r}")


def _profile_test(
    resolver: Resolver, slice_node: ElementNode, path: str, actual: list[Any]
) -> bool:
    """A ``profile`` discriminator (https://hl7.org/fhir/R4/profiling.html#discriminator):
    the value at ``path`` conforms to a profile the slice gives that element."""
    profiles = [p for found, _ in _find(resolver, slice_node, path) for p in _type_profiles(found)]
    if not profiles:
        raise _Unknown(f"slice {slice_node.id} names no profile at {path!r}")
    resources = [v for v in actual if isinstance(v, dict)]
    return bool(resources) and all(
        any(
            not any(i.severity in ("error", "fatal") for i in resolver.check(v, p))
            for p in profiles
        )
        for v in resources
    )


def matches(
    resolver: Resolver, value: Any, slice_node: ElementNode, discriminators: list[dict[str, Any]]
) -> Match:
    """Whether ``value`` belongs to ``slice_node`` under the discriminators."""
    unknown = ""
    for disc in discriminators:
        kind, path = str(disc.get("type")), str(disc.get("path", "$this"))
        try:
            actual = evaluate(value, path)
            if kind in ("value", "pattern"):
                ok = _value_test(resolver, slice_node, path, actual)
            elif kind == "exists":
                ok = _exists_test(resolver, slice_node, path, actual)
            elif (
                kind == "type"
                and path == "$this"
                and isinstance(value, dict)
                and "resourceType" in value
            ):
                ok = value["resourceType"] in slice_node.type_codes
            elif kind == "profile":
                ok = _profile_test(resolver, slice_node, path, actual)
            else:
                raise _Unknown(f"{kind} discriminator on {path!r} is not evaluated")
        except _Unknown as exc:
            unknown = str(exc)
            continue
        if not ok:
            return Match(False)
    return Match(None, unknown) if unknown else Match(True)
