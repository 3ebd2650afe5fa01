from django.urls import re_path

from tasks.api.vcs import views

# The seed's paths, under /vcs/console/task/; a trailing slash is tolerated.
urlpatterns = [
    re_path(r"^vcs/console/task/createComputeTask/?$", views.CreateComputeTask.as_view(), name="vcs-create"),
    re_path(r"^vcs/console/task/modifyComputeTask/?$", views.ModifyComputeTask.as_view(), name="vcs-modify"),
    re_path(r"^vcs/console/task/startComputeTask/?$", views.StartComputeTask.as_view(), name="vcs-start"),
    re_path(r"^vcs/console/task/stopComputeTask/?$", views.StopComputeTask.as_view(), name="vcs-stop"),
    re_path(r"^vcs/console/task/getComputeTasks/?$", views.GetComputeTasks.as_view(), name="vcs-get"),
]
