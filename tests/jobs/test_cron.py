"""Cron expressions: what parses, and that the next time is the first matching minute after a moment."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moorage.jobs.cron import CronError, next_after, validate

moments = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2090, 1, 1), timezones=st.just(dt.UTC)
)


@pytest.mark.parametrize(
    "bad",
    ["", "* * * *", "* * * * * *", "61 * * * *", "* 25 * * *", "a b c d e", "*/0 * * * *", "@sometimes"],
)
def test_bad_expressions_are_refused(bad: str) -> None:
    with pytest.raises(CronError):
        validate(bad)


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("*/15 * * * *", "2026-11-27T10:07:30", "2026-11-27T10:15:00"),
        ("0 3 * * *", "2026-11-27T03:00:00", "2026-11-28T03:00:00"),
        ("30 2 * * 0", "2026-11-27T00:00:00", "2026-11-29T02:30:00"),  # the next Sunday
        ("@daily", "2026-12-31T23:59:59", "2027-01-01T00:00:00"),
        ("0 0 1 * *", "2026-11-27T00:00:00", "2026-12-01T00:00:00"),
    ],
)
def test_next_after_known_cases(expr: str, after: str, expected: str) -> None:
    start = dt.datetime.fromisoformat(after).replace(tzinfo=dt.UTC)
    assert next_after(expr, start) == dt.datetime.fromisoformat(expected).replace(tzinfo=dt.UTC)


@given(moments, st.integers(1, 59), st.integers(0, 23))
def test_next_after_is_strictly_later_and_matches(moment: dt.datetime, step: int, hour: int) -> None:
    expr = f"*/{step} {hour} * * *"
    nxt = next_after(expr, moment)
    assert nxt > moment
    assert nxt.hour == hour
    assert nxt.minute % step == 0
    assert nxt.second == 0
    assert nxt - moment <= dt.timedelta(days=1, minutes=1)


@given(moments)
def test_every_minute_is_the_next_minute(moment: dt.datetime) -> None:
    nxt = next_after("* * * * *", moment)
    assert nxt == moment.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)


def test_whitespace_is_normalised() -> None:
    assert validate("  */5   *  * * *  ") == "*/5 * * * *"
