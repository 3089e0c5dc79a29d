"""lowBoundary() and highBoundary() (FHIRPath 3.0, "Utility functions"; required by
https://sql-on-fhir.org/ig/latest/StructureDefinition-ViewDefinition.html#required-fhirpath-expressionsfunctions):
the least and greatest values an imprecise decimal, date, dateTime or time may stand for.
"""

from __future__ import annotations

import calendar
import re
from decimal import Decimal
from typing import Any

from fhirpathpy.engine.nodes import TypeInfo
from fhirpathpy.engine.util import get_data

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
_DATETIME = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_TIME = re.compile(r"^(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?$")


def _kind(node: Any, data: Any) -> str:
    if isinstance(data, bool):
        return "other"
    if isinstance(data, int | Decimal | float):
        return "decimal"
    if not isinstance(data, str):
        return "other"
    name = TypeInfo.from_value(node).name if not isinstance(node, str) else None
    if name in ("dateTime", "instant") or "T" in data:
        return "dateTime"
    if name == "time" or _TIME.match(data):
        return "time"
    return "date" if _DATE.match(data) else "other"


def _decimal(value: Any, high: bool) -> Decimal:
    number = Decimal(str(value))
    places = max(-number.as_tuple().exponent, 0)  # type: ignore[operator]
    half = Decimal(5) / Decimal(10) ** (places + 1)
    return number + half if high else number - half


def _date(text: str, high: bool) -> str | None:
    match = _DATE.match(text)
    if not match:
        return None
    year, month, day = match.groups()
    month = month or ("12" if high else "01")
    if day is None:
        day = f"{calendar.monthrange(int(year), int(month))[1]:02d}" if high else "01"
    return f"{year}-{month}-{day}"


def _time(
    hour: str, minute: str | None, second: str | None, fraction: str | None, high: bool
) -> str:
    minute = minute or ("59" if high else "00")
    second = second or ("59" if high else "00")
    if fraction is None:
        fraction = "999" if high else "000"
    else:
        fraction = (fraction + ("9" if high else "0") * 3)[:3] if len(fraction) < 3 else fraction
    return f"{hour}:{minute}:{second}.{fraction}"


def _datetime(text: str, high: bool) -> str | None:
    match = _DATETIME.match(text)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    date = _date("-".join(p for p in (year, month, day) if p), high)
    if hour is None:
        # No time part: the widest offsets (spec: +14:00 for the low, -12:00 for the high).
        clock = _time("23" if high else "00", None, None, None, high)
        return f"{date}T{clock}{'-12:00' if high else '+14:00'}"
    zone = zone or ("-12:00" if high else "+14:00")
    return f"{date}T{_time(hour, minute, second, fraction, high)}{zone}"


def _boundary(node: Any, high: bool) -> Any:
    data = get_data(node)
    if not isinstance(data, str | int | float | Decimal) and data is not None:
        data = str(data)
    kind = _kind(node, data)
    if kind == "decimal":
        return _decimal(data, high)
    if kind == "date":
        return _date(data, high)
    if kind == "dateTime":
        return _datetime(data, high)
    if kind == "time":
        match = _TIME.match(data)
        if not match:
            return None
        hour, minute, second, fraction = match.groups()
        return _time(hour, minute, second, fraction, high)
    return None


def low_boundary(node: Any) -> Any:
    """The least value ``node`` may stand for (None when it has no boundary)."""
    return _boundary(node, high=False)


def high_boundary(node: Any) -> Any:
    """The greatest value ``node`` may stand for (None when it has no boundary)."""
    return _boundary(node, high=True)
