from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from deployments.api import WebhookReceiveView
from orchestrator import views
from orchestrator.metrics import metrics_view

handler404 = "orchestrator.views.not_found"

admin.site.site_header = "Orchestrator"
admin.site.site_title = "Orchestrator admin"
admin.site.index_title = "Pools, deployments and runs"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    # Browsers ask for /favicon.ico on every page without a <link rel="icon"> (the admin's).
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("api/", include("orchestrator.api_urls")),
    path("hooks/<str:slug>/", WebhookReceiveView.as_view(), name="webhook"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("work-pools/", include("workpools.urls")),
    path("deployments/", include("deployments.urls")),
    path("runs/", include("runs.urls")),
]
