from django.urls import path

from runs import views

app_name = "runs"

urlpatterns = [
    path("", views.run_list, name="list"),
    path("<uuid:pk>/", views.run_detail, name="detail"),
    path("<uuid:pk>/_header", views.header_fragment, name="header_fragment"),
    path("<uuid:pk>/_timeline", views.timeline_fragment, name="timeline_fragment"),
    path("<uuid:pk>/_task-runs", views.task_runs_fragment, name="task_runs_fragment"),
    path("<uuid:pk>/_logs", views.logs_fragment, name="logs_fragment"),
    path("<uuid:pk>/_artifacts", views.artifacts_fragment, name="artifacts_fragment"),
    path("<uuid:pk>/_input", views.input_fragment, name="input_fragment"),
    path("<uuid:pk>/cancel", views.cancel, name="cancel"),
    path("<uuid:pk>/resume", views.resume, name="resume"),
]
