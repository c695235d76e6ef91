from django.contrib import admin
from django.urls import include, path

from deployments.api import WebhookReceiveView

from orchestrator import views

admin.site.site_header = "Orchestrator"
admin.site.site_title = "Orchestrator admin"
admin.site.index_title = "Pools, deployments and runs"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/", include("orchestrator.api_urls")),
    path("hooks/<str:slug>/", WebhookReceiveView.as_view(), name="webhook"),
]
