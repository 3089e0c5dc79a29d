"""De-identification of exported resources by allow-list, HIPAA Safe Harbor-style
(45 CFR 164.514(b)(2); https://hl7.org/fhir/R4/security-labels.html,
https://hl7.org/fhir/R4/secpriv-module.html).

Resources are walked by their R4 element types (the core StructureDefinitions of the
package cache, ``fhir_service.validation.elements``). An element is kept only when the
rules (``fhir_service.export.deid_rules``, default ``deid_rules.json``) keep its path;
below a kept path every element is treated by its type:

1. Never kept, whatever the rules say: HumanName, Address, ContactPoint, Identifier,
   Signature, the Narrative (``text``), base64Binary (attachment ``data``), xhtml, oid,
   uuid, uri and url values (but the ``system`` of Coding and Quantity, and
   ``Reference.type``), and extensions whose URL the rules do not list.
2. Coded content is kept: code, Coding (system, version, code, display), Quantity and its
   profiles (value, comparator, unit, system, code), boolean, integer, decimal, time and
   canonical values.
3. Free text (string, markdown; ``[x]String`` choices, Annotation text, Reference display,
   CodeableConcept.text) is removed unless a ``text`` rule keeps its path; kept text is
   scrubbed (``fhir_service.export.deid_text``).
4. Dates: every date, dateTime and instant is shifted back by a per-patient offset of
   366..730 days derived from the secret with HMAC-SHA256, so intervals within one
   patient's record are kept while no calendar date survives. Year-only and year-month
   values move by whole years (1 or 2) and months. A resource belongs to the patient(s) of
   its Patient compartment; the lowest pseudonym's offset wins when there are several, a
   shared dataset offset when there is none. A value that is no date is removed.
5. Ages over 89: a birthDate that may give an age of 90 or more becomes the year
   ``reference_year - 90`` (everyone that old looks 90); Age quantities above 89 years
   become 90.
6. Ids become stable pseudonyms (HMAC-SHA256 of ``Type/id``, hex, 32 characters) and
   relative references ``Type/id`` are rewritten the same way, so they still resolve inside
   the export; contained ids and ``#id`` references get pseudonyms of their own. Other
   references (absolute, ``urn:``) are removed.

Every removal and every scrub is counted per element path (``report()``); the export
manifest carries the counts (docs/export.md).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from fhir_service.export.deid_rules import ALL, Rules, Tree, load_rules
from fhir_service.export.deid_text import scrub, vocabulary
from fhir_service.search.registry import get_registry
from fhir_service.validation.elements import ModelIndex, TypeModel

JSON = dict[str, Any]

_FULL_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_DATE_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(.+)$")
_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?$")
_ANY_DATE = re.compile(
    r"^\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_RELATIVE_REF = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(/_history/.+)?$")
MIN_SHIFT_DAYS = 366
SHIFT_SPAN_DAYS = 365
AGE_CAP = 90
MAX_REPORT_PATHS = 4096
MAX_PLANS = 65536
CACHE_SIZE = 4096
"""Entries of each cache of pseudonyms, date offsets, references and shifted days."""
_SCALARS = frozenset({str, int, float, bool})

NEVER = frozenset(
    {"HumanName", "Address", "ContactPoint", "Identifier", "Signature", "Narrative"}
    | {"base64Binary", "xhtml", "oid", "uuid"}
)
"""Types removed wherever they occur (rule 1)."""
CODED = frozenset(
    {"code", "boolean", "integer", "decimal", "positiveInt", "unsignedInt", "time", "canonical"}
)
DATES = frozenset({"date", "dateTime", "instant"})
TEXT = frozenset({"string", "markdown", "id"})
URIS = frozenset({"uri", "url"})
QUANTITIES = frozenset(
    {"Quantity", "Age", "Count", "Distance", "Duration", "Money", "MoneyQuantity", "SimpleQuantity"}
)
_CODED_URIS = frozenset({("Coding", "system"), ("Reference", "type")})
_CODED_STRINGS = frozenset({("Coding", "display"), ("Coding", "version"), ("Extension", "url")})

# Actions of a plan step.
_DROP, _COPY, _DATE, _TEXT, _REF, _OBJECT, _EXTENSION, _RESOURCE, _PRIMITIVE_EXT = range(9)

PatientsOf = Callable[[JSON], set[str]]
"""The ids of the patients in whose compartment a resource is."""


class _Step:
    __slots__ = ("action", "child", "model", "path", "plans", "text")

    def __init__(
        self,
        action: int,
        path: str,
        model: TypeModel | None = None,
        child: Tree | bool = False,
        text: bool = False,
    ) -> None:
        self.action = action
        self.path = path
        self.model = model
        self.child = child
        self.text = text
        self.plans: dict[tuple[str, ...], _Plan] = {}
        """The plans of the objects this step walks, by their element names."""


class _Plan:
    """The steps for one shape of object at one path, and how often it was used (its
    removals are counted from that when the report is made, not per object)."""

    __slots__ = ("age", "copy", "removed", "steps", "uses")

    def __init__(self, steps: list[tuple[str, _Step]], removed: list[str], age: bool) -> None:
        self.steps = steps
        self.removed = removed
        self.age = age
        self.uses = 0
        self.copy = not removed and not age and all(s.action == _COPY for _, s in steps)
        """Every element is kept as it is: an object of scalars is shared, not copied."""


class _Context:
    """What the walk of one resource needs: its date offset and, for scrubbing, the names
    and coded words it carries (collected on first use)."""

    __slots__ = ("_names", "_words", "days", "resource")

    def __init__(self, resource: JSON, days: int) -> None:
        self.resource = resource
        self.days = days
        self._names: list[str] | None = None
        self._words: frozenset[str] | None = None

    def names(self) -> list[str]:
        if self._names is None:
            self._collect()
        assert self._names is not None
        return self._names

    def words(self) -> frozenset[str]:
        if self._words is None:
            self._collect()
        assert self._words is not None
        return self._words

    def _collect(self) -> None:
        names: list[str] = []
        displays: list[str] = []
        _names_and_displays(self.resource, "", names, displays)
        self._names = names
        self._words = vocabulary(displays)


def _names_and_displays(value: Any, key: str, names: list[str], displays: list[str]) -> None:
    if isinstance(value, dict):
        if key == "name" or "family" in value or "given" in value:
            for part in ("family", "given", "prefix", "suffix", "text"):
                item = value.get(part)
                for text in item if isinstance(item, list) else [item]:
                    if isinstance(text, str):
                        names.extend(text.split())
        if isinstance(value.get("display"), str):
            (displays if "code" in value else names).extend([value["display"]])
        if isinstance(value.get("authorString"), str):
            names.extend(value["authorString"].split())
        for k, v in value.items():
            _names_and_displays(v, k, names, displays)
    elif isinstance(value, list):
        for v in value:
            _names_and_displays(v, key, names, displays)
    elif isinstance(value, str) and key in ("name", "alias"):
        names.extend(value.split())


class Deidentifier:
    """Applies the rules above with one secret; the same secret gives the same output."""

    def __init__(
        self,
        secret: str,
        patients_of: PatientsOf,
        *,
        reference_year: int,
        rules: Rules | None = None,
        index: ModelIndex | None = None,
    ) -> None:
        if not secret:
            raise ValueError("de-identification needs a non-empty secret")
        self._key = secret.encode("utf-8")
        self._patients_of = patients_of
        self._reference_year = reference_year
        self.rules = rules or load_rules()
        self._index = index or _core_index()
        self._steps: list[_Step] = []
        """The steps that hold plans (for the report); their plans number ``_plan_count``."""
        self._plan_count = 0
        self._roots: dict[str, _Step] = {}
        self._extension_steps: dict[tuple[str, bool], _Step] = {}
        self._texts: dict[str, frozenset[str]] = {}
        self.removed: Counter[str] = Counter()
        self.scrubbed: Counter[str] = Counter()
        self.resources = 0
        # Small bounded caches: references repeat close together (Patient/x, Encounter/y:
        # resources are read in the order they were stored, a record at a time), and a
        # cache filled by every id exported would grow memory up to its bound.
        self.pseudonym = functools.lru_cache(maxsize=CACHE_SIZE)(self._pseudonym)  # type: ignore[method-assign]
        self.offset_days = functools.lru_cache(maxsize=CACHE_SIZE)(self._offset_days)  # type: ignore[method-assign]
        self._reference = functools.lru_cache(maxsize=CACHE_SIZE)(self._reference)  # type: ignore[method-assign]

    def _digest(self, text: str) -> bytes:
        return hmac.digest(self._key, text.encode("utf-8"), hashlib.sha256)

    def pseudonym(self, resource_type: str, id: str) -> str:
        """The stable pseudonymous id of ``resource_type/id``."""
        return self._pseudonym(resource_type, id)

    def _pseudonym(self, resource_type: str, id: str) -> str:
        return self._digest(f"id:{resource_type}/{id}").hex()[:32]

    def _local(self, id: str) -> str:
        """The pseudonym of a contained resource's id (``#id`` references)."""
        return self._digest(f"local:{id}").hex()[:16]

    def offset_days(self, patient_id: str | None) -> int:
        """Days by which that patient's dates move back (``None``: the dataset offset)."""
        return self._offset_days(patient_id)

    def _offset_days(self, patient_id: str | None) -> int:
        seed = int.from_bytes(self._digest(f"shift:{patient_id or ''}")[:8], "big")
        return MIN_SHIFT_DAYS + seed % SHIFT_SPAN_DAYS

    def report(self) -> JSON:
        """What was removed and scrubbed, per element path: the manifest's account."""
        removed = Counter(self.removed)
        for step in self._steps:
            for plan in step.plans.values():
                for path in plan.removed:
                    removed[path] += plan.uses
        return {
            "rules": self.rules.source,
            "resources": self.resources,
            "removed": dict(sorted((p, n) for p, n in removed.items() if n)),
            "scrubbed": dict(sorted(self.scrubbed.items())),
        }

    def apply(self, resource: JSON) -> JSON:
        """A de-identified copy of ``resource``. The input is left unchanged; objects the
        rules leave as they are may be shared between input and output."""
        patients = self._patients_of(resource)
        first = min(patients, key=lambda p: self.pseudonym("Patient", p)) if patients else None
        days = self.offset_days(first)
        rtype = str(resource.get("resourceType", ""))
        self.resources += 1
        out = self._resource(resource, _Context(resource, days), rtype)
        if isinstance(resource.get("id"), str):  # each id once: not through the cache
            out["id"] = self._pseudonym(rtype, resource["id"])
        if rtype == "Patient" and isinstance(out.get("birthDate"), str):
            out["birthDate"] = self._birth_date(resource["birthDate"], days)
        return out

    def _birth_date(self, value: str, days: int) -> str:
        year = int(value[:4])
        if self._reference_year - year - 1 >= AGE_CAP - 1:
            return str(self._reference_year - AGE_CAP)
        return shift_date(value, days)

    def _resource(self, value: JSON, ctx: _Context, rtype: str) -> JSON:
        root = self._roots.get(rtype)
        if root is None:
            model = self._index.model(rtype)
            if model is None or model.kind != "resource":
                self._count(self.removed, rtype or "(unknown)")  # R4B-only types
                return {"resourceType": rtype} if rtype else {}
            self._texts[rtype] = self.rules.text_paths(rtype)
            root = self._roots[rtype] = _Step(_OBJECT, rtype, model, self.rules.tree(rtype))
        return self._object(value, ctx, root, rtype)

    def _count(self, counter: Counter[str], path: str) -> None:
        if path in counter or len(counter) < MAX_REPORT_PATHS:
            counter[path] += 1
        else:
            counter["(other paths)"] += 1

    def _plan(
        self,
        keys: tuple[str, ...],
        model: TypeModel,
        node: Tree | bool,
        rtype: str,
        path: str,
        text: bool,
    ) -> _Plan:
        """How each element of an object with these keys is treated (rules 1-3, 6)."""
        steps: list[tuple[str, _Step]] = []
        removed: list[str] = []
        texts = self._texts.get(rtype, frozenset())
        relative = path[len(rtype) + 1 :] if path.startswith(rtype + ".") else ""
        resource = model.kind == "resource"
        for key in keys:
            if key == "resourceType" and resource:
                steps.append((key, _Step(_COPY, path)))
                continue
            if key == "id" and resource:
                continue  # ``apply`` / the contained walk gives the pseudonym
            name = key[1:] if key.startswith("_") else key
            found = model.keys.get(name)
            child_path = f"{path}.{key}"
            if found is None:  # its name is data too: not written into the account
                removed.append(f"{path}.(unknown element)")
                continue
            info, type_code = found
            if name in ("extension", "modifierExtension"):
                steps.append((key, _Step(_EXTENSION, child_path, child=True, text=text)))
                continue
            if node is ALL or node is True:
                child: Tree | bool = ALL
            else:
                assert isinstance(node, dict)
                choice = f"{info.name}[x]" if info.choice else name
                child = node.get(name) or node.get(choice) or False
            if not child or type_code in NEVER:
                removed.append(child_path)
                continue
            if key.startswith("_"):
                element = self._index.model("Element")
                steps.append((key, _Step(_PRIMITIVE_EXT, child_path, element, True, text)))
                continue
            rel = f"{relative}.{name}" if relative else name
            rel_choice = f"{relative}.{info.name}[x]" if relative else f"{info.name}[x]"
            keeps_text = (
                text or rel in texts or (info.choice and rel_choice in texts) or "*" in texts
            )
            if info.children is not None or info.content_ref:
                sub = info.children
                if sub is None and info.content_ref:
                    target = self._index.element(info.content_ref)
                    sub = target.children if target is not None else None
                if sub is None:
                    removed.append(child_path)
                    continue
                steps.append((key, _Step(_OBJECT, child_path, sub, child, keeps_text)))
            elif type_code == "Resource":
                steps.append((key, _Step(_RESOURCE, child_path, None, child, keeps_text)))
            elif type_code in CODED:
                steps.append((key, _Step(_COPY, child_path)))
            elif type_code in DATES:
                steps.append((key, _Step(_DATE, child_path)))
            elif _coded_string(model.name, name):
                steps.append((key, _Step(_COPY, child_path)))
            elif model.name == "Reference" and name == "reference":
                steps.append((key, _Step(_REF, child_path)))
            elif type_code in URIS:
                if (model.name, name) in _CODED_URIS or (
                    model.name in QUANTITIES and name == "system"
                ):
                    steps.append((key, _Step(_COPY, child_path)))
                else:
                    removed.append(child_path)
            elif type_code in TEXT:
                if keeps_text:
                    steps.append((key, _Step(_TEXT, child_path)))
                else:
                    removed.append(child_path)
            else:
                sub = self._index.model(type_code)
                if sub is None or sub.kind in ("primitive-type", "resource"):
                    removed.append(child_path)
                    continue
                steps.append((key, _Step(_OBJECT, child_path, sub, child, keeps_text)))
        age = model.name in QUANTITIES and "value" in keys and "code" in keys
        return _Plan(steps, removed, age)

    def _object(self, value: JSON, ctx: _Context, walk: _Step, rtype: str) -> JSON:
        """An object walked by the plan of its shape at the place ``walk`` describes."""
        keys = tuple(value)
        plan = walk.plans.get(keys)
        if plan is None:
            assert walk.model is not None
            plan = self._plan(keys, walk.model, walk.child, rtype, walk.path, walk.text)
            if self._plan_count < MAX_PLANS:
                if not walk.plans:
                    self._steps.append(walk)
                walk.plans[keys] = plan
                self._plan_count += 1
            else:  # not remembered: count its removals now
                for removed in plan.removed:
                    self._count(self.removed, removed)
        plan.uses += 1
        if plan.copy:
            for item in value.values():
                if type(item) not in _SCALARS:
                    break
            else:
                return value
        out: JSON = {}
        for key, step in plan.steps:
            item = value[key]
            action = step.action
            kind = type(item)
            if action == _COPY and kind in _SCALARS:
                out[key] = item
            elif action == _OBJECT and kind is dict:
                result = self._object(item, ctx, step, rtype)
                if result:
                    out[key] = result
            elif action == _REF and kind is str:
                reference = self._reference(item)
                if reference is None:
                    self._count(self.removed, step.path)
                else:
                    out[key] = reference
            elif action == _DATE and kind is str and _ANY_DATE.match(item):
                if len(item) >= 10:
                    out[key] = _shift_day(item[:10], ctx.days) + item[10:]
                else:
                    out[key] = shift_date(item, ctx.days)
            elif kind is list and action == _OBJECT:
                kept = []
                for v in item:
                    if type(v) is dict:
                        result = self._object(v, ctx, step, rtype)
                        if result:
                            kept.append(result)
                if kept:
                    out[key] = kept
            elif kind is list:
                kept = [self._item(v, step, ctx, rtype) for v in item]
                if step.action == _PRIMITIVE_EXT:
                    if any(v is not None for v in kept):
                        out[key] = kept
                    continue
                kept = [v for v in kept if v is not None]
                if kept:
                    out[key] = kept
            else:
                result = self._item(item, step, ctx, rtype)
                if result is not None:
                    out[key] = result
        if plan.age and _is_old_age(out):
            out["value"] = AGE_CAP
        return out

    def _item(self, item: Any, step: _Step, ctx: _Context, rtype: str) -> Any:
        action = step.action
        if action == _COPY:
            return item if type(item) is not dict and type(item) is not list else None
        if action == _DATE:
            if type(item) is str and _ANY_DATE.match(item):
                return shift_date(item, ctx.days)
            self._count(self.removed, step.path)
            return None
        if type(item) is dict:
            if action == _OBJECT:
                assert step.model is not None
                out = self._object(item, ctx, step, rtype)
                return out or None
            if action == _EXTENSION:
                return self._extension(item, ctx, rtype, step.path, step.text)
            if action == _PRIMITIVE_EXT:
                assert step.model is not None
                out = self._object(item, ctx, step, rtype)
                return out or None
            if action == _RESOURCE:
                return self._contained(item, ctx)
            self._count(self.removed, step.path)
            return None
        if type(item) is not str:
            if item is not None:
                self._count(self.removed, step.path)
            return None
        if action == _REF:
            rewritten = self._reference(item)
            if rewritten is None:
                self._count(self.removed, step.path)
            return rewritten
        if action == _TEXT:
            cleaned = scrub(item, ctx.names(), ctx.words())
            if cleaned != item:
                self._count(self.scrubbed, step.path)
            return cleaned
        self._count(self.removed, step.path)
        return None

    def _extension(self, item: JSON, ctx: _Context, rtype: str, path: str, text: bool) -> Any:
        """Rule 1: an extension is kept only when its URL is allowed (or it is a part of an
        allowed one); its value is walked by type, strings kept only for ``text`` URLs."""
        url = item.get("url")
        if not isinstance(url, str):
            self._count(self.removed, path)
            return None
        allowed = self.rules.extensions.get(url)
        relative = path.endswith("').extension") and "://" not in url  # a part of a kept one
        if allowed is None and not relative:  # its URL is not written into the account
            self._count(self.removed, f"{path}(unlisted URL)")
            return None
        keeps_text = bool(allowed) if allowed is not None else text
        walk = self._extension_steps.get((f"{path}('{url}')", keeps_text))
        if walk is None:
            walk = _Step(_OBJECT, f"{path}('{url[:200]}')", self._index.model("Extension"), ALL)
            walk.text = keeps_text
            if len(self._extension_steps) < MAX_REPORT_PATHS:
                self._extension_steps[(f"{path}('{url}')", keeps_text)] = walk
        out = self._object(item, ctx, walk, rtype)
        if not any(k.startswith("value") or k == "extension" for k in out):
            return None
        return out

    def _contained(self, item: JSON, ctx: _Context) -> JSON | None:
        rtype = item.get("resourceType")
        if not isinstance(rtype, str):
            return None
        out = self._resource(item, ctx, rtype)
        if isinstance(item.get("id"), str):
            out["id"] = self._local(item["id"])
        return out

    def _reference(self, reference: str) -> str | None:
        if reference.startswith("#"):
            return "#" + self._local(reference[1:]) if len(reference) > 1 else reference
        match = _RELATIVE_REF.match(reference)
        if match is None or not self._index.is_resource(match.group(1)):
            return None
        return f"{match.group(1)}/{self.pseudonym(match.group(1), match.group(2))}"


def _core_index() -> ModelIndex:
    """The element models of the core package the search registry reads."""
    definitions = get_registry().definitions
    if definitions is None:
        raise RuntimeError("de-identification needs the R4 core package in the package cache")
    return ModelIndex(definitions)


def _coded_string(type_name: str, name: str) -> bool:
    """Coding display and version, a Quantity's unit, an Extension's url: not free text."""
    if type_name in QUANTITIES:
        return name == "unit"
    return (type_name, name) in _CODED_STRINGS


def _is_old_age(value: JSON) -> bool:
    number = value.get("value")
    is_age = value.get("system") == "http://unitsofmeasure.org" and value.get("code") == "a"
    return is_age and isinstance(number, int | float) and number > AGE_CAP - 1


@functools.lru_cache(maxsize=CACHE_SIZE)
def _shift_day(day: str, days: int) -> str:
    return (date.fromisoformat(day) - timedelta(days=days)).isoformat()


def shift_date(value: str, days: int) -> str:
    """``value`` (a FHIR date, dateTime or instant) moved back by ``days``, same precision.

    https://hl7.org/fhir/R4/datatypes.html#dateTime
    """
    if _FULL_DATE.match(value):
        return _shift_day(value, days)
    if _DATE_TIME.match(value):
        return _shift_day(value[:10], days) + value[10:]
    partial = _PARTIAL_DATE.match(value)
    if partial:
        year = int(partial.group(1))
        if partial.group(2) is None:
            return f"{year - round(days / 365.25):04d}"
        month = int(partial.group(2))
        start = date(year, month, 1) - timedelta(days=days)
        return f"{start.year:04d}-{start.month:02d}"
    return value
