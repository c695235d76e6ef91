"""Schedules as plain definitions: validation, fire times, words for people. No ORM here;
the scheduler service (deployments.services.schedule_deployments) turns fire times into runs.

Three kinds, each in an IANA timezone:
- cron: five fields (minute hour day-of-month month day-of-week) or an @alias (@hourly, @daily,
  @weekly, @monthly, @yearly), read by croniter;
- interval: every N seconds from an anchor (default: midnight 2020-01-01 in the timezone);
- rrule: an RFC 5545 recurrence (`FREQ=WEEKLY;BYDAY=MO;BYHOUR=9`, optionally with a DTSTART
  line), read by dateutil. A DTSTART without a zone is wall-clock time in the schedule's
  timezone; the default DTSTART is the anchor, else midnight 2020-01-01 there.

Daylight saving time: cron, rrule and whole-day intervals work on the wall clock, so a daily
09:00 run stays at 09:00 local across the change. A wall-clock time that does not exist (the
hour skipped in spring) fires when the clock jumps, shifted by the gap (02:30 -> 03:30); one that
happens twice (the hour repeated in autumn) fires once, on its first pass. Intervals that are not
whole days count real seconds (UTC), so "every 2 hours" stays 2 hours apart. Fire times never
repeat and always increase.
"""

from __future__ import annotations

import bisect
import itertools
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cron_descriptor import ExpressionDescriptor
from croniter import croniter
from dateutil.rrule import DAILY, HOURLY, MINUTELY, SECONDLY, WEEKLY, rrule, rruleset, rrulestr

from orchestrator.core.errors import ValidationError

CRON, INTERVAL, RRULE = "cron", "interval", "rrule"
KINDS = (CRON, INTERVAL, RRULE)
DAY = 86400
DEFAULT_ANCHOR = datetime(2020, 1, 1)  # wall-clock midnight in the schedule's timezone
CRON_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@dataclass(frozen=True)
class ScheduleSpec:
    """What a schedule fires on. Built from a DeploymentSchedule row (`of`) or from input."""

    kind: str
    cron: str = ""
    interval_seconds: int | None = None
    anchor_at: datetime | None = None
    rrule: str = ""
    timezone: str = "UTC"

    @classmethod
    def of(cls, schedule: Any) -> ScheduleSpec:
        return cls(
            kind=schedule.kind,
            cron=schedule.cron or "",
            interval_seconds=schedule.interval_seconds,
            anchor_at=schedule.anchor_at,
            rrule=schedule.rrule or "",
            timezone=schedule.timezone or "UTC",
        )

    @classmethod
    def of_definition(cls, definition: Mapping[str, Any]) -> ScheduleSpec:
        """From a schedule definition as deployments.specs.schedule_definition and the wizard
        make it ({"kind": ..., "cron"/"interval_seconds"/"rrule": ..., "timezone": ...})."""
        return cls(
            kind=definition.get("kind", ""),
            cron=definition.get("cron") or "",
            interval_seconds=definition.get("interval_seconds"),
            rrule=definition.get("rrule") or "",
            timezone=definition.get("timezone") or "UTC",
        )


# --- validation -------------------------------------------------------------------------------


def validate_schedule(spec: ScheduleSpec, *, now: datetime | None = None) -> None:
    """Check a definition; raises ValidationError with a message per field (`cron`,
    `interval_seconds`, `anchor_at`, `rrule`, `timezone`, `kind`). The CLI, the API, the admin
    form and the deploy command all call this one function."""
    errors: dict[str, list[str]] = {}

    def fail(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    try:
        _zone(spec.timezone)
    except ValueError as error:
        fail("timezone", str(error))
    if spec.kind not in KINDS:
        fail("kind", f"Unknown schedule kind {spec.kind!r} (use cron, interval or rrule).")
    if spec.kind != CRON and spec.cron:
        fail("cron", "Only cron schedules take a cron expression.")
    if spec.kind != INTERVAL and spec.interval_seconds is not None:
        fail("interval_seconds", "Only interval schedules take an interval.")
    if spec.kind != RRULE and spec.rrule:
        fail("rrule", "Only rrule schedules take a recurrence rule.")
    if spec.anchor_at is not None and spec.anchor_at.tzinfo is None:
        fail("anchor_at", "The anchor needs a timezone (an aware datetime).")
    if spec.kind == CRON:
        if message := _cron_problem(spec.cron):
            fail("cron", message)
    elif spec.kind == INTERVAL:
        if not isinstance(spec.interval_seconds, int) or spec.interval_seconds < 1:
            fail("interval_seconds", "An interval is a whole number of seconds, at least 1.")
    elif spec.kind == RRULE:
        if message := _rrule_problem(spec.rrule, spec.timezone if "timezone" not in errors else "UTC"):
            fail("rrule", message)
    if not errors:
        after = now or datetime.now(UTC)
        if next(iter_fire_times(spec, after), None) is None:
            fail(_definition_field(spec.kind), "This schedule never fires after now.")
    if errors:
        field, messages = next(iter(errors.items()))
        raise ValidationError(f"Invalid schedule ({field}): {messages[0]}", errors)


def _definition_field(kind: str) -> str:
    return {CRON: "cron", INTERVAL: "interval_seconds", RRULE: "rrule"}[kind]


def _cron_problem(expression: str) -> str:
    expression = _normalise_cron(expression)
    if not expression:
        return "A cron schedule needs an expression, e.g. '0 9 * * 1-5'."
    fields = expression.split()
    if len(fields) != 5:
        return (
            f"{expression!r} has {len(fields)} fields; use five: minute hour day-of-month month "
            "day-of-week (e.g. '*/15 9-17 * * 1-5')."
        )
    try:
        croniter(expression)
    except (ValueError, KeyError) as error:  # croniter's errors are ValueErrors
        return f"{expression!r} is not a valid cron expression: {error}"
    return ""


def _rrule_problem(text: str, timezone: str) -> str:
    if not (text or "").strip():
        return "An rrule schedule needs a rule, e.g. 'FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0'."
    try:
        _parse_rrule(text.strip(), timezone, None)
    except (ValueError, TypeError, KeyError) as error:
        return f"Not an RFC 5545 recurrence rule: {error}"
    return ""


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    if not name or name != name.strip():
        raise ValueError(f"{name!r} is not an IANA timezone name (e.g. Europe/Berlin).")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA timezone name (e.g. Europe/Berlin).") from None


def _normalise_cron(expression: str) -> str:
    expression = " ".join((expression or "").split())
    return CRON_ALIASES.get(expression.lower(), expression)


# --- fire times -------------------------------------------------------------------------------


def iter_fire_times(spec: ScheduleSpec, after: datetime) -> Iterator[datetime]:
    """Fire times strictly after `after`, ascending, as aware UTC datetimes. Endless, except
    for an rrule with COUNT or UNTIL. The definition must be valid (validate_schedule)."""
    if spec.kind == INTERVAL:
        raw = _interval_times(spec, after)
    elif spec.kind == CRON:
        raw = _wall_clock_times(_cron_stepper(_normalise_cron(spec.cron)), spec.timezone, after)
    else:
        raw = _rrule_times(spec, after)
    last = after
    for moment in raw:
        # Wall-clock schedules map a skipped hour onto the next one: never fire twice.
        if moment > last:
            last = moment
            yield moment


def upcoming_fire_times(
    spec: ScheduleSpec,
    now: datetime,
    *,
    min_runs: int,
    min_ahead: timedelta,
    max_runs: int,
    horizon: timedelta,
) -> list[datetime]:
    """The fire times the scheduler keeps runs for: at least `min_runs` and at least `min_ahead`
    into the future, at most `max_runs`, none beyond `now + horizon`."""
    times: list[datetime] = []
    for moment in iter_fire_times(spec, now):
        if len(times) >= max_runs or moment > now + horizon:
            break
        if len(times) >= min_runs and moment > now + min_ahead:
            break
        times.append(moment)
    return times


def fire_times_between(spec: ScheduleSpec, start: datetime, end: datetime, *, last: int) -> list[datetime]:
    """The latest `last` fire times in (start, end]."""
    kept: deque[datetime] = deque(maxlen=max(last, 0))
    if last <= 0:
        return []
    for moment in iter_fire_times(spec, start):
        if moment > end:
            break
        kept.append(moment)
    return list(kept)


def next_fire_times(spec: ScheduleSpec, count: int = 5, *, after: datetime | None = None) -> list[datetime]:
    """The next `count` fire times, in the schedule's timezone (for people)."""
    zone = _zone(spec.timezone)
    moments = itertools.islice(iter_fire_times(spec, after or datetime.now(UTC)), count)
    return [moment.astimezone(zone) for moment in moments]


def _to_utc(naive: datetime, zone: ZoneInfo) -> datetime:
    # fold=0: a skipped wall-clock time maps forward by the gap, a repeated one to its first pass.
    return naive.replace(tzinfo=zone).astimezone(UTC)


def _wall_clock_times(step: Any, timezone: str, after: datetime) -> Iterator[datetime]:
    """Fire times of a wall-clock stepper (naive local -> next naive local strictly after).
    Starting from `after`'s own wall-clock reading misses nothing: fold=0 mapping never moves
    time backwards, so a wall-clock time at or before it fires at or before `after`."""
    zone = _zone(timezone)
    moment = after.astimezone(zone).replace(tzinfo=None)
    while (moment := step(moment)) is not None:
        yield _to_utc(moment, zone)


def _interval_times(spec: ScheduleSpec, after: datetime) -> Iterator[datetime]:
    zone = _zone(spec.timezone)
    seconds = int(spec.interval_seconds or 0)
    if spec.anchor_at is not None:
        anchor_local = spec.anchor_at.astimezone(zone).replace(tzinfo=None)
    else:
        anchor_local = DEFAULT_ANCHOR
    if seconds % DAY == 0:
        # Whole days: the anchor's wall-clock time every N days, across DST changes.
        days = seconds // DAY
        start = after.astimezone(zone).replace(tzinfo=None)
        # One step early: the wall-clock reading of `after` may be an hour off its UTC distance.
        k = max(0, (start - anchor_local).days // days - 1)
        while True:
            yield _to_utc(anchor_local + timedelta(days=k * days), zone)
            k += 1
    anchor = spec.anchor_at.astimezone(UTC) if spec.anchor_at is not None else _to_utc(anchor_local, zone)
    step = timedelta(seconds=seconds)
    k = 0 if after < anchor else (after - anchor) // step + 1
    while True:
        yield anchor + k * step
        k += 1


# cron ------------------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _cron_stepper(expression: str) -> Any:
    """A function naive -> the next matching naive minute strictly after it (None: never).

    croniter parses; plain fields (numbers, ranges, lists, steps, names) are then matched by
    `_CronFields`, about ten times faster than croniter's own iteration, which the scheduler
    needs for thousands of schedules a tick. L, W and # fall back to croniter."""
    parsed = croniter(expression)
    plain = not parsed.nth_weekday_of_month and not getattr(parsed, "nearest_weekday", None)
    plain = plain and all(v == "*" or isinstance(v, int) for field in parsed.expanded for v in field)
    if plain:
        return _CronFields.of(parsed.expanded).next_after

    def step(moment: datetime) -> datetime | None:
        try:
            return croniter(expression, moment).get_next(datetime)
        except (ValueError, KeyError):  # CroniterBadDateError: no date matches
            return None

    return step


@dataclass(frozen=True)
class _CronFields:
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int] | None  # None: '*'
    months: tuple[int, ...]
    weekdays: frozenset[int] | None  # cron numbering, 0 = Sunday; None: '*'

    @classmethod
    def of(cls, expanded: list[list[Any]]) -> _CronFields:
        def values(field: list[Any], full: range) -> tuple[int, ...]:
            return tuple(full) if field == ["*"] else tuple(sorted(set(field)))

        minute, hour, day, month, weekday = expanded
        return cls(
            minutes=values(minute, range(60)),
            hours=values(hour, range(24)),
            days=None if day == ["*"] else frozenset(day),
            months=values(month, range(1, 13)),
            weekdays=None if weekday == ["*"] else frozenset(v % 7 for v in weekday),
        )

    def day_matches(self, moment: datetime) -> bool:
        # As croniter (and Vixie cron): when both day fields are restricted, either may match.
        if self.days is None and self.weekdays is None:
            return True
        by_day = self.days is not None and moment.day in self.days
        by_weekday = self.weekdays is not None and (moment.weekday() + 1) % 7 in self.weekdays
        if self.days is None:
            return by_weekday
        if self.weekdays is None:
            return by_day
        return by_day or by_weekday

    def next_after(self, moment: datetime) -> datetime | None:
        t = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        give_up = t.year + 30  # e.g. 30 February: nothing ever matches
        while t.year <= give_up:
            if t.month not in self.months:
                i = bisect.bisect_right(self.months, t.month)
                year, month = (t.year, self.months[i]) if i < len(self.months) else (t.year + 1, self.months[0])
                t = datetime(year, month, 1)
                continue
            if not self.day_matches(t):
                t = datetime(t.year, t.month, t.day) + timedelta(days=1)
                continue
            if t.hour not in self.hours:
                i = bisect.bisect_right(self.hours, t.hour)
                if i == len(self.hours):
                    t = datetime(t.year, t.month, t.day) + timedelta(days=1)
                else:
                    t = t.replace(hour=self.hours[i], minute=0)
                continue
            if t.minute not in self.minutes:
                i = bisect.bisect_right(self.minutes, t.minute)
                if i == len(self.minutes):
                    t = t.replace(minute=0) + timedelta(hours=1)
                    continue
                t = t.replace(minute=self.minutes[i])
            return t
        return None


# rrule -----------------------------------------------------------------------------------------

_PERIOD = {
    WEEKLY: timedelta(weeks=1),
    DAILY: timedelta(days=1),
    HOURLY: timedelta(hours=1),
    MINUTELY: timedelta(minutes=1),
    SECONDLY: timedelta(seconds=1),
}


@lru_cache(maxsize=1024)
def _parse_rrule(text: str, timezone: str, anchor_at: datetime | None) -> rruleset:
    dtstart = anchor_at.astimezone(_zone(timezone)).replace(tzinfo=None) if anchor_at else DEFAULT_ANCHOR
    parsed = rrulestr(text, dtstart=dtstart, forceset=True)
    if not parsed._rrule and not parsed._rdate:  # noqa: SLF001 (dateutil keeps these private)
        raise ValueError("it has no RRULE or RDATE")
    return parsed


def _fast_forward(rule: rrule, to: datetime) -> rrule:
    """dateutil iterates every occurrence from DTSTART; a minutely rule started in 2020 would
    take seconds per call. Moving DTSTART forward by whole periods (INTERVAL x FREQ) keeps every
    later occurrence, for the frequencies of fixed length and rules without COUNT."""
    period = _PERIOD.get(rule._freq)  # noqa: SLF001
    if period is None or rule._count is not None:  # noqa: SLF001
        return rule
    period *= rule._interval  # noqa: SLF001
    start = rule._dtstart  # noqa: SLF001
    # An aware DTSTART moves by wall-clock time, which may drift an hour from the real
    # distance across DST: stay two hours short of `to` then.
    margin = period + (timedelta(hours=2) if start.tzinfo is not None else timedelta(0))
    periods = (to - start - margin) // period
    if periods < 1:
        return rule
    return rule.replace(dtstart=start + periods * period)


def _rrule_times(spec: ScheduleSpec, after: datetime) -> Iterator[datetime]:
    zone = _zone(spec.timezone)
    parsed = _parse_rrule(spec.rrule.strip(), spec.timezone, spec.anchor_at)
    first = parsed._rrule[0]._dtstart if parsed._rrule else parsed._rdate[0]  # noqa: SLF001
    floating = first.tzinfo is None
    start = after.astimezone(zone).replace(tzinfo=None) if floating else after
    rules = rruleset()
    for rule in parsed._rrule:  # noqa: SLF001
        rules.rrule(_fast_forward(rule, start))
    for rule in parsed._exrule:  # noqa: SLF001
        rules.exrule(_fast_forward(rule, start))
    for moment in parsed._rdate:  # noqa: SLF001
        rules.rdate(moment)
    for moment in parsed._exdate:  # noqa: SLF001
        rules.exdate(moment)
    for moment in rules.xafter(start):
        yield _to_utc(moment, zone) if floating else moment.astimezone(UTC)


# --- words ------------------------------------------------------------------------------------


def describe_schedule(spec: ScheduleSpec) -> str:
    """The schedule in words, for people: 'At 09:00, Monday through Friday (Europe/Berlin)'."""
    zone = f" ({spec.timezone})"
    try:
        if spec.kind == CRON:
            expression = _normalise_cron(spec.cron)
            return ExpressionDescriptor(expression, use_24hour_time_format=True).get_description() + zone
        if spec.kind == INTERVAL:
            return _describe_interval(spec) + zone
        if spec.kind == RRULE:
            return _describe_rrule(spec.rrule) + zone
    except Exception:  # words are a courtesy: an odd definition still shows as itself
        pass
    return f"{spec.kind} {spec.cron or spec.interval_seconds or spec.rrule}{zone}"


def _plural(count: int, unit: str) -> str:
    return f"every {unit}" if count == 1 else f"every {count} {unit}s"


def _describe_interval(spec: ScheduleSpec) -> str:
    seconds = int(spec.interval_seconds or 0)
    for size, unit in ((DAY, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if seconds % size == 0:
            words = _plural(seconds // size, unit).capitalize()
            break
    if seconds % DAY == 0:
        anchor = spec.anchor_at.astimezone(_zone(spec.timezone)) if spec.anchor_at else DEFAULT_ANCHOR
        return f"{words} at {anchor:%H:%M}"
    if spec.anchor_at is not None:
        return f"{words} from {spec.anchor_at.astimezone(_zone(spec.timezone)):%Y-%m-%d %H:%M}"
    return words


_FREQ_WORDS = {
    "YEARLY": "year",
    "MONTHLY": "month",
    "WEEKLY": "week",
    "DAILY": "day",
    "HOURLY": "hour",
    "MINUTELY": "minute",
    "SECONDLY": "second",
}
_DAY_WORDS = {
    "MO": "Monday",
    "TU": "Tuesday",
    "WE": "Wednesday",
    "TH": "Thursday",
    "FR": "Friday",
    "SA": "Saturday",
    "SU": "Sunday",
}


def _describe_rrule(text: str) -> str:
    rule_line = next(
        (line for line in text.strip().splitlines() if not line.upper().startswith(("DTSTART", "EXDATE", "RDATE"))),
        "",
    )
    rule_line = rule_line.split(":", 1)[1] if rule_line.upper().startswith("RRULE:") else rule_line
    parts = dict(part.split("=", 1) for part in rule_line.upper().split(";") if "=" in part)
    words = _plural(int(parts.get("INTERVAL", "1")), _FREQ_WORDS[parts["FREQ"]]).capitalize()
    if "BYDAY" in parts:
        words += " on " + ", ".join(
            _DAY_WORDS.get(day[-2:], day) if day[:-2] in ("", "+1") else day for day in parts["BYDAY"].split(",")
        )
    if "BYMONTHDAY" in parts:
        words += f" on day {parts['BYMONTHDAY'].replace(',', ', ')}"
    hours, minutes = parts.get("BYHOUR", ""), parts.get("BYMINUTE", "0")
    if hours and "," not in hours and "," not in minutes:
        words += f" at {int(hours):02d}:{int(minutes):02d}"
    elif hours:
        words += f" at hours {hours.replace(',', ', ')}"
    if "COUNT" in parts:
        words += f", {parts['COUNT']} times"
    if "UNTIL" in parts:
        words += f", until {parts['UNTIL']}"
    return words
