"""Fire times of cron, interval and rrule schedules, across daylight saving changes."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from dateutil.rrule import rrulestr

from deployments.schedule_times import (
    ScheduleSpec,
    _cron_stepper,
    describe_schedule,
    fire_times_between,
    iter_fire_times,
    next_fire_times,
    upcoming_fire_times,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
# 2026: Berlin springs forward on 29 March and falls back on 25 October; New York on 8 March
# and 1 November.
SPRING = {
    "Europe/Berlin": datetime(2026, 3, 27, 12, tzinfo=UTC),
    "America/New_York": datetime(2026, 3, 6, 12, tzinfo=UTC),
}
AUTUMN = {
    "Europe/Berlin": datetime(2026, 10, 23, 12, tzinfo=UTC),
    "America/New_York": datetime(2026, 10, 30, 12, tzinfo=UTC),
}
ZONES = ["Europe/Berlin", "America/New_York"]


def take(spec: ScheduleSpec, after: datetime, count: int) -> list[datetime]:
    return list(itertools.islice(iter_fire_times(spec, after), count))


def local(moments: list[datetime], zone: str) -> list[str]:
    return [m.astimezone(ZoneInfo(zone)).strftime("%m-%d %H:%M %z") for m in moments]


def utc_offsets(moments: list[datetime], zone: str) -> set[timedelta | None]:
    return {m.astimezone(ZoneInfo(zone)).utcoffset() for m in moments}


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("change", [SPRING, AUTUMN], ids=["spring", "autumn"])
@pytest.mark.parametrize(
    "spec_kwargs",
    [
        {"kind": "cron", "cron": "0 9 * * *"},
        {"kind": "rrule", "rrule": "FREQ=DAILY;BYHOUR=9;BYMINUTE=0;BYSECOND=0"},
        {"kind": "interval", "interval_seconds": 86400, "anchor": (2026, 1, 5, 9, 0)},
    ],
    ids=["cron", "rrule", "daily-interval"],
)
def test_a_daily_nine_oclock_run_stays_at_nine_local_across_the_change(zone, change, spec_kwargs) -> None:
    kwargs = dict(spec_kwargs)
    if anchor := kwargs.pop("anchor", None):
        kwargs["anchor_at"] = datetime(*anchor, tzinfo=ZoneInfo(zone))
    spec = ScheduleSpec(timezone=zone, **kwargs)

    times = take(spec, change[zone], 5)

    assert [m.astimezone(ZoneInfo(zone)).strftime("%H:%M") for m in times] == ["09:00"] * 5
    # The same local time is a different UTC time on either side of the change.
    assert len(utc_offsets(times, zone)) == 2
    assert all(
        b - a in (timedelta(hours=23), timedelta(hours=25))
        for a, b in zip(times, times[1:])
        if b - a != timedelta(days=1)
    )


@pytest.mark.parametrize("zone", ZONES)
def test_an_hourly_interval_stays_an_hour_apart_in_real_time_across_the_change(zone) -> None:
    spec = ScheduleSpec(kind="interval", interval_seconds=3600, timezone=zone)
    for change in (SPRING, AUTUMN):
        times = take(spec, change[zone], 24 * 4)
        assert {b - a for a, b in zip(times, times[1:])} == {timedelta(hours=1)}
        assert len(utc_offsets(times, zone)) == 2


def test_a_time_skipped_in_spring_fires_when_the_clock_jumps() -> None:
    spec = ScheduleSpec(kind="cron", cron="30 2 * * *", timezone="Europe/Berlin")
    times = take(spec, SPRING["Europe/Berlin"], 3)
    assert local(times, "Europe/Berlin") == ["03-28 02:30 +0100", "03-29 03:30 +0200", "03-30 02:30 +0200"]


def test_a_time_repeated_in_autumn_fires_once_on_its_first_pass() -> None:
    spec = ScheduleSpec(kind="cron", cron="30 1 * * *", timezone="America/New_York")
    times = take(spec, AUTUMN["America/New_York"], 4)
    assert local(times, "America/New_York") == [
        "10-31 01:30 -0400",
        "11-01 01:30 -0400",
        "11-02 01:30 -0500",
        "11-03 01:30 -0500",
    ]


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("change", [SPRING, AUTUMN], ids=["spring", "autumn"])
def test_frequent_wall_clock_schedules_never_fire_twice_at_one_moment(zone, change) -> None:
    for spec in (
        ScheduleSpec(kind="cron", cron="*/30 * * * *", timezone=zone),
        ScheduleSpec(kind="rrule", rrule="FREQ=MINUTELY;INTERVAL=30", timezone=zone),
    ):
        times = take(spec, change[zone], 48 * 4)
        assert times == sorted(set(times))
        gaps = {b - a for a, b in zip(times, times[1:])}
        assert timedelta(minutes=30) in gaps
        assert max(gaps) <= timedelta(hours=1, minutes=30)


def test_an_rrule_with_its_own_dtstart_zone_follows_that_zone() -> None:
    spec = ScheduleSpec(
        kind="rrule", rrule="DTSTART;TZID=America/New_York:20260101T090000\nRRULE:FREQ=DAILY", timezone="UTC"
    )
    times = take(spec, SPRING["America/New_York"], 4)
    assert [m.astimezone(NEW_YORK).strftime("%H:%M") for m in times] == ["09:00"] * 4
    assert [m.hour for m in times] == [14, 14, 13, 13]


def test_an_rrule_with_count_ends() -> None:
    spec = ScheduleSpec(kind="rrule", rrule="DTSTART:20260101T000000\nRRULE:FREQ=DAILY;COUNT=3")
    assert len(take(spec, datetime(2025, 1, 1, tzinfo=UTC), 10)) == 3
    assert take(spec, datetime(2026, 2, 1, tzinfo=UTC), 10) == []


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=MINUTELY;INTERVAL=7",
        "FREQ=HOURLY;INTERVAL=5;BYMINUTE=15",
        "FREQ=WEEKLY;INTERVAL=3;BYDAY=MO,TH",
        "FREQ=DAILY;INTERVAL=2;BYHOUR=9,17",
        "FREQ=SECONDLY;INTERVAL=90",
    ],
)
def test_an_old_rrule_is_read_from_where_we_are_and_gives_the_same_times(rule) -> None:
    # DTSTART (the anchor) months back, so the reference, which reads every time from there,
    # stays quick; the scheduler jumps ahead by whole periods instead.
    dtstart = datetime(2026, 1, 1, 0, 0, 5)
    after = datetime(2026, 2, 27, 12, 0, 1, tzinfo=UTC)
    spec = ScheduleSpec(kind="rrule", rrule=rule, anchor_at=dtstart.replace(tzinfo=UTC))
    expected = list(itertools.islice(rrulestr(rule, dtstart=dtstart).xafter(after.replace(tzinfo=None)), 5))
    assert take(spec, after, 5) == [m.replace(tzinfo=UTC) for m in expected]


@pytest.mark.parametrize(
    "expression",
    [
        "* * * * *",
        "0 * * * *",
        "*/7 3-5 * * *",
        "0 9 * * 1-5",
        "0 9 */2 * 1",
        "15 10 1,15 * *",
        "0 0 29 2 *",
        "5 4 * jan,jul sun",
        "0 9 1-7 * 5",
        "59 23 31 * *",
        "0 12 * 2-4/2 *",
        "0 9 * * 0,7",
        "0 9 L * *",
        "0 9 * * 5#2",
    ],
)
def test_cron_times_are_croniters_times(expression) -> None:
    step = _cron_stepper(expression)
    moment = datetime(2026, 1, 1)
    reference = croniter(expression, moment)
    for _ in range(200):
        moment = step(moment)
        assert moment == reference.get_next(datetime)


def test_the_scheduler_keeps_at_least_three_runs_ahead() -> None:
    now = datetime(2026, 5, 4, 12, tzinfo=UTC)
    spec = ScheduleSpec(kind="cron", cron="0 9 * * *")
    times = upcoming_fire_times(
        spec, now, min_runs=3, min_ahead=timedelta(hours=1), max_runs=100, horizon=timedelta(days=100)
    )
    assert [t.day for t in times] == [5, 6, 7]


def test_the_scheduler_keeps_at_least_an_hour_ahead() -> None:
    now = datetime(2026, 5, 4, 12, tzinfo=UTC)
    spec = ScheduleSpec(kind="cron", cron="*/5 * * * *")
    times = upcoming_fire_times(
        spec, now, min_runs=3, min_ahead=timedelta(hours=1), max_runs=100, horizon=timedelta(days=100)
    )
    assert len(times) == 12
    assert times[0] == now + timedelta(minutes=5)
    assert times[-1] == now + timedelta(hours=1)


def test_the_scheduler_keeps_at_most_max_runs() -> None:
    now = datetime(2026, 5, 4, 12, tzinfo=UTC)
    spec = ScheduleSpec(kind="interval", interval_seconds=2)
    times = upcoming_fire_times(
        spec, now, min_runs=3, min_ahead=timedelta(hours=1), max_runs=100, horizon=timedelta(days=100)
    )
    assert len(times) == 100
    assert times[-1] == now + timedelta(seconds=200)


def test_the_scheduler_looks_no_further_than_the_horizon() -> None:
    now = datetime(2026, 5, 4, 12, tzinfo=UTC)
    spec = ScheduleSpec(kind="cron", cron="0 0 1 1 *")
    window = {"min_runs": 3, "min_ahead": timedelta(hours=1), "max_runs": 100}
    assert upcoming_fire_times(spec, now, horizon=timedelta(days=100), **window) == []
    assert len(upcoming_fire_times(spec, now, horizon=timedelta(days=1000), **window)) == 3


def test_missed_times_are_the_latest_ones() -> None:
    spec = ScheduleSpec(kind="interval", interval_seconds=60)
    start = datetime(2026, 5, 4, 12, tzinfo=UTC)
    times = fire_times_between(spec, start, start + timedelta(minutes=30), last=3)
    assert times == [start + timedelta(minutes=m) for m in (28, 29, 30)]
    assert fire_times_between(spec, start, start + timedelta(seconds=59), last=3) == []


def test_an_interval_counts_from_its_anchor() -> None:
    anchor = datetime(2026, 5, 4, 12, 0, 10, tzinfo=UTC)
    spec = ScheduleSpec(kind="interval", interval_seconds=600, anchor_at=anchor)
    assert take(spec, anchor - timedelta(days=1), 2) == [anchor, anchor + timedelta(minutes=10)]
    assert take(spec, anchor + timedelta(minutes=25), 1) == [anchor + timedelta(minutes=30)]


def test_people_see_schedules_in_words_with_their_next_times() -> None:
    assert describe_schedule(ScheduleSpec(kind="cron", cron="*/15 9-17 * * 1-5", timezone="Europe/Berlin")) == (
        "Every 15 minutes, between 09:00 and 17:59, Monday through Friday (Europe/Berlin)"
    )
    assert describe_schedule(ScheduleSpec(kind="interval", interval_seconds=120)) == "Every 2 minutes (UTC)"
    anchor = datetime(2026, 1, 5, 9, 0, tzinfo=BERLIN)
    assert (
        describe_schedule(
            ScheduleSpec(kind="interval", interval_seconds=86400, anchor_at=anchor, timezone="Europe/Berlin")
        )
        == "Every day at 09:00 (Europe/Berlin)"
    )
    assert describe_schedule(ScheduleSpec(kind="rrule", rrule="FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=30")) == (
        "Every week on Monday, Wednesday at 09:30 (UTC)"
    )
    times = next_fire_times(
        ScheduleSpec(kind="cron", cron="0 9 * * *", timezone="Europe/Berlin"), 3, after=SPRING["Europe/Berlin"]
    )
    assert [t.isoformat() for t in times] == [
        "2026-03-28T09:00:00+01:00",
        "2026-03-29T09:00:00+02:00",
        "2026-03-30T09:00:00+02:00",
    ]
