"""Schedules' cron expressions, read as Velero reads them (robfig/cron's standard parser).

Accepted: the standard five fields (minute hour day-of-month month
day-of-week, with ranges, steps, lists and names), the descriptors
``@yearly @annually @monthly @weekly @daily @midnight @hourly``, and
``@every <duration>`` (a Go duration: ``@every 6h``, ``@every 90s``). A
sixth (seconds) field is refused, as Velero refuses it. Times are UTC, the
server's clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import CroniterError, croniter

from strongroom.model.duration import parse_duration

__all__ = ["CronError", "CronSchedule", "parse_cron"]

_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class CronError(ValueError):
    """An expression Velero would not accept; the message says why."""


@dataclass(frozen=True)
class CronSchedule:
    """A parsed schedule: ``next(after)`` is the first activation strictly after ``after``."""

    expression: str
    fields: str | None = None
    every: timedelta | None = None

    def next(self, after: datetime) -> datetime:
        moment = after.astimezone(UTC) if after.tzinfo else after.replace(tzinfo=UTC)
        if self.every is not None:
            # robfig/cron's "@every": the interval after the given time, rounded down to the second.
            return moment.replace(microsecond=0) + self.every
        assert self.fields is not None
        result = croniter(self.fields, moment).get_next(datetime)
        assert isinstance(result, datetime)
        return result


def parse_cron(expression: str) -> CronSchedule:
    """The schedule, or CronError with a message fit for a Schedule's ``validationErrors``."""
    text = expression.strip()
    if not text:
        raise CronError("Schedule must be a non-empty valid Cron expression")
    if text.startswith("@every"):
        interval_text = text[len("@every") :].strip()
        try:
            interval = parse_duration(interval_text)
        except ValueError as exc:
            raise CronError(f"invalid schedule: failed to parse duration {text}: {exc}") from None
        # robfig/cron rounds a shorter interval up to one second
        interval = max(interval, timedelta(seconds=1))
        return CronSchedule(text, every=interval)
    if text.startswith("@"):
        fields = _DESCRIPTORS.get(text.lower())
        if fields is None:
            raise CronError(f"invalid schedule: unrecognized descriptor: {text}")
        return CronSchedule(text, fields=fields)
    parts = text.split()
    if len(parts) != 5:
        raise CronError(f"invalid schedule: expected exactly 5 fields, found {len(parts)}: {text}")
    try:
        croniter(text, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except (CroniterError, ValueError, KeyError) as exc:
        raise CronError(f"invalid schedule: {text}: {exc}") from None
    return CronSchedule(text, fields=text)
