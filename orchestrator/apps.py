from django.apps import AppConfig


class OrchestratorConfig(AppConfig):
    name = "orchestrator"
    verbose_name = "Orchestrator"

    def ready(self) -> None:
        # Celery is not loaded here: each tasks module loads the app (orchestrator.celery) when it
        # is first imported, so only a process that sends or runs tasks pays for it.
        from orchestrator import checks  # noqa: F401
