"""A schedule in words, for people ("Every day at 09:00 (Europe/Rome)").

`describe` is the one function every surface calls. This version is deliberately simple and
covers the common shapes; the scheduling module may replace it with a full cron description
(cron-descriptor) and rrule text without touching any caller.
"""

from __future__ import annotations

import re

from deployments.models import DeploymentSchedule, ScheduleKind

_WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
_NUMBER = re.compile(r"^\d+$")


def describe(schedule: DeploymentSchedule) -> str:
    """The schedule's definition as a short English phrase, with its time zone when not UTC."""
    if schedule.kind == ScheduleKind.INTERVAL:
        text = _every(schedule.interval_seconds or 0)
    elif schedule.kind == ScheduleKind.CRON:
        text = _cron(schedule.cron.strip())
    else:
        text = f"Recurring rule {schedule.rrule.strip()}"
    if schedule.timezone and schedule.timezone != "UTC" and schedule.kind != ScheduleKind.INTERVAL:
        text = f"{text} ({schedule.timezone})"
    return text


def _every(seconds: int) -> str:
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"Every {unit}" if count == 1 else f"Every {count} {unit}s"
    return f"Every {seconds} seconds"


def _cron(expression: str) -> str:
    fields = expression.split()
    if len(fields) != 5:
        return f"Cron {expression}"
    minute, hour, day, month, weekday = fields
    if (day, month) != ("*", "*"):
        return f"Cron {expression}"
    if hour == "*" and weekday == "*":
        if minute == "*":
            return "Every minute"
        if minute.startswith("*/") and _NUMBER.match(minute[2:]):
            return f"Every {minute[2:]} minutes"
        if _NUMBER.match(minute):
            return f"Every hour at minute {int(minute)}"
    if _NUMBER.match(minute) and _NUMBER.match(hour):
        at = f"{int(hour):02d}:{int(minute):02d}"
        if weekday == "*":
            return f"Every day at {at}"
        days = _weekdays(weekday)
        if days:
            return f"At {at} on {days}"
    return f"Cron {expression}"


def _weekdays(field: str) -> str:
    """'1-5' -> 'Monday to Friday', '0,6' -> 'Sunday and Saturday'; '' when not understood."""
    if re.fullmatch(r"[0-7]-[0-7]", field):
        first, last = (int(x) % 7 for x in field.split("-"))
        return f"{_WEEKDAYS[first]} to {_WEEKDAYS[last]}"
    if re.fullmatch(r"[0-7](,[0-7])*", field):
        names = [_WEEKDAYS[int(x) % 7] for x in field.split(",")]
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return ""
