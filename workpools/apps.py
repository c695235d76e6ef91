from django.apps import AppConfig


class WorkpoolsConfig(AppConfig):
    name = "workpools"
    verbose_name = "Work pools"
    default_auto_field = "django.db.models.BigAutoField"
