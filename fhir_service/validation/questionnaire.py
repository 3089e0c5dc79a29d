"""A QuestionnaireResponse against the Questionnaire it answers.

Implements the rules of https://hl7.org/fhir/R4/questionnaireresponse.html#link
and the item rules of https://hl7.org/fhir/R4/questionnaire.html (``Questionnaire.item``
``type``, ``required``, ``repeats``, ``answerOption``, ``maxLength``) with the
extensions of the core specification that constrain answers
(https://hl7.org/fhir/R4/extensibility-registry.html): ``minValue``, ``maxValue``,
``maxDecimalPlaces``, ``minLength``, ``regex``, ``questionnaire-minOccurs``,
``questionnaire-maxOccurs``, ``mimeType``, ``maxSize``,
``questionnaire-referenceResource`` and ``questionnaire-optionExclusive``.

The Questionnaire is found by the canonical ``QuestionnaireResponse.questionnaire``
among the definitions (installed or supplied) or, for ``#id``, among the contained
resources; one that cannot be found is not checked (the HL7 validator's default).
Answers are matched to items by ``linkId`` at the same level of nesting. A required
item without an answer is an error when the response is ``completed`` or
``amended``, otherwise a warning. Bindings to value sets (``answerValueSet``) are
left to the terminology checks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fhir_service.errors import Issue
from fhir_service.fhir.expansion import Expander
from fhir_service.fhir.package_cache import Definitions

SD = "http://hl7.org/fhir/StructureDefinition/"
_ANSWER_TYPES: dict[str, tuple[str, ...]] = {
    "boolean": ("boolean",),
    "decimal": ("decimal",),
    "integer": ("integer",),
    "date": ("date",),
    "dateTime": ("dateTime",),
    "time": ("time",),
    "string": ("string",),
    "text": ("string",),
    "url": ("uri",),
    "choice": ("Coding", "string"),
    "open-choice": ("Coding", "string"),
    "attachment": ("Attachment",),
    "reference": ("Reference",),
    "quantity": ("Quantity",),
}
_ANSWER_VALUE_TYPES = frozenset(t for types in _ANSWER_TYPES.values() for t in types)
_VALUE = re.compile(r"^value([A-Z]\w*)$")
_REFERENCE_TYPE = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[^/]+)?$")


def _type_name(suffix: str) -> str:
    if suffix in ("Coding", "Attachment", "Reference", "Quantity"):
        return suffix
    return suffix[0].lower() + suffix[1:]


def _value(answer: dict[str, Any]) -> tuple[str, Any] | None:
    for key, value in answer.items():
        m = _VALUE.match(key)
        if m:
            return _type_name(m.group(1)), value
    return None


def _ext(item: dict[str, Any], name: str) -> Any:
    """The value of an extension named in the core space, or by its full URL."""
    url = name if ":" in name else SD + name
    for ext in item.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == url:
            found = _value(ext)
            return found[1] if found else None
    return None


class QuestionnaireChecker:
    """Checks QuestionnaireResponses against Questionnaires of one set of definitions."""

    def __init__(self, definitions: Definitions, is_resource: Callable[[str], bool]) -> None:
        self.definitions = definitions
        self.is_resource = is_resource
        self._expander = Expander(definitions)

    def check(self, response: dict[str, Any], path: str) -> list[Issue]:
        url = response.get("questionnaire")
        if not isinstance(url, str):
            return []
        questionnaire = self._find(response, url)
        if questionnaire is None:
            return []
        if questionnaire.get("resourceType") != "Questionnaire":
            return [
                Issue(
                    "error",
                    "structure",
                    f"Canonical URL '{url}' refers to a resource that has the wrong type. "
                    f"Found {questionnaire.get('resourceType')} expecting one of Questionnaire",
                    [f"{path}.questionnaire"],
                )
            ]
        completed = response.get("status") in ("completed", "amended")
        out: list[Issue] = []
        self._items(
            questionnaire.get("item") or [], response.get("item") or [], path, completed, out
        )
        return out

    def _find(self, response: dict[str, Any], url: str) -> dict[str, Any] | None:
        if url.startswith("#"):
            for contained in response.get("contained") or []:
                if isinstance(contained, dict) and contained.get("id") == url[1:]:
                    return contained
            return None
        return self.definitions.resource(url)

    def _items(
        self,
        q_items: list[Any],
        r_items: list[Any],
        parent: str,
        completed: bool,
        out: list[Issue],
    ) -> None:
        by_link = {
            str(q.get("linkId")): q for q in q_items if isinstance(q, dict) and q.get("linkId")
        }
        seen: dict[str, list[int]] = {}
        for i, item in enumerate(r_items):
            if not isinstance(item, dict):
                continue
            link = str(item.get("linkId"))
            q = by_link.get(link)
            if q is None:
                out.append(
                    Issue(
                        "error",
                        "structure",
                        f"LinkId '{link}' not found in questionnaire",
                        [parent],
                    )
                )
                continue
            seen.setdefault(link, []).append(i)
            self._item(q, item, f"{parent}.item[{i}]", completed, out)
        for link, q in by_link.items():
            if (
                q.get("required") is True
                and link not in seen
                and q.get("type") != "display"
                and not q.get("enableWhen")  # may be disabled: then it needs no answer
            ):
                self._missing(q, parent, completed, out)

    def _missing(self, q: dict[str, Any], where: str, completed: bool, out: list[Issue]) -> None:
        severity = "error" if completed else "warning"
        if q.get("type") == "group":
            text = f"No response found for required item '{q.get('linkId')}'"
        else:
            text = f"No response answer found for required item '{q.get('linkId')}'"
        out.append(Issue(severity, "required", text, [where]))

    def _item(
        self, q: dict[str, Any], item: dict[str, Any], path: str, completed: bool, out: list[Issue]
    ) -> None:
        kind = str(q.get("type") or "")
        answers = [a for a in item.get("answer") or [] if isinstance(a, dict)]
        severity = "error" if completed else "warning"
        if kind in ("group", "display", "question"):
            if answers:
                text = (
                    f"Items of type '{kind}' cannot have answers"
                    if kind == "display"
                    else f"Items of type {kind} should not have answers"
                )
                out.append(Issue("error", "structure", text, [path]))
            if kind == "group":
                children = item.get("item") or []
                if q.get("required") is True and not children:
                    out.append(
                        Issue(severity, "required", "No sub-items found for required group", [path])
                    )
                self._items(q.get("item") or [], children, path, completed, out)
            elif kind == "question":
                for q_child in q.get("item") or []:
                    if isinstance(q_child, dict) and q_child.get("required") is True:
                        self._missing(q_child, path, completed, out)
            return
        if q.get("required") is True and not answers and not q.get("enableWhen"):
            self._missing(q, path, completed, out)
        if len(answers) > 1 and q.get("repeats") is not True:
            out.append(
                Issue(
                    "error",
                    "structure",
                    "Only one response answer item with this linkId allowed",
                    [path],
                )
            )
        least, most = _ext(q, "questionnaire-minOccurs"), _ext(q, "questionnaire-maxOccurs")
        if isinstance(least, int) and len(answers) < least:
            text = f"The minimum number of answers is {least} but this has {len(answers)} answers"
            out.append(Issue("error", "structure", text, [path]))
        if isinstance(most, int) and len(answers) > most:
            text = f"The maximum number of answers is {most} but this has {len(answers)} answers"
            out.append(Issue("error", "structure", text, [path]))
        allowed = _ANSWER_TYPES.get(kind)
        options = [o for o in q.get("answerOption") or [] if isinstance(o, dict)]
        if kind in ("choice", "open-choice"):
            extra = tuple(v[0] for v in (_value(o) for o in options) if v is not None)
            allowed = (*(allowed or ()), *extra)
        for j, answer in enumerate(answers):
            found = _value(answer)
            if found is None:
                continue
            vtype, value = found
            where = f"{path}.answer[{j}]"
            at = f"{where}.value.ofType({vtype})"
            if vtype not in _ANSWER_VALUE_TYPES:
                continue  # not a QuestionnaireResponse.item.answer.value[x]: a structure error
            if allowed is not None and vtype not in allowed:
                text = f"Answer value must be of the type {allowed[0]} not {vtype}"
                out.append(Issue("error", "structure", text, [at]))
                continue
            self._answer(q, kind, vtype, value, options, where, at, out)
            for child_q_items, child_items in [(q.get("item") or [], answer.get("item") or [])]:
                self._items(child_q_items, child_items, where, completed, out)
        self._exclusive(options, answers, path, out)

    def _answer(
        self,
        q: dict[str, Any],
        kind: str,
        vtype: str,
        value: Any,
        options: list[dict[str, Any]],
        where: str,
        at: str,
        out: list[Issue],
    ) -> None:
        def error(text: str, location: str = at) -> None:
            out.append(Issue("error", "structure", text, [location]))

        if options and kind != "open-choice":
            permitted = [
                v[1] for v in (_value(o) for o in options) if v is not None and v[0] == vtype
            ]
            if vtype == "Coding":
                if not any(_same_coding(value, p) for p in permitted):
                    system = value.get("system") if isinstance(value, dict) else None
                    code = value.get("code") if isinstance(value, dict) else None
                    error(f"The code {system}::{code} is not in the set of permitted values", where)
            elif value not in permitted:
                error(f"The {vtype} {value} is not in the set of permitted values")
        if vtype in ("integer", "decimal", "date", "dateTime", "time"):
            low, high = _ext(q, "minValue"), _ext(q, "maxValue")
            if low is not None and _less(value, low):
                error(f"The value {value} is less than the allowed minimum of {low}")
            if high is not None and _less(high, value):
                error(f"The value {value} is greater than the allowed maximum of {high}")
        if vtype == "decimal":
            places = _ext(q, "maxDecimalPlaces")
            text = repr(value)
            decimals = len(text.split(".", 1)[1]) if "." in text and "e" not in text else 0
            if isinstance(places, int) and decimals > places:
                error(f"The value {value} has too many decimal places (limit = {places})")
        if vtype == "string" and isinstance(value, str):
            least, most = _ext(q, "minLength"), q.get("maxLength")
            if isinstance(least, int) and len(value) < least:
                error(
                    f"The answer '{value}' is shorter then the required minimum length of {least}"
                )
            if isinstance(most, int) and len(value) > most:
                error(f"The answer '{value}' is longer then the allowed maximum length of {most}")
            pattern = _ext(q, "regex")
            if isinstance(pattern, str):
                try:
                    ok = re.fullmatch(pattern, value) is not None
                except re.error:
                    ok = True
                if not ok:
                    error(f"The answer '{value}' does not conform to the expected format")
        if vtype == "Attachment" and isinstance(value, dict):
            types = [
                e.get("valueCode")
                for e in q.get("extension") or []
                if isinstance(e, dict) and e.get("url") == SD + "mimeType"
            ]
            content = value.get("contentType")
            if types and isinstance(content, str) and content not in types:
                error(
                    f"The mime type {content} is not valid for this answer "
                    f"(allowed = {','.join(str(t) for t in types)})",
                    where,
                )
            limit, size = _ext(q, "maxSize"), value.get("size")
            if isinstance(limit, (int, float)) and isinstance(size, int) and size > limit:
                error(f"The attachment is too large (allowed = {limit}, found = {size})", where)
        if vtype == "Reference" and isinstance(value, dict):
            self._reference(q, value, at, error)
        if vtype == "Quantity" and isinstance(value, dict):
            _quantity(q, value, error)
            self._unit_value_set(q, value, error)

    def _unit_value_set(self, q: dict[str, Any], value: dict[str, Any], error: Any) -> None:
        """The unit of an answer is in ``questionnaire-unitValueSet``
        (https://hl7.org/fhir/R4/extension-questionnaire-unitvalueset.html), when that can
        be told offline: the value set expands, or none of its includes is the unit's
        system."""
        url = _ext(q, "questionnaire-unitValueSet")
        vs = self.definitions.value_set(url) if isinstance(url, str) else None
        if vs is None:
            return
        system, code = value.get("system"), value.get("code")
        includes = [
            i for i in (vs.get("compose") or {}).get("include") or [] if isinstance(i, dict)
        ]
        if not includes or any("system" not in i for i in includes):
            return
        if system in {i.get("system") for i in includes} and isinstance(code, str):
            expansion = self._expander.expand(str(url))
            if not expansion.known or expansion.contains(system, code):
                return
        error(f"The value {_label(value)} has a unit that is not in the unit value set '{url}'")

    def _reference(self, q: dict[str, Any], value: dict[str, Any], at: str, error: Any) -> None:
        ref = value.get("reference")
        if not isinstance(ref, str) or ref.startswith("#"):
            return
        if " " in ref:
            error(f"The reference '{ref}' is not a valid reference")
        m = _REFERENCE_TYPE.search(ref)
        if m is None:
            return
        rtype = m.group(1)
        if not self.is_resource(rtype):
            error(f"The resource type {rtype} in the reference {ref} is not valid")
            return
        allowed = [
            str(e.get("valueCode"))
            for e in q.get("extension") or []
            if isinstance(e, dict) and e.get("url") == SD + "questionnaire-referenceResource"
        ]
        if allowed and rtype not in allowed and "Resource" not in allowed:
            error(
                f"The resource type '{rtype}' in the reference {ref} is not allowed "
                f"(allowed = {','.join(allowed)})"
            )

    def _exclusive(
        self,
        options: list[dict[str, Any]],
        answers: list[dict[str, Any]],
        path: str,
        out: list[Issue],
    ) -> None:
        if len(answers) < 2:
            return
        exclusive = [
            found[1]
            for o in options
            if _ext(o, "questionnaire-optionExclusive") is True and (found := _value(o)) is not None
        ]
        for j, answer in enumerate(answers):
            found = _value(answer)
            if found is None:
                continue
            if any(found[1] == e or _same_coding(found[1], e) for e in exclusive):
                value = found[1]
                label = (
                    f"{value.get('system')}#{value.get('code')}"
                    if isinstance(value, dict)
                    else value
                )
                text = (
                    f"Selected answer {label} is an exclusive option - can't select anything else "
                    "at the same time"
                )
                out.append(Issue("error", "structure", text, [f"{path}.answer[{j}]"]))


def _same_coding(a: Any, b: Any) -> bool:
    if not isinstance(a, dict) or not isinstance(b, dict):
        return False
    return bool(a.get("code") == b.get("code") and a.get("system") == b.get("system"))


def _less(a: Any, b: Any) -> bool:
    """a < b for numbers, or for dates and times of the same form (ISO 8601 order)."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return bool(a < b)
    if isinstance(a, str) and isinstance(b, str):
        return a < b
    return False


UCUM = "http://unitsofmeasure.org"
SDC = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-"
# UCUM units by dimension, as multiples of the base unit (https://ucum.org/ucum, §§ 4-5):
# enough to compare quantities of the common units; others are not comparable here.
_UCUM_SCALE: dict[str, tuple[str, float]] = {
    "m": ("length", 1.0),
    "km": ("length", 1000.0),
    "cm": ("length", 0.01),
    "mm": ("length", 0.001),
    "[in_i]": ("length", 0.0254),
    "[ft_i]": ("length", 0.3048),
    "[mi_i]": ("length", 1609.344),
    "g": ("mass", 1.0),
    "kg": ("mass", 1000.0),
    "mg": ("mass", 0.001),
    "ug": ("mass", 0.000001),
    "[lb_av]": ("mass", 453.59237),
    "s": ("time", 1.0),
    "min": ("time", 60.0),
    "h": ("time", 3600.0),
    "d": ("time", 86400.0),
    "L": ("volume", 1.0),
    "mL": ("volume", 0.001),
}


def _label(q: dict[str, Any]) -> str:
    unit = q.get("unit") or q.get("code")
    system, code = q.get("system"), q.get("code")
    formal = f" (UCUM#{code or 'null'})" if system == UCUM else ""
    return f"{_number(q.get('value'))} {unit}{formal}"


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _quantity(q: dict[str, Any], value: dict[str, Any], error: Callable[[str], None]) -> None:
    """An answer Quantity against ``questionnaire-unitOption``
    (https://hl7.org/fhir/R4/extension-questionnaire-unitoption.html) and the SDC
    ``sdc-questionnaire-minQuantity`` / ``maxQuantity`` extensions
    (https://hl7.org/fhir/uv/sdc/behavior.html#minQuantity): limits compare only in
    formal (UCUM) units of the same dimension."""
    options: list[dict[str, Any]] = [
        e["valueCoding"]
        for e in q.get("extension") or []
        if isinstance(e, dict)
        and e.get("url") == SD + "questionnaire-unitOption"
        and isinstance(e.get("valueCoding"), dict)
    ]
    if options and not any(
        o.get("system") == value.get("system") and o.get("code") == value.get("code")
        for o in options
    ):
        allowed = ",".join(
            f"{o.get('display') or o.get('code')} (UCUM#{o.get('code')})" for o in options
        )
        error(f"The value {_label(value)} has a unit that is not valid (allowed = {allowed})")
    for name, word in ((SDC + "minQuantity", "minimum"), (SDC + "maxQuantity", "maximum")):
        limit = _ext(q, name)
        if not isinstance(limit, dict) or not isinstance(value.get("value"), (int, float)):
            continue
        if not (value.get("system") == UCUM and limit.get("system") == UCUM):
            error(
                f"The quantity {_label(value)} cannot be compared to the allowed {word} of "
                f"{_label(limit)} because no formal units are specified"
            )
            continue
        mine, theirs = (
            _UCUM_SCALE.get(str(value.get("code"))),
            _UCUM_SCALE.get(str(limit.get("code"))),
        )
        if value.get("code") == limit.get("code"):
            mine = theirs = ("same", 1.0)
        if mine is None or theirs is None or mine[0] != theirs[0]:
            error(
                f"The quantity {_label(value)} cannot be compared to the allowed {word} of "
                f"{_label(limit)}"
            )
            continue
        a = float(value["value"]) * mine[1]
        b = float(limit.get("value") or 0) * theirs[1]
        if (a < b) if word == "minimum" else (a > b):
            relation = "less" if word == "minimum" else "greater"
            error(
                f"The quantity {_label(value)} is {relation} than the allowed {word} of "
                f"{_label(limit)}"
            )
