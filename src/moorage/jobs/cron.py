"""Cron expressions (five fields, as crontab(5); ``@daily``-style aliases), validated and stepped."""

from __future__ import annotations

import datetime as dt

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterNotAlphaError, croniter


class CronError(ValueError):
    pass


def validate(expression: str) -> str:
    """The expression, stripped, when it parses as a five-field cron line; ``CronError`` otherwise."""
    text = " ".join(expression.split())
    fields = text.split(" ")
    if not text or (not text.startswith("@") and len(fields) != 5):
        raise CronError(
            f"cron expression {expression!r} must have five fields: minute hour day month weekday"
        )
    try:
        croniter(text, dt.datetime(2000, 1, 1, tzinfo=dt.UTC)).get_next(dt.datetime)
    except (CroniterBadCronError, CroniterBadDateError, CroniterNotAlphaError, ValueError, KeyError) as exc:
        raise CronError(f"cron expression {expression!r} does not parse: {exc}") from None
    return text


def next_after(expression: str, after: dt.datetime) -> dt.datetime:
    """The first time strictly after ``after`` (UTC) that the expression names."""
    start = after.astimezone(dt.UTC)
    result = croniter(validate(expression), start).get_next(dt.datetime)
    assert isinstance(result, dt.datetime)
    return result.astimezone(dt.UTC)
