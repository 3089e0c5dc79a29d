"""De-identification of exported resources, HIPAA Safe Harbor-style
(45 CFR 164.514(b)(2); FHIR security guidance https://hl7.org/fhir/R4/secpriv-module.html).

Rules, applied to every resource of an export:

1. Direct identifiers are dropped wherever they occur: ``name`` (of people, organizations and
   locations), ``identifier`` and every ``*Identifier`` (``groupIdentifier``, ...),
   ``telecom``, ``address``, ``photo``, ``contact``, ``position`` (geographic coordinates)
   and every ``value[x]`` of type HumanName, Address, ContactPoint, Identifier or Attachment.
2. Free text is dropped: the Narrative (``text`` with ``div``), Annotations (``note``),
   ``comment``, ``conclusion``, ``description``, ``patientInstruction``, ``presentedForm``,
   attachment payloads, ``valueString`` / ``valueMarkdown`` anywhere, and ``display`` of
   References (it often holds a person's name). Coding displays and CodeableConcept.text
   stay: they are terminology.
3. Dates: every date, dateTime and instant is shifted back by a per-patient offset of 366..730
   days derived from the secret with HMAC-SHA256, so intervals within one patient's record are
   kept while no calendar date survives. Year-only and year-month values move by whole
   years (1 or 2) and months. A resource belongs to the patient(s) of its Patient compartment;
   the lowest pseudonym's offset wins when there are several, a shared dataset offset when
   there is none.
4. Ages over 89: a birthDate that may give an age of 90 or more becomes the year
   ``reference_year - 90`` (everyone that old looks 90); Age quantities above 89 years become 90.
5. Ids become stable pseudonyms (HMAC-SHA256 of ``Type/id``, hex, 32 characters) and relative
   references ``Type/id`` are rewritten the same way, so they still resolve inside the export.
   Absolute references (to other servers) are dropped. ``meta`` keeps profiles and tags only.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

JSON = dict[str, Any]

DROP_KEYS = frozenset(
    {
        "identifier",
        "telecom",
        "address",
        "photo",
        "contact",
        "position",
        "note",
        "comment",
        "conclusion",
        "description",
        "patientInstruction",
        "presentedForm",
        "valueHumanName",
        "valueAddress",
        "valueContactPoint",
        "valueIdentifier",
        "valueAttachment",
        "valueString",
        "valueMarkdown",
    }
)
NAMED_TYPES = frozenset(
    {"Patient", "Practitioner", "RelatedPerson", "Person", "Organization", "Location"}
)
_FULL_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_DATE_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(.+)$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}(?:T.+)?$")
"""A full date or a dateTime/instant with a time: either form of _FULL_DATE, _DATE_TIME."""
_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?$")
_DATE_KEY = re.compile(r"(date|Date|start|end|issued|recorded|authoredOn|time|Time|created|when)")
_RELATIVE_REF = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(/_history/.+)?$")
MIN_SHIFT_DAYS = 366
SHIFT_SPAN_DAYS = 365
AGE_CAP = 90

PatientsOf = Callable[[JSON], set[str]]
"""The ids of the patients in whose compartment a resource is."""


class Deidentifier:
    """Applies the rules above with one secret; the same secret gives the same output."""

    def __init__(self, secret: str, patients_of: PatientsOf, *, reference_year: int) -> None:
        if not secret:
            raise ValueError("de-identification needs a non-empty secret")
        self._key = secret.encode("utf-8")
        self._patients_of = patients_of
        self._reference_year = reference_year
        # Bounded caches: references repeat (Patient/x, Encounter/y) but memory must not grow.
        self.pseudonym = functools.lru_cache(maxsize=65536)(self._pseudonym)  # type: ignore[method-assign]
        self.offset_days = functools.lru_cache(maxsize=65536)(self._offset_days)  # type: ignore[method-assign]
        self._reference = functools.lru_cache(maxsize=16384)(self._reference)  # type: ignore[method-assign]

    def _digest(self, text: str) -> bytes:
        return hmac.digest(self._key, text.encode("utf-8"), hashlib.sha256)

    def pseudonym(self, resource_type: str, id: str) -> str:
        """The stable pseudonymous id of ``resource_type/id``."""
        return self._pseudonym(resource_type, id)

    def _pseudonym(self, resource_type: str, id: str) -> str:
        return self._digest(f"id:{resource_type}/{id}").hex()[:32]

    def offset_days(self, patient_id: str | None) -> int:
        """Days by which that patient's dates move back (``None``: the dataset offset)."""
        return self._offset_days(patient_id)

    def _offset_days(self, patient_id: str | None) -> int:
        seed = int.from_bytes(self._digest(f"shift:{patient_id or ''}")[:8], "big")
        return MIN_SHIFT_DAYS + seed % SHIFT_SPAN_DAYS

    def apply(self, resource: JSON) -> JSON:
        """A de-identified copy of ``resource``. The input is left unchanged; objects the
        rules leave as they are may be shared between input and output."""
        patients = self._patients_of(resource)
        first = min(patients, key=lambda p: self.pseudonym("Patient", p)) if patients else None
        days = self.offset_days(first)
        rtype = str(resource.get("resourceType", ""))
        out = self._object(resource, days, True)
        if rtype in NAMED_TYPES:
            out.pop("name", None)
            out.pop("alias", None)
        if isinstance(resource.get("id"), str):
            out["id"] = self.pseudonym(rtype, resource["id"])
        meta = resource.get("meta")
        if isinstance(meta, dict):
            kept = {k: meta[k] for k in ("profile", "tag", "security") if k in meta}
            out.pop("meta", None)
            if kept:
                out["meta"] = kept
        if rtype == "Patient" and isinstance(resource.get("birthDate"), str):
            out["birthDate"] = self._birth_date(resource["birthDate"], days)
        return out

    def _birth_date(self, value: str, days: int) -> str:
        year = int(value[:4])
        if self._reference_year - year - 1 >= AGE_CAP - 1:
            return str(self._reference_year - AGE_CAP)
        return shift_date(value, days)

    def _object(self, value: JSON, days: int, top: bool) -> JSON:
        """Rules 1, 2, 3 and 5 on one JSON object, by the plan of its shape."""
        keys = tuple(value)
        plan = _PLANS.get((top, keys))
        if plan is None:
            plan = _plan(top, keys)
        steps, age, extension, scalars = plan
        if scalars is not None and _unchanged(value, scalars):
            return value
        out: JSON = {}
        for key, step in steps:
            item = value[key]
            if step == _COPY:
                out[key] = item
            elif type(item) is str:
                if step == _REFERENCE:
                    rewritten = self._reference(item)
                    if rewritten is not None:
                        out[key] = rewritten
                elif item and item[0].isdigit():
                    out[key] = _string(item, days, key)
                else:
                    out[key] = item
            elif step != _TEXT or not isinstance(item, dict):
                out[key] = self._value(item, days, key)
        if age and _is_old_age(out):
            out["value"] = AGE_CAP
        if extension:
            extensions = out.get("extension")
            if isinstance(extensions, list):
                kept = [e for e in extensions if _extension_kept(e)]
                if kept:
                    out["extension"] = kept
                else:
                    del out["extension"]
        return out

    def _value(self, value: Any, days: int, key: str) -> Any:
        if isinstance(value, str):
            return _string(value, days, key) if value and value[0].isdigit() else value
        if isinstance(value, dict):
            return self._object(value, days, False)
        if isinstance(value, list):
            return [self._value(v, days, key) for v in value]
        return value

    def _reference(self, reference: str) -> str | None:
        if reference.startswith("#"):
            return reference
        match = _RELATIVE_REF.match(reference)
        if match is None:
            return None
        return f"{match.group(1)}/{self.pseudonym(match.group(1), match.group(2))}"


def _string(value: str, days: int, key: str) -> str:
    """Rule 3 on a string that starts with a digit."""
    if _DAY.match(value):
        return _shift_day(value[:10], days) + value[10:]
    if _PARTIAL_DATE.match(value) and _DATE_KEY.search(key):
        return shift_date(value, days)
    return value


# The steps of a plan: how ``Deidentifier._object`` treats each element it keeps.
_COPY, _VALUE, _TEXT, _REFERENCE = range(4)
_COPIED = frozenset({"system", "code", "version", "unit", "resourceType"})
Plan = tuple[tuple[tuple[str, int], ...], bool, bool, tuple[str, ...] | None]
"""(steps, age check, extension check, the walked elements when every element is kept)."""
_SCALARS = (int, float, bool)
_PLANS: dict[tuple[bool, tuple[str, ...]], Plan] = {}
_MAX_PLANS = 16384


def _unchanged(value: JSON, scalars: tuple[str, ...]) -> bool:
    """True when the rules leave an object whose plan keeps every element as it is: its
    walked elements are numbers, booleans or strings that cannot be dates."""
    for key in scalars:
        item = value[key]
        if type(item) is str:
            if item and item[0].isdigit():
                return False
        elif type(item) not in _SCALARS:
            return False
    return True


def _plan(top: bool, keys: tuple[str, ...]) -> Plan:
    """Rules 1, 2 and 5 for an object with these element names (at the resource's top or
    within it): the elements kept and how, and whether the age and extension checks apply.
    Plans are remembered per shape; resources of a dataset have few shapes."""
    has_code = "code" in keys
    attachment = "contentType" in keys
    steps: list[tuple[str, int]] = []
    for key in keys:
        if key in DROP_KEYS or key.endswith("Identifier"):
            continue
        if key == "text":
            if not top:
                steps.append((key, _TEXT))  # a Narrative (an object) is dropped, a string kept
        elif key == "display":
            if has_code:  # Coding.display is terminology; any other display may name a person
                steps.append((key, _VALUE))
        elif key in ("data", "title"):
            if not attachment:
                steps.append((key, _VALUE))
        elif key == "url":
            if not attachment:
                steps.append((key, _COPY))
        elif key == "reference":
            steps.append((key, _REFERENCE))
        elif key in _COPIED or (key == "id" and not top):
            steps.append((key, _COPY))
        else:
            steps.append((key, _VALUE))
    age = has_code and "value" in keys and "system" in keys
    extension = "extension" in keys
    scalars = None
    # The resource itself is always copied: ``apply`` changes its copy.
    kept_as_is = not top and len(steps) == len(keys) and not age and not extension
    if kept_as_is and all(step in (_COPY, _VALUE) for _, step in steps):
        scalars = tuple(key for key, step in steps if step == _VALUE)
    plan = (tuple(steps), age, extension, scalars)
    if len(_PLANS) < _MAX_PLANS:
        _PLANS[(top, keys)] = plan
    return plan


def _is_old_age(value: JSON) -> bool:
    number = value.get("value")
    is_age = value.get("system") == "http://unitsofmeasure.org" and value.get("code") == "a"
    return is_age and isinstance(number, int | float) and number > AGE_CAP - 1


def _extension_kept(extension: Any) -> bool:
    """Extensions left with no value and no sub-extension carried only dropped text."""
    if not isinstance(extension, dict):
        return False
    return any(k.startswith("value") or k == "extension" for k in extension)


@functools.lru_cache(maxsize=16384)
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
