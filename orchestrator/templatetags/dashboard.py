"""Template helpers shared by every dashboard page: state badges (the one place a state gets
its colour), durations, times, log levels and Quick Run keys."""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timedelta
from typing import Any

from django import template
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe

from deployments.forms import new_idempotency_key

register = template.Library()


def state_class(state_type: str) -> str:
    """CSS class of a state type; static/dashboard.css gives each one its colour."""
    return f"state-{str(state_type).lower()}"


register.filter("state_class", state_class)


@register.filter
def scatter_dots(scatter: Any) -> str:
    """The duration scatter's dots as SVG, built here rather than in a template loop: a day can
    hold thousands of runs, and the template engine would take seconds over them."""
    from django.utils.html import escape
    from django.utils.safestring import mark_safe

    parts = []
    for dot in scatter.dots:
        state = escape(dot.state_type)
        started = timezone.localtime(dot.started).strftime("%H:%M:%S")
        parts.append(
            f'<a href="{escape(dot.url)}"><circle class="dot {state_class(state)}" data-state="{state}" '
            f'cx="{dot.x}" cy="{dot.y}" r="4"><title>{escape(dot.name)}: {escape(dot.duration)}, '
            f"started {started}</title></circle></a>"
        )
    return mark_safe("".join(parts))  # noqa: S308 - every value above is escaped


@register.filter
def indent_x(depth: int) -> int:
    """The x of a Gantt row's label, indented by its nesting depth (runs.timeline.INDENT)."""
    from runs.timeline import INDENT

    return 4 + INDENT * int(depth or 0)


@register.simple_tag
def state_badge(obj: Any = None, *, type: str = "", name: str = "") -> str:
    """The badge of a state, coloured by its type, everywhere: {% state_badge run %} for
    anything with state_type/state_name (runs, task runs) or type/name (history rows).
    A tag rather than an include: lists draw fifty of them."""
    if obj is not None:
        type = getattr(obj, "state_type", None) or getattr(obj, "type", "")
        name = getattr(obj, "state_name", None) or getattr(obj, "name", "")
    return format_html(
        '<span class="badge {}" data-state="{}">{}</span>', state_class(type), type, name or str(type).title()
    )


@register.filter
def duration(value: timedelta | None) -> str:
    """'0.4 s', '12 s', '3 min 4 s', '2 h 5 min'; '' for no duration."""
    if value is None:
        return ""
    seconds = max(0.0, value.total_seconds())
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


@register.filter
def level_name(level: int) -> str:
    name = logging.getLevelName(int(level))
    return name if not name.startswith("Level ") else str(level)


@register.filter
def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


@register.simple_tag
def idempotency_key() -> str:
    """A fresh key per rendered run button: a double click sends the same key twice, and the
    service returns the first run for the second request."""
    return new_idempotency_key()


@register.filter
def health_label(status: str) -> str:
    """READY -> 'Ready', NOT_READY -> 'Not ready'."""
    return str(status).replace("_", " ").capitalize()


@register.filter
def when(moment: datetime | None) -> str:
    """A compact local time: '14:03:27' today, 'Nov 3, 14:03' this year, '2024-11-03 14:03' before."""
    if moment is None:
        return ""
    local, today = timezone.localtime(moment), timezone.localdate()
    if local.date() == today:
        return local.strftime("%H:%M:%S")
    if local.year == today.year:
        return f"{local:%b} {local.day}, {local:%H:%M}"
    return local.strftime("%Y-%m-%d %H:%M")


@register.filter
def when_dated(moment: datetime | None) -> str:
    """A local time that always shows its day: 'Today 14:03', 'Tomorrow 09:00', 'Dec 3, 09:00',
    '2027-01-05 09:00' (a next run without a date reads as today even when it is not)."""
    if moment is None:
        return ""
    local, today = timezone.localtime(moment), timezone.localdate()
    days = (local.date() - today).days
    if days in (-1, 0, 1):
        return f"{('Yesterday', 'Today', 'Tomorrow')[days + 1]} {local:%H:%M}"
    if local.year == today.year:
        return f"{local:%b} {local.day}, {local:%H:%M}"
    return local.strftime("%Y-%m-%d %H:%M")


@register.filter
def breakable(name: str) -> str:
    """`name` (escaped) with line-break opportunities after '/', '-', '_' and '.', so a long
    deployment name wraps between its parts rather than in the middle of a word."""
    parts = re.split(r"(?<=[/_.-])", str(name))
    return mark_safe("<wbr>".join(escape(part) for part in parts))


@register.filter
def elapsed(run: Any) -> str:
    """How long a run (or task run) has taken: up to now while it goes on."""
    if run.started_at is None:
        return ""
    if run.ended_at is None and run.state_type in ("RUNNING", "CANCELLING", "PAUSED"):
        return duration(timezone.now() - run.started_at)
    return duration(run.duration)


@register.filter
def is_past(moment: datetime | None) -> bool:
    return moment is not None and moment < timezone.now()


_markdown = None


@register.filter
def render_markdown(text: str) -> str:
    """Markdown as HTML, safely: markdown-it with raw HTML off, so a <script> in the text is
    shown as text, and unsafe link schemes (javascript:, data:) are not linked."""
    global _markdown
    if _markdown is None:
        from markdown_it import MarkdownIt

        _markdown = MarkdownIt("commonmark", {"html": False}).enable("table").enable("strikethrough")
    return mark_safe(_markdown.render(str(text or "")))  # noqa: S308  # escaped by markdown-it (html off)
