import os

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AnalysisConfig(AppConfig):
    name = "analysis"
    verbose_name = _("Analysis")

    def ready(self) -> None:
        from django_q.signals import post_spawn

        # The core asks the engine for work through this port; it never imports the engine.
        from analysis.engine import AnalysisEngine  # the app registry must be ready to import models
        from analysis.orphans import NODE_PID_ENV, guard_worker
        from subtasks import engine

        if os.environ.get(NODE_PID_ENV):
            # A node's cluster: its workers fork with the rules engine (supervision, scipy: seconds)
            # already imported, not each importing it while its first subtask's heartbeat waits.
            import analysis.rules.engine  # noqa: F401

        engine.register(AnalysisEngine())
        # A node's workers die with the node (analysis/orphans.py).
        post_spawn.connect(guard_worker, dispatch_uid="vias-guard-worker")
