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
    S.COMPLETED, S.RUNNING, S.PENDING, S.SCHEDULED, S.PAUSED, S.CANCELLING, S.CANCELLED, S.CRASHED, S.FAILED,
]

WIDTH, HEIGHT = 720, 180
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
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    baseline: int = HEIGHT - BOTTOM

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
    counts: list[tuple[datetime, str, int]], since: datetime, until: datetime, hours: int = 24
) -> HistoryChart:
    """Lay out `counts` ((hour, state_type, runs) rows) as `hours` stacked bars from `since`."""
    per_hour: dict[datetime, dict[str, int]] = defaultdict(dict)
    totals: dict[str, int] = defaultdict(int)
    for hour, state, n in counts:
        per_hour[hour][state] = n
        totals[state] += n
    peak = max((sum(states.values()) for states in per_hour.values()), default=0)
    plot_height = HEIGHT - BOTTOM - TOP
    slot = (WIDTH - LEFT) / hours
    bars = []
    for i in range(hours):
        start = since + timedelta(hours=i)
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
    return HistoryChart(bars=bars, totals=dict(totals), peak=peak, since=since, until=until)
