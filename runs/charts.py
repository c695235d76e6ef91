"""The run-history chart: runs per hour, stacked by state, drawn as SVG on the server.

Plain geometry: the template turns it into <rect>s whose state classes take the same colours
as the state badges."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

from orchestrator.core.states import StateType

S = StateType
# Bottom to top: the good news first, the bad news on top where the eye lands.
STACK_ORDER = [
    S.COMPLETED,
    S.RUNNING,
    S.PENDING,
    S.SCHEDULED,
    S.PAUSED,
    S.CANCELLING,
    S.CANCELLED,
    S.CRASHED,
    S.FAILED,
]

WIDTH, HEIGHT = 720, 180
HOUR = timedelta(hours=1)
BARS = 24
# Finer scales for a young install: the first that reaches back to the oldest run of the day.
STEPS = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), HOUR)
LEFT, BOTTOM, TOP = 36, 22, 8
GAP = 4


@dataclass
class Segment:
    state_type: str
    count: int
    y: float
    height: float


@dataclass
class Bar:
    start: datetime
    x: float
    width: float
    total: int
    label: str
    segments: list[Segment] = field(default_factory=list)


@dataclass
class HistoryChart:
    bars: list[Bar]
    totals: dict[str, int]
    peak: int
    since: datetime
    until: datetime
    step: timedelta = timedelta(hours=1)
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    baseline: int = HEIGHT - BOTTOM

    @property
    def step_label(self) -> str:
        """'hour', '15 minutes', 'minute': what one bar counts."""
        minutes = int(self.step.total_seconds() // 60)
        return "hour" if minutes == 60 else "minute" if minutes == 1 else f"{minutes} minutes"

    @property
    def span_label(self) -> str:
        """'24 hours', '2 hours', '24 minutes': how far back the bars go."""
        minutes = int(self.step.total_seconds() // 60) * len(self.bars)
        return f"{minutes // 60} hours" if minutes % 60 == 0 else f"{minutes} minutes"

    @property
    def plot_height(self) -> int:
        return self.baseline - self.top

    @property
    def total(self) -> int:
        return sum(self.totals.values())

    @property
    def state_totals(self) -> list[tuple[str, int]]:
        """(state_type, runs) for every state, in stack order, zeros included."""
        return [(state, self.totals.get(state, 0)) for state in STACK_ORDER]


def hourly_window(now: datetime | None = None, hours: int = 24) -> tuple[datetime, datetime]:
    """[start of the hour `hours - 1` hours ago, now): the last `hours` hourly buckets."""
    # Hours of the current time zone, as TruncHour counts them (a +05:30 zone has its own).
    now = timezone.localtime(now or timezone.now())
    top_of_hour = now.replace(minute=0, second=0, microsecond=0)
    return top_of_hour - timedelta(hours=hours - 1), now


def build_history_chart(
    counts: list[tuple[datetime, str, int]],
    since: datetime,
    until: datetime,
    hours: int = 24,
    step: timedelta = HOUR,
) -> HistoryChart:
    """Lay out `counts` ((time, state_type, runs) rows) as `hours` stacked bars of `step`
    each from `since` (rows are added into the bar their time falls in)."""
    per_hour: dict[datetime, dict[str, int]] = defaultdict(dict)
    totals: dict[str, int] = defaultdict(int)
    for moment, state, n in counts:
        bucket = since + ((moment - since) // step) * step
        per_hour[bucket][state] = per_hour[bucket].get(state, 0) + n
        totals[state] += n
    peak = max((sum(states.values()) for states in per_hour.values()), default=0)
    plot_height = HEIGHT - BOTTOM - TOP
    slot = (WIDTH - LEFT) / hours
    bars = []
    for i in range(hours):
        start = since + step * i
        states = per_hour.get(start, {})
        bar = Bar(
            start=start,
            x=round(LEFT + i * slot + GAP / 2, 2),
            width=round(slot - GAP, 2),
            total=sum(states.values()),
            label=timezone.localtime(start).strftime("%H:%M") if i % 3 == 0 else "",
        )
        y = float(HEIGHT - BOTTOM)
        for state in STACK_ORDER:
            n = states.get(state, 0)
            if not n:
                continue
            height = plot_height * n / peak
            y -= height
            bar.segments.append(Segment(state, n, round(y, 2), round(height, 2)))
        bars.append(bar)
    return HistoryChart(bars=bars, totals=dict(totals), peak=peak, since=since, until=until, step=step)


def recent_history_chart(now: datetime | None = None) -> HistoryChart:
    """The home page's chart: 24 bars over the last 24 hours, or, when every run of the day
    is more recent, over the last 2 hours (5-minute bars), 6 hours (15-minute bars) or 24
    minutes (1-minute bars), the finest that shows them all, so a new install's first runs
    are not one sliver at the right edge."""
    from runs.models import FlowRun

    now = timezone.localtime(now or timezone.now())
    day_since, until = hourly_window(now, BARS)
    first = (
        FlowRun.objects.between(day_since, until)
        .order_by("expected_start_at")
        .values_list("expected_start_at", flat=True)
        .first()
    )
    for step in STEPS[:-1]:
        since = _floor(now, step) - step * (BARS - 1)
        if first is not None and first >= since:
            counts = FlowRun.objects.counts_by_hour_and_state(since, until, per_minute=True)
            return build_history_chart(counts, since, until, BARS, step=step)
    return build_history_chart(FlowRun.objects.counts_by_hour_and_state(day_since, until), day_since, until, BARS)


def _floor(moment: datetime, step: timedelta) -> datetime:
    """`moment` (local) down to a multiple of `step` within its hour."""
    minutes = int(step.total_seconds() // 60)
    return moment.replace(minute=moment.minute - moment.minute % minutes, second=0, microsecond=0)
