"""FHIR date, dateTime and instant values as UTC ranges (https://hl7.org/fhir/R4/search.html#date).

A partial date stands for the whole interval it names: ``2013`` is
[2013-01-01T00:00Z, 2014-01-01T00:00Z). Ranges here are half-open: ``low`` is
included, ``high`` is not. Values without a timezone are read as UTC (the
server's zone); values with one are converted to UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from fhir_service.errors import InvalidRequest

MIN_INSTANT = datetime(1, 1, 1, tzinfo=UTC)
MAX_INSTANT = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)

_PATTERN = re.compile(
    r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?"
)


@dataclass(frozen=True, slots=True)
class DateRange:
    """A half-open UTC interval [low, high)."""

    low: datetime
    high: datetime


def _clamp(moment: datetime) -> datetime:
    return min(max(moment, MIN_INSTANT), MAX_INSTANT)


def _add_months(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + months
    return index // 12, index % 12 + 1


@lru_cache(maxsize=4096)
def parse_range(text: str) -> DateRange | None:
    """The range of a FHIR date/dateTime/instant, or ``None`` when ``text`` is not one.
    Cached: a transaction's resources share one lastUpdated, a record repeats its dates."""
    match = _PATTERN.fullmatch(text.strip())
    if match is None:
        return None
    g = match.groupdict()
    try:
        year = int(g["y"])
        if g["m"] is None:
            low = datetime(year, 1, 1, tzinfo=UTC)
            high = datetime(year + 1, 1, 1, tzinfo=UTC) if year < 9999 else MAX_INSTANT
            return DateRange(low, high)
        month = int(g["m"])
        if g["d"] is None:
            low = datetime(year, month, 1, tzinfo=UTC)
            ny, nm = _add_months(year, month, 1)
            high = datetime(ny, nm, 1, tzinfo=UTC) if ny <= 9999 else MAX_INSTANT
            return DateRange(low, high)
        day = datetime(year, month, int(g["d"]), tzinfo=UTC)
        if g["H"] is None:
            return DateRange(day, _clamp_add(day, timedelta(days=1)))
        offset = timedelta(0)
        tz = g["tz"]
        if tz and tz != "Z":
            sign = 1 if tz[0] == "+" else -1
            offset = sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
        hour, minute = int(g["H"]), int(g["M"])
        if hour > 23 or minute > 59:
            return None
        local = day.replace(hour=hour, minute=minute)
        step = timedelta(minutes=1)
        if g["S"] is not None:
            second = int(g["S"])
            if second > 59:
                return None
            local = local.replace(second=second)
            step = timedelta(seconds=1)
            if g["f"]:
                digits = g["f"][:6]
                local = local.replace(microsecond=int(digits.ljust(6, "0")))
                step = timedelta(microseconds=10 ** (6 - len(digits)))
        low = local - offset
        return DateRange(_clamp(low), _clamp(low + step))
    except (ValueError, OverflowError):
        return None


def _clamp_add(moment: datetime, delta: timedelta) -> datetime:
    try:
        return _clamp(moment + delta)
    except OverflowError:
        return MAX_INSTANT


def search_range(text: str, name: str) -> DateRange:
    """The range of a search value; InvalidRequest (400) when it is no FHIR date."""
    found = parse_range(text)
    if found is None:
        raise InvalidRequest(f"'{text[:60]}' is not a FHIR date for '{name}'", expression=name)
    return found
