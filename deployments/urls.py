from django.urls import path

from deployments import views

app_name = "deployments"

urlpatterns = [
    path("", views.deployment_list, name="list"),
    path("<uuid:pk>/", views.deployment_detail, name="detail"),
    path("<uuid:pk>/quick-run", views.quick_run, name="quick_run"),
    path("<uuid:pk>/run/", views.custom_run, name="custom_run"),
    path("<uuid:pk>/pause", views.set_paused, {"paused": True}, name="pause"),
    path("<uuid:pk>/resume", views.set_paused, {"paused": False}, name="resume"),
]
