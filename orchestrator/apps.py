from django.apps import AppConfig


class OrchestratorConfig(AppConfig):
    name = "orchestrator"
    verbose_name = "Orchestrator"

    def ready(self) -> None:
        # The Celery app must exist before any task is sent from a web or command process.
        from orchestrator import (
            celery,  # noqa: F401
            checks,  # noqa: F401
        )
