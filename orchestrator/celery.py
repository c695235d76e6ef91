"""The Celery app: `celery -A orchestrator worker --beat`.

Periodic services are listed in settings.CELERY_BEAT_SCHEDULE so they are reviewed like code.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")

app = Celery("orchestrator")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
