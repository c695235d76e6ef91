from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "API keys"

    def ready(self) -> None:
        from accounts.roles import ensure_role_groups

        # After each app's migrations: the last call sees every permission (each app makes its own).
        post_migrate.connect(ensure_role_groups, dispatch_uid="accounts.ensure_role_groups")
