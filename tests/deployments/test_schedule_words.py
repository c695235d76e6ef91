"""Schedules in words (deployments.schedule_words.describe)."""

from __future__ import annotations

import pytest

from deployments.models import DeploymentSchedule
from deployments.schedule_words import describe


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"kind": "interval", "interval_seconds": 60}, "Every minute"),
        ({"kind": "interval", "interval_seconds": 900}, "Every 15 minutes"),
        ({"kind": "interval", "interval_seconds": 7200}, "Every 2 hours"),
        ({"kind": "interval", "interval_seconds": 86400}, "Every day"),
        ({"kind": "interval", "interval_seconds": 90}, "Every 90 seconds"),
        ({"kind": "cron", "cron": "* * * * *"}, "Every minute"),
        ({"kind": "cron", "cron": "*/5 * * * *"}, "Every 5 minutes"),
        ({"kind": "cron", "cron": "0 * * * *"}, "Every hour at minute 0"),
        ({"kind": "cron", "cron": "30 2 * * *"}, "Every day at 02:30"),
        ({"kind": "cron", "cron": "0 9 * * 1-5"}, "At 09:00 on Monday to Friday"),
        ({"kind": "cron", "cron": "0 3 * * 0,6"}, "At 03:00 on Sunday and Saturday"),
        ({"kind": "cron", "cron": "0 9 1 * *"}, "Cron 0 9 1 * *"),
        ({"kind": "cron", "cron": "0 9 * * *", "timezone": "Europe/Rome"}, "Every day at 09:00 (Europe/Rome)"),
        ({"kind": "rrule", "rrule": "FREQ=WEEKLY;BYDAY=MO"}, "Recurring rule FREQ=WEEKLY;BYDAY=MO"),
    ],
)
def test_a_schedule_reads_as_a_short_phrase(fields: dict, words: str) -> None:
    assert describe(DeploymentSchedule(**fields)) == words
