from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SubtasksConfig(AppConfig):
    name = "subtasks"
    verbose_name = _("Subtasks")
