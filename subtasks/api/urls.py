from django.urls import re_path

from subtasks.api import views

urlpatterns = [
    re_path(r"^subtasks/(?P<subtask_id>[^/]+)/?$", views.SubtaskDetail.as_view(), name="subtask"),
    re_path(
        r"^subtasks/(?P<subtask_id>[^/]+)/config_complete/?$",
        views.SubtaskConfigComplete.as_view(),
        name="subtask-config-complete",
    ),
    re_path(r"^subtasks/(?P<subtask_id>[^/]+)/start/?$", views.SubtaskStart.as_view(), name="subtask-start"),
    re_path(r"^subtasks/(?P<subtask_id>[^/]+)/stop/?$", views.SubtaskStop.as_view(), name="subtask-stop"),
]
