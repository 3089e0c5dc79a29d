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

    def _digest(self, text: str) -> bytes:
        return hmac.new(self._key, text.encode("utf-8"), hashlib.sha256).digest()

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
        """A de-identified copy of ``resource`` (the input is left unchanged)."""
        patients = sorted(self._patients_of(resource), key=lambda p: self.pseudonym("Patient", p))
        days = self.offset_days(patients[0] if patients else None)
        rtype = str(resource.get("resourceType", ""))
        out = self._walk(resource, days, top=True)
        assert isinstance(out, dict)
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

    def _walk(self, value: Any, days: int, *, top: bool = False, key: str = "") -> Any:
        if isinstance(value, dict):
            return self._object(value, days, top=top)
        if isinstance(value, list):
            return [self._walk(v, days, key=key) for v in value]
        if isinstance(value, str):
            return self._string(value, days, key)
        return value

    def _object(self, value: JSON, days: int, *, top: bool) -> JSON:
        out: JSON = {}
        is_reference = "reference" in value and "code" not in value
        for key, item in value.items():
            if key in DROP_KEYS or key.endswith("Identifier"):
                continue
            if key == "text" and (top or isinstance(item, dict)):
                continue
            if key == "display" and (is_reference or "code" not in value):
                continue
            if key == "data" and "contentType" in value:
                continue
            if key in ("url", "title") and "contentType" in value:
                continue
            if key == "reference" and isinstance(item, str):
                rewritten = self._reference(item)
                if rewritten is not None:
                    out[key] = rewritten
                continue
            if key == "id" and not top:
                out[key] = item
                continue
            if key in ("system", "code", "url", "version", "unit", "resourceType"):
                out[key] = item
                continue
            out[key] = self._walk(item, days, key=key)
        if _is_old_age(out):
            out["value"] = AGE_CAP
        if "extension" in out and isinstance(out["extension"], list):
            out["extension"] = [e for e in out["extension"] if _extension_kept(e)]
            if not out["extension"]:
                del out["extension"]
        return out

    def _reference(self, reference: str) -> str | None:
        if reference.startswith("#"):
            return reference
        match = _RELATIVE_REF.match(reference)
        if match is None:
            return None
        return f"{match.group(1)}/{self.pseudonym(match.group(1), match.group(2))}"

    def _string(self, value: str, days: int, key: str) -> str:
        if _FULL_DATE.match(value) or _DATE_TIME.match(value):
            return shift_date(value, days)
        if _PARTIAL_DATE.match(value) and _DATE_KEY.search(key):
            return shift_date(value, days)
        return value


def _is_old_age(value: JSON) -> bool:
    number = value.get("value")
    is_age = value.get("system") == "http://unitsofmeasure.org" and value.get("code") == "a"
    return is_age and isinstance(number, int | float) and number > AGE_CAP - 1


def _extension_kept(extension: Any) -> bool:
    """Extensions left with no value and no sub-extension carried only dropped text."""
    if not isinstance(extension, dict):
        return False
    return any(k.startswith("value") or k == "extension" for k in extension)


def shift_date(value: str, days: int) -> str:
    """``value`` (a FHIR date, dateTime or instant) moved back by ``days``, same precision.

    https://hl7.org/fhir/R4/datatypes.html#dateTime
    """
    full = _FULL_DATE.match(value)
    if full:
        return (date.fromisoformat(value) - timedelta(days=days)).isoformat()
    stamped = _DATE_TIME.match(value)
    if stamped:
        day = date.fromisoformat(value[:10]) - timedelta(days=days)
        return day.isoformat() + value[10:]
    partial = _PARTIAL_DATE.match(value)
    if partial:
        year = int(partial.group(1))
        if partial.group(2) is None:
            return f"{year - round(days / 365.25):04d}"
        month = int(partial.group(2))
        start = date(year, month, 1) - timedelta(days=days)
        return f"{start.year:04d}-{start.month:02d}"
    return value
