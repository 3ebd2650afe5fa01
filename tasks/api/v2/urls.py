from django.urls import re_path

from tasks.api.v2 import catalogue, sources, views

# The v2 paths (glossary); a trailing slash is tolerated.
P = r"^v2/(?P<project_id>[^/]+)"
ACTION = r"action/(?P<action>start|stop)/?$"
urlpatterns = [
    re_path(rf"{P}/tasks/?$", views.TaskCollection.as_view(), name="v2-tasks"),
    re_path(
        rf"{P}/services/(?P<service_name>[^/]+)/tasks/?$", views.ServiceTasks.as_view(), name="v2-create"
    ),
    re_path(rf"{P}/tasks/(?P<task_id>[^/]+)/?$", views.TaskDetail.as_view(), name="v2-task"),
    re_path(rf"{P}/tasks/(?P<task_id>[^/]+)/{ACTION}", views.TaskAction.as_view(), name="v2-task-action"),
    re_path(rf"{P}/batch-tasks/?$", views.BatchCollection.as_view(), name="v2-batches"),
    re_path(rf"{P}/batch-tasks/(?P<batch_id>[^/]+)/?$", views.BatchDetail.as_view(), name="v2-batch"),
    re_path(
        rf"{P}/batch-tasks/(?P<batch_id>[^/]+)/{ACTION}", views.BatchAction.as_view(), name="v2-batch-action"
    ),
    re_path(rf"{P}/source/?$", sources.SourceCreate.as_view(), name="v2-source-create"),
    re_path(rf"{P}/source/sources/?$", sources.SourceCollection.as_view(), name="v2-sources"),
    re_path(rf"{P}/source/sources/(?P<source_id>[^/]+)/?$", sources.SourceShow.as_view(), name="v2-source"),
    re_path(rf"{P}/source/(?P<source_id>[^/]+)/?$", sources.SourceDetail.as_view(), name="v2-source-detail"),
    re_path(rf"{P}/algorithm/services/user/?$", catalogue.ServiceCollection.as_view(), name="v2-services"),
    re_path(
        rf"{P}/algorithm/services/(?P<service_id>[^/]+)/?$",
        catalogue.ServiceDetail.as_view(),
        name="v2-service",
    ),
    re_path(rf"{P}/video-group/?$", sources.GroupCreate.as_view(), name="v2-group-create"),
    re_path(rf"{P}/video-group/groups/?$", sources.GroupCollection.as_view(), name="v2-groups"),
    re_path(rf"{P}/video-group/(?P<group_id>[^/]+)/?$", sources.GroupDetail.as_view(), name="v2-group"),
]
