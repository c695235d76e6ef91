from __future__ import annotations

from celery import shared_task
from django.conf import settings

import orchestrator.celery  # noqa: F401  (the app must exist before a task is sent)
from automations import services


@shared_task(bind=True, acks_late=True)
def deliver_notification(self, firing_id: int) -> None:
    """Send one automation notice; a failure is retried with exponential backoff up to
    settings.NOTIFICATION_MAX_RETRIES times, then the firing is marked FAILED."""
    try:
        services.deliver_notification(firing_id)
    except services.NotificationFailed as error:
        if self.request.retries >= settings.NOTIFICATION_MAX_RETRIES:
            services.give_up_notification(firing_id)
            return
        raise self.retry(exc=error, countdown=services.backoff_seconds(self.request.retries), max_retries=None)
