from django.urls import re_path

from tasks.api import views

# The seed's paths have no trailing slash; one is tolerated.
urlpatterns = [
    re_path(r"^tasks/?$", views.TaskCollection.as_view(), name="tasks"),
    re_path(r"^tasks/(?P<task_id>[^/]+)/?$", views.TaskDetail.as_view(), name="task"),
    re_path(r"^tasks/(?P<task_id>[^/]+)/start/?$", views.TaskStart.as_view(), name="task-start"),
    re_path(r"^tasks/(?P<task_id>[^/]+)/stop/?$", views.TaskStop.as_view(), name="task-stop"),
    re_path(
        r"^tasks/(?P<task_id>[^/]+)/pic_task_config/?$", views.TaskPicConfig.as_view(), name="task-pic-config"
    ),
    re_path(r"^tasks/(?P<task_id>[^/]+)/subtasks/?$", views.TaskSubtasks.as_view(), name="task-subtasks"),
    re_path(r"^store_confs/?$", views.StoreConfCollection.as_view(), name="store-confs"),
    re_path(r"^store_confs/(?P<unid>[^/]+)/?$", views.StoreConfDetail.as_view(), name="store-conf"),
    re_path(r"^vchans/?$", views.VchanCollection.as_view(), name="vchans"),
    re_path(r"^vchans/(?P<vchan_refid>[^/]+)/?$", views.VchanDetail.as_view(), name="vchan"),
]
