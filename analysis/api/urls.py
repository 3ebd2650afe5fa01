from django.urls import path, re_path

from analysis.api import metrics, modelfiles, views

urlpatterns = [
    path("metrics", metrics.metrics, name="metrics"),
    path("healthz", metrics.healthz, name="healthz"),
    path("readyz", metrics.readyz, name="readyz"),
    re_path(r"^tasks/(?P<task_id>[^/]+)/pictures/?$", views.TaskPictures.as_view(), name="task-pictures"),
    re_path(r"^tasks/(?P<task_id>[^/]+)/events/?$", views.TaskEvents.as_view(), name="task-events"),
    re_path(r"^events/(?P<event_id>[^/]+)/snapshot/?$", views.EventSnapshot.as_view(), name="event-snapshot"),
    re_path(r"^events/(?P<event_id>[^/]+)/clip/?$", views.EventClip.as_view(), name="event-clip"),
    # Model files for nodes without registry access (fetch_models --from).
    re_path(r"^models/?$", modelfiles.ModelList.as_view(), name="model-list"),
    re_path(
        r"^models/(?P<name>[^/]+)/files/(?P<path>.+)$",
        modelfiles.ModelFileDownload.as_view(),
        name="model-file",
    ),
]
