from django.urls import path

from workpools import views

app_name = "workpools"

urlpatterns = [
    path("", views.pool_list, name="list"),
    path("_pools", views.pools_fragment, name="pools_fragment"),
    path("<uuid:pk>/pause", views.set_pool_paused, {"paused": True}, name="pool_pause"),
    path("<uuid:pk>/resume", views.set_pool_paused, {"paused": False}, name="pool_resume"),
    path("queues/<uuid:pk>/pause", views.set_queue_paused, {"paused": True}, name="queue_pause"),
    path("queues/<uuid:pk>/resume", views.set_queue_paused, {"paused": False}, name="queue_resume"),
]
