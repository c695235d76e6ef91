"""Run policies as plain data: what a claim does with a due run of a busy deployment (overlap),
and how late a run may start. Deployments and schedules store them; workpools applies them."""

from __future__ import annotations

from django.db import models


class OverlapPolicy(models.TextChoices):
    """What a worker's claim does with a due run while another run of its deployment is still
    active (PENDING, RUNNING, CANCELLING, PAUSED)."""

    ALLOW = "allow", "Allow: runs may overlap"
    SKIP = "skip", "Skip: cancel the due run while one is active"
    BUFFER_ONE = "buffer_one", "Buffer one: at most one run waits, later ones are cancelled"
    CANCEL_RUNNING = "cancel_running", "Cancel running: the new run cancels the active one"
