"""mappings.case.timing: the time grammar and calendar resolution against the anchor date."""

from datetime import date

import pytest

from mappings.case.timing import (
    Duration,
    RelativeTime,
    TimeSyntaxError,
    add_months,
    parse_duration,
    parse_time,
    resolve,
)

ANCHOR = date(2021, 3, 15)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("day 0", date(2021, 3, 15)),
        ("day -14", date(2021, 3, 1)),
        ("day +4", date(2021, 3, 19)),
        ("week +2", date(2021, 3, 29)),
        ("month +12", date(2022, 3, 15)),
        ("~month +21", date(2022, 12, 15)),
        ("year +2", date(2023, 3, 15)),
        ("month -3", date(2020, 12, 15)),
    ],
)
def test_resolves_against_the_anchor(text: str, expected: date) -> None:
    assert resolve(text, ANCHOR) == expected


def test_month_arithmetic_clamps_to_month_end() -> None:
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2023, 1, 31), 1) == date(2023, 2, 28)
    assert add_months(date(2024, 3, 31), -1) == date(2024, 2, 29)
    assert add_months(date(2024, 12, 31), 2) == date(2025, 2, 28)
    assert resolve("month +1", date(2021, 8, 31)) == date(2021, 9, 30)
    assert resolve("year +1", date(2024, 2, 29)) == date(2025, 2, 28)


def test_before_and_after_markers_order_but_have_no_date() -> None:
    before = parse_time("before day 0")
    after = parse_time("after month +17")
    assert before == RelativeTime("day", 0, False, "before")
    assert before.resolve(ANCHOR) is None and after.resolve(ANCHOR) is None
    assert not before.is_known
    assert before.sort_key() < parse_time("day 0").sort_key() < parse_time("after day 0").sort_key()
    assert (
        parse_time("month +17").sort_key() < after.sort_key() < parse_time("month +18").sort_key()
    )


def test_approximate_marker_and_round_trip() -> None:
    time = parse_time("~month +21")
    assert time.approximate and time.offset == 21 and time.unit == "month"
    for text in ("day 0", "day -14", "~month +21", "before day 0", "after week +2"):
        assert str(parse_time(text)) == text


@pytest.mark.parametrize(
    "bad", ["day", "day 4", "day +04", "days +4", "~before day 0", "month+1", "on day 0", ""]
)
def test_bad_times_are_refused(bad: str) -> None:
    with pytest.raises(TimeSyntaxError):
        parse_time(bad)


def test_durations() -> None:
    assert parse_duration("11 h") == Duration(11, "h")
    assert parse_duration("~11 h").approximate
    assert parse_duration("100 min").days() == pytest.approx(100 / 1440)
    assert parse_duration("2 wk").days() == 14
    assert parse_duration("20 a") == Duration(20, "a")
    assert str(parse_duration("4 d")) == "4 d"
    for bad in ("11h", "11 hours", "two weeks", "-3 d"):
        with pytest.raises(TimeSyntaxError):
            parse_duration(bad)
