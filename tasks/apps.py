from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = _("Tasks")

    def ready(self) -> None:
        # The VCS-SPS error shape must be known before any request (the middleware's 413s).
        from tasks.api.v2 import envelope as v2_envelope  # noqa: F401
        from tasks.api.vcs import envelope  # noqa: F401
