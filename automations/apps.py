from django.apps import AppConfig


class AutomationsConfig(AppConfig):
    name = "automations"
    verbose_name = "Automations"

    def ready(self) -> None:
        from automations.services import fire_automations
        from runs import hooks

        hooks.on_state_change(fire_automations)
