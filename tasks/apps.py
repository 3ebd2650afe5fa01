from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = _("Tasks")

    def ready(self) -> None:
        # The VCS-SPS error shape must be known before any request (the middleware's 413s).
        from tasks.api.vcs import envelope  # noqa: F401
