"""Relative times and durations of a case file, and their resolution to calendar dates.

Every time in a case file is relative to one anchor (day 0, e.g. the day of surgery);
the calendar date of day 0 is not in the file but given when mapping, so every
FHIR dateTime (https://hl7.org/fhir/R4/datatypes.html#dateTime) of one case is
consistent. Grammar (see docs/case-format.md, "Times"):

    time      := ["~"] point | ("before" | "after") " " point
    point     := unit " " offset          offset := "0" | ("+" | "-") digits
    unit      := "day" | "week" | "month" | "year"
    duration  := ["~"] number " " ("min" | "h" | "d" | "wk" | "mo" | "a")

``~`` marks an approximate time; ``before``/``after`` mark a time the report does
not give beyond its side of a point: it orders, but resolves to no date.
Month and year offsets use calendar arithmetic clamped to the month end
(2024-01-31 + 1 month = 2024-02-29).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

TimeUnit = Literal["day", "week", "month", "year"]
Relation = Literal["at", "before", "after"]
DurationUnit = Literal["min", "h", "d", "wk", "mo", "a"]

TIME_PATTERN = r"^(?:~|(?:before|after) )?(?:day|week|month|year) (?:0|[+-][1-9][0-9]*)$"
DURATION_PATTERN = r"^~?(?:0|[1-9][0-9]*)(?:\.[0-9]+)? (?:min|h|d|wk|mo|a)$"

_TIME_RE = re.compile(
    r"^(?P<approx>~)?(?:(?P<rel>before|after) )?(?P<unit>day|week|month|year) "
    r"(?P<offset>0|[+-][1-9][0-9]*)$"
)
_DURATION_RE = re.compile(
    r"^(?P<approx>~)?(?P<value>[0-9]+(?:\.[0-9]+)?) (?P<unit>min|h|d|wk|mo|a)$"
)

# Average lengths in days, used only to order times of different units.
_UNIT_DAYS: dict[str, float] = {"day": 1.0, "week": 7.0, "month": 30.4375, "year": 365.25}
_DURATION_DAYS: dict[str, float] = {
    "min": 1 / 1440,
    "h": 1 / 24,
    "d": 1.0,
    "wk": 7.0,
    "mo": 30.4375,
    "a": 365.25,
}


class TimeSyntaxError(ValueError):
    """A time or duration string does not follow the grammar."""


@dataclass(frozen=True)
class RelativeTime:
    """A point relative to day 0, e.g. ``month +12``; ``before day 0`` has relation ``before``."""

    unit: TimeUnit
    offset: int
    approximate: bool = False
    relation: Relation = "at"

    @property
    def is_known(self) -> bool:
        """True when the time resolves to a date (not a before/after marker)."""
        return self.relation == "at"

    def resolve(self, anchor: date) -> date | None:
        """The calendar date of this time given the date of day 0; None for before/after."""
        if self.relation != "at":
            return None
        return shift(anchor, self.unit, self.offset)

    def sort_key(self) -> float:
        """Approximate days from day 0, for ordering; before/after sit half a day off the point."""
        days = self.offset * _UNIT_DAYS[self.unit]
        if self.relation == "before":
            return days - 0.5
        if self.relation == "after":
            return days + 0.5
        return days

    def __str__(self) -> str:
        point = f"{self.unit} {self.offset:+d}" if self.offset else f"{self.unit} 0"
        if self.relation != "at":
            return f"{self.relation} {point}"
        return f"~{point}" if self.approximate else point


@dataclass(frozen=True)
class Duration:
    """A length of time with a UCUM unit, e.g. ``11 h`` or ``~11 h``."""

    value: float
    unit: DurationUnit
    approximate: bool = False

    def days(self) -> float:
        """The length in (average) days."""
        return self.value * _DURATION_DAYS[self.unit]

    def __str__(self) -> str:
        number = f"{self.value:g}"
        return f"{'~' if self.approximate else ''}{number} {self.unit}"


def parse_time(text: str) -> RelativeTime:
    """Parse ``day 0``, ``~month +21``, ``before day 0``...; raise TimeSyntaxError otherwise."""
    match = _TIME_RE.match(text.strip()) if isinstance(text, str) else None
    if match is None or (match["approx"] and match["rel"]):
        raise TimeSyntaxError(
            f"bad time {text!r}: expected e.g. 'day 0', 'day -14', '~month +12' or 'before day 0'"
        )
    unit: TimeUnit = match["unit"]  # type: ignore[assignment]
    relation: Relation = match["rel"] or "at"  # type: ignore[assignment]
    return RelativeTime(unit, int(match["offset"]), bool(match["approx"]), relation)


def parse_duration(text: str) -> Duration:
    """Parse ``11 h``, ``100 min``, ``~4 d``, ``2 wk``, ``20 a``; else raise TimeSyntaxError."""
    match = _DURATION_RE.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise TimeSyntaxError(
            f"bad duration {text!r}: expected a number and a unit "
            "(min, h, d, wk, mo, a), e.g. '11 h'"
        )
    unit: DurationUnit = match["unit"]  # type: ignore[assignment]
    return Duration(float(match["value"]), unit, bool(match["approx"]))


def add_months(day: date, months: int) -> date:
    """``day`` plus ``months`` calendar months, clamped to the last day of the target month."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def shift(anchor: date, unit: TimeUnit, offset: int) -> date:
    """``anchor`` moved by ``offset`` units (days, weeks, calendar months or years)."""
    if unit == "day":
        return anchor + timedelta(days=offset)
    if unit == "week":
        return anchor + timedelta(weeks=offset)
    if unit == "month":
        return add_months(anchor, offset)
    return add_months(anchor, 12 * offset)


def resolve(text: str | RelativeTime, anchor: date) -> date | None:
    """Resolve a time (string or parsed) against the date of day 0; None for before/after."""
    time = parse_time(text) if isinstance(text, str) else text
    return time.resolve(anchor)
