from django.urls import re_path

from analysis.api import views

urlpatterns = [
    re_path(r"^tasks/(?P<task_id>[^/]+)/pictures/?$", views.TaskPictures.as_view(), name="task-pictures"),
    re_path(r"^tasks/(?P<task_id>[^/]+)/events/?$", views.TaskEvents.as_view(), name="task-events"),
    re_path(r"^events/(?P<event_id>[^/]+)/snapshot/?$", views.EventSnapshot.as_view(), name="event-snapshot"),
]
