from django.apps import AppConfig


class BlocksConfig(AppConfig):
    name = "blocks"
    verbose_name = "Variables and secrets"
    default_auto_field = "django.db.models.BigAutoField"
