from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AnalysisConfig(AppConfig):
    name = "analysis"
    verbose_name = _("Analysis")

    def ready(self) -> None:
        # The core asks the engine for work through this port; it never imports the engine.
        from analysis.engine import AnalysisEngine  # the app registry must be ready to import models
        from subtasks import engine

        engine.register(AnalysisEngine())
